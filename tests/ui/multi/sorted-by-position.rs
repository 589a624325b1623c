st2bot::bot!("sorted-by-position.yaml");
