st2bot::bot!("yaml-syntax-unquoted-group.yaml");
