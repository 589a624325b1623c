st2bot::bot!("comment-in-value.yaml");
