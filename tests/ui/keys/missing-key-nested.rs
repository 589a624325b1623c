st2bot::bot!("missing-key-nested.yaml");
