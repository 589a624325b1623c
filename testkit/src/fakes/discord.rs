//! A fake Discord for the backend's end-to-end tests: the REST API (v10) and the Gateway
//! (JSON encoding) on 127.0.0.1, with one guild, a few channels, a thread and users.
//!
//! Built from Discord's developer documentation:
//! - Gateway: <https://discord.com/developers/docs/events/gateway> (HELLO, heartbeats and ACKs,
//!   IDENTIFY, READY, RESUME and replay, RESUMED, op 7 RECONNECT, op 9 INVALID_SESSION) and
//!   <https://discord.com/developers/docs/events/gateway-events> (payload shapes: READY,
//!   GUILD_CREATE with `channels` and `threads`, MESSAGE_CREATE);
//! - close codes and JSON error codes:
//!   <https://discord.com/developers/docs/topics/opcodes-and-status-codes>;
//! - messages: <https://discord.com/developers/docs/resources/message#create-message> (content
//!   at most 2000 characters, at most 10 embeds, description at most 4096, 6000 in total,
//!   `message_reference`), <https://discord.com/developers/docs/resources/message#edit-message>
//!   (`PATCH`, 10008 `Unknown Message`), <https://discord.com/developers/docs/resources/user#create-dm>,
//!   <https://discord.com/developers/docs/resources/channel#get-channel>,
//!   <https://discord.com/developers/docs/resources/guild#get-guild-channels>;
//! - buttons: <https://discord.com/developers/docs/interactions/message-components>
//!   (`components`: at most 5 action rows, type 1, of 1 to 5 buttons, type 2; a button's
//!   `label` at most 80 characters, `custom_id` 1 to 100 characters and unique in the
//!   message, `style` 1–4 with a `custom_id`, 5 with a `url`) and
//!   <https://discord.com/developers/docs/interactions/receiving-and-responding> (a press is
//!   `INTERACTION_CREATE` with `type` 3; the app answers `POST
//!   /interactions/{id}/{token}/callback` within 3 s, no bot token needed, 204; a late or
//!   second answer is 10062 `Unknown interaction` / 40060 `Interaction has already been
//!   acknowledged`);
//! - rate limits: <https://discord.com/developers/docs/topics/rate-limits> (`X-RateLimit-*`
//!   headers, 429 body `{"message", "retry_after", "global"}`).
//!
//! It rejects what Discord rejects: a wrong token (REST 401 `{"message": "401: Unauthorized",
//! "code": 0}`, Gateway close 4004), content over 2000 characters or oversized embeds (400,
//! code 50035 with per-field `_errors`), an empty message (50006), an unknown channel
//! (10003), payloads before IDENTIFY (4003), a second IDENTIFY (4005), unknown opcodes
//! (4001), undecodable payloads (4002), the MESSAGE_CONTENT intent when the application has
//! not enabled it (4014), a missed heartbeat (closes with 4009 and forgets the session), a
//! RESUME of an unknown session (op 9 `d: false`), and requests sent while a rate limit is in
//! force (another 429, counted as a violation). Tests inject 429s and connection drops, and
//! read what the bot posted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast, mpsc};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::ws::{self, Served, ServerSocket};

/// The bot's user id.
pub const BOT_ID: &str = "900000000000000001";
/// The guild.
pub const GUILD_ID: &str = "100000000000000001";
/// `#ops`.
pub const OPS: &str = "200000000000000001";
/// `#dev`.
pub const DEV: &str = "200000000000000002";
/// A public thread in `#ops`.
pub const THREAD: &str = "300000000000000001";
/// The people.
pub const USERS: &[(&str, &str)] = &[
    ("400000000000000001", "alice"),
    ("400000000000000002", "bob"),
];

const MESSAGE_CONTENT: u64 = 1 << 15;

/// Something the bot posted.
#[derive(Clone, Debug)]
pub struct Posted {
    /// Channel it went to.
    pub channel_id: String,
    /// The JSON body as sent.
    pub body: Value,
    /// The message id Discord gave it.
    pub id: String,
    /// `content` set by edits (`PATCH /channels/{id}/messages/{id}`), oldest first.
    pub edits: Vec<String>,
}

impl Posted {
    /// `content`, or "".
    pub fn content(&self) -> &str {
        self.body
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// The embeds, if any.
    pub fn embeds(&self) -> Vec<Value> {
        self.body
            .get("embeds")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }
}

/// Counters tests assert on.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// IDENTIFYs accepted.
    pub identifies: u32,
    /// RESUMEs accepted.
    pub resumes: u32,
    /// op 9 sent.
    pub invalid_sessions: u32,
    /// Heartbeats received.
    pub heartbeats: u32,
    /// Connections closed for a missed heartbeat.
    pub heartbeat_timeouts: u32,
    /// Gateway closes with 4004.
    pub auth_failures: u32,
    /// REST requests with a bad token.
    pub rest_unauthorized: u32,
    /// Requests made while a rate limit was in force.
    pub rate_limit_violations: u32,
    /// 429s answered.
    pub rate_limited: u32,
    /// Messages refused with 50035.
    pub invalid_form_bodies: u32,
    /// Gateway connections opened.
    pub connections: u32,
}

