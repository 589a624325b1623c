st2bot::bot!("invalid-prefix-too-long.yaml");
