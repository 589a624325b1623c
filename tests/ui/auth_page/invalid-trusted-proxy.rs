st2bot::bot!("invalid-trusted-proxy.yaml");
