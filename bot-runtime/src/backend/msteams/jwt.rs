//! Who may post to the messaging endpoint: validation of the `Authorization: Bearer` token
//! the Bot Framework Connector sends with every activity.
//!
//! The rules are Microsoft's ("Authenticate requests from the Bot Connector service to your
//! bot", learn.microsoft.com/azure/bot-service/rest-api/bot-framework-rest-connector-authentication,
//! section "Connector to bot"):
//! 1. the token is a JWT in `Authorization: Bearer …`, signed with RS256;
//! 2. its signing key is one of the JSON Web Keys listed at the `jwks_uri` of the OpenID
//!    metadata document (`https://login.botframework.com/v1/.well-known/openidconfiguration`),
//!    chosen by the header's `kid`; a key with `endorsements` may sign only activities whose
//!    `channelId` is among them;
//! 3. `iss` is `https://api.botframework.com`;
//! 4. `aud` is the bot's Microsoft App ID;
//! 5. the token is within its `nbf`/`exp` window, with five minutes of clock skew;
//! 6. its `serviceurl` claim equals the activity's `serviceUrl` (so a token minted for one
//!    service cannot make the bot send its own credentials elsewhere).
//!
//! The metadata and keys are cached for a day (Microsoft rotates keys with overlap) and
//! fetched again at most every five minutes when a token names a key the cache lacks.
//! Signature and claim checks are `jsonwebtoken`'s (with the `ring` backend the TLS stack
//! already uses); this module owns the Bot Framework rules around them.

use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use crate::backend::webapi::bounded_body;

/// Microsoft's OpenID metadata for tokens the Bot Framework Connector sends to bots.
pub const BOT_FRAMEWORK_OPENID_URL: &str =
    "https://login.botframework.com/v1/.well-known/openidconfiguration";
/// The issuer of those tokens.
pub const BOT_FRAMEWORK_ISSUER: &str = "https://api.botframework.com";
/// Clock skew allowed on `exp` and `nbf` (Microsoft's documented five minutes).
pub const CLOCK_SKEW: Duration = Duration::from_secs(300);
/// How long fetched keys are trusted before they are fetched again.
const KEYS_FRESH_FOR: Duration = Duration::from_secs(24 * 3600);
/// The shortest pause between two fetches prompted by an unknown `kid`.
const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(300);
/// The largest metadata or key document read.
const MAX_DOCUMENT: usize = 256 * 1024;
/// The longest `Authorization` header considered (real tokens are about 1.5 KB).
const MAX_TOKEN: usize = 16 * 1024;

/// Why an inbound request was refused. Never carries the token itself.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InboundAuthError {
    /// No `Authorization: Bearer` header.
    #[error("no bearer token")]
    Missing,
    /// Not a JWT the bot can read.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// Signed with another algorithm than RS256.
    #[error("token signed with {0:?}, not RS256")]
    Algorithm(String),
    /// The header's `kid` is not among the published keys.
    #[error("token signed with unknown key `{0}`")]
    UnknownKey(String),
    /// The key is not endorsed for this channel.
    #[error("signing key not endorsed for channel `{0}`")]
    NotEndorsed(String),
    /// Signature, issuer, audience or time window wrong.
    #[error("token rejected: {0}")]
    Rejected(String),
    /// The `serviceurl` claim is missing or differs from the activity's `serviceUrl`.
    #[error("token's serviceurl does not match the activity's serviceUrl")]
    ServiceUrl,
    /// The keys could not be fetched (the request should be retried later).
    #[error("cannot fetch signing keys: {0}")]
    Keys(String),
}

impl InboundAuthError {
    /// Whether the fault is ours (keys unavailable), not the caller's.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, InboundAuthError::Keys(_))
    }
}

#[derive(Clone, Debug, Deserialize)]
struct OpenIdMetadata {
    jwks_uri: String,
}

#[derive(Clone, Debug, Deserialize)]
struct KeySet {
    #[serde(default)]
    keys: Vec<Jwk>,
}

/// One published key (RSA only; others are skipped).
#[derive(Clone, Debug, Deserialize)]
struct Jwk {
    #[serde(default)]
    kid: String,
    #[serde(default)]
    kty: String,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    endorsements: Option<Vec<String>>,
}

#[derive(Debug, Default)]
struct KeyCache {
    keys: Vec<Jwk>,
    fetched_at: Option<Instant>,
}

