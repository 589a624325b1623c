//! The Slack backend: Socket Mode for events, the Web API for everything else. Read
//! [`SlackBackend::run`] first.
//!
//! - Connect: `auth.test` (bot token) identifies the bot; `apps.connections.open` (app-level
//!   token) gives a single-use WebSocket URL; the socket greets with `hello`.
//! - Every envelope that has an `envelope_id` is acknowledged at once with
//!   `{"envelope_id": …}`, before anything else is done with it (Slack redelivers unacked
//!   envelopes after 3 s with `retry_attempt` set). `disconnect` (`warning`,
//!   `refresh_requested`) → a fresh URL at once; a dropped socket → backoff with jitter.
//!   `link_disabled` (Socket Mode turned off) stops the backend.
//! - `events_api` envelopes with `message` or `app_mention` events become [`Incoming`]
//!   messages, deduplicated by `event_id` and by channel+`ts` (a mention arrives as both);
//!   bot messages, edits and other subtypes, and the bot's own messages are ignored. Direct
//!   messages (`channel_type: im`) have no room. Users and channels are named through
//!   `users.info` and `conversations.info`, cached; rooms are named `#channel`.
//! - Replies go out with `chat.postMessage` (`thread_ts` for threads), in order, split at
//!   [`TEXT_LIMIT`] characters; rich content comes from [`super::rich`]. Private replies open
//!   the conversation with `conversations.open`. A reply posted with
//!   [`Outgoing::remember_as`] is remembered (channel, `ts`); a later
//!   [`Outgoing::replaces`] edits it with `chat.update` (live acks). [`Outgoing::actions`]
//!   become Block Kit buttons whose `action_id` is a random id ([`ActionIds`]); a press
//!   arrives as an `interactive` envelope (`block_actions`), acknowledged like any other,
//!   and becomes the button's command from the presser. `ratelimited`/HTTP
//!   429 waits `Retry-After` and retries; `invalid_auth` and friends stop the backend with
//!   [`BackendError::Auth`].

pub mod render;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bot_config::SlackSpec;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::backoff::{Backoff, sleep_or_shutdown};
use super::error::ApiError;
use super::mention;
use super::supervisor::{
    ConnectError, EventStream, MessageSink, SessionEnd, credentials_refused, first_contact,
    send_loop, supervise,
};
use super::webapi::{MAX_RATE_LIMIT_WAIT, Seen, lock, retry_after, str_field};
use super::websocket::{self, WsStream};
use super::{
    ActionIds, Backend, BackendError, BackendIo, BoxFuture, Capabilities, ConnState, Incoming,
    Outgoing, Room, Target, char_len, rich, split_message,
};
use crate::secret::{self, Secret};

/// Characters per message text: Slack recommends at most 4,000 (it refuses 40,000).
pub const TEXT_LIMIT: usize = 4000;
/// Pause between the parts of one split message, so they arrive in order and unthrottled.
const PART_PAUSE: Duration = Duration::from_millis(300);
/// Reconnect pacing after a dropped socket.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Client pings keep NAT state alive; silence this long means the socket is dead.
const PING_EVERY: Duration = Duration::from_secs(30);
const SILENCE_LIMIT: Duration = Duration::from_secs(100);
/// How many times one call is retried after `ratelimited` before giving up on it.
const RATE_LIMIT_RETRIES: u32 = 5;
/// Web API request timeout.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Event ids and message keys remembered for deduplication.
const SEEN_CAPACITY: usize = 2048;

/// Web API error codes that mean the token is bad: fatal, never retried.
const AUTH_ERRORS: &[&str] = &[
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "not_allowed_token_type",
    "invalid_token",
];

/// The Slack backend, built from the definition's `backend:` settings.
#[derive(Debug)]
pub struct SlackBackend {
    spec: SlackSpec,
}

impl SlackBackend {
    /// The backend for these settings (secrets are read when it runs).
    pub fn new(spec: &SlackSpec) -> Self {
        Self { spec: spec.clone() }
    }
}

impl Backend for SlackBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_message_len: TEXT_LIMIT,
            rich: true,
            threads: true,
            edit: true,
            buttons: true,
        }
    }

    fn run(self: Box<Self>, io: BackendIo) -> BoxFuture<'static, Result<(), BackendError>> {
        Box::pin(run(self.spec, io))
    }
}

/// Which token a call carries.
#[derive(Clone, Copy, Debug)]
enum Token {
    App,
    Bot,
}

