//! The Rocket.Chat backend: the REST API (`/api/v1`) for logging in, looking rooms up and
//! posting, and the realtime API (DDP over the `/websocket` WebSocket) for receiving. Written
//! by hand: the only crate (`rocketchat` 0.4) is abandoned and pins reqwest 0.11.
//!
//! Log in (<https://developer.rocket.chat/apidocs/authenticate-a-rest-client>): with
//! `username` + `password`, `POST /api/v1/login` gives `data.userId` and `data.authToken`;
//! with `user_id` + `token` (a personal access token) `GET /api/v1/me` checks them. Every
//! REST call then carries `X-User-Id` and `X-Auth-Token`. A 401 is fatal for a personal
//! token; with a password the backend logs in again once (tokens expire) and gives up if the
//! password itself is refused.
//!
//! Realtime (<https://developer.rocket.chat/apidocs/realtimeapi>): `{"msg":"connect"}` →
//! `connected`; method `login` with `{"resume": authToken}`; `sub` to `stream-room-messages`
//! with `__my_messages__` (every room the bot is in) → `ready`; messages arrive as `changed`
//! frames whose `fields.args` are the message and `{roomType, roomName}`. The server's
//! `ping` is answered with `pong`; a silent connection gets our own `ping`, and a connection
//! silent for two intervals is dropped. After a drop: backoff with jitter, connect, log in and
//! subscribe again.
//!
//! Messages: the bot's own, system messages (`t`), edits (`editedAt`) and integration posts
//! (`bot`) are ignored. Room type `d` is a direct message (`room: None`); channels (`c`) and
//! private groups (`p`) are rooms named `#name` (from the frame, else `rooms.info`). A leading
//! `@botname` is removed and sets `mentioned`. Thread replies carry `tmid`, which becomes the
//! `thread`.
//!
//! Sending (<https://developer.rocket.chat/apidocs/post-message>): `POST
//! /api/v1/chat.postMessage` with `roomId` (or `channel` for `#name`/`@user` targets), `text`
//! of at most 5000 characters (Rocket.Chat's default `Message_MaxAllowedSize`; longer text is
//! split on lines), `attachments` (built from the status colour and `extra.rocketchat`, or
//! `extra.rocketchat.attachments` verbatim) and `tmid` for threads. Direct messages use
//! `POST /api/v1/im.create`. A message posted under [`Outgoing::remember_as`] keeps its room
//! and message ids; a later [`Outgoing::replaces`] edits its text with
//! `POST /api/v1/chat.update` (live acks). A 429 waits for `Retry-After`, else `X-RateLimit-Reset`, else the
//! seconds the error text names.

pub mod render;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bot_config::{RocketChatLogin, RocketChatSpec, SecretRef};
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

use super::backoff::Backoff;
use super::error::ApiError;
use super::mention;
use super::supervisor::{ConnectError, EventStream, MessageSink, SessionEnd, send_loop, supervise};
use super::websocket::{self, WsStream};
use super::{
    Backend, BackendError, BackendIo, BoxFuture, Capabilities, ConnState, Incoming, Outgoing, Room,
    Target, char_len, split_message,
};
use crate::secret::{self, Secret};

/// Longest message text a default Rocket.Chat server takes (`Message_MaxAllowedSize`).
pub const MAX_MESSAGE: usize = 5000;

const REST_TIMEOUT: Duration = Duration::from_secs(30);
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
const KEEPALIVE: Duration = Duration::from_secs(30);
const MAX_ATTEMPTS: u32 = 6;

/// The Rocket.Chat backend.
#[derive(Debug)]
pub struct RocketChatBackend {
    base: Url,
    login: RocketChatLogin,
}

