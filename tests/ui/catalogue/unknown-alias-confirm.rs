st2bot::bot!("unknown-alias-confirm.yaml");
