st2bot::bot!("duplicate-key.yaml");
