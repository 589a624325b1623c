//! The outbound half: OAuth client-credential tokens and calls to the Bot Framework
//! Connector REST API at a conversation's `serviceUrl`.
//!
//! From Microsoft's documentation:
//! - tokens: "Authenticate requests from your bot to the Bot Connector service"
//!   (learn.microsoft.com/azure/bot-service/rest-api/bot-framework-rest-connector-authentication):
//!   `POST https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token` with the form
//!   `grant_type=client_credentials`, `client_id`, `client_secret` and
//!   `scope=https://api.botframework.com/.default`; the answer's `access_token` is valid for
//!   `expires_in` seconds and is sent as `Authorization: Bearer`. It is cached and fetched
//!   again five minutes before it expires, or at once when the Connector answers 401.
//! - calls: "API reference" (learn.microsoft.com/azure/bot-service/rest-api/bot-framework-rest-connector-api-reference):
//!   `POST /v3/conversations/{id}/activities` (send), `POST …/activities/{activityId}` (reply
//!   to an activity), `PUT …/activities/{activityId}` (update), `POST /v3/conversations`
//!   (create a conversation). HTTP 429 carries `Retry-After`, honoured before retrying
//!   ("Rate limiting for bots in Teams", learn.microsoft.com/microsoftteams/platform/bots/how-to/rate-limit).

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::backend::backoff::sleep_or_shutdown;
use crate::backend::error::ApiError;
use crate::backend::webapi::{bounded_body, retry_after};
use crate::secret::Secret;

/// The scope of tokens for the Bot Framework Connector.
pub const CONNECTOR_SCOPE: &str = "https://api.botframework.com/.default";
/// Tokens are renewed this long before they expire.
const RENEW_BEFORE_EXPIRY: Duration = Duration::from_secs(300);
/// Waits for 429 before giving up on one call.
pub const RATE_LIMIT_RETRIES: u32 = 5;
/// The largest answer read from the token endpoint or the Connector.
const MAX_RESPONSE: usize = 256 * 1024;

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Clone, Debug)]
struct CachedToken {
    value: Secret,
    renew_at: Instant,
}

/// Client for one bot's calls: its credentials, its token cache.
#[derive(Debug)]
pub struct Connector {
    http: reqwest::Client,
    token_url: String,
    app_id: String,
    app_password: Secret,
    token: Mutex<Option<CachedToken>>,
    shutdown: CancellationToken,
}