struct SessionLog {
    seq: u64,
    events: Vec<(u64, Value)>,
    live: Option<mpsc::UnboundedSender<Value>>,
}

struct Bucket {
    remaining: u32,
    reset_at: Instant,
}

struct Inner {
    token: String,
    heartbeat_interval: Duration,
    ack_heartbeats: bool,
    message_content_enabled: bool,
    gateway_url: String,
    channels: HashMap<String, Value>,
    users: HashMap<String, Value>,
    sessions: HashMap<String, SessionLog>,
    messages: HashMap<String, String>,
    dm_channels: HashMap<String, String>,
    posted: Vec<Posted>,
    counters: Counters,
    next_id: u64,
    buckets: HashMap<String, Bucket>,
    bucket_limit: u32,
    bucket_window: Duration,
    inject_429: Option<(f64, bool)>,
    global_until: Option<Instant>,
    /// Interactions sent: id → (token, sent at, the app's callback once answered).
    interactions: HashMap<String, (String, Instant, Option<Value>)>,
}

impl Inner {
    fn snowflake(&mut self) -> String {
        self.next_id += 1;
        format!("5{:017}", self.next_id)
    }

    fn user_named(&self, name: &str) -> Value {
        self.users
            .values()
            .find(|u| u["username"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no user {name}"))
    }

    /// Queues a dispatch event on every session (sent now to live connections, replayed on
    /// RESUME to the others).
    fn dispatch(&mut self, t: &str, d: Value) {
        for log in self.sessions.values_mut() {
            log.seq += 1;
            let frame = json!({"op": 0, "t": t, "s": log.seq, "d": d});
            log.events.push((log.seq, frame.clone()));
            if let Some(live) = &log.live
                && live.send(frame).is_err()
            {
                log.live = None;
            }
        }
    }
}

struct Shared {
    inner: Mutex<Inner>,
    posted: Notify,
    drop_connections: broadcast::Sender<()>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running fake Discord.
pub struct FakeDiscord {
    /// REST base to put in the bot's `url` (`…/api/v10`).
    pub api_url: String,
    shared: Arc<Shared>,
    _rest: Served,
    _gateway: Served,
}

impl FakeDiscord {
    /// Starts a fake accepting `token`, heartbeating every `heartbeat_interval`.
    pub async fn start(token: &str, heartbeat_interval: Duration) -> Self {
        let mut channels = HashMap::new();
        let text_channel = |id: &str, name: &str, position: u32| {
            json!({"id": id, "type": 0, "guild_id": GUILD_ID, "name": name, "position": position,
                   "permission_overwrites": [], "nsfw": false, "parent_id": null, "topic": null,
                   "last_message_id": null, "rate_limit_per_user": 0})
        };
        channels.insert(OPS.to_owned(), text_channel(OPS, "ops", 0));
        channels.insert(DEV.to_owned(), text_channel(DEV, "dev", 1));
        channels.insert(
            THREAD.to_owned(),
            json!({"id": THREAD, "type": 11, "guild_id": GUILD_ID, "parent_id": OPS,
                   "name": "deploy", "owner_id": USERS[0].0, "message_count": 0,
                   "member_count": 1, "rate_limit_per_user": 0,
                   "thread_metadata": {"archived": false, "auto_archive_duration": 1440,
                                       "archive_timestamp": "2026-11-01T00:00:00.000000+00:00",
                                       "locked": false}}),
        );
        let mut users = HashMap::new();
        for (id, name) in USERS {
            users.insert(
                (*id).to_owned(),
                json!({"id": id, "username": name, "discriminator": "0", "global_name": name,
                       "avatar": null}),
            );
        }
        users.insert(
            BOT_ID.to_owned(),
            json!({"id": BOT_ID, "username": "st2bot", "discriminator": "0",
                   "global_name": null, "avatar": null, "bot": true}),
        );
        let (drop_connections, _) = broadcast::channel(4);
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                token: token.to_owned(),
                heartbeat_interval,
                ack_heartbeats: true,
                message_content_enabled: true,
                gateway_url: String::new(),
                channels,
                users,
                sessions: HashMap::new(),
                messages: HashMap::new(),
                dm_channels: HashMap::new(),
                posted: Vec::new(),
                counters: Counters::default(),
                next_id: 0,
                buckets: HashMap::new(),
                bucket_limit: 5,
                bucket_window: Duration::from_secs(1),
                inject_429: None,
                global_until: None,
                interactions: HashMap::new(),
            }),
            posted: Notify::new(),
            drop_connections,
        });
        let gateway = Served::start(
            Router::new()
                .route("/", get(gateway_upgrade))
                .with_state(shared.clone()),
        )
        .await;
        shared.lock().gateway_url = format!("ws://{}", gateway.addr);
        let router = Router::new()
            .route("/api/v10/gateway/bot", get(gateway_bot))
            .route("/api/v10/channels/{id}", get(get_channel))
            .route("/api/v10/guilds/{id}/channels", get(guild_channels))
            .route("/api/v10/channels/{id}/messages", post(create_message))
            .route(
                "/api/v10/channels/{channel}/messages/{message}",
                patch(edit_message),
            )
            .route("/api/v10/users/@me/channels", post(create_dm))
            .route(
                "/api/v10/interactions/{id}/{token}/callback",
                post(interaction_callback),
            )
            .fallback(not_found)
            .with_state(shared.clone());
        let rest = Served::start(router).await;
        Self {
            api_url: format!("http://{}/api/v10", rest.addr),
            shared,
            _rest: rest,
            _gateway: gateway,
        }
    }

    /// The gateway URL `GET /gateway/bot` hands out.
    pub fn gateway_url(&self) -> String {
        self.shared.lock().gateway_url.clone()
    }

    /// `user` says `text` in a guild channel (or thread); returns the message id.
    pub fn say(&self, channel_id: &str, user: &str, text: &str) -> String {
        let mut inner = self.shared.lock();
        let author = inner.user_named(user);
        let id = inner.snowflake();
        inner.messages.insert(id.clone(), channel_id.to_owned());
        let message = message_object(&id, channel_id, Some(GUILD_ID), &author, text, 0);
        inner.dispatch("MESSAGE_CREATE", message);
        id
    }

    /// `user` sends the bot a direct message; returns the message id.
    pub fn say_direct(&self, user: &str, text: &str) -> String {
        let mut inner = self.shared.lock();
        let author = inner.user_named(user);
        let user_id = author["id"].as_str().unwrap_or_default().to_owned();
        let channel = dm_channel_for(&mut inner, &user_id);
        let id = inner.snowflake();
        inner.messages.insert(id.clone(), channel.clone());
        let message = message_object(&id, &channel, None, &author, text, 0);
        inner.dispatch("MESSAGE_CREATE", message);
        id
    }

    /// The DM channel of a user (created on first use).
    pub fn dm_channel(&self, user: &str) -> String {
        let mut inner = self.shared.lock();
        let id = inner.user_named(user)["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        dm_channel_for(&mut inner, &id)
    }

    /// `user` presses the button labelled `label` on `message`, as the Discord client does:
    /// an `INTERACTION_CREATE` (type 3, MESSAGE_COMPONENT) on the gateway. Returns the bot's
    /// interaction callback body, or `None` when it did not answer within Discord's 3 s.
    pub async fn press(&self, user: &str, message: &Posted, label: &str) -> Option<Value> {
        let custom_id = message
            .body
            .get("components")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
            .find(|b| b["label"] == label)
            .and_then(|b| b["custom_id"].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("no button `{label}` on {message:#?}"));
        self.press_forged(user, message, &custom_id).await
    }

    /// `user` presses a button with this `custom_id` on `message`, whether or not the bot
    /// posted one (a forged or stale press). Returns the bot's callback body, if any.
    pub async fn press_forged(
        &self,
        user: &str,
        message: &Posted,
        custom_id: &str,
    ) -> Option<Value> {
        let id = {
            let mut inner = self.shared.lock();
            let who = inner.user_named(user);
            let id = inner.snowflake();
            let token = format!("aW50ZXJhY3Rpb246{id}.fake-token");
            let channel = inner
                .channels
                .get(&message.channel_id)
                .cloned()
                .unwrap_or(Value::Null);
            let guild = channel
                .get("guild_id")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let bot = inner.users[BOT_ID].clone();
            let mut shown = message_object(
                &message.id,
                &message.channel_id,
                guild.as_deref(),
                &bot,
                message.content(),
                0,
            );
            shown["components"] = message.body.get("components").cloned().unwrap_or(json!([]));
            let mut d = json!({
                "id": id, "application_id": BOT_ID, "type": 3, "token": token, "version": 1,
                "channel_id": message.channel_id, "channel": channel, "message": shown,
                "data": {"custom_id": custom_id, "component_type": 2},
                "app_permissions": "2248473465835073", "locale": "en-US", "entitlements": [],
            });
            match &guild {
                Some(g) => {
                    d["guild_id"] = json!(g);
                    d["guild_locale"] = json!("en-US");
                    d["member"] = json!({"user": who, "roles": [], "permissions": "2248473465835073",
                                         "joined_at": "2026-01-01T00:00:00.000000+00:00",
                                         "deaf": false, "mute": false});
                    d["context"] = json!(0);
                }
                None => {
                    d["user"] = who;
                    d["context"] = json!(1);
                }
            }
            inner
                .interactions
                .insert(id.clone(), (token, Instant::now(), None));
            inner.dispatch("INTERACTION_CREATE", d);
            id
        };
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Some((_, _, Some(callback))) = self.shared.lock().interactions.get(&id) {
                return Some(callback.clone());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    /// Everything posted so far.
    pub fn posted(&self) -> Vec<Posted> {
        self.shared.lock().posted.clone()
    }

    /// Waits until the bot has posted more than `already` messages and returns the new ones
    /// once nothing more arrives for a moment.
    pub async fn wait_posted(&self, already: usize, timeout: Duration) -> Vec<Posted> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.shared.posted.notified();
            let n = self.shared.lock().posted.len();
            if n > already {
                // Let multi-part replies finish.
                tokio::time::sleep(Duration::from_millis(300)).await;
                let all = self.posted();
                if all.len() == n {
                    return all[already..].to_vec();
                }
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "the bot posted nothing new within {timeout:?} (posted so far: {:#?})",
                    self.posted()
                );
            }
            let _ = tokio::time::timeout(left, notified).await;
        }
    }

    /// Closes every gateway connection abruptly (no close frame), like a network drop.
    pub fn drop_connections(&self) {
        let _ = self.shared.drop_connections.send(());
    }

    /// Stops (or resumes) answering heartbeats with op 11.
    pub fn set_ack_heartbeats(&self, ack: bool) {
        self.shared.lock().ack_heartbeats = ack;
    }

    /// Whether the application may use the MESSAGE_CONTENT intent.
    pub fn set_message_content_enabled(&self, enabled: bool) {
        self.shared.lock().message_content_enabled = enabled;
    }

    /// Forgets every session (a later RESUME gets op 9 `false`).
    pub fn forget_sessions(&self) {
        let mut inner = self.shared.lock();
        inner.sessions.retain(|_, log| log.live.is_some());
        for log in inner.sessions.values_mut() {
            log.live = None;
        }
        inner.sessions.clear();
    }

    /// The next message POST gets a 429 with this `retry_after` (seconds).
    pub fn inject_429(&self, retry_after: f64, global: bool) {
        self.shared.lock().inject_429 = Some((retry_after, global));
    }

    /// Per-channel message bucket: `limit` messages per `window`.
    pub fn set_message_bucket(&self, limit: u32, window: Duration) {
        let mut inner = self.shared.lock();
        inner.bucket_limit = limit;
        inner.bucket_window = window;
    }

    /// The counters.
    pub fn counters(&self) -> Counters {
        self.shared.lock().counters.clone()
    }
}