/// Arguments of a Web API call.
enum Args<'a> {
    /// `GET` with query parameters (read methods take form/query arguments only).
    Query(&'a [(&'a str, &'a str)]),
    /// `POST` with a JSON body (write methods).
    Json(&'a Value),
}

/// The bot's own identity, from `auth.test`.
#[derive(Clone, Debug)]
struct Identity {
    user_id: String,
    name: String,
}

/// What one running backend shares between its tasks.
struct Shared {
    http: reqwest::Client,
    api: String,
    app_token: Secret,
    bot_token: Secret,
    me: Identity,
    shutdown: CancellationToken,
    /// User id → name.
    users: Mutex<HashMap<String, String>>,
    /// Channel id → `#name`.
    channels: Mutex<HashMap<String, String>>,
    /// User id → DM channel id.
    dms: Mutex<HashMap<String, String>>,
    /// Messages posted under [`Outgoing::remember_as`]: (channel, ts), for `chat.update`.
    remembered: super::RememberedMessages<(String, String)>,
    /// The buttons posted ([`Outgoing::actions`]): `action_id` → command.
    actions: ActionIds,
}

/// What the socket hands the processor: an Events API payload or an interaction.
#[derive(Debug)]
enum Envelope {
    /// `events_api`: the `event_callback` payload.
    Event(Value),
    /// `interactive`: a `block_actions` (button press) or other interaction payload.
    Interactive(Value),
}

async fn run(spec: SlackSpec, io: BackendIo) -> Result<(), BackendError> {
    let BackendIo {
        incoming,
        outgoing,
        state,
        shutdown,
    } = io;
    state.send_replace(ConnState::Connecting);
    let app_token = secret::resolve(&spec.app_token)?;
    let bot_token = secret::resolve(&spec.bot_token)?;
    let http =
        crate::http::client(true, None, Some(HTTP_TIMEOUT)).map_err(|e| BackendError::Config {
            what: "HTTP client",
            reason: e.to_string(),
        })?;
    let local = shutdown.child_token();
    let mut shared = Shared {
        http,
        api: spec.url.trim_end_matches('/').to_owned(),
        app_token,
        bot_token,
        me: Identity {
            user_id: String::new(),
            name: String::new(),
        },
        shutdown: local.clone(),
        users: Mutex::default(),
        channels: Mutex::default(),
        dms: Mutex::default(),
        remembered: super::RememberedMessages::default(),
        actions: ActionIds::default(),
    };
    let backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
    let identity = first_contact(
        "slack",
        ("auth.test", "token"),
        backoff,
        &local,
        &state,
        || shared.auth_test(),
    );
    shared.me = match identity.await? {
        Some(me) => me,
        None => return Ok(()),
    };
    tracing::info!(bot_user = %shared.me.user_id, bot_name = %shared.me.name, "slack: identified");
    let shared = Arc::new(shared);
    let (event_tx, event_rx) = mpsc::channel(256);
    let processor = tokio::spawn(shared.clone().process_events(event_rx, incoming));
    let mut sender = tokio::spawn({
        let shared = shared.clone();
        async move { send_loop(&*shared, outgoing, &shared.shutdown).await }
    });
    let mut receiver = tokio::spawn(shared.clone().receive_loop(event_tx, state.clone()));
    let (first, rest) = tokio::select! {
        r = &mut receiver => (r, sender),
        r = &mut sender => (r, receiver),
    };
    local.cancel();
    let second = rest.await;
    let _ = processor.await;
    let result = joined(first).and(joined(second));
    if let Err(BackendError::Auth { reason, .. }) = &result {
        state.send_replace(ConnState::Failed(reason.clone()));
    }
    result
}

/// Slack's Socket Mode as an [`EventStream`]: `apps.connections.open` gives a WebSocket
/// URL, each socket is read until it drops or Slack asks for a new one.
struct SocketMode {
    shared: Arc<Shared>,
    events: mpsc::Sender<Envelope>,
    state: watch::Sender<ConnState>,
}

impl EventStream for SocketMode {
    type Connection = WsStream;

    fn service(&self) -> &'static str {
        "slack"
    }

    async fn connect(&mut self) -> Result<WsStream, ConnectError> {
        let body = match self
            .shared
            .call("apps.connections.open", Token::App, Args::Json(&json!({})))
            .await
        {
            Ok(body) => body,
            Err(ApiError::Auth(reason)) => {
                return Err(ConnectError::Stop(auth_failed(&self.state, reason)));
            }
            Err(ApiError::Shutdown) => return Err(ConnectError::Shutdown),
            Err(e) => return Err(ConnectError::Retry(format!("apps.connections.open: {e}"))),
        };
        let url = str_field(&body, "url").ok_or_else(|| {
            ConnectError::Retry("apps.connections.open answered without a url".into())
        })?;
        websocket::connect(url)
            .await
            .map_err(|e| ConnectError::Retry(format!("socket mode: {e}")))
    }

    async fn session(&mut self, ws: WsStream) -> SessionEnd {
        self.shared.session(ws, &self.events, &self.state).await
    }
}

/// A task's result, re-raising its panic.
fn joined(r: Result<Result<(), BackendError>, tokio::task::JoinError>) -> Result<(), BackendError> {
    match r {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Ok(()),
    }
}

fn auth_failed(state: &watch::Sender<ConnState>, reason: String) -> BackendError {
    credentials_refused("slack", "token", reason, state)
}

impl MessageSink for Shared {
    fn service(&self) -> &'static str {
        "slack"
    }

    async fn deliver(&self, out: &Outgoing) -> Result<(), ApiError> {
        self.try_post(out).await
    }
}

