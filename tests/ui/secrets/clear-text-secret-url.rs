st2bot::bot!("clear-text-secret-url.yaml");
