//! The StackStorm HTTP client: every call the bot makes, with the service identity or a
//! chat user's own token, one renewal and retry on 401, and StackStorm's error bodies
//! (`faultstring`, `X-Request-ID`) turned into [`St2Error`]s.

use std::sync::Arc;

use bot_config::StackStormSpec;
use futures_util::StreamExt as _;
use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;

use super::auth::{Credential, ServiceAuth};
use super::error::St2Error;
use super::types::*;
use crate::secret::Secret;

/// Aliases per page of `GET /v1/actionalias`: StackStorm's default `api.max_page_size`.
const ALIAS_PAGE: usize = 100;
/// Pages of the alias list asked for at once, after the first.
pub const ALIAS_PAGES_IN_FLIGHT: usize = 4;
/// The most action aliases a bot reads (the list's count is the server's word).
pub const MAX_ALIASES: usize = 100_000;

/// One fetched page of the alias list, not yet parsed.
struct AliasPage {
    url: String,
    /// `X-Total-Count`, when StackStorm sent it.
    total: Option<usize>,
    /// Documents on the page, once [`AliasPage::take`] has parsed it.
    got: usize,
    body: bytes::Bytes,
}

impl AliasPage {
    /// Parses the page, appends what `parse` accepts to `all`, and returns how many
    /// documents the page held.
    fn take<T>(
        &mut self,
        all: &mut Vec<T>,
        parse: &mut impl FnMut(&serde_json::value::RawValue) -> Option<T>,
    ) -> Result<usize, St2Error> {
        let page: Vec<&serde_json::value::RawValue> =
            serde_json::from_slice(&self.body).map_err(|e| St2Error::Protocol {
                url: self.url.clone(),
                reason: format!("invalid JSON: {e}"),
            })?;
        self.got = page.len();
        all.extend(page.into_iter().filter_map(parse));
        self.body = bytes::Bytes::new();
        Ok(self.got)
    }
}

/// StackStorm API client. Clone freely: clones share the connection pool and credentials.
#[derive(Clone, Debug)]
pub struct St2Client {
    /// No client-wide timeout: each API call carries `spec.timeout`; the stream, which
    /// lives for hours, none.
    http: reqwest::Client,
    spec: Arc<StackStormSpec>,
    auth: Arc<ServiceAuth>,
}

impl St2Client {
    /// A client for a definition's `stackstorm` settings (resolves the service secrets).
    pub fn new(spec: &StackStormSpec) -> Result<Self, St2Error> {
        Self::with_auth(spec, ServiceAuth::new(&spec.auth)?)
    }

    /// A client with an explicit service identity (demo mode, tests).
    pub fn with_auth(spec: &StackStormSpec, auth: ServiceAuth) -> Result<Self, St2Error> {
        // One client (one connection pool, the trust store read once): API calls get
        // `spec.timeout` each, the stream none.
        let http = http_client(spec.verify_tls, spec.ca_file.as_deref(), None).map_err(|e| {
            St2Error::Protocol {
                url: spec.api_url.to_string(),
                reason: e.to_string(),
            }
        })?;
        Ok(Self {
            http,
            spec: Arc::new(spec.clone()),
            auth: Arc::new(auth),
        })
    }

    /// The settings this client was made from.
    pub fn spec(&self) -> &StackStormSpec {
        &self.spec
    }

    /// The service credential to use now (obtaining or renewing a token if needed).
    pub async fn service_credential(&self) -> Result<Credential, St2Error> {
        self.auth
            .credential(
                &self.http,
                &self.spec.auth_url,
                self.spec.token_ttl,
                self.spec.timeout,
            )
            .await
    }

