//! The Discord backend: a hand-written Gateway client (API v10, JSON encoding, no
//! compression) over tokio-tungstenite for receiving, and the REST API over reqwest for
//! sending.
//!
//! Gateway (<https://discord.com/developers/docs/events/gateway>): `GET /gateway/bot` gives
//! the URL; HELLO gives `heartbeat_interval`; the first heartbeat goes after a random part of
//! it, then one per interval, and a heartbeat still un-ACKed when the next is due means a
//! zombie connection: close with 4000 and RESUME. IDENTIFY asks for GUILDS, GUILD_MESSAGES,
//! DIRECT_MESSAGES and the privileged MESSAGE_CONTENT intent. READY gives the session id,
//! `resume_gateway_url` and the bot's user; GUILD_CREATE and CHANNEL/THREAD events fill the
//! channel directory (names for access rules). After a drop the backend RESUMEs with the last
//! `seq`; op 7 RECONNECT resumes at once; op 9 INVALID_SESSION resumes when `d` is true and
//! otherwise waits 1–5 s and IDENTIFYs afresh. Close codes 4004 (bad token) and 4010–4014
//! (shard, version, intents) are fatal; every other close reconnects with backoff.
//!
//! Messages: `MESSAGE_CREATE` from people (never bots, never itself). Direct messages have no
//! `guild_id` and become `room: None`; threads are channels (types 10–12) whose parent is the
//! room and whose own id is the `thread`. A leading `<@id>`/`<@!id>` mention of the bot is
//! removed and sets `mentioned`. Rooms are named `#name` for access rules.
//!
//! Sending (<https://discord.com/developers/docs/resources/message#create-message>):
//! `POST /channels/{id}/messages` with `content` of at most 2000 characters (longer text is
//! split on lines), `embeds` (built from the status colour and `extra.discord`, description
//! at most 4096 characters, or `extra.discord.embeds` verbatim), `allowed_mentions` limited to
//! users (command output never pings `@everyone`). A thread target posts to the thread's
//! channel; a thread id that is a message, not a channel, becomes a reply
//! (`message_reference`). Direct messages open a DM channel with `POST /users/@me/channels`.
//! A message posted under [`Outgoing::remember_as`] keeps its id; a later
//! [`Outgoing::replaces`] edits its `content` with `PATCH /channels/{id}/messages/{id}`
//! (live acks).
//! [`Outgoing::actions`] become buttons (message components, action rows of five) whose
//! `custom_id` is a random id ([`super::ActionIds`]); a press arrives as
//! `INTERACTION_CREATE`, is answered on `POST /interactions/{id}/{token}/callback` and
//! becomes the button's command from the presser
//! (<https://discord.com/developers/docs/interactions/message-components>).
//! Rate limits (<https://discord.com/developers/docs/topics/rate-limits>): per-route buckets
//! learnt from `X-RateLimit-Bucket`/`-Remaining`/`-Reset-After` (keyed with the route's major
//! parameter), 429 answers wait `retry_after` (all requests wait when `global`).
//!
//! Why hand-written rather than twilight (79 crates): the Gateway subset a ChatOps bot needs is
//! small (six opcodes, four dispatch events), tokio-tungstenite and reqwest are already in the
//! tree for the other web backends, and the REST base must point anywhere (`url`), which is
//! how the tests aim it at the in-repo fake.

pub mod render;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bot_config::{DiscordSpec, SecretRef};
use futures_util::{SinkExt as _, StreamExt as _};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::backoff::{Backoff, jitter};
use super::error::ApiError;
use super::mention;
use super::rich;
use super::supervisor::{ConnectError, EventStream, MessageSink, SessionEnd, send_loop, supervise};
use super::webapi::str_field;
use super::websocket::{self, WsStream};
use super::{
    Backend, BackendError, BackendIo, BoxFuture, Capabilities, ConnState, Incoming, Outgoing, Room,
    Target, char_len, split_message,
};
use crate::secret::{self, Secret};

/// Longest `content` Discord takes.
pub const MAX_CONTENT: usize = 2000;
/// Longest embed description Discord takes.
pub const MAX_EMBED_DESCRIPTION: usize = 4096;
/// Gateway intents: GUILDS | GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT.
pub const INTENTS: u64 = (1 << 0) | (1 << 9) | (1 << 12) | (1 << 15);

const GATEWAY_QUERY: &str = "v=10&encoding=json";
const USER_AGENT: &str = concat!(
    "DiscordBot (",
    env!("CARGO_PKG_REPOSITORY"),
    ", ",
    env!("CARGO_PKG_VERSION"),
    ")"
);
const HELLO_TIMEOUT: Duration = Duration::from_secs(30);
const REST_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_ATTEMPTS: u32 = 6;

/// The Discord backend.
#[derive(Debug)]
pub struct DiscordBackend {
    token: SecretRef,
    api: Url,
}

impl DiscordBackend {
    /// The backend for a definition (checks the REST base URL).
    pub fn new(spec: &DiscordSpec) -> Result<Self, BackendError> {
        let api = Url::parse(spec.url.trim_end_matches('/')).map_err(|e| BackendError::Config {
            what: "discord url",
            reason: format!("`{}`: {e}", spec.url),
        })?;
        if !matches!(api.scheme(), "http" | "https") {
            return Err(BackendError::Config {
                what: "discord url",
                reason: format!("`{}` is not an http(s) URL", spec.url),
            });
        }
        Ok(Self {
            token: spec.token.clone(),
            api,
        })
    }
}

impl Backend for DiscordBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_message_len: MAX_CONTENT,
            rich: true,
            threads: true,
            edit: true,
            buttons: true,
        }
    }

    fn run(self: Box<Self>, io: BackendIo) -> BoxFuture<'static, Result<(), BackendError>> {
        Box::pin(async move {
            let token = secret::resolve(&self.token)?;
            let http = crate::http::client(true, None, Some(REST_TIMEOUT)).map_err(|e| {
                BackendError::Config {
                    what: "discord HTTP client",
                    reason: e.to_string(),
                }
            })?;
            let rest = Arc::new(Rest {
                http,
                api: self.api.as_str().trim_end_matches('/').to_owned(),
                token,
                limits: Mutex::new(RateLimits::default()),
            });
            let directory = Arc::new(Mutex::new(Directory::default()));
            let BackendIo {
                incoming,
                outgoing,
                state,
                shutdown,
            } = io;
            let stop = shutdown.child_token();
            let mut sender = tokio::spawn({
                let sink = Sender {
                    rest: rest.clone(),
                    directory: directory.clone(),
                };
                let shutdown = shutdown.clone();
                async move { send_loop(&sink, outgoing, &shutdown).await }
            });
            let gateway = Gateway {
                rest,
                directory,
                incoming,
                state: state.clone(),
                stop: stop.clone(),
                session: None,
            };
            let gateway = gateway.run();
            tokio::pin!(gateway);
            let result = tokio::select! {
                result = &mut gateway => match result {
                    Ok(()) => join(sender.await),
                    Err(e) => {
                        sender.abort();
                        Err(e)
                    }
                },
                result = &mut sender => {
                    stop.cancel();
                    let gateway_result = gateway.await;
                    join(result).and(gateway_result)
                }
            };
            if let Err(e) = &result {
                let _ = state.send(ConnState::Failed(e.to_string()));
            }
            result
        })
    }
}

