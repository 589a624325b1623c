st2bot::bot!("unknown-variable-single-quoted.yaml");
