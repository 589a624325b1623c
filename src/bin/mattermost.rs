//! The mattermost example bot (`bots/mattermost.yaml`): StackStorm ChatOps on Mattermost.
st2bot::bot!("bots/mattermost.yaml");
