st2bot::bot!("invalid-alias.yaml");
