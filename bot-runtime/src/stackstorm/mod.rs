//! Talking to StackStorm: the HTTP client ([`client::St2Client`]) with service and per-user
//! credentials ([`auth`]), the response shapes ([`types`]), errors ([`error::St2Error`]) and
//! the event stream consumer ([`stream`]). The contract is `shared/STACKSTORM.md`.

pub mod auth;
pub mod client;
pub mod error;
pub mod inquiries;
pub mod stream;
pub mod types;

pub use client::St2Client;
pub use error::St2Error;
