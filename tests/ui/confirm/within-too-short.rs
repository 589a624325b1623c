st2bot::bot!("within-too-short.yaml");
