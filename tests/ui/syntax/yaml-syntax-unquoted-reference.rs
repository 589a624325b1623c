st2bot::bot!("yaml-syntax-unquoted-reference.yaml");
