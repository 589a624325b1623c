st2bot::bot!("undefined-group.yaml");
