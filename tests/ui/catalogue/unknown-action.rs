st2bot::bot!("unknown-action.yaml");
