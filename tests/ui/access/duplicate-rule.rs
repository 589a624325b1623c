st2bot::bot!("duplicate-rule.yaml");
