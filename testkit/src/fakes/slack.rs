//! A fake Slack for the Slack backend's tests: the Web API methods the bot calls and a
//! Socket Mode WebSocket, on 127.0.0.1, with Slack's JSON shapes, frames and error codes.
//!
//! Built from Slack's public documentation:
//! - Socket Mode: <https://api.slack.com/apis/socket-mode> (`hello`, envelopes with
//!   `envelope_id`/`payload`/`retry_attempt`/`retry_reason`, acks `{"envelope_id"}`, unacked
//!   envelopes redelivered, `disconnect` with `refresh_requested`/`warning`/`link_disabled`);
//! - <https://api.slack.com/methods/apps.connections.open> (app-level token in the
//!   Authorization header only; a bot token is `not_allowed_token_type`);
//! - <https://api.slack.com/methods/chat.postMessage> (`channel`, `text`/`attachments`/
//!   `blocks`, `thread_ts`; errors `channel_not_found`, `not_in_channel`, `no_text`,
//!   `msg_too_long` past 40,000 characters, `invalid_blocks`, `too_many_attachments`);
//! - <https://api.slack.com/methods/chat.update> (`channel`, `ts`, `text`, `attachments`,
//!   `blocks`, checked as `chat.postMessage` checks them; the message keeps its attachments
//!   and blocks when none are given; errors `message_not_found`, `no_text`, `msg_too_long`);
//! - <https://api.slack.com/methods/auth.test>, `users.info`, `users.list`,
//!   `conversations.info` (form or query arguments only: a JSON body is not read),
//!   `conversations.open` (JSON accepted);
//! - <https://api.slack.com/apis/rate-limits> (HTTP 429, `Retry-After` seconds,
//!   `{"ok":false,"error":"ratelimited"}`), <https://api.slack.com/web#responses>
//!   (`{"ok":false,"error":…}` with HTTP 200; `invalid_auth`, `not_authed`);
//! - buttons: <https://api.slack.com/reference/block-kit/block-elements#button> (`actions`
//!   blocks of at most 25 elements; a button needs `action_id` of at most 255 characters,
//!   `text` plain_text of at most 75, `value` of at most 2000, `style` `primary`/`danger`),
//!   <https://api.slack.com/reference/interaction-payloads/block-actions> (the press payload)
//!   and <https://api.slack.com/apis/connections/socket-implement> (delivered as an
//!   `interactive` envelope, acknowledged with `{"envelope_id"}` within 3 s);
//!   <https://api.slack.com/methods/chat.postEphemeral> (`channel`, `user`, `text`);
//! - <https://api.slack.com/events/message> and <https://api.slack.com/events/app_mention>
//!   (event shapes; a mention in a channel arrives as both events; the bot's own posts come
//!   back as `message` events with `bot_id`).
//!
//! Tests drive it with [`SlackFake::user_says`] and [`SlackFake::press`] (a button) and
//! read what the bot posted with
//! [`SlackFake::wait_posts`]; failures are injected with [`SlackFake::rate_limit`],
//! [`SlackFake::drop_connections`] and [`SlackFake::request_refresh`].

// Shared by several test binaries: each uses a part, and `pub` marks the API they use.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::ws::{self, Served, ServerSocket};

/// The app-level token the fake accepts for `apps.connections.open`.
pub const APP_TOKEN: &str = "xapp-1-A0FAKE-1-0123456789";
/// The bot token the fake accepts for every other method.
pub const BOT_TOKEN: &str = "xoxb-1111-2222-fakebot";
/// The bot's user id and name.
pub const BOT_USER: &str = "U0BOT0001";
pub const BOT_NAME: &str = "st2bot";
pub const BOT_ID: &str = "B0BOT0001";
/// Users and channels every fake starts with.
pub const ALICE: &str = "U0ALICE01";
pub const BOB: &str = "U0BOB0001";
pub const OPS: &str = "C0OPS0001";
pub const PRIVATE: &str = "G0PRIV001";
pub const ALICE_DM: &str = "D0ALICE01";
const TEAM: &str = "T0FAKE001";
const APP_ID: &str = "A0FAKE001";
/// Slack cuts `text` at 40,000 characters and refuses longer with `msg_too_long`.
pub const TEXT_HARD_LIMIT: usize = 40_000;
/// Characters in one section block's text.
const SECTION_TEXT_LIMIT: usize = 3000;
/// Blocks per message, attachments per message.
const MAX_BLOCKS: usize = 50;
const MAX_ATTACHMENTS: usize = 100;
/// Elements in an `actions` block; characters of a button's text, `action_id`, `value`.
const MAX_ACTION_ELEMENTS: usize = 25;
const BUTTON_TEXT_LIMIT: usize = 75;
const ACTION_ID_LIMIT: usize = 255;
const BUTTON_VALUE_LIMIT: usize = 2000;
/// Slack redelivers an unacknowledged envelope up to three times.
const MAX_REDELIVERIES: u32 = 3;

