st2bot::bot!("unknown-key.yaml");
