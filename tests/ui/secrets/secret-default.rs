st2bot::bot!("secret-default.yaml");
