st2bot::bot!("invalid-room.yaml");