fn join(
    result: Result<Result<(), BackendError>, tokio::task::JoinError>,
) -> Result<(), BackendError> {
    result.map_err(|e| BackendError::Config {
        what: "discord sender task",
        reason: e.to_string(),
    })?
}

// ---------------------------------------------------------------------------------------
// REST

struct Rest {
    http: reqwest::Client,
    api: String,
    token: Secret,
    limits: Mutex<RateLimits>,
}

impl Rest {
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let route = Route::of(&method, path);
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
        let mut last = String::new();
        for attempt in 1..=MAX_ATTEMPTS {
            let wait = self.lock_limits().delay(&route, Instant::now());
            if let Some(wait) = wait {
                tracing::debug!(route = %route.template, wait_ms = wait.as_millis() as u64, "discord: waiting for rate limit");
                tokio::time::sleep(wait).await;
            }
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.api))
                .header(
                    reqwest::header::AUTHORIZATION,
                    format!("Bot {}", self.token.expose()),
                )
                .header(reqwest::header::USER_AGENT, USER_AGENT);
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) => {
                    // The URL may hold an interaction token: never in logs.
                    let e = e.without_url();
                    last = e.to_string();
                    tracing::warn!(route = %route.template, attempt, error = %e, "discord: request failed");
                    tokio::time::sleep(backoff.next_delay()).await;
                    continue;
                }
            };
            let status = response.status().as_u16();
            self.lock_limits()
                .update(&route, response.headers(), Instant::now());
            let retry_after_header = header_f64(response.headers(), "retry-after");
            let global_header = response
                .headers()
                .get("x-ratelimit-global")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
            let text = response.text().await.unwrap_or_default();
            let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            match status {
                200..=299 => return Ok(json),
                429 => {
                    let retry_after = json
                        .get("retry_after")
                        .and_then(Value::as_f64)
                        .or(retry_after_header)
                        .unwrap_or(1.0)
                        .clamp(0.0, 3600.0);
                    let global = json
                        .get("global")
                        .and_then(Value::as_bool)
                        .unwrap_or(global_header);
                    tracing::warn!(
                        route = %route.template,
                        retry_after,
                        global,
                        "discord: rate limited (429)"
                    );
                    self.lock_limits().limited(
                        &route,
                        Duration::from_secs_f64(retry_after),
                        global,
                        Instant::now(),
                    );
                    last = format!("429 retry_after {retry_after}");
                }
                401 => return Err(ApiError::Auth(error_message(&json, &text))),
                500..=599 => {
                    last = format!("HTTP {status}");
                    tracing::warn!(route = %route.template, attempt, status, "discord: server error");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                _ => {
                    return Err(ApiError::Refused {
                        status,
                        code: json
                            .get("code")
                            .and_then(Value::as_u64)
                            .map(|c| c.to_string())
                            .unwrap_or_default(),
                        message: error_message(&json, &text),
                    });
                }
            }
        }
        Err(ApiError::GaveUp {
            attempts: MAX_ATTEMPTS,
            last,
        })
    }

    fn lock_limits(&self) -> std::sync::MutexGuard<'_, RateLimits> {
        self.limits.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn header_f64(headers: &reqwest::header::HeaderMap, name: &str) -> Option<f64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// Discord's `message`, plus the first per-field error (`errors.content._errors[0]`).
fn error_message(json: &Value, text: &str) -> String {
    let Some(message) = json.get("message").and_then(Value::as_str) else {
        return text.chars().take(200).collect();
    };
    fn first_field_error(path: String, v: &Value) -> Option<String> {
        let obj = v.as_object()?;
        if let Some(errs) = obj.get("_errors").and_then(Value::as_array) {
            let m = errs.first()?.get("message")?.as_str()?;
            return Some(format!("{path}: {m}"));
        }
        obj.iter().find_map(|(k, v)| {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            first_field_error(p, v)
        })
    }
    match json
        .get("errors")
        .and_then(|e| first_field_error(String::new(), e))
    {
        Some(detail) => format!("{message} ({detail})"),
        None => message.to_owned(),
    }
}

/// A REST route: the path with ids replaced (`/channels/{id}/messages`) and its major
/// parameter (the channel, guild or webhook id), which Discord limits separately.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Route {
    template: String,
    major: String,
}

impl Route {
    fn of(method: &Method, path: &str) -> Self {
        let mut template = format!("{method} ");
        let mut major = String::new();
        let mut previous = "";
        let mut before = "";
        for segment in path.trim_start_matches('/').split('/') {
            template.push('/');
            let is_id = !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit());
            if matches!(before, "interactions" | "webhooks") && !previous.is_empty() {
                // An interaction's or webhook's token: a credential, never logged.
                template.push_str("{token}");
            } else if is_id {
                if major.is_empty() && matches!(previous, "channels" | "guilds" | "webhooks") {
                    major = segment.to_owned();
                }
                template.push_str("{id}");
            } else {
                template.push_str(segment);
            }
            before = previous;
            previous = segment;
        }
        Self { template, major }
    }
}

#[derive(Clone, Copy, Debug)]
struct BucketState {
    remaining: u64,
    reset_at: Instant,
}

/// What the headers told us so far.
#[derive(Debug, Default)]
struct RateLimits {
    bucket_of_route: HashMap<String, String>,
    buckets: HashMap<String, BucketState>,
    global_until: Option<Instant>,
}

impl RateLimits {
    fn key(&self, route: &Route) -> String {
        let bucket = self
            .bucket_of_route
            .get(&route.template)
            .unwrap_or(&route.template);
        format!("{bucket}:{}", route.major)
    }

    /// How long to wait before sending on `route` (and takes one from the bucket).
    fn delay(&mut self, route: &Route, now: Instant) -> Option<Duration> {
        let mut wait = self
            .global_until
            .filter(|until| *until > now)
            .map(|until| until - now);
        let key = self.key(route);
        if let Some(bucket) = self.buckets.get_mut(&key) {
            if bucket.reset_at <= now {
                self.buckets.remove(&key);
            } else if bucket.remaining == 0 {
                let until_reset = bucket.reset_at - now;
                wait = Some(wait.map_or(until_reset, |w| w.max(until_reset)));
            } else {
                bucket.remaining -= 1;
            }
        }
        wait
    }

