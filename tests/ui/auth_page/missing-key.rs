st2bot::bot!("missing-key.yaml");
