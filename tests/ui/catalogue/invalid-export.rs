st2bot::bot!("invalid-export.yaml");
