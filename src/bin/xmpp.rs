//! The xmpp example bot (`bots/xmpp.yaml`): StackStorm ChatOps on XMPP (Prosody, ejabberd): multi-user chat rooms and direct messages.
st2bot::bot!("bots/xmpp.yaml");
