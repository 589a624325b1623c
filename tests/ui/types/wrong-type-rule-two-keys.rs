st2bot::bot!("wrong-type-rule-two-keys.yaml");