/// A message the bot posted with `chat.postMessage`.
#[derive(Clone, Debug)]
pub struct Posted {
    /// Channel id it landed in.
    pub channel: String,
    /// Its `ts`.
    pub ts: String,
    /// `thread_ts`, when it was a thread reply.
    pub thread_ts: Option<String>,
    /// `text`.
    pub text: Option<String>,
    /// `attachments`.
    pub attachments: Option<Value>,
    /// `blocks`.
    pub blocks: Option<Value>,
    /// The whole request, arguments merged.
    pub body: Value,
    /// Texts set by `chat.update`, oldest first (the message's `text` is the last).
    pub edits: Vec<String>,
}

/// A message only one user sees (`chat.postEphemeral`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ephemeral {
    /// Channel.
    pub channel: String,
    /// The user who sees it.
    pub user: String,
    /// Its text.
    pub text: String,
}

/// How a channel is typed, as `conversations.info` says and `channel_type` in events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Public channel.
    Channel,
    /// Private channel.
    Group,
    /// Direct message.
    Im,
}

impl Kind {
    fn event_type(self) -> &'static str {
        match self {
            Kind::Channel => "channel",
            Kind::Group => "group",
            Kind::Im => "im",
        }
    }
}

#[derive(Clone, Debug)]
struct Channel {
    name: String,
    kind: Kind,
    members: Vec<String>,
}

enum Command {
    Frame(String),
    Disconnect(&'static str),
    Drop,
}

struct Pending {
    frame: Value,
    attempts: u32,
    sent: bool,
}

#[derive(Default)]
struct Inner {
    users: BTreeMap<String, String>,
    channels: BTreeMap<String, Channel>,
    posts: Vec<Posted>,
    rejections: Vec<(String, String)>,
    calls: Vec<String>,
    tickets: HashSet<String>,
    sockets: Vec<(u64, mpsc::UnboundedSender<Command>)>,
    connections_opened: u64,
    pending: HashMap<String, Pending>,
    deliveries: Vec<Value>,
    acks: Vec<String>,
    ephemerals: Vec<Ephemeral>,
    rate_limits: HashMap<String, (u32, u64)>,
    rate_limited: u32,
    counter: u64,
}

struct Shared {
    addr: SocketAddr,
    ack_timeout: Duration,
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The running fake. Dropping it stops the server and closes every socket.
pub struct SlackFake {
    shared: Arc<Shared>,
    _server: Served,
}

impl Drop for SlackFake {
    fn drop(&mut self) {
        for (_, tx) in self.shared.lock().sockets.drain(..) {
            let _ = tx.send(Command::Drop);
        }
    }
}

impl SlackFake {
    /// Starts a fake with Slack's 3 s acknowledgement window.
    pub async fn start() -> Self {
        Self::start_with_ack_timeout(Duration::from_secs(3)).await
    }

    /// Starts a fake that redelivers envelopes not acknowledged within `ack_timeout`.
    pub async fn start_with_ack_timeout(ack_timeout: Duration) -> Self {
        let listener = Served::bind().await;
        let addr = listener.local_addr().expect("local addr");
        let mut inner = Inner::default();
        for (id, name) in [(ALICE, "alice"), (BOB, "bob"), (BOT_USER, BOT_NAME)] {
            inner.users.insert(id.into(), name.into());
        }
        let everyone = vec![ALICE.to_owned(), BOB.to_owned(), BOT_USER.to_owned()];
        inner.channels.insert(
            OPS.into(),
            Channel {
                name: "ops".into(),
                kind: Kind::Channel,
                members: everyone.clone(),
            },
        );
        inner.channels.insert(
            PRIVATE.into(),
            Channel {
                name: "secret-ops".into(),
                kind: Kind::Group,
                members: everyone,
            },
        );
        inner.channels.insert(
            ALICE_DM.into(),
            Channel {
                name: ALICE.into(),
                kind: Kind::Im,
                members: vec![ALICE.to_owned(), BOT_USER.to_owned()],
            },
        );
        let shared = Arc::new(Shared {
            addr,
            ack_timeout,
            inner: Mutex::new(inner),
        });
        let app = Router::new()
            .route("/api/{method}", any(web_api))
            .route("/link/", any(link))
            .with_state(shared.clone());
        Self {
            shared,
            _server: Served::serve(listener, app),
        }
    }

    /// The Web API base URL (`backend.url` in a definition).
    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.shared.addr)
    }

    /// Adds a user.
    pub fn add_user(&self, id: &str, name: &str) {
        self.shared.lock().users.insert(id.into(), name.into());
    }

