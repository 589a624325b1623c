st2bot::bot!("zero-duration.yaml");
