st2bot::bot!("invalid-url-path.yaml");