impl RocketChatBackend {
    /// The backend for a definition (checks the server URL).
    pub fn new(spec: &RocketChatSpec) -> Result<Self, BackendError> {
        let base = Url::parse(&spec.url).map_err(|e| BackendError::Config {
            what: "rocketchat url",
            reason: format!("`{}`: {e}", spec.url),
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(BackendError::Config {
                what: "rocketchat url",
                reason: format!("`{}` is not an http(s) URL", spec.url),
            });
        }
        Ok(Self {
            base,
            login: spec.login.clone(),
        })
    }
}

impl Backend for RocketChatBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_message_len: MAX_MESSAGE,
            rich: true,
            threads: true,
            edit: true,
            buttons: false,
        }
    }

    fn run(self: Box<Self>, io: BackendIo) -> BoxFuture<'static, Result<(), BackendError>> {
        Box::pin(async move {
            let login = match &self.login {
                RocketChatLogin::Password { username, password } => Login::Password {
                    username: username.to_string(),
                    password: resolve(password)?,
                },
                RocketChatLogin::Token { user_id, token } => Login::Token {
                    user_id: user_id.to_string(),
                    token: resolve(token)?,
                },
            };
            let http = crate::http::client(true, None, Some(REST_TIMEOUT)).map_err(|e| {
                BackendError::Config {
                    what: "rocketchat HTTP client",
                    reason: e.to_string(),
                }
            })?;
            let rest = Arc::new(Rest {
                http,
                base: self.base.as_str().trim_end_matches('/').to_owned(),
                login,
                session: Mutex::new(None),
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
            let realtime = Realtime {
                websocket_url: websocket_url(&self.base),
                rest,
                directory,
                incoming,
                state: state.clone(),
                stop: stop.clone(),
                next_id: 0,
                relogins: 0,
            };
            let realtime = realtime.run();
            tokio::pin!(realtime);
            let result = tokio::select! {
                result = &mut realtime => match result {
                    Ok(()) => join(sender.await),
                    Err(e) => {
                        sender.abort();
                        Err(e)
                    }
                },
                result = &mut sender => {
                    stop.cancel();
                    let realtime_result = realtime.await;
                    join(result).and(realtime_result)
                }
            };
            if let Err(e) = &result {
                let _ = state.send(ConnState::Failed(e.to_string()));
            }
            result
        })
    }
}

fn resolve(reference: &SecretRef) -> Result<Secret, BackendError> {
    Ok(secret::resolve(reference)?)
}

fn join(
    result: Result<Result<(), BackendError>, tokio::task::JoinError>,
) -> Result<(), BackendError> {
    result.map_err(|e| BackendError::Config {
        what: "rocketchat sender task",
        reason: e.to_string(),
    })?
}

/// `…/websocket` under the server URL, with `ws`/`wss`.
fn websocket_url(base: &Url) -> String {
    let scheme = if base.scheme() == "https" {
        "wss"
    } else {
        "ws"
    };
    let mut url = base.clone();
    let path = format!("{}/websocket", url.path().trim_end_matches('/'));
    url.set_path(&path);
    url.set_query(None);
    url.set_fragment(None);
    let rest = url
        .as_str()
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or_default();
    format!("{scheme}://{rest}")
}

// ---------------------------------------------------------------------------------------
// REST

enum Login {
    Password { username: String, password: Secret },
    Token { user_id: String, token: Secret },
}

/// A logged-in identity.
#[derive(Debug)]
struct Session {
    user_id: String,
    token: Secret,
    username: String,
}

struct Rest {
    http: reqwest::Client,
    base: String,
    login: Login,
    session: Mutex<Option<Arc<Session>>>,
}

