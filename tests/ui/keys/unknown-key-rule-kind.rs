st2bot::bot!("unknown-key-rule-kind.yaml");
