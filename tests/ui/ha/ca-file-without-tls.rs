st2bot::bot!("ca-file-without-tls.yaml");
