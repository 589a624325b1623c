st2bot::bot!("unknown-ha-tls.yaml");