fn dm_channel_for(inner: &mut Inner, user_id: &str) -> String {
    if let Some(c) = inner.dm_channels.get(user_id) {
        return c.clone();
    }
    let id = inner.snowflake();
    let recipient = inner.users.get(user_id).cloned().unwrap_or(Value::Null);
    inner.channels.insert(
        id.clone(),
        json!({"id": id, "type": 1, "last_message_id": null, "flags": 0, "recipients": [recipient]}),
    );
    inner.dm_channels.insert(user_id.to_owned(), id.clone());
    id
}

fn message_object(
    id: &str,
    channel_id: &str,
    guild_id: Option<&str>,
    author: &Value,
    content: &str,
    kind: u8,
) -> Value {
    let mut m = json!({
        "id": id, "channel_id": channel_id, "author": author, "content": content,
        "timestamp": "2026-11-25T12:00:00.000000+00:00", "edited_timestamp": null,
        "tts": false, "mention_everyone": false, "mentions": [], "mention_roles": [],
        "attachments": [], "embeds": [], "pinned": false, "type": kind,
    });
    if let Some(g) = guild_id {
        m["guild_id"] = json!(g);
        m["member"] = json!({"roles": [], "joined_at": "2026-01-01T00:00:00.000000+00:00",
                             "deaf": false, "mute": false});
    }
    m
}

