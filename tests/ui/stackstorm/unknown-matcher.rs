st2bot::bot!("unknown-matcher.yaml");
