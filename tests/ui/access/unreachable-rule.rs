st2bot::bot!("unreachable-rule.yaml");