// ---------------------------------------------------------------------------------------
// REST

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// The 401 answer when the `Authorization` header is not `Bot <token>`.
fn unauthorized(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    let expected = format!("Bot {}", shared.lock().token);
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if given == expected {
        None
    } else {
        shared.lock().counters.rest_unauthorized += 1;
        Some(json_response(
            StatusCode::UNAUTHORIZED,
            json!({"message": "401: Unauthorized", "code": 0}),
        ))
    }
}

async fn not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        json!({"message": "404: Not Found", "code": 0}),
    )
}

async fn gateway_bot(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(r) = unauthorized(&shared, &headers) {
        return r;
    }
    let url = shared.lock().gateway_url.clone();
    json_response(
        StatusCode::OK,
        json!({"url": url, "shards": 1, "session_start_limit":
               {"total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1}}),
    )
}

async fn get_channel(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = unauthorized(&shared, &headers) {
        return r;
    }
    match shared.lock().channels.get(&id) {
        Some(c) => json_response(StatusCode::OK, c.clone()),
        None => unknown_channel(),
    }
}

async fn guild_channels(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = unauthorized(&shared, &headers) {
        return r;
    }
    if id != GUILD_ID {
        return json_response(
            StatusCode::NOT_FOUND,
            json!({"message": "Unknown Guild", "code": 10004}),
        );
    }
    let mut list: Vec<Value> = shared
        .lock()
        .channels
        .values()
        .filter(|c| c["type"] == 0)
        .cloned()
        .collect();
    list.sort_by_key(|c| c["id"].as_str().unwrap_or_default().to_owned());
    json_response(StatusCode::OK, Value::Array(list))
}

fn unknown_channel() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        json!({"message": "Unknown Channel", "code": 10003}),
    )
}

async fn create_dm(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = unauthorized(&shared, &headers) {
        return r;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"message": "400: Bad Request", "code": 0}),
        );
    };
    let recipient = body
        .get("recipient_id")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut inner = shared.lock();
    if !inner.users.contains_key(recipient) {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"code": 50035, "message": "Invalid Form Body", "errors": {"recipient_id":
                   {"_errors": [{"code": "NUMBER_TYPE_COERCE",
                                 "message": format!("Value \"{recipient}\" is not snowflake.")}]}}}),
        );
    }
    let id = dm_channel_for(&mut inner, recipient);
    json_response(StatusCode::OK, inner.channels[&id].clone())
}

