st2bot::bot!("invalid-log-level.yaml");
