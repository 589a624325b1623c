st2bot::bot!("invalid-listen-address.yaml");
