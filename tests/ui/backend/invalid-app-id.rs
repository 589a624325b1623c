st2bot::bot!("invalid-app-id.yaml");
