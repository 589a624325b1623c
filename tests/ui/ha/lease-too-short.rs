st2bot::bot!("lease-too-short.yaml");
