st2bot::bot!("ack-replace-without-ack.yaml");
