st2bot::bot!("wrong-type-mapping.yaml");
