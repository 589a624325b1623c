st2bot::bot!("unknown-backend.yaml");
