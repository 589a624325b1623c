//! A fake Rocket.Chat server for the backend's end-to-end tests: the REST API (`/api/v1`) and
//! the realtime API (DDP over `/websocket`) on one 127.0.0.1 port, with a public channel, a
//! private group, direct messages, threads and a few users.
//!
//! Built from Rocket.Chat's developer documentation:
//! - REST authentication: <https://developer.rocket.chat/apidocs/authenticate-a-rest-client>,
//!   <https://developer.rocket.chat/apidocs/login-with-username-and-password> (`POST
//!   /api/v1/login` → `{"status":"success","data":{"authToken","userId","me"}}`), `GET
//!   /api/v1/me`, and the 401 body `{"status":"error","message":"You must be logged in to do
//!   this."}`;
//! - <https://developer.rocket.chat/apidocs/post-message> (`chat.postMessage` with `roomId` or
//!   `channel`, `text`, `attachments`, `tmid`; answer `{"ts","channel","message","success"}`),
//!   <https://developer.rocket.chat/apidocs/update-message> (`chat.update` with `roomId`,
//!   `msgId`, `text`), `im.create`, `rooms.info`, rate limiting (429 with `X-RateLimit-Limit/-Remaining/-Reset`
//!   and `[error-too-many-requests]`), and the server's default `Message_MaxAllowedSize` of
//!   5000 characters;
//! - realtime: <https://developer.rocket.chat/apidocs/realtimeapi> (`connect` → `connected`,
//!   `ping`/`pong`), <https://developer.rocket.chat/apidocs/login-realtime> (method `login` with
//!   `resume`, result with `id`, `token`, `tokenExpires`, error 403 `Meteor.Error`),
//!   <https://developer.rocket.chat/apidocs/stream-room-messages-realtime> (`sub` to
//!   `stream-room-messages`, `ready`, `__my_messages__`, `changed` frames with
//!   `fields.eventName` and `fields.args`).
//!
//! It rejects what Rocket.Chat rejects: wrong passwords and tokens (401), realtime logins with
//! an unknown or expired resume token (403 error result), subscriptions before login
//! (`nosub`), frames before `connect`, texts over 5000 characters, unknown rooms and threads,
//! clients that stop answering pings (the connection is closed), and calls made while a rate
//! limit is in force (another 429, counted as a violation). Like the real server it does not
//! replay what was said while a client was away. Tests inject 429s, connection drops and token
//! expiry, and read what the bot posted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast, mpsc};
use tokio_tungstenite::tungstenite::Message;

use crate::ws::{self, Served, ServerSocket};

/// The bot's user id.
pub const BOT_ID: &str = "b0tUs3r1d0000001";
/// The bot's username.
pub const BOT_NAME: &str = "st2bot";
/// The bot's password.
pub const BOT_PASSWORD: &str = "correct horse";
/// A personal access token of the bot.
pub const BOT_PAT: &str = "pat-0123456789abcdef";
/// `#ops`, a public channel (type `c`).
pub const OPS: &str = "0psR00m1d0000001";
/// `#dev`, a private group (type `p`).
pub const DEV: &str = "d3vR00m1d0000001";
/// People.
pub const USERS: &[(&str, &str)] = &[("al1c3Us3r1d00001", "alice"), ("b0bUs3r1d0000001", "bob")];

const MAX_SIZE: usize = 5000;

/// Something the bot posted.
#[derive(Clone, Debug)]
pub struct Posted {
    /// Room id it landed in.
    pub rid: String,
    /// The JSON body as sent.
    pub body: Value,
    /// The message's `_id`.
    pub id: String,
    /// Texts set by `chat.update`, oldest first.
    pub edits: Vec<String>,
}

impl Posted {
    /// `text`, or "".
    pub fn text(&self) -> &str {
        self.body.get("text").and_then(Value::as_str).unwrap_or("")
    }

    /// The attachments, if any.
    pub fn attachments(&self) -> Vec<Value> {
        self.body
            .get("attachments")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }
}

