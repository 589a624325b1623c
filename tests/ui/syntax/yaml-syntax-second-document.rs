st2bot::bot!("yaml-syntax-second-document.yaml");