impl Shared {
    /// One Web API call, with rate-limit waits. `Ok` only for `"ok": true`.
    async fn call(&self, method: &str, token: Token, args: Args<'_>) -> Result<Value, ApiError> {
        let token = match token {
            Token::App => &self.app_token,
            Token::Bot => &self.bot_token,
        };
        let url = format!("{}/{method}", self.api);
        for _ in 0..=RATE_LIMIT_RETRIES {
            let request = match &args {
                Args::Query(pairs) => {
                    let mut u = url::Url::parse(&url)
                        .map_err(|e| ApiError::Transport(format!("bad API URL {url}: {e}")))?;
                    u.query_pairs_mut().extend_pairs(pairs.iter());
                    self.http.get(u)
                }
                // Slack wants the charset spelled out on JSON bodies (else `missing_charset`).
                Args::Json(body) => self
                    .http
                    .post(&url)
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/json; charset=utf-8",
                    )
                    .body(body.to_string()),
            };
            let response = request
                .bearer_auth(token.expose())
                .send()
                .await
                .map_err(|e| ApiError::Transport(format!("{method}: {}", e.without_url())))?;
            let status = response.status();
            let wait = retry_after(response.headers());
            if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                self.wait_rate_limit(method, wait).await?;
                continue;
            }
            let body: Value = match response.json().await {
                Ok(v) => v,
                Err(_) => {
                    return Err(ApiError::Transport(format!(
                        "{method}: HTTP {status} without a JSON body"
                    )));
                }
            };
            if body.get("ok").and_then(Value::as_bool) == Some(true) {
                return Ok(body);
            }
            let code = body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("unknown_error")
                .to_owned();
            if code == "ratelimited" || code == "rate_limited" {
                self.wait_rate_limit(method, wait).await?;
                continue;
            }
            if AUTH_ERRORS.contains(&code.as_str()) {
                return Err(ApiError::Auth(code));
            }
            return Err(ApiError::code(200, code));
        }
        Err(ApiError::RateLimited {
            waits: RATE_LIMIT_RETRIES,
        })
    }

    async fn wait_rate_limit(&self, method: &str, wait: Option<Duration>) -> Result<(), ApiError> {
        let wait = wait
            .unwrap_or(Duration::from_secs(1))
            .min(MAX_RATE_LIMIT_WAIT);
        tracing::warn!(
            method,
            wait_ms = wait.as_millis() as u64,
            "slack: rate limited; waiting"
        );
        if sleep_or_shutdown(wait, &self.shutdown).await {
            Ok(())
        } else {
            Err(ApiError::Shutdown)
        }
    }

    async fn auth_test(&self) -> Result<Identity, ApiError> {
        let body = self
            .call("auth.test", Token::Bot, Args::Json(&json!({})))
            .await?;
        let user_id = str_field(&body, "user_id")
            .ok_or_else(|| ApiError::Transport("auth.test: no user_id".into()))?;
        Ok(Identity {
            user_id: user_id.to_owned(),
            name: str_field(&body, "user").unwrap_or_default().to_owned(),
        })
    }

    /// Reconnects until shutdown; `Err` only for fatal conditions.
    async fn receive_loop(
        self: Arc<Self>,
        events: mpsc::Sender<Envelope>,
        state: watch::Sender<ConnState>,
    ) -> Result<(), BackendError> {
        let shutdown = self.shutdown.clone();
        let mut stream = SocketMode {
            shared: self,
            events,
            state: state.clone(),
        };
        let backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
        supervise(&mut stream, backoff, &shutdown, &state).await
    }

    /// Reads one socket until it ends, acknowledging every envelope first.
    async fn session(
        &self,
        mut ws: WsStream,
        events: &mpsc::Sender<Envelope>,
        state: &watch::Sender<ConnState>,
    ) -> SessionEnd {
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        let mut last_heard = Instant::now();
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => {
                    let _ = ws.close(None).await;
                    return SessionEnd::Shutdown;
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > SILENCE_LIMIT {
                        return SessionEnd::Dropped("no traffic from Slack".into());
                    }
                    if let Err(e) = ws.send(Message::Ping(Vec::new().into())).await {
                        return SessionEnd::Dropped(e.to_string());
                    }
                }
                frame = ws.next() => {
                    last_heard = Instant::now();
                    let text = match frame {
                        None => return SessionEnd::Dropped("socket closed".into()),
                        Some(Err(e)) => return SessionEnd::Dropped(e.to_string()),
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Close(frame))) => {
                            let why = frame.map(|f| format!("closed by Slack: {} {}", f.code, f.reason));
                            return SessionEnd::Dropped(why.unwrap_or_else(|| "closed by Slack".into()));
                        }
                        Some(Ok(_)) => continue,
                    };
                    if let Some(end) = self.on_frame(text.as_str(), &mut ws, events, state).await {
                        return end;
                    }
                }
            }
        }
    }

    /// Handles one text frame; `Some` ends the session.
    async fn on_frame(
        &self,
        text: &str,
        ws: &mut WsStream,
        events: &mpsc::Sender<Envelope>,
        state: &watch::Sender<ConnState>,
    ) -> Option<SessionEnd> {
        let frame: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "slack: ignoring a frame that is not JSON");
                return None;
            }
        };
        if let Some(id) = str_field(&frame, "envelope_id") {
            let ack = json!({ "envelope_id": id }).to_string();
            if let Err(e) = ws.send(Message::Text(ack.into())).await {
                return Some(SessionEnd::Dropped(format!("ack failed: {e}")));
            }
        }
        match str_field(&frame, "type").unwrap_or_default() {
            "hello" => {
                tracing::info!(
                    connections = frame
                        .get("num_connections")
                        .and_then(serde_json::Value::as_u64),
                    "slack: socket mode connected"
                );
                state.send_replace(ConnState::Connected);
                None
            }
            "disconnect" => {
                let reason = str_field(&frame, "reason").unwrap_or("unspecified");
                if reason == "link_disabled" {
                    return Some(SessionEnd::Fatal(BackendError::Config {
                        what: "slack app",
                        reason:
                            "Socket Mode is turned off for this app (disconnect: link_disabled)"
                                .into(),
                    }));
                }
                tracing::info!(reason, "slack: asked to reconnect");
                let _ = ws.close(None).await;
                Some(SessionEnd::Refresh)
            }
            "events_api" => {
                if let Some(n) = frame
                    .get("retry_attempt")
                    .and_then(Value::as_u64)
                    .filter(|n| *n > 0)
                {
                    tracing::debug!(retry_attempt = n, "slack: redelivered envelope");
                }
                let payload = frame.get("payload").cloned().unwrap_or(Value::Null);
                match events.send(Envelope::Event(payload)).await {
                    Ok(()) => None,
                    Err(_) => Some(SessionEnd::Shutdown),
                }
            }
            // A button press (acknowledged above, within Slack's 3 s).
            "interactive" => {
                let payload = frame.get("payload").cloned().unwrap_or(Value::Null);
                match events.send(Envelope::Interactive(payload)).await {
                    Ok(()) => None,
                    Err(_) => Some(SessionEnd::Shutdown),
                }
            }
            other => {
                tracing::debug!(kind = other, "slack: ignoring envelope");
                None
            }
        }
    }

    /// Turns event payloads and button presses into [`Incoming`] messages, in order.
    async fn process_events(
        self: Arc<Self>,
        mut events: mpsc::Receiver<Envelope>,
        incoming: mpsc::Sender<Incoming>,
    ) {
        let mut seen = Seen::new(SEEN_CAPACITY);
        while let Some(envelope) = events.recv().await {
            let message = match envelope {
                Envelope::Event(payload) => {
                    if let Some(id) = str_field(&payload, "event_id")
                        && !seen.insert(id)
                    {
                        continue;
                    }
                    let event = payload.get("event").unwrap_or(&Value::Null);
                    self.to_incoming(event, &mut seen).await
                }
                Envelope::Interactive(payload) => self.pressed(&payload, &mut seen).await,
            };
            let Some(message) = message else {
                continue;
            };
            tracing::debug!(
                user = %message.user,
                room = message.room.as_ref().map(|r| r.name.as_str()),
                "slack: message"
            );
            if incoming.send(message).await.is_err() {
                break;
            }
        }
    }

    /// The message an event carries, when it is one for the bot to consider.
    async fn to_incoming(&self, event: &Value, seen: &mut Seen) -> Option<Incoming> {
        let m = MessageEvent::parse(event, &self.me.user_id)?;
        if !seen.insert(&format!("{}:{}", m.channel, m.ts)) {
            return None;
        }
        let room_name = if m.direct {
            None
        } else {
            Some(self.channel_name(m.channel).await)
        };
        let mut names = HashMap::new();
        for id in mentioned_users(m.text) {
            let name = self.user_name(&id).await;
            names.insert(id, name);
        }
        let user = self.user_name(m.user_id).await;
        Some(m.into_incoming(user, room_name, &names))
    }

    /// The command of a pressed button, from the user who pressed it
    /// (<https://api.slack.com/reference/interaction-payloads/block-actions>): only a button
    /// this backend posted ([`ActionIds`]); any other `action_id` is refused with an
    /// ephemeral note and a log line, never run. The presser is named through `users.info`
    /// like the sender of a message (the payload's `username` is not used).
    async fn pressed(&self, payload: &Value, seen: &mut Seen) -> Option<Incoming> {
        let press = Press::parse(payload)?;
        if let Some(trigger) = press.trigger_id
            && !seen.insert(trigger)
        {
            return None;
        }
        let Some(command) = self.actions.command(press.action_id) else {
            tracing::warn!(
                user_id = press.user_id,
                channel = press.channel,
                "slack: a press of a button this bot did not post (or no longer remembers); ignored"
            );
            let note = "That button is no longer active: type the command in its message instead.";
            if let Err(e) = self
                .call(
                    "chat.postEphemeral",
                    Token::Bot,
                    Args::Json(
                        &json!({"channel": press.channel, "user": press.user_id, "text": note}),
                    ),
                )
                .await
            {
                tracing::warn!(error = %e, "slack: chat.postEphemeral failed");
            }
            return None;
        };
        let room = if press.channel.starts_with('D') {
            None
        } else {
            Some(Room {
                id: press.channel.to_owned(),
                name: self.channel_name(press.channel).await,
            })
        };
        let user = self.user_name(press.user_id).await;
        tracing::info!(user = %user, room = room.as_ref().map(|r| r.name.as_str()), "slack: button pressed");
        Some(Incoming {
            user_id: press.user_id.to_owned(),
            user,
            room,
            text: command,
            mentioned: false,
            thread: press.thread.map(str::to_owned),
            message_id: None,
        })
    }

    /// A user's name (`users.info`, cached); the id when Slack cannot say.
    async fn user_name(&self, id: &str) -> String {
        if let Some(name) = lock(&self.users).get(id) {
            return name.clone();
        }
        match self
            .call("users.info", Token::Bot, Args::Query(&[("user", id)]))
            .await
        {
            Ok(body) => {
                let user = body.get("user").unwrap_or(&Value::Null);
                let name = str_field(user, "name").unwrap_or(id).to_owned();
                lock(&self.users).insert(id.to_owned(), name.clone());
                name
            }
            Err(e) => {
                tracing::warn!(user = id, error = %e, "slack: users.info failed");
                id.to_owned()
            }
        }
    }

    /// A user's id from a name: the cache, then `users.list`.
    async fn user_id_for(&self, name: &str) -> Option<String> {
        let name = name.trim_start_matches('@');
        if let Some(id) = self.cached_user_id(name) {
            return Some(id);
        }
        let mut cursor = String::new();
        loop {
            let mut args = vec![("limit", "200")];
            if !cursor.is_empty() {
                args.push(("cursor", cursor.as_str()));
            }
            let body = match self
                .call("users.list", Token::Bot, Args::Query(&args))
                .await
            {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(user = name, error = %e, "slack: users.list failed");
                    return None;
                }
            };
            let members = body.get("members").and_then(Value::as_array);
            {
                let mut users = lock(&self.users);
                for m in members.into_iter().flatten() {
                    if let (Some(id), Some(n)) = (str_field(m, "id"), str_field(m, "name")) {
                        users.insert(id.to_owned(), n.to_owned());
                    }
                }
            }
            cursor = body
                .pointer("/response_metadata/next_cursor")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if cursor.is_empty() {
                return self.cached_user_id(name);
            }
        }
    }

    fn cached_user_id(&self, name: &str) -> Option<String> {
        lock(&self.users)
            .iter()
            .find(|(_, n)| n.as_str() == name)
            .map(|(id, _)| id.clone())
    }

    /// A channel's `#name` (`conversations.info`, cached); the id when Slack cannot say.
    async fn channel_name(&self, id: &str) -> String {
        if let Some(name) = lock(&self.channels).get(id) {
            return name.clone();
        }
        match self
            .call(
                "conversations.info",
                Token::Bot,
                Args::Query(&[("channel", id)]),
            )
            .await
        {
            Ok(body) => {
                let name = body
                    .pointer("/channel/name")
                    .and_then(Value::as_str)
                    .map(|n| format!("#{n}"))
                    .unwrap_or_else(|| id.to_owned());
                lock(&self.channels).insert(id.to_owned(), name.clone());
                name
            }
            Err(e) => {
                tracing::warn!(channel = id, error = %e, "slack: conversations.info failed");
                id.to_owned()
            }
        }
    }

    async fn try_post(&self, out: &Outgoing) -> Result<(), ApiError> {
        if let Some(key) = &out.replaces {
            return self.update(key, out).await;
        }
        let (channel, thread) = match &out.target {
            Target::Room { id, thread } => (id.clone(), thread.clone()),
            Target::Direct { user } => (self.dm_channel(user).await?, None),
        };
        let mention = match &out.mention {
            Some(m) => Some(self.mention_markup(m).await),
            None => None,
        };
        let escaped = Outgoing {
            text: escape_text(&out.text),
            ..out.clone()
        };
        let mut messages = render::messages(&escaped, mention.as_deref(), TEXT_LIMIT);
        if let Some(last) = messages.last_mut() {
            let buttons = rich::issue_ids(&out.actions, render::BUTTONS, &self.actions);
            render::add_buttons(last, &buttons);
        }
        for (i, message) in messages.into_iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(PART_PAUSE).await;
            }
            match self
                .post_message(&channel, thread.as_deref(), message)
                .await
            {
                Ok(posted) => {
                    if let (0, Some(channel), Some(ts)) = (
                        i,
                        posted.get("channel").and_then(Value::as_str),
                        posted.get("ts").and_then(Value::as_str),
                    ) {
                        self.remembered
                            .posted(out, (channel.to_owned(), ts.to_owned()));
                    }
                }
                Err(ApiError::Refused { code, .. }) if is_content_error(&code) => {
                    tracing::warn!(code = %code, "slack: rich message refused; sending plain text");
                    let lead = mention
                        .as_deref()
                        .map(|m| format!("{m}: "))
                        .unwrap_or_default();
                    let parts = rich::parts(&escaped, "slack");
                    for piece in rich::plain_pieces(&lead, &parts, TEXT_LIMIT / 2) {
                        let mut m = Map::new();
                        m.insert("text".into(), Value::String(piece));
                        self.post_message(&channel, thread.as_deref(), m).await?;
                        tokio::time::sleep(PART_PAUSE).await;
                    }
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Edits the message remembered under `key` with `chat.update`: its text (a live ack's
    /// status line: its attachments stay), or with [`Outgoing::replaces_whole`] the first
    /// message `out` renders to, attachments and blocks included (a result replacing its
    /// ack). Nothing when the key is unknown.
    async fn update(&self, key: &str, out: &Outgoing) -> Result<(), ApiError> {
        let Some((channel, ts)) = self.remembered.replaced(out) else {
            tracing::debug!(key, "slack: no remembered message to edit");
            return Ok(());
        };
        let escaped = Outgoing {
            text: escape_text(&out.text),
            ..out.clone()
        };
        let mut edit = Map::new();
        if out.replaces_whole
            && let Some(first) = render::messages(&escaped, None, TEXT_LIMIT)
                .into_iter()
                .next()
        {
            // What chat.update takes of a message; the rest is postMessage's own.
            for key in ["text", "attachments", "blocks"] {
                if let Some(v) = first.get(key) {
                    edit.insert(key.into(), v.clone());
                }
            }
            // A text not given would stay as it was (the ack's): clear it.
            if !edit.is_empty() {
                edit.entry("text").or_insert(Value::String(String::new()));
            }
        }
        if edit.is_empty() {
            let text = split_message(&escaped.text, TEXT_LIMIT, char_len).swap_remove(0);
            edit.insert("text".into(), Value::String(text));
        }
        edit.insert("channel".into(), Value::String(channel));
        edit.insert("ts".into(), Value::String(ts));
        self.call("chat.update", Token::Bot, Args::Json(&Value::Object(edit)))
            .await
            .map(|_| ())
    }

    /// `chat.postMessage`; the answer (with the message's `channel` and `ts`).
    async fn post_message(
        &self,
        channel: &str,
        thread: Option<&str>,
        mut message: Map<String, Value>,
    ) -> Result<Value, ApiError> {
        message.insert("channel".into(), Value::String(channel.to_owned()));
        if let Some(ts) = thread {
            message.insert("thread_ts".into(), Value::String(ts.to_owned()));
        }
        self.call(
            "chat.postMessage",
            Token::Bot,
            Args::Json(&Value::Object(message)),
        )
        .await
    }

    /// The DM channel with a user (id or name), opened with `conversations.open`.
    async fn dm_channel(&self, user: &str) -> Result<String, ApiError> {
        let user_id = if looks_like_user_id(user) {
            user.to_owned()
        } else {
            self.user_id_for(user)
                .await
                .ok_or_else(|| ApiError::code(200, format!("user_not_found ({user})")))?
        };
        if let Some(c) = lock(&self.dms).get(&user_id) {
            return Ok(c.clone());
        }
        let body = self
            .call(
                "conversations.open",
                Token::Bot,
                Args::Json(&json!({ "users": user_id })),
            )
            .await?;
        let channel = body
            .pointer("/channel/id")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::Transport("conversations.open: no channel id".into()))?
            .to_owned();
        lock(&self.dms).insert(user_id, channel.clone());
        Ok(channel)
    }

    /// `<@U…>` for a user id or a known name, `@name` otherwise.
    async fn mention_markup(&self, user: &str) -> String {
        if looks_like_user_id(user) {
            return format!("<@{user}>");
        }
        match self.user_id_for(user).await {
            Some(id) => format!("<@{id}>"),
            None => format!("@{}", user.trim_start_matches('@')),
        }
    }
}

/// Errors after which the same words are worth sending as plain text.
fn is_content_error(code: &str) -> bool {
    matches!(
        code,
        "msg_too_long"
            | "msg_blocks_too_long"
            | "invalid_blocks"
            | "invalid_blocks_format"
            | "invalid_attachments"
            | "too_many_attachments"
    )
}

/// Longest id Slack uses for users, channels and message `ts` (ids are about a dozen
/// characters); anything longer in a press is not Slack's.
const MAX_ID_LEN: usize = 64;

/// A `block_actions` payload taken apart: the first button pressed, who pressed it, where.
#[derive(Debug, PartialEq, Eq)]
struct Press<'a> {
    action_id: &'a str,
    user_id: &'a str,
    channel: &'a str,
    /// The thread of the message the button is on, when it is in one.
    thread: Option<&'a str>,
    trigger_id: Option<&'a str>,
}

