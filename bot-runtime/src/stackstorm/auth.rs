//! The bot's StackStorm service identity: an API key, a fixed token, or tokens obtained from
//! `POST {auth_url}/tokens` with username+password.
//!
//! Obtained tokens are renewed from the lifetime StackStorm *granted* (the `expiry` it
//! answered), not the one asked for: a fifth of the lifetime before expiry for short tokens,
//! a tenth (between a minute and an hour) for long ones. StackStorm refuses a `ttl` above its
//! `auth.token_ttl` with 400 `TTL specified N is greater than max allowed M.`; the bot then
//! asks for `M`, and keeps asking for `M` from then on. Renewal is single flight: concurrent
//! callers wait for the one request in progress and share its token, and a 401 forgets a token
//! only if nobody renewed it meanwhile.

use std::time::{Duration, Instant, SystemTime};

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
    renew_at: Instant,
}

/// The renewable part: the current token and the lifetime StackStorm allows.
#[derive(Default)]
struct Tokens {
    current: Option<Issued>,
    /// StackStorm's `auth.token_ttl`, once a 400 told it.
    max_ttl: Option<Duration>,
}

/// The service identity, renewing tokens as needed. Cheap to share behind an `Arc`.
pub struct ServiceAuth {
    mode: Mode,
    /// Held across a token request: that is what makes renewal single flight.
    tokens: Mutex<Tokens>,
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
            tokens: Mutex::new(Tokens::default()),
        })
    }

    /// A fixed credential (demo mode, tests).
    pub fn fixed(credential: Credential) -> Self {
        Self {
            mode: Mode::Fixed(credential),
            tokens: Mutex::new(Tokens::default()),
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
        timeout: Duration,
    ) -> Result<Credential, St2Error> {
        let (username, password) = match &self.mode {
            Mode::Fixed(c) => return Ok(c.clone()),
            Mode::Password { username, password } => (username, password),
        };
        let mut tokens = self.tokens.lock().await;
        if let Some(i) = tokens.current.as_ref()
            && Instant::now() < i.renew_at
        {
            return Ok(Credential::Token(i.token.clone()));
        }
        let asked = tokens.max_ttl.map_or(ttl, |max| ttl.min(max));
        let (response, asked) = match request_token(
            http, auth_url, username, password, asked, timeout,
        )
        .await
        {
            Err(St2Error::Api {
                status: 400,
                faultstring,
                ..
            }) if max_ttl_from(&faultstring).is_some_and(|max| max < asked) => {
                let max = max_ttl_from(&faultstring).unwrap_or(asked);
                tracing::info!(
                    requested = asked.as_secs(),
                    max = max.as_secs(),
                    "StackStorm caps token lifetimes below stackstorm.token_ttl; asking for its maximum"
                );
                tokens.max_ttl = Some(max);
                (
                    request_token(http, auth_url, username, password, max, timeout).await?,
                    max,
                )
            }
            other => (other?, asked),
        };
        let granted = granted_lifetime(&response.expiry, SystemTime::now(), asked);
        let renew_at = Instant::now() + granted.saturating_sub(renewal_margin(granted));
        tracing::info!(
            user = %response.user,
            expiry = %response.expiry,
            renew_in_s = renew_at.saturating_duration_since(Instant::now()).as_secs(),
            "obtained a StackStorm token"
        );
        let token = Secret::new(response.token);
        tokens.current = Some(Issued {
            token: token.clone(),
            renew_at,
        });
        Ok(Credential::Token(token))
    }

    /// Forgets `refused` (StackStorm answered 401 to it) so the next call obtains a new
    /// token, unless another caller already replaced it.
    pub async fn invalidate(&self, refused: &Credential) {
        let Credential::Token(refused) = refused else {
            return;
        };
        let mut tokens = self.tokens.lock().await;
        if tokens
            .current
            .as_ref()
            .is_some_and(|i| i.token.expose() == refused.expose())
        {
            tokens.current = None;
        }
    }
}

/// How long a token lives as StackStorm granted it: `expiry` minus now, never more than
/// asked for (a clock ahead of StackStorm's would stretch it) and, when `expiry` cannot be
/// read or lies in the past by our clock, the lifetime asked for.
fn granted_lifetime(expiry: &str, now: SystemTime, asked: Duration) -> Duration {
    let parsed = humantime::parse_rfc3339_weak(expiry.trim_end_matches('Z'))
        .ok()
        .and_then(|at| at.duration_since(now).ok())
        .filter(|d| !d.is_zero());
    match parsed {
        Some(d) => d.min(asked),
        None => asked,
    }
}

/// How long before expiry to renew: a tenth of the lifetime, between a minute and an hour,
/// but never more than a fifth of it (a 10 s token is renewed after 8 s).
fn renewal_margin(lifetime: Duration) -> Duration {
    (lifetime / 10)
        .clamp(Duration::from_secs(60), Duration::from_secs(3600))
        .min(lifetime / 5)
}

/// `TTL specified N is greater than max allowed M.` (StackStorm's `TTLTooLargeException`,
/// answered with 400 by st2auth) → M seconds.
pub(crate) fn max_ttl_from(faultstring: &str) -> Option<Duration> {
    let rest = faultstring.split("max allowed").nth(1)?;
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse::<u64>()
        .ok()
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
}

/// `POST {auth_url}/tokens` with HTTP Basic credentials and `{"ttl": seconds}`, given
/// `timeout` to answer.
pub async fn request_token(
    http: &reqwest::Client,
    auth_url: &str,
    username: &str,
    password: &Secret,
    ttl: Duration,
    timeout: Duration,
) -> Result<TokenResponse, St2Error> {
    let url = format!("{auth_url}/tokens");
    let response = http
        .post(&url)
        .timeout(timeout)
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
    if status.is_redirection() {
        return Err(super::client::refused_redirect(&url, &response));
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

    fn at(text: &str) -> SystemTime {
        humantime::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn the_granted_lifetime_counts_not_the_requested_one() {
        let now = at("2030-01-01T00:00:00Z");
        let day = Duration::from_secs(86_400);
        assert_eq!(
            granted_lifetime("2030-01-01T00:00:10.000000Z", now, day),
            Duration::from_secs(10)
        );
        // A clock behind StackStorm's cannot stretch a token past what was asked.
        assert_eq!(
            granted_lifetime("2030-01-03T00:00:00Z", now, day),
            day,
            "capped at the request"
        );
        // Unreadable, or already past by our clock: fall back to the request.
        assert_eq!(granted_lifetime("not a date", now, day), day);
        assert_eq!(granted_lifetime("2029-12-31T23:59:00Z", now, day), day);
    }

    #[test]
    fn renewal_margins_suit_short_and_long_tokens() {
        let s = Duration::from_secs;
        assert_eq!(renewal_margin(s(10)), s(2), "10 s tokens renew after 8 s");
        assert_eq!(renewal_margin(s(300)), s(60));
        assert_eq!(renewal_margin(s(7200)), s(720));
        assert_eq!(renewal_margin(s(86_400)), s(3600));
        assert_eq!(renewal_margin(s(30 * 86_400)), s(3600));
        assert_eq!(renewal_margin(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn reads_stackstorms_ttl_cap() {
        assert_eq!(
            max_ttl_from("TTL specified 604800 is greater than max allowed 86400."),
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(max_ttl_from("something else"), None);
        assert_eq!(max_ttl_from("max allowed 0."), None);
    }
}
