st2bot::bot!("wrong-type-unquoted-template.yaml");
