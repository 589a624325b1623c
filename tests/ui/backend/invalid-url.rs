st2bot::bot!("invalid-url.yaml");
