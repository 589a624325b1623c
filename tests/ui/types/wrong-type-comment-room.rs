st2bot::bot!("wrong-type-comment-room.yaml");
