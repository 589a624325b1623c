st2bot::bot!("shadowed-rule.yaml");