fn too_long(path: Value) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        json!({"code": 50035, "message": "Invalid Form Body", "errors": path}),
    )
}

fn field_error(code: &str, message: &str) -> Value {
    json!({"_errors": [{"code": code, "message": message}]})
}

async fn create_message(
    State(shared): State<Arc<Shared>>,
    Path(channel_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = unauthorized(&shared, &headers) {
        return r;
    }
    let now = Instant::now();
    let mut inner = shared.lock();
    // Rate limits first, as Discord checks them before the body.
    let bucket_hash = "f4ke6ucke7";
    let window = inner.bucket_window;
    let limit = inner.bucket_limit;
    if let Some(until) = inner.global_until
        && until > now
    {
        inner.counters.rate_limit_violations += 1;
        inner.counters.rate_limited += 1;
        return rate_limited((until - now).as_secs_f64(), true, bucket_hash);
    }
    let bucket = inner.buckets.entry(channel_id.clone()).or_insert(Bucket {
        remaining: limit,
        reset_at: now + window,
    });
    if bucket.reset_at <= now {
        bucket.remaining = limit;
        bucket.reset_at = now + window;
    }
    if bucket.remaining == 0 {
        let wait = (bucket.reset_at - now).as_secs_f64();
        inner.counters.rate_limit_violations += 1;
        inner.counters.rate_limited += 1;
        return rate_limited(wait, false, bucket_hash);
    }
    if let Some((retry_after, global)) = inner.inject_429.take() {
        inner.counters.rate_limited += 1;
        let until = now + Duration::from_secs_f64(retry_after);
        if global {
            inner.global_until = Some(until);
        } else if let Some(bucket) = inner.buckets.get_mut(&channel_id) {
            bucket.remaining = 0;
            bucket.reset_at = until;
        }
        return rate_limited(retry_after, global, bucket_hash);
    }
    let Some(channel) = inner.channels.get(&channel_id).cloned() else {
        return unknown_channel();
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"message": "400: Bad Request", "code": 0}),
        );
    };
    let content = body.get("content").and_then(Value::as_str).unwrap_or("");
    let embeds = body
        .get("embeds")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if content.chars().count() > 2000 {
        inner.counters.invalid_form_bodies += 1;
        return too_long(json!({"content": field_error("BASE_TYPE_MAX_LENGTH",
                                                      "Must be 2000 or fewer in length.")}));
    }
    if embeds.len() > 10 {
        inner.counters.invalid_form_bodies += 1;
        return too_long(json!({"embeds": field_error("BASE_TYPE_MAX_LENGTH",
                                                     "Must be 10 or fewer in length.")}));
    }
    let mut total = 0;
    for (i, e) in embeds.iter().enumerate() {
        let len = |k: &str| {
            e.get(k)
                .and_then(Value::as_str)
                .map(|s| s.chars().count())
                .unwrap_or(0)
        };
        if len("description") > 4096 {
            inner.counters.invalid_form_bodies += 1;
            return too_long(json!({"embeds": {i.to_string(): {"description":
                field_error("BASE_TYPE_MAX_LENGTH", "Must be 4096 or fewer in length.")}}}));
        }
        if len("title") > 256 {
            inner.counters.invalid_form_bodies += 1;
            return too_long(json!({"embeds": {i.to_string(): {"title":
                field_error("BASE_TYPE_MAX_LENGTH", "Must be 256 or fewer in length.")}}}));
        }
        total += len("description") + len("title");
    }
    if total > 6000 {
        inner.counters.invalid_form_bodies += 1;
        return too_long(json!({"embeds": field_error("MAX_EMBED_SIZE_EXCEEDED",
                                                     "Embed size exceeds maximum size of 6000")}));
    }
    if let Some(error) = components_error(body.get("components")) {
        inner.counters.invalid_form_bodies += 1;
        return too_long(error);
    }
    if content.trim().is_empty() && embeds.is_empty() {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"message": "Cannot send an empty message", "code": 50006}),
        );
    }
    let mut kind = 0;
    if let Some(reference) = body.get("message_reference") {
        let id = reference
            .get("message_id")
            .and_then(Value::as_str)
            .unwrap_or("");
        let fail = reference
            .get("fail_if_not_exists")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        if inner.messages.get(id) != Some(&channel_id) && fail {
            inner.counters.invalid_form_bodies += 1;
            return too_long(
                json!({"message_reference": field_error("REPLIES_UNKNOWN_MESSAGE",
                                                                    "Unknown message")}),
            );
        }
        kind = 19;
    }
    if let Some(bucket) = inner.buckets.get_mut(&channel_id) {
        bucket.remaining -= 1;
    }
    let (remaining, reset_after) = inner
        .buckets
        .get(&channel_id)
        .map(|b| (b.remaining, (b.reset_at - now).as_secs_f64()))
        .unwrap_or((limit, window.as_secs_f64()));
    let id = inner.snowflake();
    inner.messages.insert(id.clone(), channel_id.clone());
    inner.posted.push(Posted {
        channel_id: channel_id.clone(),
        body: body.clone(),
        id: id.clone(),
        edits: Vec::new(),
    });
    let bot = inner.users[BOT_ID].clone();
    let guild = channel.get("guild_id").and_then(Value::as_str);
    let mut message = message_object(&id, &channel_id, guild, &bot, content, kind);
    message["embeds"] = Value::Array(embeds);
    // Discord echoes the bot's own messages on the gateway; the bot must ignore them.
    inner.dispatch("MESSAGE_CREATE", message.clone());
    drop(inner);
    shared.posted.notify_waiters();
    let mut response = json_response(StatusCode::OK, message);
    let h = response.headers_mut();
    h.insert("x-ratelimit-limit", HeaderValue::from(limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
    h.insert(
        "x-ratelimit-reset-after",
        HeaderValue::from_str(&format!("{reset_after:.3}")).unwrap_or(HeaderValue::from(1)),
    );
    h.insert("x-ratelimit-bucket", HeaderValue::from_static(bucket_hash));
    response
}

/// What Discord says about `components` it refuses (50035 field errors), or `None`.
fn components_error(components: Option<&Value>) -> Option<Value> {
    let components = components?;
    let Some(rows) = components.as_array() else {
        return Some(
            json!({"components": field_error("MODEL_TYPE_CONVERT", "Only iterables may be used in a ListType")}),
        );
    };
    if rows.len() > 5 {
        return Some(
            json!({"components": field_error("BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")}),
        );
    }
    let mut ids = std::collections::HashSet::new();
    for (r, row) in rows.iter().enumerate() {
        let r = r.to_string();
        let buttons = row["components"].as_array().cloned().unwrap_or_default();
        if row["type"] != 1 || buttons.is_empty() {
            return Some(
                json!({"components": {r: {"type": field_error("UNION_TYPE_CHOICES", "Value of field \"type\" must be one of (1,).")}}}),
            );
        }
        if buttons.len() > 5 {
            return Some(
                json!({"components": {r: {"components": field_error("BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")}}}),
            );
        }
        for (b, button) in buttons.iter().enumerate() {
            let b = b.to_string();
            let blame = |field: &str, code: &str, message: &str| json!({"components": {r.clone(): {"components": {b.clone(): {field: field_error(code, message)}}}}});
            if button["type"] != 2 {
                return Some(blame(
                    "type",
                    "UNION_TYPE_CHOICES",
                    "Value of field \"type\" must be one of (2,).",
                ));
            }
            let label = button["label"].as_str().unwrap_or("");
            if label.chars().count() > 80 {
                return Some(blame(
                    "label",
                    "BASE_TYPE_MAX_LENGTH",
                    "Must be 80 or fewer in length.",
                ));
            }
            let style = button["style"].as_u64().unwrap_or(0);
            if !(1..=5).contains(&style) {
                return Some(blame(
                    "style",
                    "BASE_TYPE_CHOICES",
                    "Value must be one of {1, 2, 3, 4, 5}.",
                ));
            }
            if style == 5 {
                continue;
            }
            let custom_id = button["custom_id"].as_str().unwrap_or("");
            if custom_id.is_empty() {
                return Some(blame(
                    "custom_id",
                    "BASE_TYPE_REQUIRED",
                    "This field is required",
                ));
            }
            if custom_id.chars().count() > 100 {
                return Some(blame(
                    "custom_id",
                    "BASE_TYPE_MAX_LENGTH",
                    "Must be 100 or fewer in length.",
                ));
            }
            if !ids.insert(custom_id.to_owned()) {
                return Some(blame(
                    "custom_id",
                    "COMPONENT_CUSTOM_ID_DUPLICATED",
                    "Component custom id cannot be duplicated",
                ));
            }
        }
    }
    None
}

/// `POST /interactions/{id}/{token}/callback`: the app's answer to an interaction, 204;
/// 10062 `Unknown interaction` for an unknown one, a wrong token, or after 3 s; 40060 when
/// already answered.
async fn interaction_callback(
    State(shared): State<Arc<Shared>>,
    Path((id, token)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"message": "400: Bad Request", "code": 0}),
        );
    };
    let mut inner = shared.lock();
    let unknown = || {
        json_response(
            StatusCode::NOT_FOUND,
            json!({"message": "Unknown interaction", "code": 10062}),
        )
    };
    let Some((expected, sent, answer)) = inner.interactions.get_mut(&id) else {
        return unknown();
    };
    if *expected != token || sent.elapsed() > Duration::from_secs(3) {
        return unknown();
    }
    if answer.is_some() {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"message": "Interaction has already been acknowledged.", "code": 40060}),
        );
    }
    if !matches!(body["type"].as_u64(), Some(1 | 4 | 5 | 6 | 7 | 9 | 12)) {
        return too_long(
            json!({"type": field_error("BASE_TYPE_CHOICES", "Value must be one of {1, 4, 5, 6, 7, 9, 12}.")}),
        );
    }
    *answer = Some(body);
    StatusCode::NO_CONTENT.into_response()
}

