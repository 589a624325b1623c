st2bot::bot!("ack-replace-needs-edit.yaml");
