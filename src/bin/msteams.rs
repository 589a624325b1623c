//! The msteams example bot (`bots/msteams.yaml`): StackStorm ChatOps on Microsoft Teams.
st2bot::bot!("bots/msteams.yaml");
