st2bot::bot!("empty-group.yaml");
