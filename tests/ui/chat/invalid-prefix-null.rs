st2bot::bot!("invalid-prefix-null.yaml");
