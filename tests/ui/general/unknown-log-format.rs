st2bot::bot!("unknown-log-format.yaml");
