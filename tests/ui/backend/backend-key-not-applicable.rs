st2bot::bot!("backend-key-not-applicable.yaml");