impl Rest {
    fn cached(&self) -> Option<Arc<Session>> {
        self.session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn forget(&self) {
        *self.session.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The current session, logging in when there is none.
    async fn session(&self) -> Result<Arc<Session>, ApiError> {
        if let Some(s) = self.cached() {
            return Ok(s);
        }
        let session = Arc::new(self.login().await?);
        *self.session.lock().unwrap_or_else(|e| e.into_inner()) = Some(session.clone());
        Ok(session)
    }

    async fn login(&self) -> Result<Session, ApiError> {
        match &self.login {
            Login::Password { username, password } => {
                let body = json!({"user": username, "password": password.expose()});
                let data = self
                    .send(Method::POST, "/api/v1/login", None, Some(&body))
                    .await?;
                let d = data.get("data").unwrap_or(&Value::Null);
                let field = |name: &str| d.get(name).and_then(Value::as_str).map(str::to_owned);
                match (field("userId"), field("authToken")) {
                    (Some(user_id), Some(token)) => {
                        let username = d
                            .get("me")
                            .and_then(|m| m.get("username"))
                            .and_then(Value::as_str)
                            .unwrap_or(username)
                            .to_owned();
                        tracing::info!(user = %username, "rocketchat: logged in");
                        Ok(Session {
                            user_id,
                            token: Secret::new(token),
                            username,
                        })
                    }
                    _ => Err(ApiError::Refused {
                        status: 200,
                        code: String::new(),
                        message: "login answer without data.userId/authToken".into(),
                    }),
                }
            }
            Login::Token { user_id, token } => {
                let probe = Session {
                    user_id: user_id.clone(),
                    token: token.clone(),
                    username: String::new(),
                };
                let me = self
                    .send(Method::GET, "/api/v1/me", Some(&probe), None)
                    .await?;
                let username = me
                    .get("username")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ApiError::Refused {
                        status: 200,
                        code: String::new(),
                        message: "/api/v1/me answered without a username".into(),
                    })?
                    .to_owned();
                tracing::info!(user = %username, "rocketchat: token accepted");
                Ok(Session { username, ..probe })
            }
        }
    }

    /// An authenticated call; a 401 logs in again once (password logins only).
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let session = self.session().await?;
        match self.send(method.clone(), path, Some(&session), body).await {
            Err(ApiError::Auth(reason)) if matches!(self.login, Login::Password { .. }) => {
                tracing::warn!(%reason, "rocketchat: token refused; logging in again");
                self.forget();
                let session = self.session().await?;
                self.send(method, path, Some(&session), body).await
            }
            other => other,
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        session: Option<&Session>,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
        let mut last = String::new();
        for attempt in 1..=MAX_ATTEMPTS {
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.base));
            if let Some(s) = session {
                request = request
                    .header("X-User-Id", &s.user_id)
                    .header("X-Auth-Token", s.token.expose());
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) => {
                    last = e.to_string();
                    tracing::warn!(path, attempt, error = %e, "rocketchat: request failed");
                    tokio::time::sleep(backoff.next_delay()).await;
                    continue;
                }
            };
            let status = response.status().as_u16();
            let wait = retry_wait(response.headers());
            let text = response.text().await.unwrap_or_default();
            let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let message = || {
                json.get("error")
                    .or_else(|| json.get("message"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| text.chars().take(200).collect())
            };
            match status {
                200..=299 if json.get("success") == Some(&Value::Bool(false)) => {
                    return Err(ApiError::Refused {
                        status,
                        code: String::new(),
                        message: message(),
                    });
                }
                200..=299 => return Ok(json),
                401 => return Err(ApiError::Auth(message())),
                429 => {
                    let wait = wait
                        .or_else(|| seconds_in(&message()))
                        .unwrap_or(Duration::from_secs(1))
                        .min(Duration::from_secs(3600));
                    tracing::warn!(
                        path,
                        wait_ms = wait.as_millis() as u64,
                        "rocketchat: rate limited (429)"
                    );
                    last = message();
                    tokio::time::sleep(wait).await;
                }
                500..=599 => {
                    last = format!("HTTP {status}");
                    tracing::warn!(path, attempt, status, "rocketchat: server error");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                _ => {
                    return Err(ApiError::Refused {
                        status,
                        code: String::new(),
                        message: message(),
                    });
                }
            }
        }
        Err(ApiError::GaveUp {
            attempts: MAX_ATTEMPTS,
            last,
        })
    }
}

/// How long a 429 asks us to wait: `Retry-After` (seconds), else `X-RateLimit-Reset`
/// (milliseconds since the epoch, Rocket.Chat's rate limiter).
fn retry_wait(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let get = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok();
    if let Some(secs) = get("retry-after") {
        return Some(Duration::from_secs_f64(secs.clamp(0.0, 3600.0)));
    }
    let reset_ms = get("x-ratelimit-reset")?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_millis() as f64;
    Some(Duration::from_millis((reset_ms - now_ms).max(0.0) as u64))
}

