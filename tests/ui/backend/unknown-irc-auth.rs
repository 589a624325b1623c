st2bot::bot!("unknown-irc-auth.yaml");