    fn update(&mut self, route: &Route, headers: &reqwest::header::HeaderMap, now: Instant) {
        if let Some(bucket) = headers
            .get("x-ratelimit-bucket")
            .and_then(|v| v.to_str().ok())
        {
            self.bucket_of_route
                .insert(route.template.clone(), bucket.to_owned());
        }
        let remaining = headers
            .get("x-ratelimit-remaining")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let reset_after = header_f64(headers, "x-ratelimit-reset-after");
        if let (Some(remaining), Some(reset_after)) = (remaining, reset_after) {
            let key = self.key(route);
            self.buckets.insert(
                key,
                BucketState {
                    remaining,
                    reset_at: now + Duration::from_secs_f64(reset_after.clamp(0.0, 3600.0)),
                },
            );
        }
    }

    fn limited(&mut self, route: &Route, retry_after: Duration, global: bool, now: Instant) {
        if global {
            self.global_until = Some(now + retry_after);
        } else {
            let key = self.key(route);
            self.buckets.insert(
                key,
                BucketState {
                    remaining: 0,
                    reset_at: now + retry_after,
                },
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// What the bot knows about channels and users

#[derive(Clone, Debug, Deserialize)]
struct Channel {
    id: String,
    #[serde(rename = "type")]
    kind: u8,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    guild_id: Option<String>,
    #[serde(default)]
    parent_id: Option<String>,
}

impl Channel {
    fn is_thread(&self) -> bool {
        matches!(self.kind, 10..=12)
    }

    fn is_direct(&self) -> bool {
        matches!(self.kind, 1 | 3)
    }
}

#[derive(Debug, Default)]
struct Directory {
    me: Option<(String, String)>,
    guilds: Vec<String>,
    channels: HashMap<String, Channel>,
    user_ids: HashMap<String, String>,
    dm_channels: HashMap<String, String>,
    /// Messages posted under [`Outgoing::remember_as`]: (channel id, message id).
    remembered: super::RememberedMessages<(String, String)>,
    /// The buttons posted ([`Outgoing::actions`]): `custom_id` → command.
    actions: super::ActionIds,
}

impl Directory {
    fn add_channel(&mut self, mut channel: Channel, guild_id: Option<&str>) {
        if channel.guild_id.is_none() {
            channel.guild_id = guild_id.map(str::to_owned);
        }
        self.channels.insert(channel.id.clone(), channel);
    }

    fn channel_named(&self, name: &str) -> Option<String> {
        let name = name.trim_start_matches('#');
        let mut matches: Vec<&Channel> = self
            .channels
            .values()
            .filter(|c| !c.is_thread() && !c.is_direct() && c.name.as_deref() == Some(name))
            .collect();
        matches.sort_by(|a, b| a.id.cmp(&b.id));
        matches.first().map(|c| c.id.clone())
    }
}

fn is_snowflake(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

async fn channel_info(
    rest: &Rest,
    directory: &Mutex<Directory>,
    id: &str,
) -> Result<Channel, ApiError> {
    if let Some(c) = lock(directory).channels.get(id) {
        return Ok(c.clone());
    }
    let value = rest
        .call(Method::GET, &format!("/channels/{id}"), None)
        .await?;
    let channel: Channel = serde_json::from_value(value).map_err(|e| ApiError::Refused {
        status: 200,
        code: String::new(),
        message: format!("unexpected channel object: {e}"),
    })?;
    lock(directory).add_channel(channel.clone(), None);
    Ok(channel)
}

fn lock(directory: &Mutex<Directory>) -> std::sync::MutexGuard<'_, Directory> {
    directory.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------
// Sending

/// The send side: the REST client and the directory of rooms.
struct Sender {
    rest: Arc<Rest>,
    directory: Arc<Mutex<Directory>>,
}

impl MessageSink for Sender {
    fn service(&self) -> &'static str {
        "discord"
    }

    async fn deliver(&self, out: &Outgoing) -> Result<(), ApiError> {
        try_deliver(&self.rest, &self.directory, out).await
    }
}

async fn try_deliver(
    rest: &Rest,
    directory: &Mutex<Directory>,
    out: &Outgoing,
) -> Result<(), ApiError> {
    if let Some(key) = &out.replaces {
        let remembered = lock(directory).remembered.replaced(out);
        let Some((channel, message)) = remembered else {
            tracing::debug!(key, "discord: no remembered message to edit");
            return Ok(());
        };
        // A status line edits the text (its embeds stay); a result replacing its ack
        // (`replaces_whole`) edits it into the result's first message, embeds included.
        let mut body = match message_bodies(out, None, None).into_iter().next() {
            Some(first) if out.replaces_whole => {
                let mut edit = serde_json::Map::new();
                for key in ["content", "embeds"] {
                    if let Some(v) = first.get(key) {
                        edit.insert(key.into(), v.clone());
                    }
                }
                Value::Object(edit)
            }
            _ => json!({
                "content": split_message(&out.text, MAX_CONTENT, char_len).swap_remove(0)
            }),
        };
        body["allowed_mentions"] = json!({"parse": []});
        rest.call(
            Method::PATCH,
            &format!("/channels/{channel}/messages/{message}"),
            Some(&body),
        )
        .await?;
        return Ok(());
    }
    let mut reference = None;
    let channel = match &out.target {
        Target::Room { id, thread } => {
            let room = if is_snowflake(id) {
                Some(id.clone())
            } else {
                let known = lock(directory).channel_named(id);
                match known {
                    Some(room) => Some(room),
                    None => {
                        refresh_guild_channels(rest, directory).await?;
                        lock(directory).channel_named(id)
                    }
                }
            };
            let Some(room) = room else {
                return Err(ApiError::Refused {
                    status: 404,
                    code: "10003".into(),
                    message: format!("no channel named `{id}` is visible to the bot"),
                });
            };
            match thread.as_deref().filter(|t| *t != room && is_snowflake(t)) {
                None => room,
                Some(thread) => match channel_info(rest, directory, thread).await {
                    Ok(_) => thread.to_owned(),
                    Err(ApiError::Refused { status: 404, .. }) => {
                        reference = Some(json!({
                            "message_id": thread,
                            "channel_id": room,
                            "fail_if_not_exists": false,
                        }));
                        room
                    }
                    Err(e) => return Err(e),
                },
            }
        }
        Target::Direct { user } => dm_channel(rest, directory, user).await?,
    };
    let mention = out.mention.as_deref().map(|m| {
        if is_snowflake(m) {
            format!("<@{m}>")
        } else if let Some(id) = lock(directory).user_ids.get(m) {
            format!("<@{id}>")
        } else {
            format!("@{m}")
        }
    });
    let mut bodies = message_bodies(out, mention.as_deref(), reference);
    if !out.actions.is_empty()
        && let Some(Value::Object(last)) = bodies.last_mut()
    {
        let buttons = rich::issue_ids(&out.actions, render::BUTTONS, &lock(directory).actions);
        last.insert("components".into(), render::components(&buttons));
    }
    let path = format!("/channels/{channel}/messages");
    for (i, body) in bodies.iter().enumerate() {
        let posted = rest.call(Method::POST, &path, Some(body)).await?;
        if let (0, Some(id)) = (i, str_field(&posted, "id")) {
            lock(directory)
                .remembered
                .posted(out, (channel.clone(), id.to_owned()));
        }
    }
    tracing::debug!(channel = %channel, parts = bodies.len(), "discord: posted");
    Ok(())
}

/// Lists every guild's channels again (a name not seen in GUILD_CREATE yet).
async fn refresh_guild_channels(rest: &Rest, directory: &Mutex<Directory>) -> Result<(), ApiError> {
    let guilds = lock(directory).guilds.clone();
    for guild in guilds {
        let list = rest
            .call(Method::GET, &format!("/guilds/{guild}/channels"), None)
            .await?;
        let channels: Vec<Channel> = list
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| serde_json::from_value(c.clone()).ok())
            .collect();
        let mut dir = lock(directory);
        for channel in channels {
            dir.add_channel(channel, Some(&guild));
        }
    }
    Ok(())
}

async fn dm_channel(
    rest: &Rest,
    directory: &Mutex<Directory>,
    user: &str,
) -> Result<String, ApiError> {
    let user_id = if is_snowflake(user) {
        user.to_owned()
    } else {
        lock(directory)
            .user_ids
            .get(user.trim_start_matches('@'))
            .cloned()
            .ok_or_else(|| ApiError::Refused {
                status: 404,
                code: "10013".into(),
                message: format!("unknown user `{user}` (no message seen from them yet)"),
            })?
    };
    if let Some(channel) = lock(directory).dm_channels.get(&user_id) {
        return Ok(channel.clone());
    }
    let created = rest
        .call(
            Method::POST,
            "/users/@me/channels",
            Some(&json!({ "recipient_id": user_id })),
        )
        .await?;
    let channel = created
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::Refused {
            status: 200,
            code: String::new(),
            message: "DM channel without an id".into(),
        })?
        .to_owned();
    lock(directory).dm_channels.insert(user_id, channel.clone());
    Ok(channel)
}

/// The JSON bodies for one [`Outgoing`], in order, each within Discord's limits.
fn message_bodies(out: &Outgoing, mention: Option<&str>, reference: Option<Value>) -> Vec<Value> {
    let mut bodies = render::messages(out, mention, MAX_CONTENT, MAX_EMBED_DESCRIPTION);
    if bodies.is_empty() {
        let mut m = serde_json::Map::new();
        m.insert("content".into(), Value::String("(no output)".into()));
        bodies.push(m);
    }
    if let (Some(first), Some(reference)) = (bodies.first_mut(), reference) {
        first.insert("message_reference".into(), reference);
    }
    bodies
        .into_iter()
        .map(|mut m| {
            m.insert("allowed_mentions".into(), json!({ "parse": ["users"] }));
            Value::Object(m)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Gateway

#[derive(Debug, Deserialize)]
struct Payload {
    op: u8,
    #[serde(default)]
    d: Value,
    #[serde(default)]
    s: Option<u64>,
    #[serde(default)]
    t: Option<String>,
}

#[derive(Debug, Deserialize)]
struct MessageCreate {
    id: String,
    channel_id: String,
    #[serde(default)]
    guild_id: Option<String>,
    author: Author,
    #[serde(default)]
    content: String,
    #[serde(rename = "type", default)]
    kind: u8,
    #[serde(default)]
    webhook_id: Option<String>,
}

impl MessageCreate {
    /// Whether the bot considers this message: from a person (not a bot, a webhook or
    /// itself), and not a system message (0 DEFAULT, 19 REPLY; the rest are joins, pins,
    /// thread starts).
    fn is_for_the_bot(&self, me: &str) -> bool {
        !(self.author.bot || self.author.id == me || self.webhook_id.is_some())
            && matches!(self.kind, 0 | 19)
    }

    /// The message, in `room` (and `thread`) as looked up, its leading mention of the bot
    /// (`me`) removed.
    fn into_incoming(self, me: &str, room: Option<Room>, thread: Option<String>) -> Incoming {
        let (text, mentioned) = match strip_mention(&self.content, me) {
            Some(rest) => (rest.to_owned(), true),
            None => (self.content.trim().to_owned(), false),
        };
        Incoming {
            user_id: self.author.id,
            user: self.author.username,
            room,
            text,
            mentioned,
            thread,
            message_id: Some(self.id),
        }
    }
}

/// The fuzz target's way in: a gateway frame (`{"op": 0, "t": "MESSAGE_CREATE", "d": …}`)
/// to the message it carries, with the channel id standing in for the looked-up room.
#[doc(hidden)]
pub fn incoming_from_frame(frame: &[u8], me: &str) -> Option<Incoming> {
    let frame: Value = serde_json::from_slice(frame).ok()?;
    if frame.get("t").and_then(Value::as_str) != Some("MESSAGE_CREATE") {
        return None;
    }
    let m = serde_json::from_value::<MessageCreate>(frame.get("d")?.clone()).ok()?;
    if !m.is_for_the_bot(me) {
        return None;
    }
    let room = m.guild_id.as_ref().map(|_| Room {
        id: m.channel_id.clone(),
        name: format!("#{}", m.channel_id),
    });
    Some(m.into_incoming(me, room, None))
}

/// A button press taken apart (`INTERACTION_CREATE` with `type` 3, MESSAGE_COMPONENT, and
/// `data.component_type` 2, a button).
#[derive(PartialEq, Eq)]
struct Press<'a> {
    id: &'a str,
    token: &'a str,
    custom_id: &'a str,
    channel_id: &'a str,
    in_guild: bool,
    user_id: &'a str,
    username: &'a str,
}

/// The interaction token answers the interaction: never printed.
impl std::fmt::Debug for Press<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Press")
            .field("id", &self.id)
            .field("token", &"[redacted]")
            .field("custom_id", &self.custom_id)
            .field("channel_id", &self.channel_id)
            .field("in_guild", &self.in_guild)
            .field("user_id", &self.user_id)
            .field("username", &self.username)
            .finish()
    }
}

/// Discord wants the answer to an interaction within 3 s; later is useless.
const INTERACTION_DEADLINE: Duration = Duration::from_secs(3);

/// Longest interaction token accepted (Discord's are a couple of hundred characters).
const MAX_INTERACTION_TOKEN: usize = 1024;

impl<'a> Press<'a> {
    fn parse(d: &'a Value) -> Option<Self> {
        if d.get("type").and_then(Value::as_u64) != Some(3)
            || d.pointer("/data/component_type").and_then(Value::as_u64) != Some(2)
        {
            tracing::debug!("discord: ignoring an interaction that is not a button press");
            return None;
        }
        let snowflake =
            |v: Option<&'a Value>| v.and_then(Value::as_str).filter(|s| is_snowflake(s));
        let user = d.pointer("/member/user").or_else(|| d.get("user"))?;
        let token = str_field(d, "token")
            .filter(|t| !t.is_empty() && t.len() <= MAX_INTERACTION_TOKEN)
            .filter(|t| {
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            })?;
        Some(Self {
            id: snowflake(d.get("id"))?,
            token,
            custom_id: d.pointer("/data/custom_id").and_then(Value::as_str)?,
            channel_id: snowflake(d.get("channel_id"))?,
            in_guild: d.get("guild_id").is_some_and(|g| !g.is_null()),
            user_id: snowflake(user.get("id"))?,
            username: str_field(user, "username").filter(|n| !n.is_empty() && n.len() <= 64)?,
        })
    }
}

#[derive(Debug, Deserialize)]
struct Author {
    id: String,
    username: String,
    #[serde(default)]
    bot: bool,
}

#[derive(Debug, Clone)]
struct Session {
    id: String,
    resume_url: String,
    seq: Option<u64>,
}

/// How one gateway connection ended.
enum Ending {
    /// Shutdown requested.
    Shutdown,
    /// Reconnect; RESUME if the session is still there.
    Reconnect {
        /// Reached READY or RESUMED (the connection worked: reset the backoff).
        worked: bool,
        /// Wait this long first (op 9 asks for 1–5 s).
        pause: Option<Duration>,
    },
}

struct Gateway {
    rest: Arc<Rest>,
    directory: Arc<Mutex<Directory>>,
    incoming: mpsc::Sender<Incoming>,
    state: watch::Sender<ConnState>,
    stop: CancellationToken,
    /// The session to RESUME on the next connection, if Discord still has it.
    session: Option<Session>,
}

impl EventStream for Gateway {
    type Connection = WsStream;

    fn service(&self) -> &'static str {
        "discord"
    }

    async fn connect(&mut self) -> Result<WsStream, ConnectError> {
        let base = match &self.session {
            Some(s) => s.resume_url.clone(),
            None => match self.gateway_bot().await {
                Ok(base) => base,
                Err(ApiError::Auth(reason)) => {
                    return Err(ConnectError::Stop(BackendError::Auth {
                        service: "discord",
                        reason,
                    }));
                }
                Err(e) => {
                    return Err(ConnectError::Retry(format!(
                        "cannot get the gateway URL: {e}"
                    )));
                }
            },
        };
        let url = gateway_url(&base).map_err(|reason| {
            self.session = None;
            ConnectError::Retry(format!("bad gateway URL {base}: {reason}"))
        })?;
        let ws = websocket::connect(url.as_str())
            .await
            .map_err(|e| ConnectError::Retry(format!("gateway connect failed: {e}")))?;
        tracing::debug!(url = %url, resume = self.session.is_some(), "discord: gateway connected");
        Ok(ws)
    }

    async fn session(&mut self, ws: WsStream) -> SessionEnd {
        let mut session = self.session.take();
        let ending = self.connection(ws, &mut session).await;
        self.session = session;
        match ending {
            Err(e) => SessionEnd::Fatal(e),
            Ok(Ending::Shutdown) => SessionEnd::Shutdown,
            // A working connection that dropped: resume right away, once.
            Ok(Ending::Reconnect {
                worked: true,
                pause,
            }) => SessionEnd::Closed {
                healthy: true,
                pause: Some(pause.unwrap_or(Duration::from_millis(100))),
            },
            Ok(Ending::Reconnect {
                worked: false,
                pause,
            }) => SessionEnd::Closed {
                healthy: false,
                pause,
            },
        }
    }
}

impl Gateway {
    /// Reconnects (resuming when it can) until shutdown; `Err` only for a refused token
    /// or settings Discord rejects.
    async fn run(mut self) -> Result<(), BackendError> {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let stop = self.stop.clone();
        let state = self.state.clone();
        supervise(&mut self, backoff, &stop, &state).await
    }

