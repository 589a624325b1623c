st2bot::bot!("invalid-duration.yaml");
