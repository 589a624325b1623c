st2bot::bot!("template-partial.yaml");
