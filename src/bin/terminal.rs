//! A terminal bot against a real StackStorm, no demo mode (`bots/terminal.yaml`).
st2bot::bot!("bots/terminal.yaml");
