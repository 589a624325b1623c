st2bot::bot!("invalid-route.yaml");