    async fn gateway_bot(&self) -> Result<String, ApiError> {
        let info = self.rest.call(Method::GET, "/gateway/bot", None).await?;
        if let Some(limit) = info.get("session_start_limit")
            && limit.get("remaining").and_then(Value::as_u64) == Some(0)
        {
            let wait = limit
                .get("reset_after")
                .and_then(Value::as_u64)
                .unwrap_or(5_000);
            tracing::warn!(
                wait_ms = wait,
                "discord: daily session start limit used up; waiting"
            );
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(wait)) => {}
                () = self.stop.cancelled() => {}
            }
        }
        info.get("url")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ApiError::Refused {
                status: 200,
                code: String::new(),
                message: "GET /gateway/bot answered without `url`".into(),
            })
    }

    /// Runs one connection: HELLO, IDENTIFY or RESUME, then events until it ends.
    async fn connection(
        &self,
        mut ws: WsStream,
        session: &mut Option<Session>,
    ) -> Result<Ending, BackendError> {
        let reconnect = |worked| Ending::Reconnect {
            worked,
            pause: None,
        };
        // HELLO
        let interval = loop {
            let frame = tokio::select! {
                frame = tokio::time::timeout(HELLO_TIMEOUT, ws.next()) => frame,
                () = self.stop.cancelled() => return Ok(Ending::Shutdown),
            };
            match frame {
                Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str::<Payload>(&text) {
                    Ok(p) if p.op == 10 => {
                        let ms =
                            p.d.get("heartbeat_interval")
                                .and_then(Value::as_u64)
                                .unwrap_or(41_250)
                                .max(100);
                        break Duration::from_millis(ms);
                    }
                    _ => continue,
                },
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return close_ending(frame.as_ref(), session, false);
                }
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(e))) => {
                    tracing::warn!(error = %e, "discord: gateway error before HELLO");
                    return Ok(reconnect(false));
                }
                Ok(None) | Err(_) => {
                    tracing::warn!("discord: no HELLO from the gateway");
                    return Ok(reconnect(false));
                }
            }
        };
        let hello = match session {
            Some(s) => json!({
                "op": 6,
                "d": {"token": self.rest.token.expose(), "session_id": s.id, "seq": s.seq},
            }),
            None => json!({
                "op": 2,
                "d": {
                    "token": self.rest.token.expose(),
                    "intents": INTENTS,
                    "properties": {"os": std::env::consts::OS, "browser": "st2bot", "device": "st2bot"},
                },
            }),
        };
        if let Err(e) = ws.send(Message::text(hello.to_string())).await {
            tracing::warn!(error = %e, "discord: cannot send IDENTIFY/RESUME");
            return Ok(reconnect(false));
        }
        let mut worked = false;
        let mut awaiting_ack = false;
        let mut next_beat = Instant::now() + jitter(interval);
        let mut seq = session.as_ref().and_then(|s| s.seq);
        loop {
            let frame = tokio::select! {
                frame = ws.next() => frame,
                () = tokio::time::sleep_until(next_beat) => {
                    if awaiting_ack {
                        tracing::warn!("discord: heartbeat not acknowledged; zombie connection, reconnecting");
                        let _ = close(&mut ws, 4000, "heartbeat not acknowledged").await;
                        return Ok(reconnect(worked));
                    }
                    if let Err(e) = ws.send(heartbeat(seq)).await {
                        tracing::warn!(error = %e, "discord: cannot send heartbeat");
                        return Ok(reconnect(worked));
                    }
                    awaiting_ack = true;
                    next_beat += interval;
                    continue;
                }
                () = self.stop.cancelled() => {
                    let _ = close(&mut ws, 1000, "shutting down").await;
                    return Ok(Ending::Shutdown);
                }
            };
            let text = match frame {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(frame))) => {
                    return close_ending(frame.as_ref(), session, worked);
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "discord: gateway connection lost");
                    return Ok(reconnect(worked));
                }
                None => {
                    tracing::warn!("discord: gateway connection closed");
                    return Ok(reconnect(worked));
                }
            };
            let payload: Payload = match serde_json::from_str(&text) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "discord: undecodable gateway payload ignored");
                    continue;
                }
            };
            if let Some(s) = payload.s {
                seq = Some(s);
                if let Some(session) = session.as_mut() {
                    session.seq = Some(s);
                }
            }
            match payload.op {
                0 => {
                    let kind = payload.t.as_deref().unwrap_or("");
                    match kind {
                        "READY" => {
                            let ready = parse_ready(&payload.d);
                            match ready {
                                Some((new_session, me)) => {
                                    tracing::info!(user = %me.1, session = %new_session.id, "discord: ready");
                                    let mut new_session = new_session;
                                    new_session.seq = seq;
                                    *session = Some(new_session);
                                    let guilds = payload
                                        .d
                                        .get("guilds")
                                        .and_then(Value::as_array)
                                        .into_iter()
                                        .flatten()
                                        .filter_map(|g| g.get("id")?.as_str().map(str::to_owned))
                                        .collect();
                                    let mut dir = lock(&self.directory);
                                    dir.me = Some(me);
                                    dir.guilds = guilds;
                                    worked = true;
                                    let _ = self.state.send(ConnState::Connected);
                                }
                                None => tracing::warn!("discord: READY without session or user"),
                            }
                        }
                        "RESUMED" => {
                            tracing::info!("discord: session resumed");
                            worked = true;
                            let _ = self.state.send(ConnState::Connected);
                        }
                        _ => self.dispatch(kind, payload.d).await,
                    }
                }
                1 => {
                    if let Err(e) = ws.send(heartbeat(seq)).await {
                        tracing::warn!(error = %e, "discord: cannot send heartbeat");
                        return Ok(reconnect(worked));
                    }
                    awaiting_ack = true;
                }
                7 => {
                    tracing::info!("discord: gateway asked to reconnect");
                    let _ = close(&mut ws, 4000, "reconnect requested").await;
                    return Ok(Ending::Reconnect {
                        worked: true,
                        pause: None,
                    });
                }
                9 => {
                    let resumable = payload.d.as_bool().unwrap_or(false);
                    tracing::warn!(resumable, "discord: invalid session");
                    if !resumable {
                        *session = None;
                    }
                    let _ = close(&mut ws, 4000, "invalid session").await;
                    let pause = Duration::from_secs(1) + jitter(Duration::from_secs(4));
                    return Ok(Ending::Reconnect {
                        worked,
                        pause: Some(pause),
                    });
                }
                11 => awaiting_ack = false,
                _ => {}
            }
        }
    }

    async fn dispatch(&self, kind: &str, d: Value) {
        match kind {
            "GUILD_CREATE" => {
                let guild = d.get("id").and_then(Value::as_str).map(str::to_owned);
                let mut dir = lock(&self.directory);
                for list in ["channels", "threads"] {
                    for c in d.get(list).and_then(Value::as_array).into_iter().flatten() {
                        if let Ok(channel) = serde_json::from_value::<Channel>(c.clone()) {
                            dir.add_channel(channel, guild.as_deref());
                        }
                    }
                }
            }
            "CHANNEL_CREATE" | "CHANNEL_UPDATE" | "THREAD_CREATE" | "THREAD_UPDATE" => {
                if let Ok(channel) = serde_json::from_value::<Channel>(d) {
                    lock(&self.directory).add_channel(channel, None);
                }
            }
            "CHANNEL_DELETE" | "THREAD_DELETE" => {
                if let Some(id) = d.get("id").and_then(Value::as_str) {
                    lock(&self.directory).channels.remove(id);
                }
            }
            "INTERACTION_CREATE" => {
                if let Some(message) = self.pressed(&d).await {
                    let _ = self.incoming.send(message).await;
                }
            }
            "MESSAGE_CREATE" => match serde_json::from_value::<MessageCreate>(d) {
                Ok(m) => {
                    if let Some(message) = self.incoming_message(m).await {
                        let _ = self.incoming.send(message).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "discord: undecodable MESSAGE_CREATE ignored"),
            },
            _ => {}
        }
    }

    async fn incoming_message(&self, m: MessageCreate) -> Option<Incoming> {
        let me = lock(&self.directory).me.clone()?;
        if !m.is_for_the_bot(&me.0) {
            return None;
        }
        {
            let mut dir = lock(&self.directory);
            dir.user_ids
                .insert(m.author.username.clone(), m.author.id.clone());
            if m.guild_id.is_none() {
                dir.dm_channels
                    .insert(m.author.id.clone(), m.channel_id.clone());
            }
        }
        let (room, thread) = self.place(&m.channel_id, m.guild_id.is_some()).await?;
        Some(m.into_incoming(&me.0, room, thread))
    }

    /// The button press in an `INTERACTION_CREATE`
    /// (<https://discord.com/developers/docs/interactions/receiving-and-responding>), as the
    /// button's command from the user who pressed it. Answered at once (Discord wants a
    /// callback within 3 s): `DEFERRED_UPDATE_MESSAGE` (6) for a button this backend posted,
    /// an ephemeral `CHANNEL_MESSAGE_WITH_SOURCE` (4, flags 64) for any other `custom_id`,
    /// which is never run.
    async fn pressed(&self, d: &Value) -> Option<Incoming> {
        let press = Press::parse(d)?;
        let command = lock(&self.directory).actions.command(press.custom_id);
        let callback = match &command {
            Some(_) => json!({ "type": 6 }),
            None => json!({ "type": 4, "data": {
                "content": "That button is no longer active: type the command in its message instead.",
                "flags": 64,
            }}),
        };
        let path = format!("/interactions/{}/{}/callback", press.id, press.token);
        let answered = tokio::time::timeout(
            INTERACTION_DEADLINE,
            self.rest.call(Method::POST, &path, Some(&callback)),
        )
        .await;
        match answered {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "discord: interaction callback failed"),
            Err(_) => tracing::warn!("discord: interaction callback not answered in time"),
        }
        let Some(command) = command else {
            tracing::warn!(
                user_id = press.user_id,
                channel = press.channel_id,
                "discord: a press of a button this bot did not post (or no longer remembers); ignored"
            );
            return None;
        };
        {
            let mut dir = lock(&self.directory);
            dir.user_ids
                .insert(press.username.to_owned(), press.user_id.to_owned());
            if !press.in_guild {
                dir.dm_channels
                    .insert(press.user_id.to_owned(), press.channel_id.to_owned());
            }
        }
        let (room, thread) = self.place(press.channel_id, press.in_guild).await?;
        tracing::info!(
            user = press.username,
            room = room.as_ref().map(|r| r.name.as_str()),
            "discord: button pressed"
        );
        Some(Incoming {
            user_id: press.user_id.to_owned(),
            user: press.username.to_owned(),
            room,
            text: command,
            mentioned: false,
            thread,
            message_id: None,
        })
    }

    /// The room (and thread) of a channel: none for a direct message; a thread's parent
    /// as the room and the thread's id as the thread. `None` when Discord cannot say.
    async fn place(
        &self,
        channel_id: &str,
        in_guild: bool,
    ) -> Option<(Option<Room>, Option<String>)> {
        Some(if !in_guild {
            (None, None)
        } else {
            let channel = match channel_info(&self.rest, &self.directory, channel_id).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(channel = %channel_id, error = %e, "discord: unknown channel; message ignored");
                    return None;
                }
            };
            if channel.is_thread() {
                let parent_id = channel.parent_id.clone().unwrap_or_default();
                let parent_name = match channel_info(&self.rest, &self.directory, &parent_id).await
                {
                    Ok(p) => p.name.unwrap_or_default(),
                    Err(_) => String::new(),
                };
                (
                    Some(Room {
                        id: parent_id,
                        name: format!("#{parent_name}"),
                    }),
                    Some(channel.id),
                )
            } else {
                (
                    Some(Room {
                        id: channel.id,
                        name: format!("#{}", channel.name.unwrap_or_default()),
                    }),
                    None,
                )
            }
        })
    }
}