/// `PATCH /channels/{channel}/messages/{message}` (edit message): `content` replaced, and
/// `embeds` when given (at most 10);
/// 404 `Unknown Message` (10008) for a message not in that channel, 400 past 2000
/// characters.
async fn edit_message(
    State(shared): State<Arc<Shared>>,
    Path((channel_id, message_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = unauthorized(&shared, &headers) {
        return r;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"message": "400: Bad Request", "code": 0}),
        );
    };
    let content = body.get("content").and_then(Value::as_str).unwrap_or("");
    let mut inner = shared.lock();
    if content.chars().count() > 2000 {
        inner.counters.invalid_form_bodies += 1;
        return too_long(json!({"content": field_error("BASE_TYPE_MAX_LENGTH",
                                                      "Must be 2000 or fewer in length.")}));
    }
    if body
        .get("embeds")
        .is_some_and(|e| e.as_array().is_none_or(|e| e.len() > 10))
    {
        inner.counters.invalid_form_bodies += 1;
        return too_long(json!({"embeds": field_error("BASE_TYPE_MAX_LENGTH",
                                                     "Must be 10 or fewer in length.")}));
    }
    let Some(posted) = inner
        .posted
        .iter_mut()
        .find(|p| p.id == message_id && p.channel_id == channel_id)
    else {
        return json_response(
            StatusCode::NOT_FOUND,
            json!({"message": "Unknown Message", "code": 10008}),
        );
    };
    if let Some(embeds) = body.get("embeds") {
        posted.body["embeds"] = embeds.clone();
    }
    posted.edits.push(content.to_owned());
    posted.body["content"] = json!(content);
    json_response(
        StatusCode::OK,
        json!({"id": message_id, "channel_id": channel_id,
        "content": content, "edited_timestamp": "2026-01-01T00:00:00.000000+00:00"}),
    )
}

