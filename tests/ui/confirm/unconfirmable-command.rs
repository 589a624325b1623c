st2bot::bot!("unconfirmable-command.yaml");
