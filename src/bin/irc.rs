//! The irc example bot (`bots/irc.yaml`): StackStorm ChatOps on IRC with SASL.
st2bot::bot!("bots/irc.yaml");