fn rate_limited(retry_after: f64, global: bool, bucket: &'static str) -> Response {
    let mut response = json_response(
        StatusCode::TOO_MANY_REQUESTS,
        json!({"message": "You are being rate limited.", "retry_after": retry_after,
               "global": global}),
    );
    let h = response.headers_mut();
    h.insert(
        "retry-after",
        HeaderValue::from(retry_after.ceil().max(1.0) as u64),
    );
    h.insert(
        "x-ratelimit-scope",
        HeaderValue::from_static(if global { "global" } else { "user" }),
    );
    if global {
        h.insert("x-ratelimit-global", HeaderValue::from_static("true"));
    } else {
        h.insert("x-ratelimit-bucket", HeaderValue::from_static(bucket));
        h.insert("x-ratelimit-remaining", HeaderValue::from(0));
        h.insert(
            "x-ratelimit-reset-after",
            HeaderValue::from_str(&format!("{retry_after:.3}")).unwrap_or(HeaderValue::from(1)),
        );
    }
    response
}

// ---------------------------------------------------------------------------------------
// Gateway

async fn send(ws: &mut ServerSocket, frame: Value) -> bool {
    ws.send(Message::text(frame.to_string())).await.is_ok()
}

async fn close(ws: &mut ServerSocket, code: u16, reason: &str) {
    let _ = ws
        .close(Some(CloseFrame {
            code: code.into(),
            reason: reason.to_owned().into(),
        }))
        .await;
    // Drain until the client answers the close or goes away.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// `GET /`: the Gateway's WebSocket upgrade (the URL `GET /gateway/bot` returns).
async fn gateway_upgrade(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    ws::upgrade(request, move |socket| gateway_connection(shared, socket))
}

async fn gateway_connection(shared: Arc<Shared>, mut ws: ServerSocket) {
    let mut dropper = shared.drop_connections.subscribe();
    let interval = {
        let mut inner = shared.lock();
        inner.counters.connections += 1;
        inner.heartbeat_interval
    };
    if !send(
        &mut ws,
        json!({"op": 10, "d": {"heartbeat_interval": interval.as_millis() as u64}, "s": null, "t": null}),
    )
    .await
    {
        return;
    }
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<Value>();
    let mut session: Option<String> = None;
    // Discord allows some latency on top of the interval.
    let grace = interval + interval / 2;
    let mut heartbeat_deadline = tokio::time::Instant::now() + grace;
    loop {
        tokio::select! {
            _ = dropper.recv() => {
                // Vanish without a close frame.
                return;
            }
            () = tokio::time::sleep_until(heartbeat_deadline) => {
                {
                    let mut inner = shared.lock();
                    inner.counters.heartbeat_timeouts += 1;
                    if let Some(id) = &session {
                        inner.sessions.remove(id);
                    }
                }
                close(&mut ws, 4009, "Session timed out.").await;
                return;
            }
            Some(event) = events_rx.recv() => {
                if !send(&mut ws, event).await {
                    return;
                }
            }
            frame = ws.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                        if let Some(id) = &session
                            && let Some(log) = shared.lock().sessions.get_mut(id)
                        {
                            log.live = None;
                        }
                        return;
                    }
                    Some(Ok(_)) => continue,
                };
                let Ok(payload) = serde_json::from_str::<Value>(&text) else {
                    close(&mut ws, 4002, "Error while decoding payload.").await;
                    return;
                };
                let op = payload.get("op").and_then(Value::as_u64).unwrap_or(u64::MAX);
                let d = payload.get("d").cloned().unwrap_or(Value::Null);
                match op {
                    1 => {
                        let ack = {
                            let mut inner = shared.lock();
                            inner.counters.heartbeats += 1;
                            inner.ack_heartbeats
                        };
                        heartbeat_deadline = tokio::time::Instant::now() + grace;
                        if ack && !send(&mut ws, json!({"op": 11, "d": null, "s": null, "t": null})).await {
                            return;
                        }
                    }
                    2 | 6 => {
                        if op == 2 && session.is_some() {
                            close(&mut ws, 4005, "Already authenticated.").await;
                            return;
                        }
                        let answer = if op == 2 {
                            identify(&shared, &d, &events_tx)
                        } else {
                            resume(&shared, &d, &events_tx)
                        };
                        match answer {
                            Answer::Close(code, reason) => {
                                close(&mut ws, code, reason).await;
                                return;
                            }
                            Answer::Frames(new_session, frames) => {
                                if new_session.is_some() {
                                    session = new_session;
                                }
                                for f in frames {
                                    if !send(&mut ws, f).await {
                                        return;
                                    }
                                }
                            }
                        }
                    }
                    3 | 4 | 8 | 31 if session.is_some() => {}
                    0..=11 | 31 if session.is_none() => {
                        close(&mut ws, 4003, "Not authenticated.").await;
                        return;
                    }
                    _ => {
                        close(&mut ws, 4001, "Unknown opcode.").await;
                        return;
                    }
                }
            }
        }
    }
}