impl<'a> Press<'a> {
    fn parse(payload: &'a Value) -> Option<Self> {
        if str_field(payload, "type") != Some("block_actions") {
            tracing::debug!(
                kind = str_field(payload, "type"),
                "slack: ignoring an interaction"
            );
            return None;
        }
        let short = |v: Option<&'a str>| v.filter(|s| !s.is_empty() && s.len() <= MAX_ID_LEN);
        let action = payload
            .get("actions")
            .and_then(Value::as_array)
            .and_then(|a| a.first())?;
        let action_id = str_field(action, "action_id").filter(|a| a.len() <= 255)?;
        let user_id = short(payload.pointer("/user/id").and_then(Value::as_str))?;
        let channel = short(
            payload
                .pointer("/channel/id")
                .or_else(|| payload.pointer("/container/channel_id"))
                .and_then(Value::as_str),
        )?;
        let thread = short(
            payload
                .pointer("/container/thread_ts")
                .or_else(|| payload.pointer("/message/thread_ts"))
                .and_then(Value::as_str),
        );
        Some(Self {
            action_id,
            user_id,
            channel,
            thread,
            trigger_id: short(str_field(payload, "trigger_id")),
        })
    }
}

/// A message event taken apart without any lookup: everything an [`Incoming`] needs but
/// the names of the sender, the channel and the users mentioned.
#[derive(Debug)]
struct MessageEvent<'a> {
    user_id: &'a str,
    channel: &'a str,
    ts: &'a str,
    direct: bool,
    /// The text after a leading mention of the bot, still in Slack markup.
    text: &'a str,
    mentioned: bool,
    thread: Option<&'a str>,
}