/// Counters tests assert on.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// Successful REST logins (`/api/v1/login`).
    pub rest_logins: u32,
    /// Refused REST logins.
    pub login_failures: u32,
    /// REST calls with missing or bad credentials.
    pub unauthorized: u32,
    /// Successful realtime logins.
    pub realtime_logins: u32,
    /// Refused realtime logins.
    pub realtime_login_failures: u32,
    /// Subscriptions made ready.
    pub subscriptions: u32,
    /// WebSocket connections opened.
    pub connections: u32,
    /// Connections closed for not answering pings.
    pub ping_timeouts: u32,
    /// 429s answered.
    pub rate_limited: u32,
    /// Calls made while a rate limit was in force.
    pub rate_limit_violations: u32,
    /// Messages refused for size.
    pub too_long: u32,
}

struct Room {
    id: String,
    name: String,
    kind: &'static str,
}

struct Inner {
    password: String,
    pat: String,
    /// auth token → user id.
    tokens: HashMap<String, String>,
    users: HashMap<String, String>,
    rooms: HashMap<String, Room>,
    messages: HashMap<String, String>,
    posted: Vec<Posted>,
    counters: Counters,
    next_id: u64,
    ping_interval: Duration,
    room_meta: bool,
    inject_429: Option<f64>,
    limited_until: Option<SystemTime>,
    /// Live subscriptions: (subscribed room param, sink).
    subscribers: Vec<(String, mpsc::UnboundedSender<Value>)>,
}