    /// A user posts `text` in `channel` (in the thread of `thread_ts` when given), as a
    /// Slack client would: a `message` event, plus an `app_mention` event when the text
    /// mentions the bot outside a DM. Returns the message's `ts`.
    pub fn user_says(
        &self,
        user: &str,
        channel: &str,
        text: &str,
        thread_ts: Option<&str>,
    ) -> String {
        let (ts, kind) = {
            let mut inner = self.shared.lock();
            let kind = inner.channels.get(channel).expect("known channel").kind;
            (next_ts(&mut inner), kind)
        };
        let mut event = json!({
            "type": "message",
            "channel": channel,
            "user": user,
            "text": text,
            "ts": ts,
            "event_ts": ts,
            "channel_type": kind.event_type(),
            "team": TEAM,
            "client_msg_id": format!("{ts}-client"),
            "blocks": [{
                "type": "rich_text",
                "block_id": "fake",
                "elements": [{"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}],
            }],
        });
        if let Some(parent) = thread_ts {
            event["thread_ts"] = json!(parent);
            event["parent_user_id"] = json!(user);
        }
        self.deliver_event(event);
        if kind != Kind::Im && text.contains(&format!("<@{BOT_USER}>")) {
            let mut mention = json!({
                "type": "app_mention",
                "user": user,
                "text": text,
                "ts": ts,
                "channel": channel,
                "event_ts": ts,
                "team": TEAM,
            });
            if let Some(parent) = thread_ts {
                mention["thread_ts"] = json!(parent);
            }
            self.deliver_event(mention);
        }
        ts
    }

    /// A user edits a message (`message_changed`): bots must not run edits.
    pub fn user_edits(&self, user: &str, channel: &str, ts: &str, new_text: &str) {
        let event_ts = next_ts(&mut self.shared.lock());
        self.deliver_event(json!({
            "type": "message",
            "subtype": "message_changed",
            "channel": channel,
            "hidden": true,
            "ts": event_ts,
            "event_ts": event_ts,
            "channel_type": "channel",
            "message": {"type": "message", "user": user, "text": new_text, "ts": ts, "edited": {"user": user, "ts": event_ts}},
        }));
    }

    /// Wraps `event` in an `event_callback` payload and an `events_api` envelope and sends
    /// it on the newest socket (or to the next one that connects). Returns the `event_id`.
    pub fn deliver_event(&self, event: Value) -> String {
        deliver_event(&self.shared, event)
    }

    /// `user` presses the button labelled `label` on `post`, as a Slack client does: a
    /// `block_actions` payload in an `interactive` envelope. Returns whether the bot
    /// acknowledged the envelope within Slack's 3 s (unacknowledged, Slack redelivers it).
    pub async fn press(&self, user: &str, post: &Posted, label: &str) -> bool {
        let button = post
            .blocks
            .iter()
            .flat_map(|b| b.as_array().into_iter().flatten())
            .filter(|b| b["type"] == "actions")
            .flat_map(|b| b["elements"].as_array().into_iter().flatten())
            .find(|e| e.pointer("/text/text").and_then(Value::as_str) == Some(label))
            .unwrap_or_else(|| panic!("no button `{label}` on {post:#?}"))
            .clone();
        self.press_action(user, post, button).await
    }

    /// `user` presses a button with this `action_id` on `post`, whether or not the bot
    /// posted one (a forged or stale press). Returns whether the envelope was acknowledged.
    pub async fn press_forged(&self, user: &str, post: &Posted, action_id: &str) -> bool {
        let button = json!({"type": "button", "action_id": action_id, "value": action_id,
                            "text": {"type": "plain_text", "text": "Approve", "emoji": true}});
        self.press_action(user, post, button).await
    }

    async fn press_action(&self, user: &str, post: &Posted, button: Value) -> bool {
        let envelope_id = {
            let mut inner = self.shared.lock();
            let name = inner.users.get(user).cloned().expect("known user");
            let channel_name = inner
                .channels
                .get(&post.channel)
                .map(|c| {
                    if c.kind == Kind::Im {
                        "directmessage".to_owned()
                    } else {
                        c.name.clone()
                    }
                })
                .unwrap_or_default();
            let action_ts = next_ts(&mut inner);
            let trigger_id = format!("{}.{}", next_id(&mut inner, ""), "fake-trigger");
            let mut action = button;
            action["block_id"] = json!("fake-block");
            action["action_ts"] = json!(action_ts);
            let mut container = json!({"type": "message", "message_ts": post.ts,
                                       "channel_id": post.channel, "is_ephemeral": false});
            let mut message = json!({"type": "message", "user": BOT_USER, "bot_id": BOT_ID,
                                     "ts": post.ts, "text": post.text, "blocks": post.blocks});
            if let Some(t) = &post.thread_ts {
                container["thread_ts"] = json!(t);
                message["thread_ts"] = json!(t);
            }
            let envelope_id = format!("env-{}", next_id(&mut inner, ""));
            let frame = json!({
                "envelope_id": envelope_id,
                "payload": {
                    "type": "block_actions",
                    // Names the client shows; a bot must not take them on trust.
                    "user": {"id": user, "username": name, "name": name, "team_id": TEAM},
                    "api_app_id": APP_ID,
                    "token": "fake-verification-token",
                    "container": container,
                    "trigger_id": trigger_id,
                    "team": {"id": TEAM, "domain": "fake"},
                    "enterprise": null,
                    "is_enterprise_install": false,
                    "channel": {"id": post.channel, "name": channel_name},
                    "message": message,
                    "state": {"values": {}},
                    "response_url": "https://hooks.slack.invalid/actions/fake",
                    "actions": [action],
                },
                "type": "interactive",
                "accepts_response_payload": false,
            });
            let sent = send_frame(&mut inner, &frame);
            inner.pending.insert(
                envelope_id.clone(),
                Pending {
                    frame,
                    attempts: 0,
                    sent,
                },
            );
            envelope_id
        };
        let shared = self.shared.clone();
        let id = envelope_id.clone();
        tokio::spawn(async move { redeliver_until_acked(shared, id).await });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while tokio::time::Instant::now() < deadline {
            if self.acks().contains(&envelope_id) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// Messages posted with `chat.postEphemeral`.
    pub fn ephemerals(&self) -> Vec<Ephemeral> {
        self.shared.lock().ephemerals.clone()
    }

    /// The next `times` calls of `method` answer HTTP 429 with `Retry-After: retry_after`.
    pub fn rate_limit(&self, method: &str, times: u32, retry_after: u64) {
        self.shared
            .lock()
            .rate_limits
            .insert(method.into(), (times, retry_after));
    }

    /// How many calls were answered 429.
    pub fn rate_limited(&self) -> u32 {
        self.shared.lock().rate_limited
    }

    /// Cuts every open socket without a close frame (a network drop).
    pub fn drop_connections(&self) {
        for (_, tx) in self.shared.lock().sockets.drain(..) {
            let _ = tx.send(Command::Drop);
        }
    }

    /// Sends `disconnect` with `refresh_requested` on every socket, then closes it.
    pub fn request_refresh(&self) {
        self.disconnect_all("refresh_requested");
    }

    /// Sends `disconnect` with `reason` on every socket, then closes it.
    pub fn disconnect_all(&self, reason: &'static str) {
        for (_, tx) in self.shared.lock().sockets.drain(..) {
            let _ = tx.send(Command::Disconnect(reason));
        }
    }

    /// Sockets opened so far.
    pub fn connections_opened(&self) -> u64 {
        self.shared.lock().connections_opened
    }

    /// Sockets open now.
    pub fn open_sockets(&self) -> usize {
        self.shared.lock().sockets.len()
    }

    /// Every envelope frame sent, redeliveries included.
    pub fn deliveries(&self) -> Vec<Value> {
        self.shared.lock().deliveries.clone()
    }

    /// Envelope ids acknowledged by the client, in order.
    pub fn acks(&self) -> Vec<String> {
        self.shared.lock().acks.clone()
    }

    /// Envelopes still waiting for an ack.
    pub fn unacked(&self) -> usize {
        self.shared.lock().pending.len()
    }

    /// Method calls answered `ok: false`, as (method, error).
    pub fn rejections(&self) -> Vec<(String, String)> {
        self.shared.lock().rejections.clone()
    }

    /// Every method called, in order.
    pub fn calls(&self) -> Vec<String> {
        self.shared.lock().calls.clone()
    }

    /// Messages posted so far.
    pub fn posts(&self) -> Vec<Posted> {
        self.shared.lock().posts.clone()
    }

    /// Waits until at least `n` messages were posted (panics after `timeout`).
    pub async fn wait_posts(&self, n: usize, timeout: Duration) -> Vec<Posted> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let posts = self.posts();
            if posts.len() >= n {
                return posts;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "expected {n} posts within {timeout:?}, got {}: {posts:#?}; rejections {:?}",
                    posts.len(),
                    self.rejections()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `condition` holds (panics after `timeout`).
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        condition: impl Fn(&Self) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        while !condition(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn next_ts(inner: &mut Inner) -> String {
    inner.counter += 1;
    format!(
        "{}.{:06}",
        1_700_000_000 + inner.counter,
        inner.counter % 1_000_000
    )
}

fn next_id(inner: &mut Inner, prefix: &str) -> String {
    inner.counter += 1;
    format!("{prefix}{:08}", inner.counter)
}

fn deliver_event(shared: &Arc<Shared>, event: Value) -> String {
    let (envelope_id, event_id) = {
        let mut inner = shared.lock();
        let event_id = next_id(&mut inner, "Ev0");
        let envelope_id = format!("env-{}", next_id(&mut inner, ""));
        let frame = json!({
            "envelope_id": envelope_id,
            "payload": {
                "token": "fake-verification-token",
                "team_id": TEAM,
                "api_app_id": APP_ID,
                "event": event,
                "type": "event_callback",
                "event_id": event_id,
                "event_time": 1_700_000_000u64 + inner.counter,
                "authorizations": [{"enterprise_id": null, "team_id": TEAM, "user_id": BOT_USER, "is_bot": true, "is_enterprise_install": false}],
                "is_ext_shared_channel": false,
            },
            "type": "events_api",
            "accepts_response_payload": false,
            "retry_attempt": 0,
            "retry_reason": "",
        });
        let sent = send_frame(&mut inner, &frame);
        inner.pending.insert(
            envelope_id.clone(),
            Pending {
                frame,
                attempts: 0,
                sent,
            },
        );
        (envelope_id, event_id)
    };
    let shared = shared.clone();
    tokio::spawn(async move { redeliver_until_acked(shared, envelope_id).await });
    event_id
}

/// Sends on the newest socket; `false` when none is open.
fn send_frame(inner: &mut Inner, frame: &Value) -> bool {
    let text = frame.to_string();
    while let Some((_, tx)) = inner.sockets.last() {
        if tx.send(Command::Frame(text.clone())).is_ok() {
            inner.deliveries.push(frame.clone());
            return true;
        }
        inner.sockets.pop();
    }
    false
}

/// Slack's retry policy: an envelope not acknowledged in time is sent again, with
/// `retry_attempt` counting up and `retry_reason: "timeout"`, up to three times.
async fn redeliver_until_acked(shared: Arc<Shared>, envelope_id: String) {
    loop {
        tokio::time::sleep(shared.ack_timeout).await;
        let mut inner = shared.lock();
        let Some(pending) = inner.pending.get_mut(&envelope_id) else {
            return;
        };
        if pending.attempts >= MAX_REDELIVERIES {
            inner.pending.remove(&envelope_id);
            return;
        }
        if pending.sent {
            pending.attempts += 1;
            pending.frame["retry_attempt"] = json!(pending.attempts);
            pending.frame["retry_reason"] = json!("timeout");
        }
        let frame = pending.frame.clone();
        let sent = send_frame(&mut inner, &frame);
        if let Some(p) = inner.pending.get_mut(&envelope_id) {
            p.sent |= sent;
        }
    }
}

/// `GET /link/?ticket=…`: the Socket Mode WebSocket. Each ticket from
/// `apps.connections.open` works once.
async fn link(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let ticket = request
        .uri()
        .query()
        .and_then(|q| url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "ticket"))
        .map(|(_, v)| v.into_owned());
    let valid = ticket.is_some_and(|t| shared.lock().tickets.remove(&t));
    if !valid {
        return (StatusCode::UNAUTHORIZED, "invalid or used ticket").into_response();
    }
    let shared = shared.clone();
    ws::upgrade(request, move |socket| socket_session(shared, socket))
}

async fn socket_session(shared: Arc<Shared>, mut socket: ServerSocket) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (id, connections, backlog) = {
        let mut inner = shared.lock();
        inner.connections_opened += 1;
        let id = inner.connections_opened;
        inner.sockets.push((id, tx));
        let backlog: Vec<Value> = inner
            .pending
            .values()
            .filter(|p| !p.sent)
            .map(|p| p.frame.clone())
            .collect();
        (id, inner.sockets.len(), backlog)
    };
    let hello = json!({
        "type": "hello",
        "num_connections": connections,
        "debug_info": {"host": "applink-fake-1", "build_number": 1, "approximate_connection_time": 18060},
        "connection_info": {"app_id": APP_ID},
    });
    if socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    {
        let mut inner = shared.lock();
        for frame in backlog {
            if send_frame(&mut inner, &frame)
                && let Some(id) = frame["envelope_id"].as_str()
                && let Some(p) = inner.pending.get_mut(id)
            {
                p.sent = true;
            }
        }
    }
    loop {
        tokio::select! {
            command = rx.recv() => match command {
                Some(Command::Frame(text)) => {
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Some(Command::Disconnect(reason)) => {
                    let frame = json!({"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake-1"}});
                    let _ = socket.send(Message::Text(frame.to_string().into())).await;
                    let _ = socket.close(None).await;
                    break;
                }
                Some(Command::Drop) | None => break,
            },
            incoming = socket.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                    if let Some(envelope_id) = frame.get("envelope_id").and_then(Value::as_str) {
                        let mut inner = shared.lock();
                        inner.pending.remove(envelope_id);
                        inner.acks.push(envelope_id.to_owned());
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    shared.lock().sockets.retain(|(sid, _)| *sid != id);
}

/// One Web API response: HTTP 200 with `ok`, as Slack answers.
fn ok(mut body: Value) -> Response {
    body["ok"] = json!(true);
    axum::Json(body).into_response()
}

fn fail(shared: &Shared, method: &str, error: &str) -> Response {
    shared
        .lock()
        .rejections
        .push((method.to_owned(), error.to_owned()));
    axum::Json(json!({"ok": false, "error": error})).into_response()
}

/// The arguments of a call: query string, then a form body, or a JSON body for the methods
/// that accept JSON.
fn arguments(
    query: Option<&str>,
    content_type: &str,
    body: &[u8],
    json_ok: bool,
) -> Map<String, Value> {
    let mut args = Map::new();
    let mut add_form = |bytes: &[u8]| {
        for (k, v) in url::form_urlencoded::parse(bytes) {
            args.insert(k.into_owned(), Value::String(v.into_owned()));
        }
    };
    if let Some(q) = query {
        add_form(q.as_bytes());
    }
    if content_type.starts_with("application/x-www-form-urlencoded") {
        add_form(body);
    } else if content_type.starts_with("application/json")
        && json_ok
        && let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(body)
    {
        args.extend(m);
    }
    args
}

/// `/api/{method}`.
async fn web_api(
    State(shared): State<Arc<Shared>>,
    Path(method): Path<String>,
    request: Request,
) -> Response {
    let auth = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let query = request.uri().query().map(str::to_owned);
    let Ok(body) = axum::body::to_bytes(request.into_body(), 1 << 20).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "too large").into_response();
    };
    let json_ok = matches!(
        method.as_str(),
        "chat.postMessage"
            | "chat.postEphemeral"
            | "chat.update"
            | "conversations.open"
            | "auth.test"
            | "apps.connections.open"
    );
    let args = arguments(query.as_deref(), &content_type, &body, json_ok);
    shared.lock().calls.push(method.clone());

    let token = auth.or_else(|| {
        (method != "apps.connections.open")
            .then(|| args.get("token").and_then(Value::as_str).map(str::to_owned))
            .flatten()
    });
    let wanted = if method == "apps.connections.open" {
        APP_TOKEN
    } else {
        BOT_TOKEN
    };
    match token.as_deref() {
        None => return fail(&shared, &method, "not_authed"),
        Some(t) if t == wanted => {}
        Some(APP_TOKEN) | Some(BOT_TOKEN) => {
            return fail(&shared, &method, "not_allowed_token_type");
        }
        Some(_) => return fail(&shared, &method, "invalid_auth"),
    }
    {
        let mut inner = shared.lock();
        if let Some((times, secs)) = inner.rate_limits.get_mut(&method)
            && *times > 0
        {
            *times -= 1;
            let secs = *secs;
            inner.rate_limited += 1;
            inner
                .rejections
                .push((method.clone(), "ratelimited".into()));
            return Response::builder()
                .status(StatusCode::TOO_MANY_REQUESTS)
                .header(header::RETRY_AFTER, secs.to_string())
                .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
                .body(Body::from(
                    json!({"ok": false, "error": "ratelimited"}).to_string(),
                ))
                .expect("static response");
        }
    }
    let arg = |k: &str| args.get(k).and_then(Value::as_str).map(str::to_owned);
    match method.as_str() {
        "apps.connections.open" => {
            let ticket = {
                let mut inner = shared.lock();
                let t = next_id(&mut inner, "ticket-");
                inner.tickets.insert(t.clone());
                t
            };
            ok(
                json!({"url": format!("ws://{}/link/?ticket={ticket}&app_id={APP_ID}", shared.addr)}),
            )
        }
        "auth.test" => ok(json!({
            "url": "https://fake.slack.com/",
            "team": "Fake Team",
            "user": BOT_NAME,
            "team_id": TEAM,
            "user_id": BOT_USER,
            "bot_id": BOT_ID,
            "is_enterprise_install": false,
        })),
        "users.info" => {
            let id = arg("user").unwrap_or_default();
            let name = shared.lock().users.get(&id).cloned();
            match name {
                Some(name) => ok(json!({"user": user_object(&id, &name)})),
                None => fail(&shared, &method, "user_not_found"),
            }
        }
        "users.list" => {
            let limit = arg("limit")
                .and_then(|l| l.parse::<usize>().ok())
                .filter(|l| *l > 0)
                .unwrap_or(100);
            let start = arg("cursor")
                .and_then(|c| {
                    c.strip_prefix("dXNlcjo")
                        .and_then(|n| n.parse::<usize>().ok())
                })
                .unwrap_or(0);
            let users: Vec<(String, String)> = shared.lock().users.clone().into_iter().collect();
            let page: Vec<Value> = users
                .iter()
                .skip(start)
                .take(limit)
                .map(|(id, n)| user_object(id, n))
                .collect();
            let next = if start + limit < users.len() {
                format!("dXNlcjo{}", start + limit)
            } else {
                String::new()
            };
            ok(
                json!({"members": page, "cache_ts": 1_700_000_000u64, "response_metadata": {"next_cursor": next}}),
            )
        }
        "conversations.info" => {
            let id = arg("channel").unwrap_or_default();
            let channel = shared.lock().channels.get(&id).cloned();
            match channel {
                Some(c) => ok(json!({"channel": channel_object(&id, &c)})),
                None => fail(&shared, &method, "channel_not_found"),
            }
        }
        "conversations.open" => {
            let users = arg("users").unwrap_or_default();
            let ids: Vec<&str> = users
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .collect();
            let mut inner = shared.lock();
            if ids.len() != 1 {
                drop(inner);
                return fail(
                    &shared,
                    &method,
                    if ids.is_empty() {
                        "users_list_not_supplied"
                    } else {
                        "not_enough_users"
                    },
                );
            }
            if !inner.users.contains_key(ids[0]) {
                drop(inner);
                return fail(&shared, &method, "user_not_found");
            }
            let existing = inner
                .channels
                .iter()
                .find(|(_, c)| c.kind == Kind::Im && c.members.iter().any(|m| m == ids[0]))
                .map(|(id, _)| id.clone());
            let (id, already) = match existing {
                Some(id) => (id, true),
                None => {
                    let id = next_id(&mut inner, "D0");
                    inner.channels.insert(
                        id.clone(),
                        Channel {
                            name: ids[0].to_owned(),
                            kind: Kind::Im,
                            members: vec![ids[0].to_owned(), BOT_USER.to_owned()],
                        },
                    );
                    (id, false)
                }
            };
            ok(json!({"no_op": already, "already_open": already, "channel": {"id": id}}))
        }
        "chat.postMessage" => post_message(&shared, &args),
        "chat.update" => update_message(&shared, &args),
        "chat.postEphemeral" => {
            let (Some(channel), Some(user)) = (arg("channel"), arg("user")) else {
                return fail(&shared, &method, "channel_not_found");
            };
            let text = arg("text").unwrap_or_default();
            if text.trim().is_empty() {
                return fail(&shared, &method, "no_text");
            }
            let mut inner = shared.lock();
            if !inner.channels.contains_key(&channel) {
                drop(inner);
                return fail(&shared, &method, "channel_not_found");
            }
            if !inner.users.contains_key(&user) {
                drop(inner);
                return fail(&shared, &method, "user_not_found");
            }
            inner.ephemerals.push(Ephemeral {
                channel,
                user,
                text,
            });
            let message_ts = next_ts(&mut inner);
            ok(json!({"message_ts": message_ts}))
        }
        _ => {
            shared
                .lock()
                .rejections
                .push((method.clone(), "unknown_method".into()));
            (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"ok": false, "error": "unknown_method", "req_method": method})),
            )
                .into_response()
        }
    }
}

fn user_object(id: &str, name: &str) -> Value {
    json!({
        "id": id,
        "team_id": TEAM,
        "name": name,
        "deleted": false,
        "real_name": name,
        "is_bot": id == BOT_USER,
        "profile": {"display_name": name, "real_name": name},
    })
}

fn channel_object(id: &str, c: &Channel) -> Value {
    let im = c.kind == Kind::Im;
    let mut v = json!({
        "id": id,
        "created": 1_600_000_000u64,
        "is_channel": c.kind == Kind::Channel,
        "is_group": c.kind == Kind::Group,
        "is_im": im,
        "is_mpim": false,
        "is_private": c.kind != Kind::Channel,
        "is_archived": false,
        "is_member": c.members.iter().any(|m| m == BOT_USER),
    });
    if im {
        v["user"] = json!(c.name);
    } else {
        v["name"] = json!(c.name);
        v["name_normalized"] = json!(c.name);
    }
    v
}

/// An argument that may be JSON, or JSON in a string (form encoding).
fn json_arg(args: &Map<String, Value>, key: &str) -> Result<Option<Value>, ()> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => serde_json::from_str(s).map(Some).map_err(|_| ()),
        Some(v) => Ok(Some(v.clone())),
    }
}

fn post_message(shared: &Arc<Shared>, args: &Map<String, Value>) -> Response {
    const M: &str = "chat.postMessage";
    let channel_arg = args
        .get("channel")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let resolved = {
        let inner = shared.lock();
        let by_name = channel_arg.trim_start_matches('#');
        inner
            .channels
            .iter()
            .find(|(id, c)| id.as_str() == channel_arg || (c.kind != Kind::Im && c.name == by_name))
            .map(|(id, c)| (id.clone(), c.clone()))
    };
    let Some((channel_id, channel)) = resolved else {
        return fail(shared, M, "channel_not_found");
    };
    if !channel.members.iter().any(|m| m == BOT_USER) {
        return fail(shared, M, "not_in_channel");
    }
    let (text, attachments, blocks) = match message_content(args) {
        Ok(content) => content,
        Err(code) => return fail(shared, M, code),
    };
    let thread_ts = args
        .get("thread_ts")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let ts = next_ts(&mut shared.lock());
    let mut message = json!({
        "type": "message",
        "text": text.clone().unwrap_or_default(),
        "user": BOT_USER,
        "bot_id": BOT_ID,
        "ts": ts,
        "team": TEAM,
        "bot_profile": {"id": BOT_ID, "name": BOT_NAME, "app_id": APP_ID, "team_id": TEAM},
    });
    if let Some(t) = &thread_ts {
        message["thread_ts"] = json!(t);
    }
    if let Some(a) = &attachments {
        message["attachments"] = a.clone();
    }
    if let Some(b) = &blocks {
        message["blocks"] = b.clone();
    }
    shared.lock().posts.push(Posted {
        channel: channel_id.clone(),
        ts: ts.clone(),
        thread_ts,
        text,
        attachments,
        blocks,
        body: Value::Object(args.clone()),
        edits: Vec::new(),
    });
    // The bot's own post comes back as a `message` event, as on Slack.
    let mut echo = message.clone();
    echo["channel"] = json!(channel_id);
    echo["event_ts"] = json!(ts);
    echo["channel_type"] = json!(channel.kind.event_type());
    deliver_event(shared, echo);
    ok(json!({"channel": channel_id, "ts": ts, "message": message}))
}

/// An `actions` block as Slack takes it: 1 to 25 elements; each button with a non-empty
/// `action_id` (at most 255 characters), `text` plain_text of 1 to 75 characters, a
/// `value` of at most 2000 and a `style` of `primary` or `danger` when given.
fn actions_ok(block: &Value) -> bool {
    let Some(elements) = block.get("elements").and_then(Value::as_array) else {
        return false;
    };
    let chars = |v: Option<&Value>| v.and_then(Value::as_str).map(|s| s.chars().count());
    !elements.is_empty()
        && elements.len() <= MAX_ACTION_ELEMENTS
        && elements.iter().all(|e| {
            if e.get("type").and_then(Value::as_str) != Some("button") {
                return e.get("type").is_some();
            }
            let action_id = chars(e.get("action_id"));
            let text = chars(e.pointer("/text/text"));
            action_id.is_some_and(|n| n > 0 && n <= ACTION_ID_LIMIT)
                && e.pointer("/text/type").and_then(Value::as_str) == Some("plain_text")
                && text.is_some_and(|n| n > 0 && n <= BUTTON_TEXT_LIMIT)
                && chars(e.get("value")).is_none_or(|n| n <= BUTTON_VALUE_LIMIT)
                && e.get("style")
                    .is_none_or(|s| s == "primary" || s == "danger")
        })
}

/// The content arguments of `chat.postMessage` and `chat.update` (`text`, `attachments`,
/// `blocks`), checked as Slack checks them: at least one of them, the text under the hard
/// limit, attachments objects, blocks typed with section texts under their limit.
/// Refused: Slack's error code.
#[allow(clippy::type_complexity)]
fn message_content(
    args: &Map<String, Value>,
) -> Result<(Option<String>, Option<Value>, Option<Value>), &'static str> {
    let text = args.get("text").and_then(Value::as_str).map(str::to_owned);
    let Ok(attachments) = json_arg(args, "attachments") else {
        return Err("invalid_attachments");
    };
    let Ok(blocks) = json_arg(args, "blocks") else {
        return Err("invalid_blocks_format");
    };
    let has_text = text.as_deref().is_some_and(|t| !t.trim().is_empty());
    let has_attachments = attachments
        .as_ref()
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let has_blocks = blocks
        .as_ref()
        .and_then(Value::as_array)
        .is_some_and(|b| !b.is_empty());
    if !(has_text || has_attachments || has_blocks) {
        return Err("no_text");
    }
    if text
        .as_deref()
        .is_some_and(|t| t.chars().count() > TEXT_HARD_LIMIT)
    {
        return Err("msg_too_long");
    }
    if let Some(a) = &attachments {
        let Some(list) = a.as_array().filter(|l| l.iter().all(Value::is_object)) else {
            return Err("invalid_attachments");
        };
        if list.len() > MAX_ATTACHMENTS {
            return Err("too_many_attachments");
        }
    }
    if let Some(b) = &blocks {
        let Some(list) = b.as_array() else {
            return Err("invalid_blocks_format");
        };
        let valid = list.len() <= MAX_BLOCKS
            && list.iter().all(|block| {
                let kind = block.get("type").and_then(Value::as_str);
                let section_ok = kind != Some("section")
                    || block
                        .pointer("/text/text")
                        .and_then(Value::as_str)
                        .is_none_or(|t| t.chars().count() <= SECTION_TEXT_LIMIT);
                kind.is_some() && section_ok && (kind != Some("actions") || actions_ok(block))
            });
        if !valid {
            return Err("invalid_blocks");
        }
    }
    Ok((text, attachments, blocks))
}

fn update_message(shared: &Arc<Shared>, args: &Map<String, Value>) -> Response {
    const M: &str = "chat.update";
    let arg = |k: &str| args.get(k).and_then(Value::as_str).unwrap_or_default();
    let (channel, ts) = (arg("channel"), arg("ts"));
    let (text, attachments, blocks) = match message_content(args) {
        Ok(content) => content,
        Err(code) => return fail(shared, M, code),
    };
    let mut inner = shared.lock();
    let Some(post) = inner
        .posts
        .iter_mut()
        .find(|p| p.channel == channel && p.ts == ts)
    else {
        drop(inner);
        return fail(shared, M, "message_not_found");
    };
    // What is not given stays as it was (attachments, blocks); the text is replaced.
    let text = text.unwrap_or_default();
    post.text = Some(text.clone());
    post.edits.push(text.clone());
    if attachments.is_some() {
        post.attachments = attachments;
    }
    if blocks.is_some() {
        post.blocks = blocks;
    }
    drop(inner);
    ok(json!({"channel": channel, "ts": ts, "text": text}))
}
