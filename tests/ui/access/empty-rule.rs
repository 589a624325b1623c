st2bot::bot!("empty-rule.yaml");
