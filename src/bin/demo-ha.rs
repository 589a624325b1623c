st2bot::bot!("bots/demo-ha.yaml");