impl Connector {
    /// A client getting tokens for `app_id` from `{login_url}/{tenant}/oauth2/v2.0/token`.
    pub fn new(
        http: reqwest::Client,
        login_url: &str,
        tenant: &str,
        app_id: &str,
        app_password: Secret,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            http,
            token_url: format!(
                "{}/{tenant}/oauth2/v2.0/token",
                login_url.trim_end_matches('/')
            ),
            app_id: app_id.to_owned(),
            app_password,
            token: Mutex::default(),
            shutdown,
        }
    }

    /// A valid token: the cached one, or a new one.
    pub async fn token(&self) -> Result<Secret, ApiError> {
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref()
            && Instant::now() < t.renew_at
        {
            return Ok(t.value.clone());
        }
        let fresh = self.fetch_token().await?;
        let value = fresh.value.clone();
        *cached = Some(fresh);
        Ok(value)
    }

    /// Drops the cached token when it is still `stale` (a 401 named it).
    async fn forget(&self, stale: &Secret) {
        let mut cached = self.token.lock().await;
        if cached
            .as_ref()
            .is_some_and(|t| t.value.expose() == stale.expose())
        {
            *cached = None;
        }
    }

    async fn fetch_token(&self) -> Result<CachedToken, ApiError> {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &self.app_id)
            .append_pair("client_secret", self.app_password.expose())
            .append_pair("scope", CONNECTOR_SCOPE)
            .finish();
        let response = self
            .http
            .post(&self.token_url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form)
            .send()
            .await
            .map_err(|e| ApiError::Transport(format!("token: {}", e.without_url())))?;
        let status = response.status();
        let body = bounded_body(response, MAX_RESPONSE)
            .await
            .map_err(|e| ApiError::Transport(format!("token: {e}")))?;
        if !status.is_success() {
            let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let code = json.get("error").and_then(Value::as_str).unwrap_or("");
            let message = format!("token endpoint: HTTP {} {code}", status.as_u16());
            // `invalid_client` (bad secret), `unauthorized_client` (unknown app id) and
            // `invalid_request` (bad tenant) do not get better by retrying.
            return Err(
                if matches!(status, StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED) {
                    ApiError::Auth(message)
                } else {
                    ApiError::Transport(message)
                },
            );
        }
        let answer: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|e| ApiError::Transport(format!("token: {e}")))?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(3600));
        let renew_in = lifetime
            .checked_sub(RENEW_BEFORE_EXPIRY)
            .unwrap_or(lifetime / 2);
        tracing::debug!(
            expires_in_s = lifetime.as_secs(),
            "msteams: connector token obtained"
        );
        Ok(CachedToken {
            value: Secret::new(answer.access_token),
            renew_at: Instant::now() + renew_in,
        })
    }

    /// One Connector call to `{service_url}/v3/{segments…}` (each segment percent-encoded):
    /// a 401 fetches a new token and tries once more; a 429 waits `Retry-After` (1 s when
    /// absent) and tries again, at most [`RATE_LIMIT_RETRIES`] times. `Ok` with the JSON
    /// answer (`null` when empty).
    pub async fn call(
        &self,
        method: Method,
        service_url: &str,
        segments: &[&str],
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let url = connector_url(service_url, segments)?;
        let what = format!("{method} {}", url.path());
        let mut refreshed = false;
        let mut waits = 0;
        loop {
            let token = self.token().await?;
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(token.expose());
            if let Some(b) = body {
                request = request.json(b);
            }
            let response = request
                .send()
                .await
                .map_err(|e| ApiError::Transport(format!("{what}: {}", e.without_url())))?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                tracing::info!(call = %what, "msteams: connector refused the token; fetching a new one");
                self.forget(&token).await;
                refreshed = true;
                continue;
            }
            if status == StatusCode::TOO_MANY_REQUESTS {
                if waits == RATE_LIMIT_RETRIES {
                    return Err(ApiError::RateLimited {
                        waits: RATE_LIMIT_RETRIES,
                    });
                }
                waits += 1;
                let wait = retry_after(response.headers()).unwrap_or(Duration::from_secs(1));
                tracing::warn!(call = %what, wait_ms = wait.as_millis() as u64, "msteams: rate limited; waiting");
                if !sleep_or_shutdown(wait, &self.shutdown).await {
                    return Err(ApiError::Shutdown);
                }
                continue;
            }
            let text = bounded_body(response, MAX_RESPONSE)
                .await
                .map_err(|e| ApiError::Transport(format!("{what}: {e}")))?;
            if status.is_success() {
                return Ok(serde_json::from_slice(&text).unwrap_or(Value::Null));
            }
            let message: String = String::from_utf8_lossy(&text).chars().take(200).collect();
            if status == StatusCode::UNAUTHORIZED {
                return Err(ApiError::Auth(format!("{what}: {message}")));
            }
            return Err(ApiError::Refused {
                status: status.as_u16(),
                code: String::new(),
                message,
            });
        }
    }
}

/// `{service_url}/v3/{segments…}`, each segment percent-encoded.
pub fn connector_url(service_url: &str, segments: &[&str]) -> Result<url::Url, ApiError> {
    let mut url = url::Url::parse(service_url)
        .map_err(|e| ApiError::Transport(format!("serviceUrl `{service_url}`: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ApiError::Transport(format!(
            "serviceUrl `{service_url}` is not http(s)"
        )));
    }
    url.set_query(None);
    url.set_fragment(None);
    url.path_segments_mut()
        .map_err(|()| ApiError::Transport(format!("serviceUrl `{service_url}`")))?
        .pop_if_empty()
        .push("v3")
        .extend(segments);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_the_service_path_and_encode_ids() {
        let u = connector_url(
            "https://smba.trafficmanager.net/emea/",
            &["conversations", "19:a@thread.tacv2", "activities"],
        )
        .unwrap();
        assert_eq!(
            u.as_str(),
            "https://smba.trafficmanager.net/emea/v3/conversations/19:a@thread.tacv2/activities"
        );
        let u = connector_url(
            "http://localhost:56150/_connector",
            &["conversations", "a/b"],
        )
        .unwrap();
        assert_eq!(
            u.as_str(),
            "http://localhost:56150/_connector/v3/conversations/a%2Fb"
        );
        assert!(connector_url("ftp://x/", &[]).is_err());
    }
}
