st2bot::bot!("invalid-default.yaml");
