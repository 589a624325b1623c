st2bot::bot!("invalid-url-scheme.yaml");