/// "You must wait 26 seconds before…" → 26 s.
fn seconds_in(message: &str) -> Option<Duration> {
    let words: Vec<&str> = message.split_whitespace().collect();
    words.windows(2).find_map(|w| {
        (w[1].starts_with("second"))
            .then(|| w[0].parse::<u64>().ok())
            .flatten()
            .map(Duration::from_secs)
    })
}

// ---------------------------------------------------------------------------------------
// Rooms and users seen so far

#[derive(Debug, Default)]
struct Directory {
    /// Room id → (type, name).
    rooms: HashMap<String, (String, String)>,
    /// User id → username.
    usernames: HashMap<String, String>,
    /// Username → DM room id.
    dm_rooms: HashMap<String, String>,
    /// Messages posted under [`Outgoing::remember_as`]: (room id, message id).
    remembered: super::RememberedMessages<(String, String)>,
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
        "rocketchat"
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
        let Some((room_id, message_id)) = remembered else {
            tracing::debug!(key, "rocketchat: no remembered message to edit");
            return Ok(());
        };
        let text = split_message(&out.text, MAX_MESSAGE, char_len).swap_remove(0);
        rest.call(
            Method::POST,
            "/api/v1/chat.update",
            Some(&json!({ "roomId": room_id, "msgId": message_id, "text": text })),
        )
        .await?;
        return Ok(());
    }
    let (destination, thread) = match &out.target {
        Target::Room { id, thread } => {
            let destination = if id.starts_with(['#', '@']) {
                ("channel", id.clone())
            } else {
                ("roomId", id.clone())
            };
            (destination, thread.clone())
        }
        Target::Direct { user } => (("roomId", dm_room(rest, directory, user).await?), None),
    };
    let mention = out.mention.as_deref().map(|m| {
        let name = lock(directory)
            .usernames
            .get(m)
            .cloned()
            .unwrap_or_else(|| m.trim_start_matches('@').to_owned());
        format!("@{name}")
    });
    let bodies = message_bodies(out, mention.as_deref());
    for (i, mut body) in bodies.into_iter().enumerate() {
        body.insert(destination.0.into(), Value::String(destination.1.clone()));
        if let Some(t) = &thread {
            body.insert("tmid".into(), Value::String(t.clone()));
        }
        let posted = rest
            .call(
                Method::POST,
                "/api/v1/chat.postMessage",
                Some(&Value::Object(body)),
            )
            .await?;
        let message = posted.get("message").unwrap_or(&Value::Null);
        if let (0, Some(rid), Some(id)) = (
            i,
            message.get("rid").and_then(Value::as_str),
            message.get("_id").and_then(Value::as_str),
        ) {
            lock(directory)
                .remembered
                .posted(out, (rid.to_owned(), id.to_owned()));
        }
    }
    Ok(())
}

async fn dm_room(
    rest: &Rest,
    directory: &Mutex<Directory>,
    user: &str,
) -> Result<String, ApiError> {
    let username = {
        let dir = lock(directory);
        dir.usernames
            .get(user)
            .cloned()
            .unwrap_or_else(|| user.trim_start_matches('@').to_owned())
    };
    if let Some(rid) = lock(directory).dm_rooms.get(&username) {
        return Ok(rid.clone());
    }
    let created = rest
        .call(
            Method::POST,
            "/api/v1/im.create",
            Some(&json!({ "username": username })),
        )
        .await?;
    let room = created.get("room").unwrap_or(&Value::Null);
    let rid = room
        .get("rid")
        .or_else(|| room.get("_id"))
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::Refused {
            status: 200,
            code: String::new(),
            message: "im.create answered without a room id".into(),
        })?
        .to_owned();
    lock(directory).dm_rooms.insert(username, rid.clone());
    Ok(rid)
}

/// The `chat.postMessage` bodies (without the destination) for one [`Outgoing`].
fn message_bodies(out: &Outgoing, mention: Option<&str>) -> Vec<serde_json::Map<String, Value>> {
    let mut bodies = render::messages(out, mention, MAX_MESSAGE);
    if bodies.is_empty() {
        let mut m = serde_json::Map::new();
        m.insert("text".into(), Value::String("(no output)".into()));
        bodies.push(m);
    }
    bodies
}

