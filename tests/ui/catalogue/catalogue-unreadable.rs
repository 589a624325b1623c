st2bot::bot!("catalogue-unreadable.yaml");
