st2bot::bot!("wrong-type-bool.yaml");