/// Validates inbound tokens for one bot (its App ID) against one OpenID metadata document.
#[derive(Debug)]
pub struct TokenValidator {
    http: reqwest::Client,
    openid_url: String,
    issuer: String,
    app_id: String,
    cache: Mutex<KeyCache>,
}

impl TokenValidator {
    /// A validator for tokens addressed to `app_id`, with keys from `openid_url` and
    /// tokens from `issuer` (Microsoft's: [`BOT_FRAMEWORK_OPENID_URL`],
    /// [`BOT_FRAMEWORK_ISSUER`]).
    pub fn new(
        http: reqwest::Client,
        openid_url: impl Into<String>,
        issuer: impl Into<String>,
        app_id: impl Into<String>,
    ) -> Self {
        Self {
            http,
            openid_url: openid_url.into(),
            issuer: issuer.into(),
            app_id: app_id.into(),
            cache: Mutex::default(),
        }
    }

    /// Checks the `Authorization` header of a request carrying an activity with these
    /// `channelId` and `serviceUrl`.
    pub async fn validate(
        &self,
        authorization: Option<&str>,
        channel_id: &str,
        service_url: &str,
    ) -> Result<(), InboundAuthError> {
        let token = authorization
            .filter(|h| h.len() <= MAX_TOKEN)
            .and_then(|h| {
                let (scheme, token) = h.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(InboundAuthError::Missing)?;
        let header =
            decode_header(token).map_err(|e| InboundAuthError::Malformed(e.to_string()))?;
        if header.alg != Algorithm::RS256 {
            return Err(InboundAuthError::Algorithm(format!("{:?}", header.alg)));
        }
        let kid = header
            .kid
            .ok_or_else(|| InboundAuthError::Malformed("no `kid` in the header".into()))?;
        let key = self.key(&kid).await?;
        if let Some(endorsements) = &key.endorsements
            && !channel_id.is_empty()
            && !endorsements.iter().any(|e| e == channel_id)
        {
            return Err(InboundAuthError::NotEndorsed(channel_id.to_owned()));
        }
        let (Some(n), Some(e)) = (&key.n, &key.e) else {
            return Err(InboundAuthError::UnknownKey(kid));
        };
        let decoding = DecodingKey::from_rsa_components(n, e)
            .map_err(|e| InboundAuthError::Keys(format!("key `{kid}`: {e}")))?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = CLOCK_SKEW.as_secs();
        validation.validate_nbf = true;
        validation.set_issuer(&[self.issuer.as_str()]);
        validation.set_audience(&[self.app_id.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims = decode::<Map<String, Value>>(token, &decoding, &validation)
            .map_err(|e| InboundAuthError::Rejected(e.to_string()))?
            .claims;
        let claimed = claims
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("serviceurl"))
            .and_then(|(_, v)| v.as_str())
            .ok_or(InboundAuthError::ServiceUrl)?;
        if claimed.trim_end_matches('/') != service_url.trim_end_matches('/') {
            return Err(InboundAuthError::ServiceUrl);
        }
        Ok(())
    }

    /// The key named `kid`: from the cache while fresh, else fetched again.
    async fn key(&self, kid: &str) -> Result<Jwk, InboundAuthError> {
        let mut cache = self.cache.lock().await;
        let age = cache.fetched_at.map(|t| t.elapsed());
        let stale = age.is_none_or(|a| a >= KEYS_FRESH_FOR);
        let find = |c: &KeyCache| c.keys.iter().find(|k| k.kid == kid).cloned();
        if !stale && let Some(key) = find(&cache) {
            return Ok(key);
        }
        let may_refetch = stale || age.is_some_and(|a| a >= REFETCH_AT_MOST_EVERY);
        if may_refetch {
            match self.fetch_keys().await {
                Ok(keys) => {
                    tracing::debug!(keys = keys.len(), "msteams: signing keys fetched");
                    cache.keys = keys;
                    cache.fetched_at = Some(Instant::now());
                }
                Err(e) if cache.keys.is_empty() => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "msteams: signing keys not refreshed; using the cached ones")
                }
            }
        }
        find(&cache).ok_or_else(|| InboundAuthError::UnknownKey(kid.to_owned()))
    }

    async fn fetch_keys(&self) -> Result<Vec<Jwk>, InboundAuthError> {
        let metadata: OpenIdMetadata = self.fetch_json(&self.openid_url).await?;
        let set: KeySet = self.fetch_json(&metadata.jwks_uri).await?;
        Ok(set.keys.into_iter().filter(|k| k.kty == "RSA").collect())
    }

    async fn fetch_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
    ) -> Result<T, InboundAuthError> {
        let fail = |why: String| InboundAuthError::Keys(format!("{url}: {why}"));
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| fail(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(fail(format!("HTTP {}", response.status().as_u16())));
        }
        let body = bounded_body(response, MAX_DOCUMENT).await.map_err(fail)?;
        serde_json::from_slice(&body).map_err(|e| fail(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    //! Against a fake issuer on 127.0.0.1 that publishes the public half of an RSA key the
    //! test makes with the `openssl` command (installed by scripts/setup-test-deps); no
    //! private key is committed.

    use super::*;
    use axum::{Json, Router, routing::get};
    use base64::Engine;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;
    use std::process::Command;
    use std::time::{SystemTime, UNIX_EPOCH};

    const APP_ID: &str = "11111111-2222-3333-4444-555555555555";
    const SERVICE_URL: &str = "https://smba.trafficmanager.net/emea/";

    /// An RSA key pair from `openssl`: the PKCS#1 DER private key and the JWK numbers.
    struct TestKey {
        der: Vec<u8>,
        n: String,
        e: String,
    }

    fn openssl(args: &[&str]) -> Vec<u8> {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl (scripts/setup-test-deps installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn test_key(dir: &std::path::Path, name: &str) -> TestKey {
        let pem = dir.join(format!("{name}.pem"));
        let pem = pem.to_str().unwrap();
        openssl(&["genrsa", "-out", pem, "2048"]);
        let der = openssl(&["rsa", "-in", pem, "-traditional", "-outform", "DER"]);
        let modulus =
            String::from_utf8(openssl(&["rsa", "-in", pem, "-noout", "-modulus"])).unwrap();
        let hex = modulus.trim().trim_start_matches("Modulus=");
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        TestKey {
            der,
            n: b64.encode(bytes),
            e: b64.encode([1u8, 0, 1]),
        }
    }

    /// Serves the metadata and a key set with `keys` on 127.0.0.1; returns the metadata URL.
    async fn fake_issuer(keys: Value) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let jwks_uri = format!("{base}/keys");
        let app =
            Router::new()
                .route(
                    "/openid",
                    get(move || {
                        let jwks_uri = jwks_uri.clone();
                        async move {
                            Json(json!({ "issuer": BOT_FRAMEWORK_ISSUER, "jwks_uri": jwks_uri }))
                        }
                    }),
                )
                .route("/keys", get(move || async move { Json(keys.clone()) }));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("{base}/openid")
    }

    fn now() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    fn sign(key: &TestKey, kid: &str, claims: Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        encode(&header, &claims, &EncodingKey::from_rsa_der(&key.der)).unwrap()
    }

    fn good_claims() -> Value {
        json!({
            "iss": BOT_FRAMEWORK_ISSUER,
            "aud": APP_ID,
            "exp": now() + 3600,
            "nbf": now() - 10,
            "serviceurl": SERVICE_URL,
        })
    }

    struct Fixture {
        validator: TokenValidator,
        key: TestKey,
        other: TestKey,
        _dir: TempDir,
    }

    struct TempDir(std::path::PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    async fn fixture() -> Fixture {
        let dir = std::env::temp_dir().join(format!(
            "st2bot-msteams-jwt-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let key = test_key(&dir, "signing");
        let other = test_key(&dir, "other");
        let openid = fake_issuer(json!({ "keys": [
            { "kty": "RSA", "use": "sig", "kid": "k1", "n": key.n, "e": key.e, "endorsements": ["msteams", "webchat"] },
            { "kty": "RSA", "use": "sig", "kid": "k-webchat", "n": key.n, "e": key.e, "endorsements": ["webchat"] },
        ]}))
        .await;
        let http = crate::http::client(true, None, Some(Duration::from_secs(5))).unwrap();
        Fixture {
            validator: TokenValidator::new(http, openid, BOT_FRAMEWORK_ISSUER, APP_ID),
            key,
            other,
            _dir: TempDir(dir),
        }
    }

    async fn check(f: &Fixture, token: &str) -> Result<(), InboundAuthError> {
        f.validator
            .validate(Some(&format!("Bearer {token}")), "msteams", SERVICE_URL)
            .await
    }

    #[tokio::test]
    async fn every_rule_of_the_connector_token() {
        let f = fixture().await;
        let ok = sign(&f.key, "k1", good_claims());
        assert_eq!(check(&f, &ok).await, Ok(()));
        // The serviceUrl compares without the trailing slash.
        assert_eq!(
            f.validator
                .validate(
                    Some(&format!("Bearer {ok}")),
                    "msteams",
                    SERVICE_URL.trim_end_matches('/')
                )
                .await,
            Ok(())
        );

        assert_eq!(
            f.validator.validate(None, "msteams", SERVICE_URL).await,
            Err(InboundAuthError::Missing)
        );
        assert_eq!(
            f.validator
                .validate(Some("Basic abc"), "msteams", SERVICE_URL)
                .await,
            Err(InboundAuthError::Missing)
        );
        assert!(matches!(
            check(&f, "not.a.jwt").await,
            Err(InboundAuthError::Malformed(_))
        ));

        // Signed by a key the issuer does not publish under that kid.
        let forged = sign(&f.other, "k1", good_claims());
        assert!(matches!(
            check(&f, &forged).await,
            Err(InboundAuthError::Rejected(_))
        ));
        let unknown = sign(&f.key, "k-unknown", good_claims());
        assert_eq!(
            check(&f, &unknown).await,
            Err(InboundAuthError::UnknownKey("k-unknown".into()))
        );
        let not_endorsed = sign(&f.key, "k-webchat", good_claims());
        assert_eq!(
            check(&f, &not_endorsed).await,
            Err(InboundAuthError::NotEndorsed("msteams".into()))
        );

        let mut c = good_claims();
        c["iss"] = json!("https://sts.windows.net/evil/");
        assert!(matches!(
            check(&f, &sign(&f.key, "k1", c)).await,
            Err(InboundAuthError::Rejected(_))
        ));
        let mut c = good_claims();
        c["aud"] = json!("99999999-2222-3333-4444-555555555555");
        assert!(matches!(
            check(&f, &sign(&f.key, "k1", c)).await,
            Err(InboundAuthError::Rejected(_))
        ));
        let mut c = good_claims();
        c["serviceurl"] = json!("https://attacker.example/");
        assert_eq!(
            check(&f, &sign(&f.key, "k1", c)).await,
            Err(InboundAuthError::ServiceUrl)
        );
        let mut c = good_claims();
        c.as_object_mut().unwrap().remove("serviceurl");
        assert_eq!(
            check(&f, &sign(&f.key, "k1", c)).await,
            Err(InboundAuthError::ServiceUrl)
        );
    }

    #[tokio::test]
    async fn expiry_allows_five_minutes_of_skew_and_no_more() {
        let f = fixture().await;
        let mut c = good_claims();
        c["exp"] = json!(now() - 240);
        assert_eq!(
            check(&f, &sign(&f.key, "k1", c)).await,
            Ok(()),
            "within skew"
        );
        let mut c = good_claims();
        c["exp"] = json!(now() - 400);
        assert!(matches!(
            check(&f, &sign(&f.key, "k1", c)).await,
            Err(InboundAuthError::Rejected(_))
        ));
        let mut c = good_claims();
        c["nbf"] = json!(now() + 900);
        assert!(matches!(
            check(&f, &sign(&f.key, "k1", c)).await,
            Err(InboundAuthError::Rejected(_))
        ));
        let mut c = good_claims();
        c.as_object_mut().unwrap().remove("exp");
        assert!(matches!(
            check(&f, &sign(&f.key, "k1", c)).await,
            Err(InboundAuthError::Rejected(_))
        ));
    }

    #[tokio::test]
    async fn an_unreachable_issuer_is_our_fault_not_the_callers() {
        let http = crate::http::client(true, None, Some(Duration::from_secs(2))).unwrap();
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/openid", closed.local_addr().unwrap());
        drop(closed);
        let v = TokenValidator::new(http, url, BOT_FRAMEWORK_ISSUER, APP_ID);
        let err = v
            .validate(
                Some("Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.e30.c2ln"),
                "msteams",
                SERVICE_URL,
            )
            .await
            .unwrap_err();
        assert!(err.is_unavailable(), "{err}");
    }
}
