st2bot::bot!("yaml-syntax-tab.yaml");
