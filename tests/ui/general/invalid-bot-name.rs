st2bot::bot!("invalid-bot-name.yaml");
