st2bot::bot!("duration-too-long.yaml");