impl Inner {
    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{:012}", self.next_id)
    }

    fn user_id(&self, name: &str) -> String {
        self.users
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(id, _)| id.clone())
            .unwrap_or_else(|| panic!("no user {name}"))
    }

    fn dm_room(&mut self, a: &str, b: &str) -> String {
        let mut ids = [a.to_owned(), b.to_owned()];
        ids.sort();
        let rid = ids.concat();
        self.rooms.entry(rid.clone()).or_insert(Room {
            id: rid.clone(),
            name: String::new(),
            kind: "d",
        });
        rid
    }

    fn message(&mut self, rid: &str, user_id: &str, text: &str, tmid: Option<&str>) -> Value {
        let id = self.id("m");
        self.messages.insert(id.clone(), rid.to_owned());
        let username = self.users.get(user_id).cloned().unwrap_or_default();
        let mut m = json!({
            "_id": id, "rid": rid, "msg": text,
            "ts": {"$date": now_ms()}, "_updatedAt": {"$date": now_ms()},
            "u": {"_id": user_id, "username": username, "name": username},
            "mentions": [], "channels": [], "urls": [], "md": [],
        });
        if let Some(t) = tmid {
            m["tmid"] = json!(t);
        }
        m
    }

    /// Streams a message to every subscriber of its room or of `__my_messages__`.
    fn stream(&mut self, message: &Value) {
        let rid = message["rid"].as_str().unwrap_or_default().to_owned();
        let room = &self.rooms[&rid];
        let mut args = vec![message.clone()];
        if self.room_meta {
            let mut meta = json!({"roomParticipant": true, "roomType": room.kind});
            if room.kind != "d" {
                meta["roomName"] = json!(room.name);
            }
            args.push(meta);
        }
        self.subscribers.retain(|(param, sink)| {
            if param != "__my_messages__" && *param != rid {
                return true;
            }
            let frame = json!({"msg": "changed", "collection": "stream-room-messages", "id": "id",
                               "fields": {"eventName": param, "args": args}});
            sink.send(frame).is_ok()
        });
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
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

/// A running fake Rocket.Chat.
pub struct FakeRocketChat {
    /// Server URL for the bot's `url`.
    pub url: String,
    shared: Arc<Shared>,
    _server: Served,
}

impl FakeRocketChat {
    /// Starts a server that pings every `ping_interval`.
    pub async fn start(ping_interval: Duration) -> Self {
        let mut users = HashMap::new();
        users.insert(BOT_ID.to_owned(), BOT_NAME.to_owned());
        for (id, name) in USERS {
            users.insert((*id).to_owned(), (*name).to_owned());
        }
        let mut rooms = HashMap::new();
        for (id, name, kind) in [(OPS, "ops", "c"), (DEV, "dev", "p")] {
            rooms.insert(
                id.to_owned(),
                Room {
                    id: id.to_owned(),
                    name: name.to_owned(),
                    kind,
                },
            );
        }
        let (drop_connections, _) = broadcast::channel(4);
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                password: BOT_PASSWORD.to_owned(),
                pat: BOT_PAT.to_owned(),
                tokens: HashMap::from([(BOT_PAT.to_owned(), BOT_ID.to_owned())]),
                users,
                rooms,
                messages: HashMap::new(),
                posted: Vec::new(),
                counters: Counters::default(),
                next_id: 0,
                ping_interval,
                room_meta: true,
                inject_429: None,
                limited_until: None,
                subscribers: Vec::new(),
            }),
            posted: Notify::new(),
            drop_connections,
        });
        let router = Router::new()
            .route("/api/v1/login", post(login))
            .route("/websocket", get(realtime_upgrade))
            .route("/api/v1/me", get(me))
            .route("/api/v1/rooms.info", get(rooms_info))
            .route("/api/v1/chat.postMessage", post(post_message))
            .route("/api/v1/chat.update", post(update_message))
            .route("/api/v1/im.create", post(im_create))
            .fallback(|| async {
                json_response(
                    StatusCode::NOT_FOUND,
                    json!({"success": false, "error": "Not found"}),
                )
            })
            .with_state(shared.clone());
        let server = Served::start(router).await;
        Self {
            url: format!("http://{}", server.addr),
            shared,
            _server: server,
        }
    }

    /// `user` says `text` in a room (optionally in the thread of `tmid`); returns its id.
    pub fn say(&self, rid: &str, user: &str, text: &str, tmid: Option<&str>) -> String {
        let mut inner = self.shared.lock();
        let uid = inner.user_id(user);
        let m = inner.message(rid, &uid, text, tmid);
        inner.stream(&m);
        m["_id"].as_str().unwrap_or_default().to_owned()
    }

    /// `user` sends the bot a direct message; returns its id.
    pub fn say_direct(&self, user: &str, text: &str) -> String {
        let mut inner = self.shared.lock();
        let uid = inner.user_id(user);
        let rid = inner.dm_room(&uid, BOT_ID);
        let m = inner.message(&rid, &uid, text, None);
        inner.stream(&m);
        m["_id"].as_str().unwrap_or_default().to_owned()
    }

    /// The DM room between the bot and `user`.
    pub fn dm_room(&self, user: &str) -> String {
        let mut inner = self.shared.lock();
        let uid = inner.user_id(user);
        inner.dm_room(&uid, BOT_ID)
    }

    /// Everything posted so far.
    pub fn posted(&self) -> Vec<Posted> {
        self.shared.lock().posted.clone()
    }

    /// Waits until more than `already` messages were posted; returns the new ones once
    /// nothing more arrives for a moment.
    pub async fn wait_posted(&self, already: usize, timeout: Duration) -> Vec<Posted> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.shared.posted.notified();
            let n = self.shared.lock().posted.len();
            if n > already {
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
                    "the bot posted nothing new within {timeout:?} (posted: {:#?})",
                    self.posted()
                );
            }
            let _ = tokio::time::timeout(left, notified).await;
        }
    }

    /// Closes every realtime connection abruptly.
    pub fn drop_connections(&self) {
        let _ = self.shared.drop_connections.send(());
    }

    /// Expires every login token (personal access tokens survive).
    pub fn expire_tokens(&self) {
        let mut inner = self.shared.lock();
        let pat = inner.pat.clone();
        inner.tokens.retain(|t, _| *t == pat);
    }

    /// Whether `changed` frames carry `{roomType, roomName}` (else the bot asks `rooms.info`).
    pub fn set_room_meta(&self, on: bool) {
        self.shared.lock().room_meta = on;
    }

    /// The next `chat.postMessage` gets a 429 for `seconds`.
    pub fn inject_429(&self, seconds: f64) {
        self.shared.lock().inject_429 = Some(seconds);
    }

    /// The counters.
    pub fn counters(&self) -> Counters {
        self.shared.lock().counters.clone()
    }

    /// Realtime subscriptions currently live.
    pub fn live_subscriptions(&self) -> usize {
        let mut inner = self.shared.lock();
        inner.subscribers.retain(|(_, s)| !s.is_closed());
        inner.subscribers.len()
    }
}

// ---------------------------------------------------------------------------------------
// REST

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn not_logged_in() -> Response {
    json_response(
        StatusCode::UNAUTHORIZED,
        json!({"status": "error", "message": "You must be logged in to do this."}),
    )
}

