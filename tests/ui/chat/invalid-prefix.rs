st2bot::bot!("invalid-prefix.yaml");
