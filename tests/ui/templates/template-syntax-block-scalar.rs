st2bot::bot!("template-syntax-block-scalar.yaml");
