//! The backend error family. Two levels, each with one type:
//!
//! - [`BackendError`](super::BackendError): why a whole backend stopped (refused
//!   credentials, impossible settings, an unreadable secret); what [`Backend::run`]
//!   returns. Everything else is retried or logged by the backend itself.
//! - [`ApiError`]: why one call to a chat service's API failed (Slack, Mattermost,
//!   Discord, Rocket.Chat's REST and realtime APIs, Matrix's client-server API, the
//!   Microsoft Teams Connector). A backend maps [`ApiError::Auth`] to
//!   [`BackendError::Auth`](super::BackendError::Auth) and logs the rest. Matrix decides
//!   on the homeserver's answer itself ([`ApiError::Status`]: its `errcode` and
//!   rate-limit delay), through `matrix::api::MatrixError`.
//!
//! Opening a WebSocket fails with [`WsConnectError`](super::websocket::WsConnectError).
//! No error here ever carries a token or a password.
//!
//! [`Backend::run`]: super::Backend::run

use std::time::Duration;

/// Why one call to a chat service's web API failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The service refused the credentials (HTTP 401, Slack's `invalid_auth`, a token
    /// endpoint's refusal); not retried.
    #[error("credentials refused: {0}")]
    Auth(String),
    /// The service refused this request (an error status, Slack's `ok: false`) or answered
    /// without what the call needs; not retried.
    #[error("{}", refusal(*.status, .code, .message))]
    Refused {
        /// HTTP status (200 for an error in a successful answer).
        status: u16,
        /// The service's error code (Slack `channel_not_found`, Mattermost's error id,
        /// Discord's numeric code), empty when it gave none.
        code: String,
        /// The service's message (or what was missing), empty when there is none.
        message: String,
    },
    /// The service answered with an error status that the caller decides on (Matrix: the
    /// homeserver's `errcode` and `retry_after_ms`): retried or not by the caller.
    #[error("{endpoint}: HTTP {status} {code}: {message}")]
    Status {
        /// The endpoint called (`sync`, `rooms/send`).
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// The service's error code (Matrix `M_FORBIDDEN`), empty when it gave none.
        code: String,
        /// The service's message (or the start of the body when it gave none).
        message: String,
        /// How long the service asked to wait before retrying, when it said.
        retry_after: Option<Duration>,
    },
    /// A target that cannot be resolved (a channel name without a team, an unknown user).
    #[error("cannot resolve {0}")]
    Unresolvable(String),
    /// Still rate limited after this many waits.
    #[error("rate limited, gave up after {waits} waits")]
    RateLimited {
        /// How many `Retry-After` waits were spent.
        waits: u32,
    },
    /// No usable answer (network failure, an unreadable body).
    #[error("{0}")]
    Transport(String),
    /// Transport errors or 5xx answers, still failing after every retry.
    #[error("gave up after {attempts} attempts: {last}")]
    GaveUp {
        /// How many tries.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// Shutdown came while waiting.
    #[error("shutting down")]
    Shutdown,
}

impl ApiError {
    /// A refusal with the service's error `code` and no message (Slack's `ok: false`).
    pub fn code(status: u16, code: impl Into<String>) -> Self {
        Self::Refused {
            status,
            code: code.into(),
            message: String::new(),
        }
    }

    /// A refusal with a `message` and no code (or an answer missing what the call needs).
    pub fn refused(status: u16, message: impl Into<String>) -> Self {
        Self::Refused {
            status,
            code: String::new(),
            message: message.into(),
        }
    }
}

/// `HTTP 404 (10003): no channel named …`; `` `channel_not_found` `` for an error in a
/// successful answer.
fn refusal(status: u16, code: &str, message: &str) -> String {
    let mut text = if status == 200 {
        String::new()
    } else {
        format!("HTTP {status}")
    };
    if !code.is_empty() {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push('`');
        text.push_str(code);
        text.push('`');
    }
    if !message.is_empty() {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(message);
    }
    if text.is_empty() {
        text.push_str("refused");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_say_status_code_and_message_when_present() {
        let e = ApiError::Refused {
            status: 404,
            code: "10003".into(),
            message: "no channel".into(),
        };
        assert_eq!(e.to_string(), "HTTP 404 `10003`: no channel");
        assert_eq!(
            ApiError::code(200, "channel_not_found").to_string(),
            "`channel_not_found`"
        );
        assert_eq!(ApiError::refused(403, "no").to_string(), "HTTP 403: no");
        assert_eq!(
            ApiError::refused(200, "no id").to_string(),
            "no id",
            "an error inside a successful answer shows no status"
        );
        assert_eq!(ApiError::refused(200, "").to_string(), "refused");
        assert_eq!(
            ApiError::Auth("invalid_auth".into()).to_string(),
            "credentials refused: invalid_auth"
        );
        assert_eq!(
            ApiError::RateLimited { waits: 5 }.to_string(),
            "rate limited, gave up after 5 waits"
        );
    }

    #[test]
    fn a_status_answer_says_endpoint_status_code_and_message() {
        let e = ApiError::Status {
            endpoint: "rooms/send".into(),
            status: 429,
            code: "M_LIMIT_EXCEEDED".into(),
            message: "slow down".into(),
            retry_after: Some(std::time::Duration::from_millis(1500)),
        };
        assert_eq!(
            e.to_string(),
            "rooms/send: HTTP 429 M_LIMIT_EXCEEDED: slow down"
        );
    }
}
