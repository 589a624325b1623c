st2bot::bot!("template-syntax-unclosed-expression.yaml");
