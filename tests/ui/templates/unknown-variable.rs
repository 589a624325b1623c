st2bot::bot!("unknown-variable.yaml");
