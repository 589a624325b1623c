st2bot::bot!("invalid-instance-env.yaml");
