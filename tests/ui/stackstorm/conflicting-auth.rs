st2bot::bot!("conflicting-auth.yaml");
