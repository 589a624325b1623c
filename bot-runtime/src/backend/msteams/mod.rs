//! The Microsoft Teams backend: a Bot Framework bot. Read [`MsTeamsBackend::run`] first.
//!
//! Teams talks to a bot over HTTP both ways (Bot Framework REST API, written here from
//! Microsoft's public documentation; each file cites its pages):
//! - inbound, Teams (through the Bot Framework Connector) POSTs each activity as JSON to
//!   the bot's messaging endpoint, `http://<listen>/api/messages`, with a signed JWT in
//!   `Authorization` ([`jwt`]). Messages become [`Incoming`] ([`activity`]); every activity
//!   updates the conversation's reference ([`references`]);
//! - outbound, the bot calls the Connector at the conversation's `serviceUrl` with an OAuth
//!   client-credential token ([`connector`]): replies in a channel thread go to
//!   `POST /v3/conversations/{id};messageid={root}/activities/{root}` with `replyToId`; other
//!   messages, announcements and direct messages to `POST /v3/conversations/{id}/activities`
//!   (a personal chat the user never opened is created with `POST /v3/conversations`); an
//!   ack posted under [`Outgoing::remember_as`] is edited in place with
//!   `PUT /v3/conversations/{id}/activities/{activity id}` ([`Outgoing::replaces`]).
//!   Rich `extra` is rendered as Adaptive Cards ([`render`]).
//!
//! The endpoint is plain HTTP: Azure requires HTTPS for a messaging endpoint, so it sits
//! behind the site's TLS proxy (docs/backends/msteams.md).
//!
//! Microsoft's local client, the Agents Playground, does not sign what it sends. For it
//! alone, [`UNSIGNED_INBOUND_ENV`]`=1` accepts unsigned activities, and only when the
//! endpoint listens on a loopback address and the activity's `serviceUrl` is on loopback
//! too (so the app's token never leaves the machine); the bot refuses to start otherwise
//! and logs a warning at start and for every unsigned activity it accepts.

pub mod activity;
pub mod connector;
pub mod jwt;
pub mod references;
pub mod render;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use bot_config::MsTeamsSpec;
use bytes::Bytes;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use self::activity::Activity;
use self::connector::Connector;
use self::jwt::{BOT_FRAMEWORK_ISSUER, BOT_FRAMEWORK_OPENID_URL, TokenValidator};
use self::references::{ConversationRef, References};
use self::render::{MESSAGE_LIMIT, Mention};
use super::backoff::Backoff;
use super::error::ApiError;
use super::supervisor::{MessageSink, first_contact, send_loop};
use super::webapi::{Seen, lock};
use super::{
    Backend, BackendError, BackendIo, BoxFuture, Capabilities, ConnState, Incoming, Outgoing,
    Target,
};
use crate::secret;

/// Set to `1` to accept unsigned activities from the Agents Playground (loopback only).
pub const UNSIGNED_INBOUND_ENV: &str = "ST2BOT_MSTEAMS_UNSIGNED_INBOUND";
/// The messaging endpoint's path (the one Azure Bot registrations and the playground use).
pub const MESSAGES_PATH: &str = "/api/messages";
/// The largest activity accepted.
const MAX_ACTIVITY: usize = 256 * 1024;
/// How long an activity may wait for room in the dispatcher's queue before the Connector
/// is told to retry (503).
const QUEUE_WAIT: Duration = Duration::from_secs(5);
/// Pause between the parts of one split message (Teams allows about 7 messages a second
/// per conversation).
const PART_PAUSE: Duration = Duration::from_millis(250);
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Activity ids remembered to drop the Connector's redeliveries.
const SEEN_CAPACITY: usize = 2048;
/// User names remembered (for mentions).
const MAX_NAMES: usize = 10_000;

/// The Teams backend, built from the definition's `backend:` settings.
#[derive(Debug)]
pub struct MsTeamsBackend {
    spec: MsTeamsSpec,
    listen: SocketAddr,
    unsigned: bool,
}

