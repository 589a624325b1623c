//! The login page server: one page at any path of `listen`, served with hyper (HTTP/1.1) and
//! axum routing, over TLS (tokio-rustls, `ring`) when the definition gives a certificate.
//!
//! `GET ?id=<link id>` shows the form for a pending link; `POST` (form-encoded, CSRF token
//! bound to the link id) logs in with username+password or a pasted token. Everything is
//! rate limited per source address ([`rate`]) and per link (failed attempts burn it); every
//! response carries a strict content security policy and no-store caching; every variable
//! part of a page is escaped ([`html`]). Nothing secret (password, token, link id, CSRF
//! token) reaches a log line: logs carry the chat user id, the source address and outcomes.
//!
//! Behind a reverse proxy listed in the definition's `trusted_proxies` the source address
//! is taken from `X-Forwarded-For` ([`proxy`]); from anyone else the header is ignored.
//!
//! Slow clients cannot take the page offline: request headers must arrive within 10 s and
//! the body within 10 s more, a connection lives at most a minute, one address holds at
//! most 8 connections, and the rate limit is applied before the body is read. Refusals are
//! logged in aggregate ([`rate::RefusalLog`]).

mod html;
mod proxy;
mod rate;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Extension, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::secret::Secret;
use crate::session::{
    AfterFailure, LinkId, LinkRefusal, LoginFailure, SessionError, SessionManager, format_time,
};
use proxy::TrustedProxies;
use rate::{ADDRESS_BUDGET, AddressLimiter, ConnectionCounts, RefusalLog, RefusalReport};

/// The page's content security policy: nothing may load, inline style only, forms post here.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/// Largest request body accepted.
const MAX_BODY: usize = 16 * 1024;
/// Connections served at once.
const MAX_CONNECTIONS: usize = 256;
/// Connections served at once for one source address (trusted proxies excepted).
const MAX_CONNECTIONS_PER_ADDRESS: usize = 8;
/// Time allowed for a TLS handshake and for request headers.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for a request body, once its headers arrived.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a connection may stay open, however busy.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// How often counted refusals are logged.
const REFUSAL_FLUSH_EVERY: Duration = Duration::from_secs(10);
/// Time connections get to finish after shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How often expired links and sessions are purged.
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// The TCP peer of a request.
#[derive(Clone, Copy)]
struct Peer(SocketAddr);

struct PageState {
    manager: Arc<SessionManager>,
    notify: mpsc::Sender<(String, String)>,
    limiter: AddressLimiter,
    proxies: TrustedProxies,
    refusals: RefusalLog,
    tls: bool,
}

impl PageState {
    /// Notes a refused request or connection from `source`, logging only in aggregate.
    fn refused(&self, source: IpAddr, why: &'static str) {
        if let Some(RefusalReport::First { source }) = self.refusals.refused(source, Instant::now())
        {
            tracing::warn!(source = %source, reason = why, "login page: refusing requests from this address; further refusals are counted and logged once a minute");
        }
    }

    /// Logs the refusals counted in the last minute.
    fn log_refusals(&self) {
        for report in self.refusals.due(Instant::now()) {
            match report {
                RefusalReport::Since {
                    source: Some(source),
                    count,
                } => {
                    tracing::warn!(source = %source, refused = count, "login page: refused requests from this address in the last minute")
                }
                RefusalReport::Since {
                    source: None,
                    count,
                } => tracing::warn!(
                    refused = count,
                    "login page: refused requests from addresses too many to track in the last minute"
                ),
                RefusalReport::First { .. } => {}
            }
        }
    }
}

