//! The Matrix example bot: `bots/matrix.yaml` compiled into an executable.
st2bot::bot!("bots/matrix.yaml");
