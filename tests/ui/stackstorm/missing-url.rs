st2bot::bot!("missing-url.yaml");
