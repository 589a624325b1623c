st2bot::bot!("clear-text-secret.yaml");