// ---------------------------------------------------------------------------------------
// Realtime API

#[derive(Debug, Deserialize)]
struct RcMessage {
    #[serde(rename = "_id")]
    id: String,
    rid: String,
    #[serde(default)]
    msg: String,
    u: RcUser,
    #[serde(default)]
    tmid: Option<String>,
    #[serde(default)]
    t: Option<String>,
    #[serde(rename = "editedAt", default)]
    edited_at: Option<Value>,
    #[serde(default)]
    bot: Option<Value>,
}

impl RcMessage {
    /// Whether the bot considers this message: from someone else (`me` is the bot's user
    /// id), not a system message, an edit or a bot's, and not empty.
    fn is_for_the_bot(&self, me: &str) -> bool {
        !(self.u.id == me
            || self.t.is_some()
            || self.edited_at.is_some()
            || self.bot.is_some()
            || self.msg.trim().is_empty())
    }

    /// The message, in `room` as looked up, its leading `@me` mention removed.
    fn into_incoming(self, me: &str, room: Option<Room>) -> Incoming {
        let (text, mentioned) = match strip_mention(&self.msg, me) {
            Some(rest) => (rest.to_owned(), true),
            None => (self.msg.trim().to_owned(), false),
        };
        Incoming {
            user_id: self.u.id,
            user: self.u.username,
            room,
            text,
            mentioned,
            thread: self.tmid,
            message_id: Some(self.id),
        }
    }
}

/// A room's kind (`c`, `p`, `d`) and name, from a stream message's metadata.
fn room_of_meta(meta: &Value) -> Option<(String, String)> {
    let kind = meta.get("roomType")?.as_str()?.to_owned();
    let name = meta
        .get("roomName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Some((kind, name))
}

/// The fuzz target's way in: a DDP `changed` frame of `stream-room-messages` to the message
/// it carries (`me_id`, `me_name`: the bot), the room from the frame's metadata.
#[doc(hidden)]
pub fn incoming_from_frame(frame: &[u8], me_id: &str, me_name: &str) -> Option<Incoming> {
    let frame: Value = serde_json::from_slice(frame).ok()?;
    if frame.get("msg").and_then(Value::as_str) != Some("changed") {
        return None;
    }
    let args = frame.pointer("/fields/args")?.as_array()?;
    let m = serde_json::from_value::<RcMessage>(args.first()?.clone()).ok()?;
    if !m.is_for_the_bot(me_id) {
        return None;
    }
    let (kind, name) = args.get(1).and_then(room_of_meta)?;
    let room = (kind != "d").then(|| Room {
        id: m.rid.clone(),
        name: format!("#{name}"),
    });
    Some(m.into_incoming(me_name, room))
}

#[derive(Debug, Deserialize)]
struct RcUser {
    #[serde(rename = "_id")]
    id: String,
    username: String,
}

/// How one realtime connection ended.
enum Ending {
    Shutdown,
    Reconnect {
        worked: bool,
    },
    /// The resume token was refused: log in again over REST.
    Relogin,
}

struct Realtime {
    websocket_url: String,
    rest: Arc<Rest>,
    directory: Arc<Mutex<Directory>>,
    incoming: mpsc::Sender<Incoming>,
    state: watch::Sender<ConnState>,
    stop: CancellationToken,
    next_id: u64,
    /// Logins in a row the realtime API refused.
    relogins: u32,
}

impl EventStream for Realtime {
    type Connection = (WsStream, Arc<Session>);

    fn service(&self) -> &'static str {
        "rocketchat"
    }

    async fn connect(&mut self) -> Result<(WsStream, Arc<Session>), ConnectError> {
        let session = match self.rest.session().await {
            Ok(session) => session,
            Err(ApiError::Auth(reason)) => {
                return Err(ConnectError::Stop(BackendError::Auth {
                    service: "rocketchat",
                    reason,
                }));
            }
            Err(e) => return Err(ConnectError::Retry(format!("login failed: {e}"))),
        };
        match websocket::connect(&self.websocket_url).await {
            Ok(ws) => Ok((ws, session)),
            Err(e) => Err(ConnectError::Retry(format!(
                "realtime connect to {} failed: {e}",
                self.websocket_url
            ))),
        }
    }

    async fn session(&mut self, (ws, session): (WsStream, Arc<Session>)) -> SessionEnd {
        match self.connection(ws, &session).await {
            Ending::Shutdown => SessionEnd::Shutdown,
            Ending::Relogin => {
                self.relogins += 1;
                if self.relogins > 2 || matches!(self.rest.login, Login::Token { .. }) {
                    return SessionEnd::Fatal(BackendError::Auth {
                        service: "rocketchat",
                        reason: "the realtime API refused the login token".into(),
                    });
                }
                self.rest.forget();
                SessionEnd::Again
            }
            Ending::Reconnect { worked } => {
                if worked {
                    self.relogins = 0;
                }
                SessionEnd::Closed {
                    healthy: worked,
                    pause: None,
                }
            }
        }
    }
}

