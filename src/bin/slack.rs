//! The slack example bot (`bots/slack.yaml`): StackStorm ChatOps on Slack (Socket Mode).
st2bot::bot!("bots/slack.yaml");
