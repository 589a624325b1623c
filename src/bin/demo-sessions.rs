//! The demo bot with per-user StackStorm sessions (`bots/demo-sessions.yaml`).
st2bot::bot!("bots/demo-sessions.yaml");
