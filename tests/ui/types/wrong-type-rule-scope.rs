st2bot::bot!("wrong-type-rule-scope.yaml");
