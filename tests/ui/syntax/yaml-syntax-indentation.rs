st2bot::bot!("yaml-syntax-indentation.yaml");
