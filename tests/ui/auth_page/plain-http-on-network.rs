st2bot::bot!("plain-http-on-network.yaml");
