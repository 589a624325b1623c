//! The demo bot (`bots/demo.yaml`): StackStorm ChatOps in the terminal.
st2bot::bot!("bots/demo.yaml");