impl MsTeamsBackend {
    /// The backend for these settings; `switch` is the value of [`UNSIGNED_INBOUND_ENV`]
    /// (read by the command line, `BackendOptions::msteams_unsigned_inbound`), refused
    /// unless `listen` is a loopback address.
    pub fn new(spec: &MsTeamsSpec, switch: Option<String>) -> Result<Self, BackendError> {
        let listen: SocketAddr = spec.listen.parse().map_err(|e| BackendError::Config {
            what: "msteams listen address",
            reason: format!("`{}`: {e}", spec.listen),
        })?;
        let unsigned = match switch {
            Some(v) if v == "1" => true,
            Some(v) if v.is_empty() || v == "0" => false,
            Some(v) => {
                return Err(BackendError::Config {
                    what: "msteams unsigned inbound switch",
                    reason: format!("{UNSIGNED_INBOUND_ENV} is `{v}`; it takes 1 or 0"),
                });
            }
            None => false,
        };
        if unsigned && !listen.ip().is_loopback() {
            return Err(BackendError::Config {
                what: "msteams unsigned inbound switch",
                reason: format!(
                    "{UNSIGNED_INBOUND_ENV}=1 turns off the verification of who posts to the \
                     messaging endpoint; it is for Microsoft's Agents Playground on this machine \
                     only and is refused while `listen` is {listen} (not a loopback address)"
                ),
            });
        }
        Ok(Self {
            spec: spec.clone(),
            listen,
            unsigned,
        })
    }
}

impl Backend for MsTeamsBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_message_len: MESSAGE_LIMIT,
            rich: true,
            edit: true,
            threads: true,
            buttons: false,
        }
    }

    fn run(self: Box<Self>, io: BackendIo) -> BoxFuture<'static, Result<(), BackendError>> {
        let inbound = if self.unsigned {
            InboundCheck::UnsignedLoopback
        } else {
            InboundCheck::Signed {
                openid_url: BOT_FRAMEWORK_OPENID_URL.to_owned(),
                issuer: BOT_FRAMEWORK_ISSUER.to_owned(),
            }
        };
        Box::pin(run(self.spec, self.listen, inbound, io))
    }
}

/// How inbound activities are authenticated.
#[derive(Clone, Debug)]
enum InboundCheck {
    /// Bot Framework JWTs from this OpenID metadata and issuer.
    Signed { openid_url: String, issuer: String },
    /// The Agents Playground: unsigned, loopback `serviceUrl` only.
    UnsignedLoopback,
}

/// What the endpoint and the sender share.
struct Shared {
    connector: Connector,
    references: References,
    validator: Option<TokenValidator>,
    incoming: mpsc::Sender<Incoming>,
    /// User id → display name, from messages (for mentions).
    names: Mutex<HashMap<String, String>>,
    /// Activity ids already handed on (the Connector redelivers on timeouts).
    seen: Mutex<Seen>,
    /// Messages posted under [`Outgoing::remember_as`]: service URL, conversation, activity.
    remembered: super::RememberedMessages<(String, String, String)>,
    shutdown: CancellationToken,
}

async fn run(
    spec: MsTeamsSpec,
    listen: SocketAddr,
    inbound: InboundCheck,
    io: BackendIo,
) -> Result<(), BackendError> {
    let BackendIo {
        incoming,
        outgoing,
        state,
        shutdown,
    } = io;
    state.send_replace(ConnState::Connecting);
    let password = secret::resolve(&spec.app_password)?;
    let http =
        crate::http::client(true, None, Some(HTTP_TIMEOUT)).map_err(|e| BackendError::Config {
            what: "HTTP client",
            reason: e.to_string(),
        })?;
    let local = shutdown.child_token();
    let validator = match &inbound {
        InboundCheck::Signed { openid_url, issuer } => Some(TokenValidator::new(
            http.clone(),
            openid_url.clone(),
            issuer.clone(),
            spec.app_id.to_string(),
        )),
        InboundCheck::UnsignedLoopback => {
            tracing::warn!(
                env = UNSIGNED_INBOUND_ENV,
                listen = %listen,
                "msteams: UNSIGNED ACTIVITIES ACCEPTED (Agents Playground test mode): anyone on this machine can post as any user; never run a production bot like this"
            );
            None
        }
    };
    let shared = Arc::new(Shared {
        connector: Connector::new(
            http,
            &spec.url,
            &spec.tenant,
            &spec.app_id,
            password,
            local.clone(),
        ),
        references: References::load(spec.state_file.as_deref()),
        validator,
        incoming,
        names: Mutex::default(),
        seen: Mutex::new(Seen::new(SEEN_CAPACITY)),
        remembered: super::RememberedMessages::default(),
        shutdown: local.clone(),
    });
    if spec.state_file.is_none() {
        tracing::warn!(
            "msteams: no `state_file`: conversation references are kept in memory only, so after a restart announcements wait until someone speaks in the room"
        );
    }
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| BackendError::Config {
            what: "msteams listen address",
            reason: format!("cannot listen on {listen}: {e}"),
        })?;
    tracing::info!(listen = %listen, path = MESSAGES_PATH, "msteams: messaging endpoint listening");
    let server = tokio::spawn(super::listener::serve(
        "msteams",
        listener,
        router(Arc::clone(&shared)),
        local.clone(),
    ));
    let result = match first_token(&shared, &state).await {
        Ok(true) => {
            state.send_replace(ConnState::Connected);
            send_loop(&*shared, outgoing, &shared.shutdown).await
        }
        Ok(false) => Ok(()),
        Err(e) => Err(e),
    };
    local.cancel();
    let _ = server.await;
    result
}

