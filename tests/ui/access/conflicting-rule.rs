st2bot::bot!("conflicting-rule.yaml");
