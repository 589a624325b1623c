st2bot::bot!("invisible-character.yaml");
