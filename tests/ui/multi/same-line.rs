st2bot::bot!("same-line.yaml");
