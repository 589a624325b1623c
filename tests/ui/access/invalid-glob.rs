st2bot::bot!("invalid-glob.yaml");
