st2bot::bot!("invalid-jid.yaml");