impl Realtime {
    /// Reconnects until shutdown; `Err` only when the login is refused.
    async fn run(mut self) -> Result<(), BackendError> {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let stop = self.stop.clone();
        let state = self.state.clone();
        supervise(&mut self, backoff, &stop, &state).await
    }

    fn id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }

    async fn connection(&mut self, mut ws: WsStream, session: &Session) -> Ending {
        match self.handshake(&mut ws, session).await {
            Ok(()) => {}
            Err(ApiError::Shutdown) => return Ending::Shutdown,
            Err(ApiError::Auth(reason)) => {
                tracing::warn!(%reason, "rocketchat: realtime login refused");
                let _ = close(&mut ws).await;
                return Ending::Relogin;
            }
            Err(reason) => {
                tracing::warn!(%reason, "rocketchat: realtime handshake failed");
                return Ending::Reconnect { worked: false };
            }
        }
        tracing::info!(user = %session.username, "rocketchat: connected and subscribed");
        let _ = self.state.send(ConnState::Connected);
        let mut last_frame = Instant::now();
        let mut pinged = false;
        loop {
            let deadline = last_frame + if pinged { KEEPALIVE * 2 } else { KEEPALIVE };
            let frame = tokio::select! {
                frame = ws.next() => frame,
                () = tokio::time::sleep_until(deadline) => {
                    if pinged {
                        tracing::warn!("rocketchat: realtime connection silent; reconnecting");
                        return Ending::Reconnect { worked: true };
                    }
                    pinged = true;
                    if ws.send(Message::text(json!({"msg": "ping"}).to_string())).await.is_err() {
                        return Ending::Reconnect { worked: true };
                    }
                    continue;
                }
                () = self.stop.cancelled() => {
                    let _ = close(&mut ws).await;
                    return Ending::Shutdown;
                }
            };
            last_frame = Instant::now();
            pinged = false;
            let text = match frame {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(frame))) => {
                    tracing::warn!(frame = ?frame, "rocketchat: realtime connection closed");
                    return Ending::Reconnect { worked: true };
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "rocketchat: realtime connection lost");
                    return Ending::Reconnect { worked: true };
                }
                None => {
                    tracing::warn!("rocketchat: realtime connection ended");
                    return Ending::Reconnect { worked: true };
                }
            };
            let Ok(frame) = serde_json::from_str::<Value>(&text) else {
                tracing::warn!("rocketchat: undecodable realtime frame ignored");
                continue;
            };
            match frame.get("msg").and_then(Value::as_str) {
                Some("ping") => {
                    let mut pong = json!({"msg": "pong"});
                    if let Some(id) = frame.get("id") {
                        pong["id"] = id.clone();
                    }
                    if ws.send(Message::text(pong.to_string())).await.is_err() {
                        return Ending::Reconnect { worked: true };
                    }
                }
                Some("changed")
                    if frame.get("collection").and_then(Value::as_str)
                        == Some("stream-room-messages") =>
                {
                    let args = frame
                        .pointer("/fields/args")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    let Some(message) = args.first() else {
                        continue;
                    };
                    match serde_json::from_value::<RcMessage>(message.clone()) {
                        Ok(m) => {
                            if let Some(incoming) =
                                self.incoming_message(m, args.get(1), session).await
                            {
                                let _ = self.incoming.send(incoming).await;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "rocketchat: undecodable message ignored")
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// `connect`, `login` with the resume token, `sub` to `__my_messages__`. Fails like a REST
    /// call: [`ApiError::Auth`] when the resume token is refused, [`ApiError::Transport`] when
    /// the exchange breaks or goes unanswered, [`ApiError::Shutdown`].
    async fn handshake(&mut self, ws: &mut WsStream, session: &Session) -> Result<(), ApiError> {
        send(
            ws,
            json!({"msg": "connect", "version": "1", "support": ["1"]}),
        )
        .await?;
        self.expect(ws, |f| match f.get("msg").and_then(Value::as_str) {
            Some("connected") => Some(Ok(())),
            Some("failed") => Some(Err(ApiError::Transport(format!(
                "server wants DDP version {}",
                f.get("version").unwrap_or(&Value::Null)
            )))),
            _ => None,
        })
        .await?;
        let login_id = self.id();
        send(
            ws,
            json!({
                "msg": "method",
                "method": "login",
                "id": login_id,
                "params": [{"resume": session.token.expose()}],
            }),
        )
        .await?;
        self.expect(ws, |f| {
            (f.get("msg").and_then(Value::as_str) == Some("result")
                && f.get("id").and_then(Value::as_str) == Some(login_id.as_str()))
            .then(|| match f.get("error") {
                Some(e) => Err(ApiError::Auth(
                    e.get("message")
                        .or_else(|| e.get("reason"))
                        .and_then(Value::as_str)
                        .unwrap_or("login refused")
                        .to_owned(),
                )),
                None => Ok(()),
            })
        })
        .await?;
        let sub_id = self.id();
        send(
            ws,
            json!({
                "msg": "sub",
                "id": sub_id,
                "name": "stream-room-messages",
                "params": ["__my_messages__", false],
            }),
        )
        .await?;
        self.expect(ws, |f| {
            let kind = f.get("msg").and_then(Value::as_str);
            match kind {
                Some("ready")
                    if f.get("subs")
                        .and_then(Value::as_array)
                        .is_some_and(|s| s.iter().any(|v| v.as_str() == Some(sub_id.as_str()))) =>
                {
                    Some(Ok(()))
                }
                Some("nosub") if f.get("id").and_then(Value::as_str) == Some(sub_id.as_str()) => {
                    Some(Err(ApiError::Transport(format!(
                        "subscription refused: {}",
                        f.get("error").unwrap_or(&Value::Null)
                    ))))
                }
                _ => None,
            }
        })
        .await
    }

    /// Reads frames (answering pings) until `check` decides.
    async fn expect(
        &self,
        ws: &mut WsStream,
        mut check: impl FnMut(&Value) -> Option<Result<(), ApiError>>,
    ) -> Result<(), ApiError> {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            let frame = tokio::select! {
                frame = tokio::time::timeout_at(deadline, ws.next()) => frame,
                () = self.stop.cancelled() => return Err(ApiError::Shutdown),
            };
            let text = match frame {
                Err(_) => return Err(ApiError::Transport("no answer in time".into())),
                Ok(Some(Ok(Message::Text(text)))) => text,
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return Err(ApiError::Transport(format!("closed: {frame:?}")));
                }
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(e))) => return Err(ApiError::Transport(e.to_string())),
                Ok(None) => return Err(ApiError::Transport("connection ended".into())),
            };
            let Ok(frame) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if frame.get("msg").and_then(Value::as_str) == Some("ping") {
                send(ws, json!({"msg": "pong"})).await?;
                continue;
            }
            if let Some(result) = check(&frame) {
                return result;
            }
        }
    }

    async fn incoming_message(
        &self,
        m: RcMessage,
        meta: Option<&Value>,
        session: &Session,
    ) -> Option<Incoming> {
        if !m.is_for_the_bot(&session.user_id) {
            return None;
        }
        lock(&self.directory)
            .usernames
            .insert(m.u.id.clone(), m.u.username.clone());
        let from_frame = meta.and_then(room_of_meta);
        let known = from_frame.or_else(|| lock(&self.directory).rooms.get(&m.rid).cloned());
        let (kind, name) = match known {
            Some(k) => k,
            None => match self
                .rest
                .call(
                    Method::GET,
                    &format!("/api/v1/rooms.info?roomId={}", m.rid),
                    None,
                )
                .await
            {
                Ok(info) => {
                    let room = info.get("room").unwrap_or(&Value::Null);
                    let field =
                        |k: &str| room.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                    (field("t"), field("name"))
                }
                Err(e) => {
                    tracing::warn!(room = %m.rid, error = %e, "rocketchat: unknown room; message ignored");
                    return None;
                }
            },
        };
        lock(&self.directory)
            .rooms
            .insert(m.rid.clone(), (kind.clone(), name.clone()));
        let room = if kind == "d" {
            lock(&self.directory)
                .dm_rooms
                .insert(m.u.username.clone(), m.rid.clone());
            None
        } else {
            Some(Room {
                id: m.rid.clone(),
                name: format!("#{name}"),
            })
        };
        Some(m.into_incoming(&session.username, room))
    }
}

