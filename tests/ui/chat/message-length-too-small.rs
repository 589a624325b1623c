st2bot::bot!("message-length-too-small.yaml");
