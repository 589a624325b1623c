st2bot::bot!("command-name-clash.yaml");