/// Gets the first Connector token (proof the credentials work): `Ok(false)` on shutdown,
/// `Err` when they are refused.
async fn first_token(
    shared: &Shared,
    state: &watch::Sender<ConnState>,
) -> Result<bool, BackendError> {
    let backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
    let token = first_contact(
        "msteams",
        ("connector token", "app credentials"),
        backoff,
        &shared.shutdown,
        state,
        || shared.connector.token(),
    );
    Ok(token.await?.is_some())
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(MESSAGES_PATH, post(messages))
        .layer(DefaultBodyLimit::max(MAX_ACTIVITY))
        .with_state(shared)
}

async fn messages(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let authorization = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    shared.receive(authorization, &body).await
}

impl MessageSink for Shared {
    fn service(&self) -> &'static str {
        "msteams"
    }

    async fn deliver(&self, out: &Outgoing) -> Result<(), ApiError> {
        self.try_post(out).await
    }
}

impl Shared {
    /// One POST to the messaging endpoint: authenticate, remember the conversation, hand
    /// a message on. The status tells the Connector whether to retry (503) or not.
    async fn receive(&self, authorization: Option<&str>, body: &[u8]) -> StatusCode {
        let activity: Activity = match serde_json::from_slice(body) {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(error = %e, "msteams: request body is not an activity");
                return StatusCode::BAD_REQUEST;
            }
        };
        match &self.validator {
            Some(v) => {
                if let Err(e) = v
                    .validate(authorization, &activity.channel_id, &activity.service_url)
                    .await
                {
                    if e.is_unavailable() {
                        tracing::warn!(error = %e, "msteams: cannot check the activity's token; asking to retry");
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    tracing::warn!(reason = %e, "msteams: activity refused");
                    return StatusCode::UNAUTHORIZED;
                }
            }
            None => {
                if !is_loopback_url(&activity.service_url) {
                    tracing::warn!(service_url = %activity.service_url, "msteams: unsigned activity with a serviceUrl off this machine; refused");
                    return StatusCode::UNAUTHORIZED;
                }
                tracing::warn!(kind = %activity.kind, "msteams: unsigned activity accepted (playground test mode)");
            }
        }
        if let Some(id) = &activity.id {
            let key = format!("{}\u{0}{id}", activity.conversation.id);
            if !lock(&self.seen).insert(&key) {
                tracing::debug!(activity = %id, "msteams: redelivered activity dropped");
                return StatusCode::OK;
            }
        }
        if let Some(reference) = ConversationRef::of(&activity)
            && let Err(e) = self.references.record(reference)
        {
            tracing::warn!(error = %e, "msteams: conversation reference not saved");
        }
        let Some(message) = activity.to_incoming() else {
            tracing::debug!(kind = %activity.kind, "msteams: activity without a command");
            return StatusCode::OK;
        };
        {
            let mut names = lock(&self.names);
            if names.len() >= MAX_NAMES {
                names.clear();
            }
            names.insert(message.user_id.clone(), message.user.clone());
        }
        match tokio::time::timeout(QUEUE_WAIT, self.incoming.send(message)).await {
            Ok(Ok(())) => StatusCode::OK,
            Ok(Err(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Err(_) => {
                tracing::warn!("msteams: dispatcher queue full; asking the Connector to retry");
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    async fn try_post(&self, out: &Outgoing) -> Result<(), ApiError> {
        if let Some(key) = &out.replaces {
            let Some((service_url, conversation, activity_id)) = self.remembered.get(key) else {
                tracing::debug!(key, "msteams: no remembered message to edit");
                return Ok(());
            };
            let body = render::update(&activity_id, out);
            self.connector
                .call(
                    Method::PUT,
                    &service_url,
                    &["conversations", &conversation, "activities", &activity_id],
                    Some(&body),
                )
                .await?;
            return Ok(());
        }
        let (reference, thread) = match &out.target {
            Target::Room { id, thread } => {
                let r = self
                    .references
                    .room(id)
                    .ok_or_else(|| unknown(&format!("room `{id}`")))?;
                (r, thread.clone())
            }
            Target::Direct { user } => (self.personal_chat(user).await?, None),
        };
        let mention = out.mention.as_deref().and_then(|m| self.mention(m));
        for (i, mut activity) in render::activities(out, mention.as_ref())
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                tokio::time::sleep(PART_PAUSE).await;
            }
            // In a reply chain the conversation is `<channel>;messageid=<root>`, as Teams
            // names it in the activities of that chain.
            let conversation = match &thread {
                Some(root) => format!("{};messageid={root}", reference.conversation_id),
                None => reference.conversation_id.clone(),
            };
            let mut segments = vec!["conversations", conversation.as_str(), "activities"];
            if let Some(root) = &thread {
                activity["replyToId"] = Value::String(root.clone());
                segments.push(root.as_str());
            }
            let posted = self
                .connector
                .call(
                    Method::POST,
                    &reference.service_url,
                    &segments,
                    Some(&activity),
                )
                .await?;
            if let (0, Some(key), Some(id)) = (
                i,
                &out.remember_as,
                posted.get("id").and_then(Value::as_str),
            ) {
                self.remembered.remember(
                    key,
                    (
                        reference.service_url.clone(),
                        conversation.clone(),
                        id.to_owned(),
                    ),
                );
            }
        }
        Ok(())
    }

    /// The personal chat with `user`: a known one, or one created through the Connector
    /// (`user` must then be a Teams user id, `29:…`).
    async fn personal_chat(&self, user: &str) -> Result<ConversationRef, ApiError> {
        if let Some(r) = self.references.personal(user) {
            return Ok(r);
        }
        let user_id = if lock(&self.names).contains_key(user) {
            user.to_owned()
        } else {
            lock(&self.names)
                .iter()
                .find(|(_, n)| n.eq_ignore_ascii_case(user.trim_start_matches('@')))
                .map(|(id, _)| id.clone())
                .ok_or_else(|| {
                    unknown(&format!("user `{user}` (no personal chat yet, id unknown)"))
                })?
        };
        if let Some(r) = self.references.personal(&user_id) {
            return Ok(r);
        }
        let template = self
            .references
            .latest()
            .ok_or_else(|| unknown("any conversation (no serviceUrl yet)"))?;
        let mut body = json!({
            "bot": { "id": template.bot_id },
            "members": [{ "id": user_id }],
            "isGroup": false,
        });
        if let Some(tenant) = &template.tenant_id {
            body["tenantId"] = Value::String(tenant.clone());
            body["channelData"] = json!({ "tenant": { "id": tenant } });
        }
        let created = self
            .connector
            .call(
                Method::POST,
                &template.service_url,
                &["conversations"],
                Some(&body),
            )
            .await?;
        let id = created
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| unknown("the created conversation (no id)"))?;
        let reference = ConversationRef {
            conversation_id: id.to_owned(),
            service_url: template.service_url.clone(),
            kind: "personal".into(),
            name: None,
            tenant_id: template.tenant_id.clone(),
            user_id: Some(user_id.clone()),
            user_name: lock(&self.names).get(&user_id).cloned(),
            bot_id: template.bot_id.clone(),
            seen: 0,
        };
        if let Err(e) = self.references.record(reference.clone()) {
            tracing::warn!(error = %e, "msteams: conversation reference not saved");
        }
        Ok(reference)
    }

    /// The mention of a user named by id or display name, when the bot has seen them.
    fn mention(&self, user: &str) -> Option<Mention> {
        let names = lock(&self.names);
        if let Some(name) = names.get(user) {
            return Some(Mention {
                id: user.to_owned(),
                name: name.clone(),
            });
        }
        names
            .iter()
            .find(|(_, n)| n.as_str() == user)
            .map(|(id, name)| Mention {
                id: id.clone(),
                name: name.clone(),
            })
    }
}

/// No conversation reference for `what`: a target the bot cannot post to yet.
fn unknown(what: &str) -> ApiError {
    ApiError::Unresolvable(format!(
        "{what}: no conversation known, the bot must be added there (or spoken to) first"
    ))
}

/// Whether a URL's host is `localhost` or a loopback address.
fn is_loopback_url(url: &str) -> bool {
    let Ok(url) = url::Url::parse(url) else {
        return false;
    };
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Echoed user text with Teams mention markup (`<at>…</at>`) broken: Teams notifies only
/// through mention entities, which the bot adds for the user it answers alone, but the
/// markup of an echo would still render as a mention-looking tag.
pub fn defuse_mass_mentions(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('<') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let tag = rest.trim_start_matches('/');
        if tag.get(..2).is_some_and(|t| t.eq_ignore_ascii_case("at"))
            && tag[2..].starts_with(['>', ' '])
        {
            out.push(super::ZWJ);
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests;