/// The user id behind `X-User-Id`/`X-Auth-Token`, or the 401 answer.
fn caller(shared: &Shared, headers: &HeaderMap) -> Result<String, Box<Response>> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (user, token) = (get("x-user-id"), get("x-auth-token"));
    let mut inner = shared.lock();
    if inner.tokens.get(&token) == Some(&user) && !user.is_empty() {
        Ok(user)
    } else {
        inner.counters.unauthorized += 1;
        Err(Box::new(not_logged_in()))
    }
}

fn bad_request(error: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        json!({"success": false, "error": error}),
    )
}

async fn login(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let user = body.get("user").and_then(Value::as_str).unwrap_or("");
    let password = body.get("password").and_then(Value::as_str).unwrap_or("");
    let mut inner = shared.lock();
    if user != BOT_NAME || password != inner.password {
        inner.counters.login_failures += 1;
        return json_response(
            StatusCode::UNAUTHORIZED,
            json!({"status": "error", "error": "Unauthorized", "message": "Unauthorized"}),
        );
    }
    inner.counters.rest_logins += 1;
    let token = inner.id("authtoken-");
    inner.tokens.insert(token.clone(), BOT_ID.to_owned());
    json_response(
        StatusCode::OK,
        json!({"status": "success", "data": {"authToken": token, "userId": BOT_ID,
               "me": {"_id": BOT_ID, "username": BOT_NAME, "name": "StackStorm",
                      "status": "online", "active": true, "roles": ["bot"]}}}),
    )
}

async fn me(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    match caller(&shared, &headers) {
        Ok(id) => {
            let name = shared.lock().users[&id].clone();
            json_response(
                StatusCode::OK,
                json!({"_id": id, "username": name, "name": "StackStorm", "status": "online",
                       "active": true, "roles": ["bot"], "success": true}),
            )
        }
        Err(r) => *r,
    }
}

async fn rooms_info(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = caller(&shared, &headers) {
        return *r;
    }
    let inner = shared.lock();
    let Some(room) = query.get("roomId").and_then(|id| inner.rooms.get(id)) else {
        return bad_request("error-room-not-found");
    };
    let mut info = json!({"_id": room.id, "t": room.kind, "msgs": 0, "usersCount": 3});
    if room.kind != "d" {
        info["name"] = json!(room.name);
        info["fname"] = json!(room.name);
    }
    json_response(StatusCode::OK, json!({"room": info, "success": true}))
}

async fn im_create(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let me = match caller(&shared, &headers) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let username = body.get("username").and_then(Value::as_str).unwrap_or("");
    let mut inner = shared.lock();
    let Some(other) = inner
        .users
        .iter()
        .find(|(_, n)| *n == username)
        .map(|(id, _)| id.clone())
    else {
        return bad_request("Failed to create direct room [error-invalid-user]");
    };
    let rid = inner.dm_room(&me, &other);
    let mut usernames = [inner.users[&me].clone(), username.to_owned()];
    usernames.sort();
    json_response(
        StatusCode::OK,
        json!({"room": {"_id": rid, "rid": rid, "t": "d", "usernames": usernames,
                        "_updatedAt": now_ms()}, "success": true}),
    )
}

