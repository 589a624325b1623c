st2bot::bot!("invalid-secret-reference-file.yaml");
