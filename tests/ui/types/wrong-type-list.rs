st2bot::bot!("wrong-type-list.yaml");
