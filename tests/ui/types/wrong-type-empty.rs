st2bot::bot!("wrong-type-empty.yaml");