/// Serves the page until `shutdown`, then drains open connections for a few seconds.
pub(crate) async fn run(
    manager: Arc<SessionManager>,
    notify: mpsc::Sender<(String, String)>,
    shutdown: CancellationToken,
) -> Result<(), SessionError> {
    let spec = manager.spec();
    let addr: SocketAddr = spec
        .listen
        .parse()
        .map_err(|_| SessionError::ListenAddress {
            address: spec.listen.to_string(),
        })?;
    let tls = match &spec.tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key)?),
        None => None,
    };
    if tls.is_none() && !addr.ip().is_loopback() && !spec.allow_plain_http {
        return Err(SessionError::PlainHttp {
            address: spec.listen.to_string(),
        });
    }
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| SessionError::Bind {
            address: spec.listen.to_string(),
            source,
        })?;
    tracing::info!(listen = %addr, tls = tls.is_some(), public_url = %spec.public_url, "login page listening");
    let proxies = TrustedProxies::new(&spec.trusted_proxies);
    let state = Arc::new(PageState {
        manager: Arc::clone(&manager),
        notify,
        limiter: AddressLimiter::new(ADDRESS_BUDGET),
        proxies: proxies.clone(),
        refusals: RefusalLog::default(),
        tls: tls.is_some(),
    });
    let app = router(Arc::clone(&state));
    let per_address = ConnectionCounts::new(MAX_CONNECTIONS_PER_ADDRESS);
    let mut flush = tokio::time::interval(REFUSAL_FLUSH_EVERY);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    // Connection tasks hold the manager: all of them end before `run` returns, so that the
    // store is closed when the caller drops its last reference.
    let mut tasks = JoinSet::new();
    let mut purge = tokio::time::interval(PURGE_EVERY);
    purge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = purge.tick() => manager.purge_expired(),
            _ = flush.tick() => state.log_refusals(),
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "login page: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let place = if proxies.trusts(peer.ip()) {
                    None
                } else {
                    match per_address.admit(peer.ip()) {
                        Some(place) => Some(place),
                        None => {
                            state.refused(peer.ip(), "too many connections from this address");
                            continue;
                        }
                    }
                };
                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                    state.refused(peer.ip(), "too many connections in all");
                    continue;
                };
                let app = app.clone();
                let watcher = graceful.watcher();
                let tls = tls.clone();
                tasks.spawn(async move {
                    let _slot = slot;
                    let _place = place;
                    match tls {
                        None => serve_connection(stream, peer, app, watcher).await,
                        Some(acceptor) => {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                Ok(Ok(tls_stream)) => serve_connection(tls_stream, peer, app, watcher).await,
                                Ok(Err(e)) => tracing::debug!(source = %peer.ip(), error = %e, "login page: TLS handshake failed"),
                                Err(_) => tracing::debug!(source = %peer.ip(), "login page: TLS handshake timed out"),
                            }
                        }
                    }
                });
            }
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN_TIMEOUT) => tracing::warn!("login page: connections still open at shutdown; closing them"),
    }
    tasks.shutdown().await;
    tracing::info!("login page stopped");
    Ok(())
}

async fn serve_connection<I>(io: I, peer: SocketAddr, app: Router, watcher: Watcher)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(Peer(peer));
        app.clone().oneshot(request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    match tokio::time::timeout(CONNECTION_LIFETIME, watcher.watch(connection)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::debug!(source = %peer.ip(), error = %e, "login page: connection ended with an error");
        }
        Err(_) => {
            tracing::debug!(source = %peer.ip(), "login page: connection open too long; closed")
        }
    }
}

fn router(state: Arc<PageState>) -> Router {
    let tls = state.tls;
    Router::new()
        .fallback(handle)
        .with_state(state)
        .layer(axum::middleware::map_response(
            move |response: Response| async move { secure(response, tls) },
        ))
}

/// Headers every response carries.
fn secure(mut response: Response, tls: bool) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "Cross-Origin-Opener-Policy",
        HeaderValue::from_static("same-origin"),
    );
    if tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}

