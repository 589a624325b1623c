st2bot::bot!("unknown-variable-folded.yaml");
