st2bot::bot!("missing-auth-password.yaml");
