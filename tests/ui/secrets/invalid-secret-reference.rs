st2bot::bot!("invalid-secret-reference.yaml");