async fn post_message(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let me = match caller(&shared, &headers) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let now = SystemTime::now();
    let mut inner = shared.lock();
    if let Some(until) = inner.limited_until
        && until > now
    {
        inner.counters.rate_limit_violations += 1;
        inner.counters.rate_limited += 1;
        return too_many(until);
    }
    if let Some(seconds) = inner.inject_429.take() {
        let until = now + Duration::from_secs_f64(seconds);
        inner.limited_until = Some(until);
        inner.counters.rate_limited += 1;
        return too_many(until);
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("Invalid JSON");
    };
    let rid = if let Some(id) = body.get("roomId").and_then(Value::as_str) {
        inner.rooms.contains_key(id).then(|| id.to_owned())
    } else if let Some(channel) = body.get("channel").and_then(Value::as_str) {
        if let Some(name) = channel.strip_prefix('#') {
            inner
                .rooms
                .values()
                .find(|r| r.name == name && r.kind != "d")
                .map(|r| r.id.clone())
        } else if let Some(user) = channel.strip_prefix('@') {
            let other = inner
                .users
                .iter()
                .find(|(_, n)| *n == user)
                .map(|(id, _)| id.clone());
            other.map(|o| inner.dm_room(&me, &o))
        } else {
            inner
                .rooms
                .contains_key(channel)
                .then(|| channel.to_owned())
        }
    } else {
        return bad_request(
            "Body param \"channel\" or \"roomId\" is required [error-room-not-found]",
        );
    };
    let Some(rid) = rid else {
        return bad_request("error-room-not-found");
    };
    let text = body.get("text").and_then(Value::as_str).unwrap_or("");
    if text.chars().count() > MAX_SIZE {
        inner.counters.too_long += 1;
        return bad_request("error-message-size-exceeded");
    }
    let tmid = body.get("tmid").and_then(Value::as_str);
    if let Some(t) = tmid
        && inner.messages.get(t) != Some(&rid)
    {
        return bad_request("Invalid thread [error-invalid-message]");
    }
    let mut message = inner.message(&rid, &me, text, tmid);
    if let Some(a) = body.get("attachments") {
        message["attachments"] = a.clone();
    }
    inner.posted.push(Posted {
        rid: rid.clone(),
        body: body.clone(),
        id: message["_id"].as_str().unwrap_or_default().to_owned(),
        edits: Vec::new(),
    });
    // The bot is in the room: its own message comes back on its stream.
    inner.stream(&message);
    let channel = inner.rooms[&rid].name.clone();
    drop(inner);
    shared.posted.notify_waiters();
    json_response(
        StatusCode::OK,
        json!({"ts": now_ms(), "channel": channel, "message": message, "success": true}),
    )
}

/// `POST /api/v1/chat.update` with `roomId`, `msgId`, `text`: the text replaced; an unknown
/// message is `400` (`The room id provided does not match where the message is from.` when
/// the room differs).
async fn update_message(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = caller(&shared, &headers) {
        return *r;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("Invalid JSON");
    };
    let arg = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default();
    let (rid, id, text) = (arg("roomId"), arg("msgId"), arg("text"));
    let mut inner = shared.lock();
    if text.chars().count() > MAX_SIZE {
        inner.counters.too_long += 1;
        return bad_request("error-message-size-exceeded");
    }
    let Some(posted) = inner.posted.iter_mut().find(|p| p.id == id) else {
        return bad_request(&format!("No message found with the id of \"{id}\"."));
    };
    if posted.rid != rid {
        return bad_request("The room id provided does not match where the message is from.");
    }
    posted.edits.push(text.to_owned());
    posted.body["text"] = json!(text);
    json_response(
        StatusCode::OK,
        json!({"message": {"_id": id, "rid": rid, "msg": text}, "success": true}),
    )
}

fn too_many(until: SystemTime) -> Response {
    let wait = until
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .as_secs_f64()
        .ceil() as u64;
    let reset = until
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut r = json_response(
        StatusCode::TOO_MANY_REQUESTS,
        json!({"success": false, "error": format!(
            "Error, too many requests. Please slow down. You must wait {wait} seconds before \
             trying this endpoint again. [error-too-many-requests]")}),
    );
    let h = r.headers_mut();
    h.insert("x-ratelimit-limit", HeaderValue::from(10));
    h.insert("x-ratelimit-remaining", HeaderValue::from(0));
    h.insert("x-ratelimit-reset", HeaderValue::from(reset));
    r
}

// ---------------------------------------------------------------------------------------
// Realtime (DDP)

async fn send(ws: &mut ServerSocket, frame: Value) -> bool {
    ws.send(Message::text(frame.to_string())).await.is_ok()
}

fn ddp_error(error: Value, reason: &str) -> Value {
    json!({"isClientSafe": true, "error": error, "reason": reason,
           "message": format!("{reason} [{}]", match &error { Value::String(s) => s.clone(), e => e.to_string() }),
           "errorType": "Meteor.Error"})
}

/// `GET /websocket`: the realtime API's WebSocket upgrade.
async fn realtime_upgrade(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    ws::upgrade(request, move |socket| realtime(shared, socket))
}

