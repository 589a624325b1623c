st2bot::bot!("undefined-group-confirm.yaml");
