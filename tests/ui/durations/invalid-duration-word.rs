st2bot::bot!("invalid-duration-word.yaml");
