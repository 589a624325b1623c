st2bot::bot!("unknown-alias.yaml");
