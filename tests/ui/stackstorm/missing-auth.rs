st2bot::bot!("missing-auth.yaml");
