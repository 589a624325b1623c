st2bot::bot!("template-problems.yaml");
