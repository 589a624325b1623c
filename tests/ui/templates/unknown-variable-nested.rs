st2bot::bot!("unknown-variable-nested.yaml");
