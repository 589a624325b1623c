st2bot::bot!("unknown-variable-in-with.yaml");