impl<'a> MessageEvent<'a> {
    /// The message in an event, when it is one for the bot to consider (not its own, not a
    /// bot's, not an edit or other subtype).
    fn parse(event: &'a Value, me: &str) -> Option<Self> {
        let kind = str_field(event, "type")?;
        if kind != "message" && kind != "app_mention" {
            return None;
        }
        if let Some(subtype) = str_field(event, "subtype")
            && subtype != "thread_broadcast"
            && subtype != "file_share"
        {
            return None;
        }
        if event.get("bot_id").is_some_and(|b| !b.is_null())
            || event.get("hidden").and_then(Value::as_bool) == Some(true)
        {
            return None;
        }
        let user_id = str_field(event, "user")?;
        if user_id == me {
            return None;
        }
        let channel = str_field(event, "channel")?;
        let ts = str_field(event, "ts")?;
        let direct = match str_field(event, "channel_type") {
            Some(t) => t == "im",
            None => channel.starts_with('D'),
        };
        let (text, mentioned) =
            strip_leading_mention(str_field(event, "text").unwrap_or_default(), me);
        Some(Self {
            user_id,
            channel,
            ts,
            direct,
            text,
            mentioned,
            thread: str_field(event, "thread_ts"),
        })
    }

    /// The message, given the names looked up (`room_name` is `None` for a DM).
    fn into_incoming(
        self,
        user: String,
        room_name: Option<String>,
        names: &HashMap<String, String>,
    ) -> Incoming {
        Incoming {
            user_id: self.user_id.to_owned(),
            user,
            room: room_name.map(|name| Room {
                id: self.channel.to_owned(),
                name,
            }),
            text: rich::normalize_typography(decode_markup(self.text, names).trim()),
            mentioned: self.mentioned,
            thread: self.thread.map(str::to_owned),
            message_id: Some(self.ts.to_owned()),
        }
    }
}