fn parse_ready(d: &Value) -> Option<(Session, (String, String))> {
    let id = d.get("session_id")?.as_str()?.to_owned();
    let resume_url = d.get("resume_gateway_url")?.as_str()?.to_owned();
    let user = d.get("user")?;
    let me = (
        user.get("id")?.as_str()?.to_owned(),
        user.get("username")?.as_str()?.to_owned(),
    );
    Some((
        Session {
            id,
            resume_url,
            seq: None,
        },
        me,
    ))
}

/// The text after a leading mention of the bot (`<@id>` or `<@!id>`), if there is one.
fn strip_mention<'a>(content: &'a str, me: &str) -> Option<&'a str> {
    mention::strip(content, &[me], &mention::DISCORD)
}

fn heartbeat(seq: Option<u64>) -> Message {
    Message::text(json!({"op": 1, "d": seq}).to_string())
}

async fn close(
    ws: &mut WsStream,
    code: u16,
    reason: &str,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    ws.close(Some(CloseFrame {
        code: code.into(),
        reason: reason.to_owned().into(),
    }))
    .await
}

/// What a close frame from the gateway means.
fn close_ending(
    frame: Option<&CloseFrame>,
    session: &mut Option<Session>,
    worked: bool,
) -> Result<Ending, BackendError> {
    let code = frame.map(|f| u16::from(f.code)).unwrap_or(1005);
    let reason = frame.map(|f| f.reason.to_string()).unwrap_or_default();
    tracing::warn!(code, reason = %reason, "discord: gateway closed the connection");
    match code {
        4004 => Err(BackendError::Auth {
            service: "discord",
            reason: format!("gateway close 4004 (authentication failed): {reason}"),
        }),
        4010..=4014 => Err(BackendError::Config {
            what: "discord gateway session",
            reason: format!(
                "gateway close {code} ({}): {reason}",
                match code {
                    4010 => "invalid shard",
                    4011 => "sharding required",
                    4012 => "invalid API version",
                    4013 => "invalid intents",
                    _ => {
                        "disallowed intents: enable the MESSAGE CONTENT intent in the \
                         Developer Portal (Bot page)"
                    }
                }
            ),
        }),
        4007 | 4009 => {
            *session = None;
            Ok(Ending::Reconnect {
                worked,
                pause: None,
            })
        }
        _ => Ok(Ending::Reconnect {
            worked,
            pause: None,
        }),
    }
}

