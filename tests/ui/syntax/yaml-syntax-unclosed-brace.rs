st2bot::bot!("yaml-syntax-unclosed-brace.yaml");
