st2bot::bot!("unknown-bot-command.yaml");
