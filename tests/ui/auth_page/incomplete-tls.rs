st2bot::bot!("incomplete-tls.yaml");
