st2bot::bot!("empty-file.yaml");