async fn send(ws: &mut WsStream, frame: Value) -> Result<(), ApiError> {
    ws.send(Message::text(frame.to_string()))
        .await
        .map_err(|e| ApiError::Transport(e.to_string()))
}

async fn close(ws: &mut WsStream) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    ws.close(Some(CloseFrame {
        code: 1000.into(),
        reason: "bye".into(),
    }))
    .await
}

/// The text after a leading `@username` of the bot, if there is one.
fn strip_mention<'a>(text: &'a str, me: &str) -> Option<&'a str> {
    mention::strip(text, &[me], &mention::ROCKETCHAT)
}

/// Echoed user text with Rocket.Chat's mass mentions (`@here`, `@channel`, `@all`) broken.
pub fn defuse_mass_mentions(text: &str) -> String {
    super::defuse_at_words(text, &["here", "channel", "all"])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Status, char_len};

    #[test]
    fn websocket_url_keeps_sub_paths() {
        let u = Url::parse("https://chat.example.com/rc/").unwrap();
        assert_eq!(websocket_url(&u), "wss://chat.example.com/rc/websocket");
        let u = Url::parse("http://127.0.0.1:3000").unwrap();
        assert_eq!(websocket_url(&u), "ws://127.0.0.1:3000/websocket");
    }

    #[test]
    fn strips_the_bots_own_mention() {
        assert_eq!(strip_mention("@st2bot !help", "st2bot"), Some("!help"));
        assert_eq!(strip_mention("@st2bot: !help", "st2bot"), Some("!help"));
        assert_eq!(strip_mention("@st2bots !help", "st2bot"), None);
        assert_eq!(strip_mention("!help", "st2bot"), None);
    }

    #[test]
    fn reads_wait_times() {
        assert_eq!(
            seconds_in(
                "Error, too many requests. Please slow down. You must wait 26 seconds before trying this endpoint again. [error-too-many-requests]"
            ),
            Some(Duration::from_secs(26))
        );
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_wait(&headers), Some(Duration::from_secs(2)));
    }

    #[test]
    fn bodies_split_and_carry_attachments() {
        let mut out = Outgoing::text(
            Target::Room {
                id: "r".into(),
                thread: None,
            },
            format!("Done{{~}}{}", "x\n".repeat(10)),
        );
        out.status = Some(Status::Failed);
        let bodies = message_bodies(&out, Some("@alice"));
        assert_eq!(bodies.len(), 1);
        assert_eq!(bodies[0]["text"], "@alice: Done");
        assert_eq!(bodies[0]["attachments"][0]["color"], "#E01E5A");
        let long = Outgoing::text(out.target.clone(), "line\n".repeat(3000));
        let bodies = message_bodies(&long, None);
        assert!(bodies.len() >= 3);
        assert!(
            bodies
                .iter()
                .all(|b| char_len(b["text"].as_str().unwrap()) <= MAX_MESSAGE)
        );
    }
}