async fn handle(
    State(state): State<Arc<PageState>>,
    Extension(Peer(peer)): Extension<Peer>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let source = state.proxies.client_address(peer, &parts.headers);
    // Before the body is read: a refused client does not get to trickle one.
    if let Err(wait) = state.limiter.take(source, Instant::now()) {
        state.refused(source, "rate limit");
        let mut response = page(
            StatusCode::TOO_MANY_REQUESTS,
            html::message(
                "Too many requests",
                "Too many requests from your address. Wait a minute and try again.",
            ),
        );
        let seconds = wait.as_secs().max(1);
        if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return close(response);
    }
    match parts.method {
        Method::GET | Method::HEAD => show_form(&state, parts.uri.query().unwrap_or("")),
        Method::POST => {
            let read = axum::body::to_bytes(body, MAX_BODY);
            match tokio::time::timeout(BODY_TIMEOUT, read).await {
                Ok(Ok(body)) => submit(&state, source, &parts.headers, &body).await,
                Ok(Err(_)) => close(page(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    html::message("Too large", "That form was too large."),
                )),
                Err(_) => {
                    state.refused(source, "request body too slow");
                    close(page(
                        StatusCode::REQUEST_TIMEOUT,
                        html::message("Too slow", "The form took too long to arrive. Try again."),
                    ))
                }
            }
        }
        _ => {
            let mut response = page(
                StatusCode::METHOD_NOT_ALLOWED,
                html::message("Not allowed", "This page only answers GET and POST."),
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD, POST"));
            response
        }
    }
}

/// `GET ?id=…`: the form for a pending link.
fn show_form(state: &PageState, query: &str) -> Response {
    let id = field(query.as_bytes(), "id").and_then(|v| LinkId::parse(&v));
    let Some(id) = id else {
        return invalid_link();
    };
    match state.manager.links().peek(&id) {
        Ok((owner, attempts_left)) => form_page(
            state,
            &id,
            &owner.user_name,
            attempts_left,
            None,
            "",
            StatusCode::OK,
        ),
        Err(_) => invalid_link(),
    }
}

/// `POST`: one login attempt.
async fn submit(state: &PageState, source: IpAddr, headers: &HeaderMap, body: &[u8]) -> Response {
    if let Some(site) = headers.get("sec-fetch-site")
        && !matches!(site.as_bytes(), b"same-origin" | b"none")
    {
        tracing::warn!(source = %source, "login page: cross-site form post refused");
        return forbidden();
    }
    let form_encoded = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_encoded {
        return page(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            html::message("Unsupported form", "Submit the login form from its page."),
        );
    }
    let Some(id) = field(body, "id").and_then(|v| LinkId::parse(&v)) else {
        return invalid_link();
    };
    let csrf_ok = field(body, "csrf").is_some_and(|t| state.manager.csrf().verify(&id, &t));
    if !csrf_ok {
        tracing::warn!(source = %source, "login page: missing or wrong CSRF token");
        return forbidden();
    }
    let claim = match state.manager.links().claim(&id) {
        Ok(c) => c,
        Err(LinkRefusal::Invalid) => return invalid_link(),
        Err(LinkRefusal::Busy) => {
            return page(
                StatusCode::CONFLICT,
                html::message(
                    "Login in progress",
                    "Another login with this link is in progress. Wait for it, then reload the page.",
                ),
            );
        }
    };
    let owner = claim.owner().clone();
    let kind = field(body, "kind").unwrap_or_default();
    let username = field(body, "username").unwrap_or_default();
    let result = match kind.as_str() {
        "password" => {
            let password = Secret::new(field(body, "password").unwrap_or_default());
            let bad = |s: &str, max: usize| {
                s.is_empty() || s.chars().count() > max || s.chars().any(char::is_control)
            };
            if bad(&username, 256) || bad(password.expose(), 1024) {
                claim.release();
                let attempts = state.manager.links().peek(&id).map(|(_, n)| n).unwrap_or(0);
                return form_page(
                    state,
                    &id,
                    &owner.user_name,
                    attempts,
                    Some("Enter a StackStorm username and password."),
                    &username,
                    StatusCode::BAD_REQUEST,
                );
            }
            state
                .manager
                .login_with_password(&owner, &username, &password)
                .await
        }
        "token" => {
            let token = Secret::new(field(body, "token").unwrap_or_default().trim().to_owned());
            let t = token.expose();
            if t.is_empty() || t.len() > 4096 || !t.chars().all(|c| c.is_ascii_graphic()) {
                claim.release();
                let attempts = state.manager.links().peek(&id).map(|(_, n)| n).unwrap_or(0);
                return form_page(
                    state,
                    &id,
                    &owner.user_name,
                    attempts,
                    Some("Paste a StackStorm token (letters and digits, no spaces)."),
                    "",
                    StatusCode::BAD_REQUEST,
                );
            }
            state.manager.login_with_token(&owner, token).await
        }
        _ => {
            claim.release();
            return page(
                StatusCode::BAD_REQUEST,
                html::message("Unsupported form", "Submit the login form from its page."),
            );
        }
    };
    match result {
        Ok(info) => {
            claim.succeeded();
            tracing::info!(source = %source, user_id = %owner.user_id, st2_user = %info.st2_user, "login page: login succeeded");
            let confirmation = state.manager.login_confirmation(&info);
            if state
                .notify
                .send((owner.user_id.clone(), confirmation))
                .await
                .is_err()
            {
                tracing::warn!(user_id = %owner.user_id, "login confirmation not delivered: the chat side is gone");
            }
            page(
                StatusCode::OK,
                html::done(
                    state.manager.bot_name(),
                    &info.st2_user,
                    &format_time(info.expires),
                ),
            )
        }
        Err(LoginFailure::Rejected) => {
            let after = claim.failed();
            tracing::warn!(source = %source, user_id = %owner.user_id, kind = %kind, "login page: StackStorm refused the credentials");
            match after {
                AfterFailure::Remaining(left) => {
                    let what = if kind == "token" {
                        "StackStorm did not accept that token (expired, revoked, or not a user token: API keys cannot be used here)."
                    } else {
                        "StackStorm did not accept that username and password."
                    };
                    form_page(
                        state,
                        &id,
                        &owner.user_name,
                        left,
                        Some(what),
                        &username,
                        StatusCode::OK,
                    )
                }
                AfterFailure::Burnt => {
                    tracing::warn!(source = %source, user_id = %owner.user_id, "login page: attempt limit reached; link burnt");
                    page(
                        StatusCode::GONE,
                        html::message(
                            "Too many failed attempts",
                            "StackStorm refused the credentials too many times; this link no longer works. Ask the bot for a new one.",
                        ),
                    )
                }
            }
        }
        Err(LoginFailure::Throttled(wait)) => {
            claim.release();
            state.refused(
                source,
                "too many wrong passwords for one StackStorm username",
            );
            let attempts = state.manager.links().peek(&id).map(|(_, n)| n).unwrap_or(0);
            let minutes = wait.as_secs().div_ceil(60).max(1);
            let text = format!(
                "Too many wrong passwords were tried for this StackStorm user lately. Try again in {minutes} minute(s), or paste a StackStorm token instead."
            );
            form_page(
                state,
                &id,
                &owner.user_name,
                attempts,
                Some(&text),
                &username,
                StatusCode::TOO_MANY_REQUESTS,
            )
        }
        Err(LoginFailure::Unavailable(reason)) => {
            claim.release();
            tracing::warn!(source = %source, user_id = %owner.user_id, reason = %reason, "login page: StackStorm could not check the credentials");
            let attempts = state.manager.links().peek(&id).map(|(_, n)| n).unwrap_or(0);
            form_page(
                state,
                &id,
                &owner.user_name,
                attempts,
                Some("StackStorm could not be asked right now. Try again in a moment."),
                &username,
                StatusCode::SERVICE_UNAVAILABLE,
            )
        }
        Err(LoginFailure::Store(e)) => {
            claim.release();
            tracing::error!(user_id = %owner.user_id, error = %e, "login page: cannot save the session");
            page(
                StatusCode::INTERNAL_SERVER_ERROR,
                html::message(
                    "Not saved",
                    "The bot could not save your session. Tell the bot's operator.",
                ),
            )
        }
    }
}

fn form_page(
    state: &PageState,
    id: &LinkId,
    chat_user: &str,
    attempts_left: u32,
    error: Option<&str>,
    username: &str,
    status: StatusCode,
) -> Response {
    let link = id.to_hex();
    let csrf = state.manager.csrf().token_for(id);
    page(
        status,
        html::form(&html::FormPage {
            bot_name: state.manager.bot_name(),
            chat_user,
            link_id: link.expose(),
            csrf: csrf.expose(),
            attempts_left,
            error,
            username,
        }),
    )
}

fn invalid_link() -> Response {
    page(
        StatusCode::GONE,
        html::message(
            "Link not valid",
            "This login link is unknown, expired or already used. Ask the bot for a new one.",
        ),
    )
}

fn forbidden() -> Response {
    page(
        StatusCode::FORBIDDEN,
        html::message(
            "Form refused",
            "This form did not come from the login page, or it is stale. Open your login link again.",
        ),
    )
}

/// Asks hyper to close the connection after `response` (its request body may be unread).
fn close(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn page(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Reads a form body (or a query string) the way the page does, for the fuzz target.
#[doc(hidden)]
pub fn read_form_for_fuzzing(encoded: &[u8]) -> usize {
    let id = field(encoded, "id").and_then(|v| LinkId::parse(&v));
    let fields = ["csrf", "kind", "username", "password", "token"]
        .iter()
        .filter_map(|name| field(encoded, name))
        .map(|v| v.len())
        .sum::<usize>();
    fields + usize::from(id.is_some())
}

/// The first value of `name` in a form-encoded string.
fn field(encoded: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(encoded)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A TLS acceptor from PEM files (certificate chain, private key).
fn tls_acceptor(cert: &str, key: &str) -> Result<TlsAcceptor, SessionError> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|items| items.collect::<Result<Vec<_>, _>>())
        .map_err(|e| SessionError::Tls(format!("certificate `{cert}`: {e}")))?;
    if certs.is_empty() {
        return Err(SessionError::Tls(format!(
            "certificate `{cert}`: no certificate in the file"
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| SessionError::Tls(format!("private key `{key}`: {e}")))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| SessionError::Tls(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| SessionError::Tls(format!("certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_are_decoded() {
        let body = b"id=ab&csrf=c%20d&username=al+ice&id=second";
        assert_eq!(field(body, "id").as_deref(), Some("ab"));
        assert_eq!(field(body, "csrf").as_deref(), Some("c d"));
        assert_eq!(field(body, "username").as_deref(), Some("al ice"));
        assert_eq!(field(body, "missing"), None);
    }

    #[test]
    fn unreadable_tls_files_are_errors() {
        let err = tls_acceptor("/nonexistent/cert.pem", "/nonexistent/key.pem")
            .err()
            .unwrap();
        assert!(err.to_string().contains("certificate"), "{err}");
    }
}
