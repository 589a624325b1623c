st2bot::bot!("invalid-number.yaml");
