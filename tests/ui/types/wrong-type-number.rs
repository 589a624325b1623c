st2bot::bot!("wrong-type-number.yaml");
