st2bot::bot!("unmatched-example.yaml");
