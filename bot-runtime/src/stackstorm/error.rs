//! Errors from StackStorm calls, by what a caller can do about them.

/// A failed StackStorm call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum St2Error {
    /// StackStorm answered with an error status; `faultstring` is its explanation.
    #[error("StackStorm answered {status}: {faultstring}")]
    Api {
        /// HTTP status.
        status: u16,
        /// StackStorm's `faultstring` (or the body when there was none).
        faultstring: String,
        /// `X-Request-ID`, to quote in replies and logs.
        request_id: Option<String>,
    },
    /// The credentials were refused even after renewing them once.
    #[error("StackStorm refused the credentials: {faultstring}")]
    Unauthorized {
        /// StackStorm's explanation.
        faultstring: String,
        /// `X-Request-ID`.
        request_id: Option<String>,
    },
    /// StackStorm could not be reached (connection refused, DNS, TLS, timeout).
    #[error("StackStorm is unreachable at {url}: {reason}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// Why.
        reason: String,
    },
    /// StackStorm answered something that is not the documented shape.
    #[error("unexpected answer from StackStorm at {url}: {reason}")]
    Protocol {
        /// The URL called.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// A secret the client needs could not be read.
    #[error(transparent)]
    Secret(#[from] crate::secret::SecretError),
}

impl St2Error {
    /// The request id StackStorm gave, when there is one.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            St2Error::Api { request_id, .. } | St2Error::Unauthorized { request_id, .. } => {
                request_id.as_deref()
            }
            _ => None,
        }
    }

    /// HTTP status, when StackStorm answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            St2Error::Api { status, .. } => Some(*status),
            St2Error::Unauthorized { .. } => Some(401),
            _ => None,
        }
    }

    /// The text to show a chat user: StackStorm's own words where it gave some.
    pub fn user_message(&self) -> String {
        match self {
            St2Error::Api { faultstring, .. } => faultstring.clone(),
            St2Error::Unauthorized { faultstring, .. } => {
                format!("StackStorm refused the bot's credentials ({faultstring})")
            }
            St2Error::Unreachable { .. } => {
                "StackStorm is unreachable right now; try again in a moment".to_owned()
            }
            other => other.to_string(),
        }
    }

    /// StackStorm no longer has the action alias the bot named: 404 `Unable to identify
    /// action alias with name "…".` from `POST /v1/aliasexecution` (st2api's
    /// `ActionAliasExecutionController`), after the alias was deleted. The bot's alias
    /// copy is stale and needs a refresh.
    pub fn is_unknown_alias(&self) -> bool {
        matches!(self, St2Error::Api { status: 404, faultstring, .. }
            if faultstring.starts_with("Unable to identify action alias"))
    }

    /// Whether the call may succeed if retried later (not a refusal).
    pub fn is_transient(&self) -> bool {
        match self {
            St2Error::Unreachable { .. } => true,
            St2Error::Api { status, .. } => *status >= 500,
            _ => false,
        }
    }
}
