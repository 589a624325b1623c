//! The demo bot with owed results kept in a file (`bots/demo-results.yaml`).
st2bot::bot!("bots/demo-results.yaml");
