st2bot::bot!("invalid-secret-reference-name.yaml");
