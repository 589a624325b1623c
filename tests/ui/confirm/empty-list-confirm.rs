st2bot::bot!("empty-list-confirm.yaml");
