st2bot::bot!("duration-too-long-within.yaml");