/// The fuzz target's way in: an Events API payload (as Socket Mode delivers it) to the
/// message it carries, with ids standing in for the names Slack would be asked for.
#[doc(hidden)]
pub fn incoming_from_payload(payload: &[u8], me: &str) -> Option<Incoming> {
    let payload: Value = serde_json::from_slice(payload).ok()?;
    let event = payload.get("event").unwrap_or(&Value::Null);
    let m = MessageEvent::parse(event, me)?;
    let names = mentioned_users(m.text)
        .into_iter()
        .map(|id| (id.clone(), id))
        .collect();
    let room_name = (!m.direct).then(|| m.channel.to_owned());
    let user = m.user_id.to_owned();
    Some(m.into_incoming(user, room_name, &names))
}

/// Slack user ids: `U…` or `W…` (enterprise), upper-case letters and digits.
fn looks_like_user_id(s: &str) -> bool {
    s.len() >= 9
        && (s.starts_with('U') || s.starts_with('W'))
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// Removes a leading `<@BOT>` (or `<@BOT|name>`) and the `:`/`,` after it.
fn strip_leading_mention<'a>(text: &'a str, bot: &str) -> (&'a str, bool) {
    mention::split(text, bot, &mention::SLACK)
}

/// User ids mentioned as `<@U…>` in `text`.
fn mentioned_users(text: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("<@") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('>') else { break };
        let id = after[..end].split('|').next().unwrap_or_default();
        if !id.is_empty() && !ids.iter().any(|i| i == id) {
            ids.push(id.to_owned());
        }
        rest = &after[end + 1..];
    }
    ids
}

