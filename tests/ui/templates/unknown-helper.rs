st2bot::bot!("unknown-helper.yaml");