    /// Sends a request built by `build`, authenticated as `as_user` (a chat user's own
    /// token) or as the service; a 401 with a renewable service token renews and retries once.
    async fn send(
        &self,
        call: &'static str,
        method: Method,
        url: &str,
        as_user: Option<&Secret>,
        body: Option<&serde_json::Value>,
    ) -> Result<Response, St2Error> {
        let build = |credential: &Credential| -> RequestBuilder {
            let (name, value) = credential.header();
            let mut request = self
                .http
                .request(method.clone(), url)
                .timeout(self.spec.timeout)
                .header(name, value);
            if let Some(body) = body {
                request = request.json(body);
            }
            request
        };
        let mut retried = false;
        loop {
            let credential = match as_user {
                Some(token) => Credential::Token(token.clone()),
                None => self.service_credential().await?,
            };
            let started = std::time::Instant::now();
            let sent = build(&credential).send().await;
            crate::ops::metrics().st2_call(
                call,
                started.elapsed(),
                sent.as_ref().ok().map(|r| r.status().as_u16()),
            );
            let response = sent.map_err(|e| unreachable(url, &e))?;
            if response.status().as_u16() == 401 {
                if as_user.is_none() && self.auth.renewable() && !retried {
                    tracing::warn!(
                        url,
                        "StackStorm answered 401; renewing the token and retrying once"
                    );
                    self.auth.invalidate(&credential).await;
                    retried = true;
                    continue;
                }
                let request_id = request_id(&response);
                return Err(St2Error::Unauthorized {
                    faultstring: faultstring(response).await,
                    request_id,
                });
            }
            if response.status().is_redirection() {
                return Err(refused_redirect(url, &response));
            }
            if !response.status().is_success() {
                let status = response.status().as_u16();
                let request_id = request_id(&response);
                return Err(St2Error::Api {
                    status,
                    faultstring: faultstring(response).await,
                    request_id,
                });
            }
            return Ok(response);
        }
    }

    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        call: &'static str,
        method: Method,
        url: String,
        as_user: Option<&Secret>,
        body: Option<serde_json::Value>,
    ) -> Result<T, St2Error> {
        let response = self
            .send(call, method, &url, as_user, body.as_ref())
            .await?;
        let bytes = response.bytes().await.map_err(|e| unreachable(&url, &e))?;
        serde_json::from_slice(&bytes).map_err(|e| St2Error::Protocol {
            url,
            reason: format!("invalid JSON: {e}"),
        })
    }

    /// `GET /v1/actionalias/help`.
    pub async fn help(
        &self,
        pack: Option<&str>,
        filter: Option<&str>,
        limit: u32,
        offset: u32,
    ) -> Result<HelpResponse, St2Error> {
        let mut url = url::Url::parse(&format!("{}/v1/actionalias/help", self.spec.api_url))
            .map_err(|e| St2Error::Protocol {
                url: self.spec.api_url.to_string(),
                reason: e.to_string(),
            })?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(p) = pack {
                q.append_pair("pack", p);
            }
            if let Some(f) = filter {
                q.append_pair("filter", f);
            }
            q.append_pair("limit", &limit.to_string());
            q.append_pair("offset", &offset.to_string());
        }
        self.call("help", Method::GET, url.into(), None, None).await
    }

    /// Every action alias (`GET /v1/actionalias`; see [`St2Client::list_aliases_with`]).
    pub async fn list_aliases(&self) -> Result<Vec<serde_json::Value>, St2Error> {
        self.list_aliases_with(|raw| serde_json::from_str(raw.get()).ok())
            .await
    }

    /// Every action alias, each document turned into a `T` by `parse` straight from the
    /// response text (no JSON tree is built for a document `parse` does not build one
    /// for); documents `parse` refuses (`None`) are left out, in StackStorm's order.
    ///
    /// Paged by StackStorm's default `api.max_page_size`, 100, the largest page every
    /// StackStorm grants (`-1` needs an administrator under RBAC), following
    /// `X-Total-Count`. Once the first page has told how many there are, the other pages
    /// are asked for [`ALIAS_PAGES_IN_FLIGHT`] at a time: 10,000 aliases are 100 pages, and
    /// one after the other they were most of a bot's start (docs/operations.md,
    /// "Performance"). At most [`MAX_ALIASES`] are read: the count is the server's word.
    pub async fn list_aliases_with<T>(
        &self,
        mut parse: impl FnMut(&serde_json::value::RawValue) -> Option<T>,
    ) -> Result<Vec<T>, St2Error> {
        let mut all = Vec::new();
        let mut first = self.alias_page(0).await?;
        if let Some(total) = first.total {
            // Sized once from the announced count (capped), instead of doubling.
            all.reserve(total.min(MAX_ALIASES));
        }
        let mut seen = first.take(&mut all, &mut parse)?;
        let mut last = first;
        loop {
            if seen >= MAX_ALIASES {
                let more = match last.total {
                    Some(total) => total > seen,
                    None => last.got == ALIAS_PAGE,
                };
                if more {
                    tracing::warn!(
                        read = seen,
                        "StackStorm lists more action aliases than a bot reads; the rest are left out"
                    );
                }
                break;
            }
            match last.total {
                Some(total) if seen < total && last.got > 0 => {
                    // The rest, a few pages at a time, taken in order. A short page means
                    // the list shrank meanwhile: what was asked for after it is dropped,
                    // and the loop looks at that page's count again.
                    let offsets = (seen..total.min(MAX_ALIASES)).step_by(ALIAS_PAGE);
                    let mut pages = futures_util::stream::iter(offsets)
                        .map(|offset| self.alias_page(offset))
                        .buffered(ALIAS_PAGES_IN_FLIGHT);
                    while let Some(page) = pages.next().await {
                        let mut page = page?;
                        seen += page.take(&mut all, &mut parse)?;
                        let short = page.got < ALIAS_PAGE;
                        last = page;
                        if short {
                            break;
                        }
                    }
                }
                // No count (not StackStorm's API, but harmless): page until a short page.
                None if last.got == ALIAS_PAGE => {
                    let mut page = self.alias_page(seen).await?;
                    seen += page.take(&mut all, &mut parse)?;
                    last = page;
                }
                _ => break,
            }
        }
        all.shrink_to_fit();
        Ok(all)
    }

    /// One page of `GET /v1/actionalias` from `offset`, with its `X-Total-Count`.
    async fn alias_page(&self, offset: usize) -> Result<AliasPage, St2Error> {
        let url = format!(
            "{}/v1/actionalias?limit={ALIAS_PAGE}&offset={offset}",
            self.spec.api_url,
        );
        let response = self
            .send("list_aliases", Method::GET, &url, None, None)
            .await?;
        let total = response
            .headers()
            .get("X-Total-Count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let body = response.bytes().await.map_err(|e| unreachable(&url, &e))?;
        Ok(AliasPage {
            url,
            total,
            got: 0,
            body,
        })
    }

    /// `POST /v1/actionalias/match` (only `command` is allowed in the body).
    pub async fn match_command(&self, command: &str) -> Result<MatchResponse, St2Error> {
        self.call(
            "match",
            Method::POST,
            format!("{}/v1/actionalias/match", self.spec.api_url),
            None,
            Some(serde_json::json!({ "command": command })),
        )
        .await
    }

    /// `POST /v1/aliasexecution`.
    pub async fn execute(
        &self,
        request: &ExecuteRequest<'_>,
        as_user: Option<&Secret>,
    ) -> Result<ExecuteResponse, St2Error> {
        let body = serde_json::to_value(request).map_err(|e| St2Error::Protocol {
            url: self.spec.api_url.to_string(),
            reason: e.to_string(),
        })?;
        self.call(
            "execute",
            Method::POST,
            format!("{}/v1/aliasexecution", self.spec.api_url),
            as_user,
            Some(body),
        )
        .await
    }

    /// An execution's status (`GET /v1/executions/<id>?include_attributes=id,status`: the
    /// result, which may be large, is not transferred). Unknown id: `Api { status: 404 }`.
    pub async fn execution_status(&self, id: &str) -> Result<String, St2Error> {
        #[derive(serde::Deserialize)]
        struct Status {
            #[serde(default)]
            status: Option<String>,
        }
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(St2Error::Protocol {
                url: self.spec.api_url.to_string(),
                reason: format!("`{id}` is not an execution id"),
            });
        }
        let s: Status = self
            .call(
                "execution",
                Method::GET,
                format!(
                    "{}/v1/executions/{id}?include_attributes=id,status",
                    self.spec.api_url
                ),
                None,
                None,
            )
            .await?;
        Ok(s.status.unwrap_or_default())
    }

    /// Runs an action as the bot's service identity (`POST /v1/executions`), without waiting
    /// for it to finish.
    pub async fn run_action(
        &self,
        action: &str,
        parameters: &serde_json::Value,
    ) -> Result<(), St2Error> {
        let _: serde_json::Value = self
            .call(
                "run_action",
                Method::POST,
                format!("{}/v1/executions", self.spec.api_url),
                None,
                Some(serde_json::json!({"action": action, "parameters": parameters})),
            )
            .await?;
        Ok(())
    }

    /// `POST /v1/aliasexecution/match_and_execute` (for `match_multiple` formats only).
    pub async fn match_and_execute(
        &self,
        request: &MatchAndExecuteRequest<'_>,
        as_user: Option<&Secret>,
    ) -> Result<MatchAndExecuteResponse, St2Error> {
        let body = serde_json::to_value(request).map_err(|e| St2Error::Protocol {
            url: self.spec.api_url.to_string(),
            reason: e.to_string(),
        })?;
        self.call(
            "match_and_execute",
            Method::POST,
            format!("{}/v1/aliasexecution/match_and_execute", self.spec.api_url),
            as_user,
            Some(body),
        )
        .await
    }

    /// `POST {auth_url}/tokens` for a chat user's own StackStorm credentials.
    pub async fn create_token(
        &self,
        username: &str,
        password: &Secret,
        ttl: std::time::Duration,
    ) -> Result<TokenResponse, St2Error> {
        super::auth::request_token(
            &self.http,
            &self.spec.auth_url,
            username,
            password,
            ttl,
            self.spec.timeout,
        )
        .await
    }

    /// Opens `GET {stream_url}/v1/stream?events=…` with the current service credential,
    /// rebuilt on every call (so a reconnect never reuses a stale token). Returns the
    /// response once headers arrived with status 200.
    pub async fn open_stream(&self, events: &str) -> Result<Response, St2Error> {
        let url = format!("{}/v1/stream?events={events}", self.spec.stream_url);
        let mut retried = false;
        loop {
            let credential = self.service_credential().await?;
            let (name, value) = credential.header();
            let response = self
                .http
                .get(&url)
                .header(name, value)
                .header("Accept", "text/event-stream")
                .send()
                .await
                .map_err(|e| unreachable(&url, &e))?;
            let status = response.status().as_u16();
            if status == 401 && self.auth.renewable() && !retried {
                self.auth.invalidate(&credential).await;
                retried = true;
                continue;
            }
            if response.status().is_redirection() {
                return Err(refused_redirect(&url, &response));
            }
            if status != 200 {
                let request_id = request_id(&response);
                let faultstring = faultstring(response).await;
                return Err(if status == 401 {
                    St2Error::Unauthorized {
                        faultstring,
                        request_id,
                    }
                } else {
                    St2Error::Api {
                        status,
                        faultstring,
                        request_id,
                    }
                });
            }
            return Ok(response);
        }
    }
}