fn gateway_url(base: &str) -> Result<Url, String> {
    let mut url = Url::parse(base).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "ws" | "wss") {
        return Err(format!("scheme `{}` is not ws or wss", url.scheme()));
    }
    url.set_query(Some(GATEWAY_QUERY));
    Ok(url)
}

/// Echoed user text with Discord's mass mentions (`@everyone`, `@here`, role mentions
/// `<@&id>`) broken; `allowed_mentions` stops them too, this keeps them from reading as one.
pub fn defuse_mass_mentions(text: &str) -> String {
    super::defuse_at_words(text, &["everyone", "here"])
        .replace("<@&", &format!("<@{}&", super::ZWJ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Status, char_len};

    fn outgoing(text: &str) -> Outgoing {
        Outgoing::text(
            Target::Room {
                id: "1".into(),
                thread: None,
            },
            text,
        )
    }

    #[test]
    fn intents_include_message_content() {
        assert_eq!(INTENTS, 37377);
    }

    #[test]
    fn strips_leading_mentions_only() {
        assert_eq!(strip_mention("<@42> !help", "42"), Some("!help"));
        assert_eq!(strip_mention("  <@!42>: !help", "42"), Some("!help"));
        assert_eq!(strip_mention("<@43> !help", "42"), None);
        assert_eq!(strip_mention("!help <@42>", "42"), None);
    }

    #[test]
    fn routes_keep_major_parameters() {
        let r = Route::of(&Method::POST, "/channels/123/messages");
        assert_eq!(r.template, "POST /channels/{id}/messages");
        assert_eq!(r.major, "123");
        let r = Route::of(&Method::GET, "/gateway/bot");
        assert_eq!(r.template, "GET /gateway/bot");
        assert_eq!(r.major, "");
        let r = Route::of(
            &Method::POST,
            "/interactions/555/aW50ZXJhY3Rpb24.secret/callback",
        );
        assert_eq!(r.template, "POST /interactions/{id}/{token}/callback");
        assert!(
            !format!("{r:?}").contains("secret"),
            "tokens are never logged"
        );
    }

    fn press_event(custom_id: &str) -> Value {
        json!({
            "id": "700000000000000001", "application_id": "900000000000000001", "type": 3,
            "token": "aW50ZXJhY3Rpb24tdG9rZW4", "version": 1, "guild_id": "100000000000000001",
            "channel_id": "200000000000000001",
            "member": {"user": {"id": "400000000000000002", "username": "bob"}, "roles": []},
            "message": {"id": "500000000000000009", "channel_id": "200000000000000001"},
            "data": {"custom_id": custom_id, "component_type": 2},
        })
    }

    #[test]
    fn a_button_press_is_taken_apart_and_anything_else_is_ignored() {
        let d = press_event("st2bot-1");
        let p = Press::parse(&d).expect("a press");
        assert_eq!(
            (
                p.id,
                p.custom_id,
                p.channel_id,
                p.in_guild,
                p.user_id,
                p.username
            ),
            (
                "700000000000000001",
                "st2bot-1",
                "200000000000000001",
                true,
                "400000000000000002",
                "bob"
            )
        );
        // In a DM the user is `user`, there is no guild.
        let mut dm = press_event("x");
        dm.as_object_mut().unwrap().remove("member");
        dm.as_object_mut().unwrap().remove("guild_id");
        dm["user"] = json!({"id": "400000000000000001", "username": "alice"});
        let p = Press::parse(&dm).expect("a press in a DM");
        assert_eq!((p.in_guild, p.username), (false, "alice"));
        // A slash command, a select menu, a token that does not belong in a URL: ignored.
        let mut command = press_event("x");
        command["type"] = json!(2);
        assert_eq!(Press::parse(&command), None);
        let mut select = press_event("x");
        select["data"]["component_type"] = json!(3);
        assert_eq!(Press::parse(&select), None);
        let mut bad = press_event("x");
        bad["token"] = json!("../../channels/1/messages");
        assert_eq!(Press::parse(&bad), None);
        let mut bad = press_event("x");
        bad["channel_id"] = json!("general");
        assert_eq!(Press::parse(&bad), None);
    }

    #[test]
    fn rate_limits_wait_for_empty_buckets_and_globals() {
        let mut limits = RateLimits::default();
        let route = Route::of(&Method::POST, "/channels/1/messages");
        let other = Route::of(&Method::POST, "/channels/2/messages");
        let now = Instant::now();
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-ratelimit-bucket", "abc".parse().unwrap());
        headers.insert("x-ratelimit-remaining", "0".parse().unwrap());
        headers.insert("x-ratelimit-reset-after", "2.5".parse().unwrap());
        limits.update(&route, &headers, now);
        assert_eq!(limits.delay(&route, now), Some(Duration::from_millis(2500)));
        assert_eq!(limits.delay(&other, now), None, "other channel, own bucket");
        limits.limited(&other, Duration::from_secs(1), true, now);
        assert_eq!(limits.delay(&other, now), Some(Duration::from_secs(1)));
        assert_eq!(
            limits.delay(&route, now + Duration::from_secs(3)),
            None,
            "reset passed"
        );
    }

    #[test]
    fn error_messages_name_the_field() {
        let body = json!({"code": 50035, "message": "Invalid Form Body", "errors": {"content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}]}}});
        assert_eq!(
            error_message(&body, ""),
            "Invalid Form Body (content: Must be 2000 or fewer in length.)"
        );
    }

    #[test]
    fn plain_text_is_split_under_the_limit() {
        let text = "output line\n".repeat(400);
        let bodies = message_bodies(&outgoing(&text), Some("<@7>"), None);
        assert!(bodies.len() >= 3);
        for b in &bodies {
            assert!(char_len(b["content"].as_str().unwrap()) <= MAX_CONTENT);
            assert!(b.get("embeds").is_none());
        }
        assert!(
            bodies[0]["content"]
                .as_str()
                .unwrap()
                .starts_with("<@7>: output")
        );
    }

    #[test]
    fn status_makes_an_embed_and_pretext_stays_plain() {
        let mut out = outgoing("Execution done{~}result body");
        out.status = Some(Status::Succeeded);
        let reference = json!({"message_id": "5", "channel_id": "1", "fail_if_not_exists": false});
        let bodies = message_bodies(&out, Some("<@7>"), Some(reference.clone()));
        assert_eq!(bodies.len(), 1);
        assert_eq!(bodies[0]["content"], "<@7>: Execution done");
        assert_eq!(bodies[0]["embeds"][0]["description"], "result body");
        assert_eq!(bodies[0]["embeds"][0]["color"], 0x2EB67D);
        assert_eq!(bodies[0]["message_reference"], reference);
        assert_eq!(bodies[0]["allowed_mentions"], json!({"parse": ["users"]}));
    }

    #[test]
    fn close_codes() {
        let mut session = Some(Session {
            id: "s".into(),
            resume_url: "ws://x".into(),
            seq: Some(3),
        });
        let frame = |code: u16| CloseFrame {
            code: code.into(),
            reason: "r".into(),
        };
        assert!(matches!(
            close_ending(Some(&frame(4004)), &mut session, true),
            Err(BackendError::Auth { .. })
        ));
        assert!(matches!(
            close_ending(Some(&frame(4014)), &mut session, true),
            Err(BackendError::Config { .. })
        ));
        assert!(matches!(
            close_ending(Some(&frame(4000)), &mut session, true),
            Ok(Ending::Reconnect { .. })
        ));
        assert!(session.is_some(), "4000 keeps the session");
        assert!(close_ending(Some(&frame(4009)), &mut session, true).is_ok());
        assert!(session.is_none(), "4009 drops it");
    }

    #[test]
    fn gateway_urls_get_version_and_encoding() {
        assert_eq!(
            gateway_url("wss://gateway.discord.gg").unwrap().as_str(),
            "wss://gateway.discord.gg/?v=10&encoding=json"
        );
        assert!(gateway_url("https://x").is_err());
    }
}
