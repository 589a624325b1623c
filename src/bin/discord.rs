//! The discord example bot (`bots/discord.yaml`): StackStorm ChatOps on Discord.
st2bot::bot!("bots/discord.yaml");