/// The HTTP client for StackStorm calls: [`crate::http::client`], whose redirect rule
/// matters most here. Credentials travel in headers StackStorm defines (`St2-Api-Key`,
/// `X-Auth-Token`), which reqwest, unlike `Authorization`, would carry to any host a
/// redirect names; [`crate::http`] follows redirects only within the origin called.
pub(crate) fn http_client(
    verify_tls: bool,
    ca_file: Option<&str>,
    timeout: Option<std::time::Duration>,
) -> Result<reqwest::Client, crate::http::HttpSetupError> {
    crate::http::client(verify_tls, ca_file, timeout)
}

/// The error for a redirect the client did not follow (to another origin, so it would
/// have carried the credentials away). Names only the target's origin.
pub(crate) fn refused_redirect(url: &str, response: &Response) -> St2Error {
    let target = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|location| response.url().join(location).ok())
        .map_or_else(
            || "an unknown place".to_owned(),
            |u| u.origin().ascii_serialization(),
        );
    tracing::warn!(url, status = response.status().as_u16(), target = %target, "StackStorm redirected to another origin; not following it with credentials");
    St2Error::Protocol {
        url: url.to_owned(),
        reason: format!(
            "redirected ({}) to {target}, another origin; credentials are never sent across origins, so set `stackstorm.url` to where StackStorm answers",
            response.status().as_u16()
        ),
    }
}

/// A transport failure, with the deepest cause (reqwest's own message repeats the URL).
pub(crate) fn unreachable(url: &str, e: &reqwest::Error) -> St2Error {
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        reason = s.to_string();
        source = s.source();
    }
    if e.is_timeout() {
        reason = format!("timed out ({reason})");
    }
    St2Error::Unreachable {
        url: url.to_owned(),
        reason,
    }
}

/// `X-Request-ID` of a response.
pub(crate) fn request_id(response: &Response) -> Option<String> {
    response
        .headers()
        .get("X-Request-ID")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// StackStorm's `faultstring`, or the body text when it is not the usual JSON.
pub(crate) async fn faultstring(response: Response) -> String {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) => match v.get("faultstring").and_then(|f| f.as_str()) {
            Some(f) => f.to_owned(),
            None => text,
        },
        // An HTML page from a proxy (502/503 while st2api restarts) or an empty body.
        Err(_) => format!(
            "HTTP {} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("error")
        ),
    }
}