/// Slack's message markup back to what the user typed: `<url|label>` → label, `<url>` →
/// url, `<@U1>` → `@name`, `<#C1|ops>` → `#ops`, `<!here>` → `@here`, then `&lt;` `&gt;`
/// `&amp;` unescaped.
fn decode_markup(text: &str, names: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        out.push_str(&unescape(&rest[..start]));
        let after = &rest[start + 1..];
        let Some(end) = after.find('>') else {
            out.push_str(&unescape(&rest[start..]));
            rest = "";
            break;
        };
        let inner = &after[..end];
        let (target, label) = match inner.split_once('|') {
            Some((t, l)) => (t, Some(l)),
            None => (inner, None),
        };
        let rendered = if let Some(id) = target.strip_prefix('@') {
            let name = names.get(id).map(String::as_str).or(label).unwrap_or(id);
            format!("@{}", name.trim_start_matches('@'))
        } else if let Some(id) = target.strip_prefix('#') {
            format!("#{}", label.unwrap_or(id))
        } else if let Some(special) = target.strip_prefix('!') {
            match label {
                Some(l) => l.to_owned(),
                None => format!("@{}", special.split('^').next().unwrap_or(special)),
            }
        } else {
            label.unwrap_or(target).to_owned()
        };
        out.push_str(&unescape(&rendered));
        rest = &after[end + 1..];
    }
    out.push_str(&unescape(rest));
    out
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Escapes `&`, `<` and `>` for Slack, except in Slack's own markup (`<@U1>`, `<#C1>`,
/// `<!here>`, `<https://…|label>`, `<mailto:…>`) and existing entities, so command output
/// such as `<none>` shows as typed while templates can still mention and link.
fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let bytes = text.as_bytes();
    while i < text.len() {
        let c = bytes[i];
        match c {
            b'<' => {
                let after = &text[i + 1..];
                let markup = after.find('>').filter(|end| {
                    let inner = &after[..*end];
                    !inner.contains(['<', '\n'])
                        && (inner.starts_with(['@', '#', '!'])
                            || inner.starts_with("http://")
                            || inner.starts_with("https://")
                            || inner.starts_with("mailto:"))
                });
                match markup {
                    Some(end) => {
                        out.push_str(&text[i..i + end + 2]);
                        i += end + 2;
                    }
                    None => {
                        out.push_str("&lt;");
                        i += 1;
                    }
                }
            }
            b'>' => {
                out.push_str("&gt;");
                i += 1;
            }
            b'&' => {
                let after = &text[i + 1..];
                if ["amp;", "lt;", "gt;"].iter().any(|e| after.starts_with(e)) {
                    out.push('&');
                } else {
                    out.push_str("&amp;");
                }
                i += 1;
            }
            _ => {
                let ch = text[i..].chars().next().unwrap_or_default();
                out.push(ch);
                i += ch.len_utf8().max(1);
            }
        }
    }
    out
}

