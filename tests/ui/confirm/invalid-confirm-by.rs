st2bot::bot!("invalid-confirm-by.yaml");
