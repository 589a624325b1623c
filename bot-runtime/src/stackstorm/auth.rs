//! The bot's StackStorm service identity: an API key, a fixed token, or tokens obtained from
//! `POST {auth_url}/tokens` with username+password and renewed before they expire (and once
//! more when a call answers 401).

use std::time::{Duration, SystemTime};

use bot_config::St2AuthSpec;
use tokio::sync::Mutex;

use super::error::St2Error;
use super::types::TokenResponse;
use crate::secret::{self, Secret};

/// What goes on the wire for one call.
#[derive(Clone, Debug)]
pub enum Credential {
    /// `St2-Api-Key` header / `st2-api-key` query parameter.
    ApiKey(Secret),
    /// `X-Auth-Token` header / `x-auth-token` query parameter.
    Token(Secret),
}

impl Credential {
    /// Header name and value.
    pub fn header(&self) -> (&'static str, &str) {
        match self {
            Credential::ApiKey(k) => ("St2-Api-Key", k.expose()),
            Credential::Token(t) => ("X-Auth-Token", t.expose()),
        }
    }
}

enum Mode {
    Fixed(Credential),
    Password { username: String, password: Secret },
}

struct Issued {
    token: Secret,
    renew_after: SystemTime,
}

/// The service identity, renewing tokens as needed. Cheap to share behind an `Arc`.
pub struct ServiceAuth {
    mode: Mode,
    issued: Mutex<Option<Issued>>,
}

impl std::fmt::Debug for ServiceAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.mode {
            Mode::Fixed(Credential::ApiKey(_)) => "api key",
            Mode::Fixed(Credential::Token(_)) => "token",
            Mode::Password { .. } => "username+password",
        };
        f.debug_struct("ServiceAuth").field("kind", &kind).finish()
    }
}

impl ServiceAuth {
    /// Resolves the secrets the definition names (fails fast when one is missing).
    pub fn new(spec: &St2AuthSpec) -> Result<Self, St2Error> {
        let mode = match spec {
            St2AuthSpec::ApiKey(r) => Mode::Fixed(Credential::ApiKey(secret::resolve(r)?)),
            St2AuthSpec::Token(r) => Mode::Fixed(Credential::Token(secret::resolve(r)?)),
            St2AuthSpec::Password { username, password } => Mode::Password {
                username: username.to_string(),
                password: secret::resolve(password)?,
            },
        };
        Ok(Self {
            mode,
            issued: Mutex::new(None),
        })
    }

    /// A fixed credential (demo mode, tests).
    pub fn fixed(credential: Credential) -> Self {
        Self {
            mode: Mode::Fixed(credential),
            issued: Mutex::new(None),
        }
    }

    /// Whether tokens are obtained (and so can be renewed after a 401).
    pub fn renewable(&self) -> bool {
        matches!(self.mode, Mode::Password { .. })
    }

    /// The credential to use now, obtaining or renewing a token first when needed.
    pub async fn credential(
        &self,
        http: &reqwest::Client,
        auth_url: &str,
        ttl: Duration,
    ) -> Result<Credential, St2Error> {
        let (username, password) = match &self.mode {
            Mode::Fixed(c) => return Ok(c.clone()),
            Mode::Password { username, password } => (username, password),
        };
        let mut issued = self.issued.lock().await;
        if let Some(i) = issued.as_ref()
            && SystemTime::now() < i.renew_after
        {
            return Ok(Credential::Token(i.token.clone()));
        }
        let response = request_token(http, auth_url, username, password, ttl).await?;
        let renew_after = renewal_time(&response.expiry, ttl);
        tracing::info!(user = %response.user, expiry = %response.expiry, "obtained a StackStorm token");
        let token = Secret::new(response.token);
        *issued = Some(Issued {
            token: token.clone(),
            renew_after,
        });
        Ok(Credential::Token(token))
    }

    /// Forgets the current token so the next call obtains a new one (after a 401).
    pub async fn invalidate(&self) {
        *self.issued.lock().await = None;
    }
}

/// When to renew: a tenth of the lifetime (at least a minute, at most an hour) before
/// `expiry`; if `expiry` does not parse, after half the requested ttl.
fn renewal_time(expiry: &str, ttl: Duration) -> SystemTime {
    let margin = (ttl / 10).clamp(Duration::from_secs(60), Duration::from_secs(3600));
    match humantime::parse_rfc3339_weak(expiry.trim_end_matches('Z')) {
        Ok(at) => at.checked_sub(margin).unwrap_or_else(SystemTime::now),
        Err(_) => SystemTime::now() + ttl / 2,
    }
}

/// `POST {auth_url}/tokens` with HTTP Basic credentials and `{"ttl": seconds}`.
pub async fn request_token(
    http: &reqwest::Client,
    auth_url: &str,
    username: &str,
    password: &Secret,
    ttl: Duration,
) -> Result<TokenResponse, St2Error> {
    let url = format!("{auth_url}/tokens");
    let response = http
        .post(&url)
        .basic_auth(username, Some(password.expose()))
        .json(&serde_json::json!({ "ttl": ttl.as_secs() }))
        .send()
        .await
        .map_err(|e| super::client::unreachable(&url, &e))?;
    let status = response.status();
    let request_id = super::client::request_id(&response);
    if status.as_u16() == 401 {
        let faultstring = super::client::faultstring(response).await;
        return Err(St2Error::Unauthorized {
            faultstring,
            request_id,
        });
    }
    if !status.is_success() {
        let faultstring = super::client::faultstring(response).await;
        return Err(St2Error::Api {
            status: status.as_u16(),
            faultstring,
            request_id,
        });
    }
    response.json().await.map_err(|e| St2Error::Protocol {
        url,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renews_before_expiry() {
        let t = renewal_time("2030-01-01T00:00:00.000000Z", Duration::from_secs(86_400));
        let expiry = humantime::parse_rfc3339("2030-01-01T00:00:00Z").unwrap();
        assert_eq!(expiry.duration_since(t).unwrap(), Duration::from_secs(3600));
        let soon = renewal_time("not a date", Duration::from_secs(100));
        assert!(soon > SystemTime::now());
    }
}
