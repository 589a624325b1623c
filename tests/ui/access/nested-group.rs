st2bot::bot!("nested-group.yaml");
