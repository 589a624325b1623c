st2bot::bot!("syntax-error-stops.yaml");
