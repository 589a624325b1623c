st2bot::bot!("yaml-syntax-unclosed-quote.yaml");
