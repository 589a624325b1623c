st2bot::bot!("wrong-type-misindented.yaml");
