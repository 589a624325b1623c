//! The rocketchat example bot (`bots/rocketchat.yaml`): StackStorm ChatOps on Rocket.Chat.
st2bot::bot!("bots/rocketchat.yaml");
