st2bot::bot!("unknown-alias-parameter.yaml");