async fn realtime(shared: Arc<Shared>, mut ws: ServerSocket) {
    let mut dropper = shared.drop_connections.subscribe();
    let ping_interval = {
        let mut inner = shared.lock();
        inner.counters.connections += 1;
        inner.ping_interval
    };
    if !send(&mut ws, json!({"server_id": "0"})).await {
        return;
    }
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<Value>();
    let mut connected = false;
    let mut user: Option<String> = None;
    let mut ping_timer = tokio::time::interval(ping_interval);
    ping_timer.tick().await;
    let mut heard_since_ping = true;
    loop {
        tokio::select! {
            _ = dropper.recv() => return,
            _ = ping_timer.tick(), if connected => {
                if !heard_since_ping {
                    shared.lock().counters.ping_timeouts += 1;
                    let _ = ws.close(None).await;
                    return;
                }
                heard_since_ping = false;
                if !send(&mut ws, json!({"msg": "ping"})).await {
                    return;
                }
            }
            Some(event) = events_rx.recv() => {
                if !send(&mut ws, event).await {
                    return;
                }
            }
            frame = ws.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                };
                heard_since_ping = true;
                let Ok(frame) = serde_json::from_str::<Value>(&text) else {
                    let _ = send(&mut ws, json!({"msg": "error", "reason": "Bad request"})).await;
                    continue;
                };
                let msg = frame.get("msg").and_then(Value::as_str).unwrap_or("");
                let id = frame.get("id").cloned().unwrap_or(Value::Null);
                if !connected {
                    if msg == "connect" {
                        let supported = frame.get("version").and_then(Value::as_str) == Some("1");
                        if !supported {
                            let _ = send(&mut ws, json!({"msg": "failed", "version": "1"})).await;
                            return;
                        }
                        connected = true;
                        let session = shared.lock().id("ddp");
                        if !send(&mut ws, json!({"msg": "connected", "session": session})).await {
                            return;
                        }
                    } else {
                        let _ = send(&mut ws, json!({"msg": "error", "reason": "Must connect first",
                                                     "offendingMessage": frame})).await;
                        let _ = ws.close(None).await;
                        return;
                    }
                    continue;
                }
                let reply = match msg {
                    "ping" => {
                        let mut pong = json!({"msg": "pong"});
                        if !id.is_null() {
                            pong["id"] = id;
                        }
                        vec![pong]
                    }
                    "pong" => Vec::new(),
                    "method" if frame.get("method").and_then(Value::as_str) == Some("login") => {
                        let resume = frame.pointer("/params/0/resume").and_then(Value::as_str).unwrap_or("");
                        let mut inner = shared.lock();
                        match inner.tokens.get(resume).cloned() {
                            Some(uid) => {
                                inner.counters.realtime_logins += 1;
                                user = Some(uid.clone());
                                vec![
                                    json!({"msg": "result", "id": id, "result": {"id": uid, "token": resume,
                                           "tokenExpires": {"$date": now_ms() + 90 * 86_400_000}, "type": "resume"}}),
                                    json!({"msg": "updated", "methods": [id]}),
                                ]
                            }
                            None => {
                                inner.counters.realtime_login_failures += 1;
                                vec![json!({"msg": "result", "id": id, "error": ddp_error(json!(403),
                                    "You've been logged out by the server. Please log in again.")})]
                            }
                        }
                    }
                    "method" => vec![json!({"msg": "result", "id": id, "error": ddp_error(json!(404),
                        "Method not found")})],
                    "sub" => {
                        let name = frame.get("name").and_then(Value::as_str).unwrap_or("");
                        let param = frame.pointer("/params/0").and_then(Value::as_str).unwrap_or("").to_owned();
                        if user.is_none() || name != "stream-room-messages" {
                            vec![json!({"msg": "nosub", "id": id, "error": ddp_error(json!("not-allowed"), "Not allowed")})]
                        } else {
                            let mut inner = shared.lock();
                            inner.counters.subscriptions += 1;
                            inner.subscribers.push((param, events_tx.clone()));
                            vec![json!({"msg": "ready", "subs": [id]})]
                        }
                    }
                    _ => vec![json!({"msg": "error", "reason": "Bad request", "offendingMessage": frame})],
                };
                for r in reply {
                    if !send(&mut ws, r).await {
                        return;
                    }
                }
            }
        }
    }
}