/// Echoed user text with Slack's mass mentions (`<!here>`, `<!channel>`, `<!everyone>`,
/// `<!subteam^…>`) made plain text: their `<` becomes `&lt;`, which [`escape_text`] keeps.
pub fn defuse_mass_mentions(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("<!") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let mass = ["here", "channel", "everyone", "subteam^"]
            .iter()
            .any(|w| after.starts_with(w));
        out.push_str(if mass { "&lt;!" } else { "<!" });
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_only_a_leading_bot_mention() {
        assert_eq!(
            strip_leading_mention("<@UBOT> help", "UBOT"),
            ("help", true)
        );
        assert_eq!(
            strip_leading_mention(" <@UBOT|st2>: help", "UBOT"),
            ("help", true)
        );
        assert_eq!(
            strip_leading_mention("<@UBOTX> help", "UBOT"),
            ("<@UBOTX> help", false)
        );
        assert_eq!(
            strip_leading_mention("hi <@UBOT>", "UBOT"),
            ("hi <@UBOT>", false)
        );
    }

    #[test]
    fn decodes_markup() {
        let names = HashMap::from([("U2".to_owned(), "bob".to_owned())]);
        assert_eq!(
            decode_markup(
                "run ping <http://example.com|example.com> for <@U2> in <#C1|ops> &lt;x&gt; &amp; <!here> <https://a.b/c>",
                &names
            ),
            "run ping example.com for @bob in #ops <x> & @here https://a.b/c"
        );
        assert_eq!(decode_markup("a < b", &names), "a < b");
        assert_eq!(
            mentioned_users("<@U2> and <@U3|c> and <@U2>"),
            vec!["U2", "U3"]
        );
    }

    #[test]
    fn escapes_text_but_keeps_markup() {
        assert_eq!(
            escape_text("<@U1> got <none> & a -> b <https://x.y|link> &amp;"),
            "<@U1> got &lt;none&gt; &amp; a -&gt; b <https://x.y|link> &amp;"
        );
        assert_eq!(escape_text("é<"), "é&lt;");
    }

    #[test]
    fn a_block_actions_press_is_taken_apart_and_anything_else_is_ignored() {
        let payload = json!({
            "type": "block_actions",
            "user": {"id": "U0BOB0001", "username": "admin", "name": "admin"},
            "container": {"type": "message", "message_ts": "1.2", "channel_id": "C1", "thread_ts": "1.1"},
            "channel": {"id": "C1", "name": "ops"},
            "trigger_id": "123.abc",
            "actions": [{"type": "button", "action_id": "st2bot-1", "value": "st2bot-1"}],
        });
        assert_eq!(
            Press::parse(&payload),
            Some(Press {
                action_id: "st2bot-1",
                user_id: "U0BOB0001",
                channel: "C1",
                thread: Some("1.1"),
                trigger_id: Some("123.abc"),
            })
        );
        let mut other = payload.clone();
        other["type"] = json!("view_submission");
        assert_eq!(Press::parse(&other), None);
        let mut no_actions = payload.clone();
        no_actions["actions"] = json!([]);
        assert_eq!(Press::parse(&no_actions), None);
        let mut long_user = payload.clone();
        long_user["user"]["id"] = json!("U".repeat(1000));
        assert_eq!(Press::parse(&long_user), None);
    }

    #[test]
    fn user_ids() {
        assert!(looks_like_user_id("U012ABCDEF"));
        assert!(!looks_like_user_id("alice"));
    }
}
