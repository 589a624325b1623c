st2bot::bot!("empty-list.yaml");
