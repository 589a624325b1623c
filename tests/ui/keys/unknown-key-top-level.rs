st2bot::bot!("unknown-key-top-level.yaml");