/// What the gateway answers to IDENTIFY or RESUME.
enum Answer {
    /// Close the connection.
    Close(u16, &'static str),
    /// Send these frames (and remember this session, if any).
    Frames(Option<String>, Vec<Value>),
}

fn identify(shared: &Shared, d: &Value, events_tx: &mpsc::UnboundedSender<Value>) -> Answer {
    let mut inner = shared.lock();
    if d.get("token").and_then(Value::as_str) != Some(inner.token.as_str()) {
        inner.counters.auth_failures += 1;
        return Answer::Close(4004, "Authentication failed.");
    }
    let Some(intents) = d
        .get("intents")
        .and_then(Value::as_u64)
        .filter(|i| *i < (1 << 26))
    else {
        return Answer::Close(4013, "Invalid intent(s).");
    };
    if intents & MESSAGE_CONTENT != 0 && !inner.message_content_enabled {
        return Answer::Close(4014, "Disallowed intent(s).");
    }
    if d.get("properties").and_then(Value::as_object).is_none() {
        return Answer::Close(4002, "Error while decoding payload.");
    }
    inner.counters.identifies += 1;
    let id = format!("session{}", inner.snowflake());
    let resume_url = inner.gateway_url.clone();
    let bot = inner.users[BOT_ID].clone();
    let ready = json!({"op": 0, "t": "READY", "s": 1, "d": {
        "v": 10, "user": bot, "guilds": [{"id": GUILD_ID, "unavailable": true}],
        "session_id": id, "resume_gateway_url": resume_url,
        "shard": [0, 1], "application": {"id": BOT_ID, "flags": 0}}});
    // GUILD_CREATE lists the guild's channels without their guild_id.
    let mut channels: Vec<Value> = inner
        .channels
        .values()
        .filter(|c| c["type"] == 0)
        .map(|c| {
            let mut c = c.clone();
            if let Some(o) = c.as_object_mut() {
                o.remove("guild_id");
            }
            c
        })
        .collect();
    channels.sort_by_key(|c| c["id"].as_str().unwrap_or_default().to_owned());
    let threads: Vec<Value> = inner
        .channels
        .values()
        .filter(|c| c["type"] == 11)
        .cloned()
        .collect();
    let guild = json!({"op": 0, "t": "GUILD_CREATE", "s": 2, "d": {
        "id": GUILD_ID, "name": "Ops Guild", "unavailable": false,
        "member_count": 3, "channels": channels, "threads": threads,
        "roles": [], "members": []}});
    inner.sessions.insert(
        id.clone(),
        SessionLog {
            seq: 2,
            events: vec![(1, ready.clone()), (2, guild.clone())],
            live: Some(events_tx.clone()),
        },
    );
    Answer::Frames(Some(id), vec![ready, guild])
}

fn resume(shared: &Shared, d: &Value, events_tx: &mpsc::UnboundedSender<Value>) -> Answer {
    let mut inner = shared.lock();
    if d.get("token").and_then(Value::as_str) != Some(inner.token.as_str()) {
        inner.counters.auth_failures += 1;
        return Answer::Close(4004, "Authentication failed.");
    }
    let id = d
        .get("session_id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let seq = d.get("seq").and_then(Value::as_u64).unwrap_or(0);
    let replay = match inner.sessions.get_mut(&id) {
        Some(log) if seq <= log.seq => {
            log.live = Some(events_tx.clone());
            let mut frames: Vec<Value> = log
                .events
                .iter()
                .filter(|(s, _)| *s > seq)
                .map(|(_, f)| f.clone())
                .collect();
            log.seq += 1;
            let resumed = json!({"op": 0, "t": "RESUMED", "s": log.seq, "d": {}});
            log.events.push((log.seq, resumed.clone()));
            frames.push(resumed);
            Some(frames)
        }
        _ => None,
    };
    match replay {
        Some(frames) => {
            inner.counters.resumes += 1;
            Answer::Frames(Some(id), frames)
        }
        None => {
            inner.counters.invalid_sessions += 1;
            Answer::Frames(
                None,
                vec![json!({"op": 9, "d": false, "s": null, "t": null})],
            )
        }
    }
}
