st2bot::bot!("ambiguous-aliases.yaml");
