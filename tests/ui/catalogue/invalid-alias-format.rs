st2bot::bot!("invalid-alias-format.yaml");
