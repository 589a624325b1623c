st2bot::bot!("template-syntax.yaml");
