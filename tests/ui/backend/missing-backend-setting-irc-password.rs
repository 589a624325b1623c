st2bot::bot!("missing-backend-setting-irc-password.yaml");
