st2bot::bot!("invalid-command-name.yaml");
