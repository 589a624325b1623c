st2bot::bot!("wrong-type-port.yaml");
