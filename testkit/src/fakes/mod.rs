//! In-repo fakes of the chat services that cannot run on this machine. Each serves the
//! service's public wire protocol on 127.0.0.1 (REST with axum, WebSockets through
//! [`crate::ws`]), rejects what the real service rejects, and lets a test act as the
//! service's users and inspect what the bot sent. The vendor documentation each follows is
//! cited in its module docs.

pub mod discord;
pub mod mattermost;
pub mod msteams;
pub mod rocketchat;
pub mod slack;
