st2bot::bot!("invalid-group-name.yaml");
