st2bot::bot!("missing-key-auth.yaml");
