//! The Mattermost backend: REST API v4 and the WebSocket event stream. Read
//! [`MattermostBackend::run`] first.
//!
//! - Connect: `GET /api/v4/users/me` with the bearer token identifies the bot (401 stops the
//!   backend with [`BackendError::Auth`]; it is checked again before every reconnect, so a
//!   revoked token does not loop). The socket `/api/v4/websocket` is authenticated with the
//!   `authentication_challenge` action; the server greets with `hello` (its `connection_id`).
//! - Every event carries `seq`. After a drop the backend reconnects with `connection_id` and
//!   `sequence_number` (the next `seq` it expects): a server that still holds the connection
//!   replays what was missed; otherwise it answers with a new `hello` (logged: events during
//!   the outage are lost). Reconnects back off with jitter.
//! - `posted` events (whose `post` field is a JSON string) become [`Incoming`] messages;
//!   the bot's own posts, other bots' (`props.from_bot`), webhooks' and system posts are
//!   ignored, replays deduplicated by post id. Channel type `D` is a direct message; rooms
//!   are named `#channel-name`; user names come from `/api/v4/users/{id}` (cached).
//! - Replies: `POST /api/v4/posts` (`root_id` for threads, `props.attachments` from
//!   [`super::rich`]) in order, split at [`MESSAGE_LIMIT`] characters; private replies go to
//!   the channel from `POST /api/v4/channels/direct`. A post made under
//!   [`Outgoing::remember_as`] keeps its id; a later [`Outgoing::replaces`] edits its
//!   message with `PUT /api/v4/posts/{id}/patch` (live acks). HTTP 429 waits `Retry-After` or
//!   `X-Ratelimit-Reset` and retries.
//! - Buttons, with `listen` and `actions_url`
//!   (<https://developers.mattermost.com/integrate/plugins/interactive-messages/>):
//!   [`Outgoing::actions`] become message actions whose `integration.context` holds a random
//!   id ([`ActionIds`]) and a per-process secret; Mattermost POSTs a press to `actions_url`,
//!   which the bot serves on `listen`: the secret must match, the body is at most
//!   [`MAX_PRESS_BODY`], the presser is named through `/users/{id}` and the thread through
//!   `/posts/{id}`; the button's command goes to the dispatcher as the presser's. Unknown
//!   ids are answered with an `ephemeral_text` and run nothing.

pub mod render;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bot_config::MattermostSpec;
use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
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
use super::webapi::{Seen, lock, retry_after, seconds_header, str_field};
use super::websocket::{self, WsStream};
use super::{
    ActionIds, Backend, BackendError, BackendIo, BoxFuture, Capabilities, ConnState, Incoming,
    Outgoing, Room, Target, char_len, rich, split_message,
};
use crate::secret::{self, Secret};

/// Characters per post: the limit of every Mattermost server (newer ones take 16,383).
pub const MESSAGE_LIMIT: usize = 4000;
/// Pause between the parts of one split message.
const PART_PAUSE: Duration = Duration::from_millis(300);
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
const PING_EVERY: Duration = Duration::from_secs(30);
const SILENCE_LIMIT: Duration = Duration::from_secs(100);
const RATE_LIMIT_RETRIES: u32 = 5;
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
const SEEN_CAPACITY: usize = 2048;
/// The `seq` of our authentication challenge (the first action on every socket).
const AUTH_SEQ: i64 = 1;
/// The largest button press accepted (Mattermost's are about a kilobyte).
pub const MAX_PRESS_BODY: usize = 64 * 1024;
/// How long a press may wait for room in the dispatcher's queue.
const PRESS_QUEUE_WAIT: Duration = Duration::from_secs(5);
/// Buttons in one post.
const MAX_BUTTONS: usize = 25;

/// The Mattermost backend, built from the definition's `backend:` settings.
#[derive(Debug)]
pub struct MattermostBackend {
    spec: MattermostSpec,
}

impl MattermostBackend {
    /// The backend for these settings (the token is read when it runs).
    pub fn new(spec: &MattermostSpec) -> Self {
        Self { spec: spec.clone() }
    }
}

impl Backend for MattermostBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_message_len: MESSAGE_LIMIT,
            rich: true,
            threads: true,
            edit: true,
            buttons: self.spec.listen.is_some() && self.spec.actions_url.is_some(),
        }
    }

    fn run(self: Box<Self>, io: BackendIo) -> BoxFuture<'static, Result<(), BackendError>> {
        Box::pin(run(self.spec, io))
    }
}

/// The bot's own account, from `/users/me`.
#[derive(Clone, Debug)]
struct Identity {
    user_id: String,
    username: String,
}

/// Where the event stream left off, for resuming after a drop.
#[derive(Clone, Debug)]
struct Resume {
    connection_id: String,
    next_seq: i64,
}

/// A channel as the cache knows it.
#[derive(Clone, Debug)]
struct ChannelInfo {
    name: String,
    direct: bool,
}

struct Shared {
    http: reqwest::Client,
    base: url::Url,
    token: Secret,
    team: String,
    me: Identity,
    shutdown: CancellationToken,
    /// User id → username.
    users: Mutex<HashMap<String, String>>,
    /// Channel id → name and type.
    channels: Mutex<HashMap<String, ChannelInfo>>,
    /// Channel name → id (names resolved through `team`).
    channel_ids: Mutex<HashMap<String, String>>,
    /// User id → direct channel id.
    dms: Mutex<HashMap<String, String>>,
    /// Posts made under [`Outgoing::remember_as`]: their ids, for edits.
    remembered: super::RememberedMessages<String>,
    /// Where presses go, when buttons are on.
    buttons: Option<Buttons>,
}

/// The button endpoint as posts name it, and what it checks.
struct Buttons {
    /// `actions_url`.
    url: String,
    /// Random per process, in every button's `context`: a request without it is not
    /// Mattermost's.
    secret: Secret,
    /// Button id → command.
    ids: ActionIds,
}

async fn run(spec: MattermostSpec, io: BackendIo) -> Result<(), BackendError> {
    let BackendIo {
        incoming,
        outgoing,
        state,
        shutdown,
    } = io;
    state.send_replace(ConnState::Connecting);
    let token = secret::resolve(&spec.token)?;
    let base = url::Url::parse(&spec.url).map_err(|e| BackendError::Config {
        what: "mattermost url",
        reason: e.to_string(),
    })?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(BackendError::Config {
            what: "mattermost url",
            reason: format!("`{}` is not an http(s) URL", spec.url),
        });
    }
    let http =
        crate::http::client(true, None, Some(HTTP_TIMEOUT)).map_err(|e| BackendError::Config {
            what: "HTTP client",
            reason: e.to_string(),
        })?;
    let local = shutdown.child_token();
    let mut shared = Shared {
        http,
        base,
        token,
        team: spec.team.to_string(),
        me: Identity {
            user_id: String::new(),
            username: String::new(),
        },
        shutdown: local.clone(),
        users: Mutex::default(),
        channels: Mutex::default(),
        channel_ids: Mutex::default(),
        dms: Mutex::default(),
        remembered: super::RememberedMessages::default(),
        buttons: spec.actions_url.as_ref().map(|url| Buttons {
            url: url.to_string(),
            secret: Secret::new(format!("{:032x}", rand::random::<u128>())),
            ids: ActionIds::default(),
        }),
    };
    let listener = match &spec.listen {
        Some(listen) if shared.buttons.is_some() => {
            let listener = tokio::net::TcpListener::bind(listen.as_ref())
                .await
                .map_err(|e| BackendError::Config {
                    what: "mattermost listen address",
                    reason: format!("cannot listen on {listen}: {e}"),
                })?;
            tracing::info!(listen = %listen, "mattermost: button endpoint listening");
            Some(listener)
        }
        _ => None,
    };
    let backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
    let identity = first_contact(
        "mattermost",
        ("/users/me", "token"),
        backoff,
        &local,
        &state,
        || shared.whoami(),
    );
    shared.me = match identity.await? {
        Some(me) => me,
        None => return Ok(()),
    };
    tracing::info!(bot_user = %shared.me.user_id, bot_name = %shared.me.username, "mattermost: identified");
    let shared = Arc::new(shared);
    let server = listener.map(|listener| {
        let app = press_endpoint(PressState {
            shared: shared.clone(),
            incoming: incoming.clone(),
        });
        tokio::spawn(super::listener::serve(
            "mattermost",
            listener,
            app,
            local.clone(),
        ))
    });
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
    if let Some(server) = server {
        let _ = server.await;
    }
    let result = joined(first).and(joined(second));
    if let Err(BackendError::Auth { reason, .. }) = &result {
        state.send_replace(ConnState::Failed(reason.clone()));
    }
    result
}

fn joined(r: Result<Result<(), BackendError>, tokio::task::JoinError>) -> Result<(), BackendError> {
    match r {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Ok(()),
    }
}

/// Mattermost's WebSocket event API as an [`EventStream`]: each socket is authenticated
/// with the token and resumed from where the last one left off.
struct EventApi {
    shared: Arc<Shared>,
    events: mpsc::Sender<Value>,
    state: watch::Sender<ConnState>,
    /// Where the last socket left off.
    resume: Option<Resume>,
    /// No socket opened yet (the token was just checked by the caller).
    first: bool,
}

impl EventStream for EventApi {
    type Connection = WsStream;

    fn service(&self) -> &'static str {
        "mattermost"
    }

    async fn connect(&mut self) -> Result<WsStream, ConnectError> {
        if !self.first {
            match self.shared.whoami().await {
                Ok(_) => {}
                Err(ApiError::Auth(reason)) => {
                    return Err(ConnectError::Stop(auth_failed(&self.state, reason)));
                }
                Err(ApiError::Shutdown) => return Err(ConnectError::Shutdown),
                Err(e) => return Err(ConnectError::Retry(format!("server not answering: {e}"))),
            }
        }
        self.first = false;
        let url = self.shared.websocket_url(self.resume.as_ref());
        websocket::connect(&url)
            .await
            .map_err(|e| ConnectError::Retry(format!("websocket: {e}")))
    }

    async fn session(&mut self, ws: WsStream) -> SessionEnd {
        self.shared
            .session(ws, &self.events, &self.state, &mut self.resume)
            .await
    }
}

fn auth_failed(state: &watch::Sender<ConnState>, reason: String) -> BackendError {
    credentials_refused("mattermost", "token", reason, state)
}

impl MessageSink for Shared {
    fn service(&self) -> &'static str {
        "mattermost"
    }

    async fn deliver(&self, out: &Outgoing) -> Result<(), ApiError> {
        self.try_post(out).await
    }
}

impl Shared {
    /// `base` + `/api/v4/` + the segments, each percent-encoded.
    fn endpoint(&self, segments: &[&str]) -> url::Url {
        let mut url = self.base.clone();
        url.set_query(None);
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["api", "v4"]).extend(segments);
        }
        url
    }

    /// The WebSocket URL, with resume parameters when there is a connection to resume.
    fn websocket_url(&self, resume: Option<&Resume>) -> String {
        let mut url = self.endpoint(&["websocket"]);
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        let _ = url.set_scheme(scheme);
        if let Some(r) = resume {
            url.query_pairs_mut()
                .append_pair("connection_id", &r.connection_id)
                .append_pair("sequence_number", &r.next_seq.to_string());
        }
        url.to_string()
    }

    /// One REST call with rate-limit waits; `Ok` with the JSON body for a 2xx answer.
    async fn request(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let url = self.endpoint(segments);
        let what = format!("{method} {}", url.path());
        for _ in 0..=RATE_LIMIT_RETRIES {
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(self.token.expose());
            if let Some(b) = body {
                request = request.json(b);
            }
            let response = request
                .send()
                .await
                .map_err(|e| ApiError::Transport(format!("{what}: {}", e.without_url())))?;
            let status = response.status();
            if status == StatusCode::TOO_MANY_REQUESTS {
                let headers = response.headers();
                let wait = retry_after(headers)
                    .or_else(|| seconds_header(headers, "x-ratelimit-reset"))
                    .unwrap_or(Duration::from_secs(1));
                tracing::warn!(call = %what, wait_ms = wait.as_millis() as u64, "mattermost: rate limited; waiting");
                if !sleep_or_shutdown(wait, &self.shutdown).await {
                    return Err(ApiError::Shutdown);
                }
                continue;
            }
            let text = response
                .text()
                .await
                .map_err(|e| ApiError::Transport(format!("{what}: {}", e.without_url())))?;
            let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if status.is_success() {
                return Ok(json);
            }
            let message = str_field(&json, "message")
                .map(str::to_owned)
                .unwrap_or_else(|| text.chars().take(200).collect());
            if status == StatusCode::UNAUTHORIZED {
                return Err(ApiError::Auth(message));
            }
            return Err(ApiError::Refused {
                status: status.as_u16(),
                code: str_field(&json, "id").unwrap_or_default().to_owned(),
                message,
            });
        }
        Err(ApiError::RateLimited {
            waits: RATE_LIMIT_RETRIES,
        })
    }

    async fn whoami(&self) -> Result<Identity, ApiError> {
        let me = self.request(Method::GET, &["users", "me"], None).await?;
        let user_id =
            str_field(&me, "id").ok_or_else(|| ApiError::Transport("/users/me: no id".into()))?;
        Ok(Identity {
            user_id: user_id.to_owned(),
            username: str_field(&me, "username").unwrap_or_default().to_owned(),
        })
    }

    /// Reconnects until shutdown; `Err` only when the token is refused.
    async fn receive_loop(
        self: Arc<Self>,
        events: mpsc::Sender<Value>,
        state: watch::Sender<ConnState>,
    ) -> Result<(), BackendError> {
        let shutdown = self.shutdown.clone();
        let mut stream = EventApi {
            shared: self,
            events,
            state: state.clone(),
            resume: None,
            first: true,
        };
        let backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
        supervise(&mut stream, backoff, &shutdown, &state).await
    }

    /// Authenticates one socket and reads it until it ends.
    async fn session(
        &self,
        mut ws: WsStream,
        events: &mpsc::Sender<Value>,
        state: &watch::Sender<ConnState>,
        resume: &mut Option<Resume>,
    ) -> SessionEnd {
        let challenge = json!({
            "seq": AUTH_SEQ,
            "action": "authentication_challenge",
            "data": { "token": self.token.expose() },
        });
        if let Err(e) = ws.send(Message::Text(challenge.to_string().into())).await {
            return SessionEnd::Dropped(format!("authentication challenge not sent: {e}"));
        }
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
                        return SessionEnd::Dropped("no traffic from the server".into());
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
                        Some(Ok(Message::Close(_))) => {
                            return SessionEnd::Dropped("closed by the server".into());
                        }
                        Some(Ok(_)) => continue,
                    };
                    let frame: Value = match serde_json::from_str(text.as_str()) {
                        Ok(v) => v,
                        Err(e) => {
                            tracing::warn!(error = %e, "mattermost: ignoring a frame that is not JSON");
                            continue;
                        }
                    };
                    if let Some(end) = self.on_frame(frame, events, state, resume).await {
                        return end;
                    }
                }
            }
        }
    }

    /// Handles one frame; `Some` ends the session.
    async fn on_frame(
        &self,
        frame: Value,
        events: &mpsc::Sender<Value>,
        state: &watch::Sender<ConnState>,
        resume: &mut Option<Resume>,
    ) -> Option<SessionEnd> {
        if let Some(reply) = frame.get("seq_reply").and_then(Value::as_i64) {
            if reply == AUTH_SEQ {
                if str_field(&frame, "status") == Some("OK") {
                    state.send_replace(ConnState::Connected);
                } else {
                    return Some(SessionEnd::Dropped(format!(
                        "authentication challenge refused: {}",
                        frame.get("error").unwrap_or(&Value::Null)
                    )));
                }
            }
            return None;
        }
        let event = str_field(&frame, "event").unwrap_or_default();
        let seq = frame.get("seq").and_then(Value::as_i64);
        if event == "hello" {
            let connection_id = frame
                .pointer("/data/connection_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if let Some(old) = resume.as_ref()
                && old.connection_id != connection_id
            {
                tracing::warn!(
                    "mattermost: could not resume the event stream; events during the outage are lost"
                );
            }
            tracing::info!(
                server_version = frame
                    .pointer("/data/server_version")
                    .and_then(serde_json::Value::as_str),
                "mattermost: websocket connected"
            );
            *resume = Some(Resume {
                connection_id,
                next_seq: seq.unwrap_or(0) + 1,
            });
            state.send_replace(ConnState::Connected);
            return None;
        }
        if let (Some(seq), Some(r)) = (seq, resume.as_mut()) {
            if seq != r.next_seq {
                tracing::warn!(
                    expected = r.next_seq,
                    got = seq,
                    "mattermost: event sequence gap"
                );
            }
            r.next_seq = seq + 1;
        }
        if event == "posted" {
            let data = frame.get("data").cloned().unwrap_or(Value::Null);
            if events.send(data).await.is_err() {
                return Some(SessionEnd::Shutdown);
            }
        }
        None
    }

    async fn process_events(
        self: Arc<Self>,
        mut events: mpsc::Receiver<Value>,
        incoming: mpsc::Sender<Incoming>,
    ) {
        let mut seen = Seen::new(SEEN_CAPACITY);
        while let Some(data) = events.recv().await {
            let Some(message) = self.to_incoming(&data, &mut seen).await else {
                continue;
            };
            tracing::debug!(
                user = %message.user,
                room = message.room.as_ref().map(|r| r.name.as_str()),
                "mattermost: message"
            );
            if incoming.send(message).await.is_err() {
                break;
            }
        }
    }

    /// The message a `posted` event carries, when it is one for the bot to consider.
    async fn to_incoming(&self, data: &Value, seen: &mut Seen) -> Option<Incoming> {
        let posted = Posted::parse(data, &self.me.user_id, &self.me.username)?;
        if !seen.insert(&posted.id) {
            return None;
        }
        let info = match posted.channel.clone() {
            Some(info) => info,
            None => self.channel_info(&posted.channel_id).await?,
        };
        let user = self
            .user_name(&posted.user_id, posted.sender.as_deref())
            .await;
        Some(posted.into_incoming(user, info))
    }

    /// A user's username (`/users/{id}`, cached), else the event's sender name, else the id.
    async fn user_name(&self, id: &str, sender: Option<&str>) -> String {
        if let Some(name) = lock(&self.users).get(id) {
            return name.clone();
        }
        match self.request(Method::GET, &["users", id], None).await {
            Ok(user) => {
                let name = str_field(&user, "username").unwrap_or(id).to_owned();
                lock(&self.users).insert(id.to_owned(), name.clone());
                name
            }
            Err(e) => {
                tracing::warn!(user = id, error = %e, "mattermost: user lookup failed");
                sender.unwrap_or(id).to_owned()
            }
        }
    }

    /// A channel's `#name` and whether it is direct (`/channels/{id}`, cached).
    async fn channel_info(&self, id: &str) -> Option<ChannelInfo> {
        if let Some(info) = lock(&self.channels).get(id) {
            return Some(info.clone());
        }
        match self.request(Method::GET, &["channels", id], None).await {
            Ok(channel) => {
                let info = ChannelInfo {
                    name: format!("#{}", str_field(&channel, "name").unwrap_or(id)),
                    direct: str_field(&channel, "type") == Some("D"),
                };
                lock(&self.channels).insert(id.to_owned(), info.clone());
                Some(info)
            }
            Err(e) => {
                tracing::warn!(channel = id, error = %e, "mattermost: channel lookup failed");
                None
            }
        }
    }

    async fn try_post(&self, out: &Outgoing) -> Result<(), ApiError> {
        if let Some(key) = &out.replaces {
            let Some(post_id) = self.remembered.replaced(out) else {
                tracing::debug!(key, "mattermost: no remembered post to edit");
                return Ok(());
            };
            // A status line edits the message (its attachments stay); a result replacing
            // its ack (`replaces_whole`) edits it into the result's first post, props included.
            let body = match render::posts(out, None, MESSAGE_LIMIT).into_iter().next() {
                Some((message, Some(props))) if out.replaces_whole => {
                    json!({ "message": message, "props": props })
                }
                _ => json!({
                    "message": split_message(&out.text, MESSAGE_LIMIT, char_len).swap_remove(0)
                }),
            };
            self.request(Method::PUT, &["posts", &post_id, "patch"], Some(&body))
                .await?;
            return Ok(());
        }
        let (channel_id, root_id) = match &out.target {
            Target::Room { id, thread } => (self.channel_id(id).await?, thread.clone()),
            Target::Direct { user } => (self.dm_channel(user).await?, None),
        };
        let mention = match &out.mention {
            Some(m) => Some(self.mention_markup(m).await),
            None => None,
        };
        let mut posts = render::posts(out, mention.as_deref(), MESSAGE_LIMIT);
        if let (Some(buttons), Some((_, props))) = (&self.buttons, posts.last_mut()) {
            let shown = rich::issue_ids(&out.actions, MAX_BUTTONS, &buttons.ids);
            render::add_buttons(props, &shown, &buttons.url, buttons.secret.expose());
        }
        for (i, (message, props)) in posts.into_iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(PART_PAUSE).await;
            }
            let mut body = json!({ "channel_id": channel_id, "message": message });
            if let Some(root) = &root_id {
                body["root_id"] = Value::String(root.clone());
            }
            if let Some(props) = props {
                body["props"] = props;
            }
            let posted = self.request(Method::POST, &["posts"], Some(&body)).await?;
            if let (0, Some(id)) = (i, str_field(&posted, "id")) {
                self.remembered.posted(out, id.to_owned());
            }
        }
        Ok(())
    }

    /// A channel id from an id or a `#name` (through `team`).
    async fn channel_id(&self, id_or_name: &str) -> Result<String, ApiError> {
        if looks_like_id(id_or_name) {
            return Ok(id_or_name.to_owned());
        }
        let name = id_or_name.trim_start_matches('#');
        if let Some(id) = lock(&self.channel_ids).get(name) {
            return Ok(id.clone());
        }
        if self.team.is_empty() {
            return Err(ApiError::Unresolvable(format!(
                "channel `{id_or_name}`: set `team` to post to channels by name"
            )));
        }
        let channel = self
            .request(
                Method::GET,
                &["teams", "name", &self.team, "channels", "name", name],
                None,
            )
            .await?;
        let id = str_field(&channel, "id")
            .ok_or_else(|| ApiError::Unresolvable(format!("channel `{id_or_name}`")))?
            .to_owned();
        lock(&self.channel_ids).insert(name.to_owned(), id.clone());
        Ok(id)
    }

    /// A user id from an id or a username.
    async fn user_id(&self, user: &str) -> Result<String, ApiError> {
        if looks_like_id(user) {
            return Ok(user.to_owned());
        }
        let name = user.trim_start_matches('@');
        if let Some((id, _)) = lock(&self.users).iter().find(|(_, n)| n.as_str() == name) {
            return Ok(id.clone());
        }
        let found = self
            .request(Method::GET, &["users", "username", name], None)
            .await?;
        let id = str_field(&found, "id")
            .ok_or_else(|| ApiError::Unresolvable(format!("user `{user}`")))?
            .to_owned();
        lock(&self.users).insert(id.clone(), name.to_owned());
        Ok(id)
    }

    /// The direct channel between the bot and a user.
    async fn dm_channel(&self, user: &str) -> Result<String, ApiError> {
        let user_id = self.user_id(user).await?;
        if let Some(c) = lock(&self.dms).get(&user_id) {
            return Ok(c.clone());
        }
        let body = json!([self.me.user_id, user_id]);
        let channel = self
            .request(Method::POST, &["channels", "direct"], Some(&body))
            .await?;
        let id = str_field(&channel, "id")
            .ok_or_else(|| ApiError::Transport("/channels/direct: no id".into()))?
            .to_owned();
        lock(&self.dms).insert(user_id, id.clone());
        Ok(id)
    }

    /// `@username` for a user id or a name.
    async fn mention_markup(&self, user: &str) -> String {
        if looks_like_id(user) {
            return format!("@{}", self.user_name(user, None).await);
        }
        format!("@{}", user.trim_start_matches('@'))
    }
}

/// A `posted` event taken apart without any lookup.
#[derive(Debug)]
struct Posted {
    id: String,
    user_id: String,
    channel_id: String,
    /// The channel's name and kind when the event says them.
    channel: Option<ChannelInfo>,
    /// The sender's name when the event says it (without `@`).
    sender: Option<String>,
    /// The text after a leading mention of the bot.
    text: String,
    mentioned: bool,
    thread: Option<String>,
}

impl Posted {
    /// The post in a `posted` event's data, when it is one for the bot to consider (not its
    /// own, not a bot's or webhook's, not a system message).
    fn parse(data: &Value, my_id: &str, my_name: &str) -> Option<Self> {
        let post: Value = match serde_json::from_str(str_field(data, "post")?) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "mattermost: `post` is not JSON");
                return None;
            }
        };
        let id = str_field(&post, "id")?;
        let user_id = str_field(&post, "user_id")?;
        if user_id == my_id || !str_field(&post, "type").unwrap_or_default().is_empty() {
            return None;
        }
        let props = post.get("props").unwrap_or(&Value::Null);
        if truthy(props.get("from_bot")) || truthy(props.get("from_webhook")) {
            return None;
        }
        let channel_id = str_field(&post, "channel_id")?;
        let channel = match (
            str_field(data, "channel_type"),
            str_field(data, "channel_name"),
        ) {
            (Some(kind), Some(name)) => Some(ChannelInfo {
                name: format!("#{name}"),
                direct: kind == "D",
            }),
            _ => None,
        };
        let (text, mentioned) =
            strip_leading_mention(str_field(&post, "message").unwrap_or_default(), my_name);
        Some(Self {
            id: id.to_owned(),
            user_id: user_id.to_owned(),
            channel_id: channel_id.to_owned(),
            channel,
            sender: str_field(data, "sender_name").map(|s| s.trim_start_matches('@').to_owned()),
            text: rich::normalize_typography(text.trim()),
            mentioned,
            thread: str_field(&post, "root_id")
                .filter(|r| !r.is_empty())
                .map(str::to_owned),
        })
    }

    /// The message, given the sender's name and the channel.
    fn into_incoming(self, user: String, channel: ChannelInfo) -> Incoming {
        Incoming {
            user_id: self.user_id,
            user,
            room: (!channel.direct).then_some(Room {
                id: self.channel_id,
                name: channel.name,
            }),
            text: self.text,
            mentioned: self.mentioned,
            thread: self.thread,
            message_id: Some(self.id),
        }
    }
}

/// The fuzz target's way in: a WebSocket `posted` event's `data` to the message it carries,
/// with ids standing in for what Mattermost would be asked for.
#[doc(hidden)]
pub fn incoming_from_posted(data: &[u8], my_id: &str, my_name: &str) -> Option<Incoming> {
    let data: Value = serde_json::from_slice(data).ok()?;
    let posted = Posted::parse(&data, my_id, my_name)?;
    let channel = posted.channel.clone().unwrap_or(ChannelInfo {
        name: posted.channel_id.clone(),
        direct: false,
    });
    let user = posted
        .sender
        .clone()
        .unwrap_or_else(|| posted.user_id.clone());
    Some(posted.into_incoming(user, channel))
}

/// Mattermost ids: 26 lower-case letters and digits.
fn looks_like_id(s: &str) -> bool {
    s.len() == 26
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// What the button endpoint works with.
#[derive(Clone)]
struct PressState {
    shared: Arc<Shared>,
    incoming: mpsc::Sender<Incoming>,
}

/// The button endpoint: Mattermost POSTs `{user_id, channel_id, post_id, context, …}` to
/// `actions_url` when someone presses a button; any path is taken (a proxy may rewrite it),
/// the secret in `context` says the request is Mattermost's.
fn press_endpoint(state: PressState) -> axum::Router {
    axum::Router::new()
        .fallback(axum::routing::post(press))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_PRESS_BODY))
        .with_state(state)
}

/// A press as Mattermost sends it, taken apart and bounded.
#[derive(PartialEq, Eq)]
struct Press<'a> {
    user_id: &'a str,
    channel_id: &'a str,
    post_id: Option<&'a str>,
    action: &'a str,
    secret: &'a str,
}

/// The endpoint's secret is a credential: never printed.
impl std::fmt::Debug for Press<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Press")
            .field("user_id", &self.user_id)
            .field("channel_id", &self.channel_id)
            .field("post_id", &self.post_id)
            .field("action", &self.action)
            .field("secret", &"[redacted]")
            .finish()
    }
}

impl<'a> Press<'a> {
    fn parse(body: &'a Value) -> Option<Self> {
        let id = |key: &str| str_field(body, key).filter(|v| looks_like_id(v));
        let context = body.get("context")?;
        Some(Self {
            user_id: id("user_id")?,
            channel_id: id("channel_id")?,
            post_id: id("post_id"),
            action: str_field(context, "action").filter(|a| a.len() <= 64)?,
            // Missing: refused below like a wrong one (403).
            secret: str_field(context, "secret")
                .filter(|s| s.len() <= 64)
                .unwrap_or_default(),
        })
    }
}

/// One press: the answer Mattermost shows (`{}`, or an `ephemeral_text` to the presser).
async fn press(
    axum::extract::State(state): axum::extract::State<PressState>,
    body: axum::body::Bytes,
) -> (axum::http::StatusCode, axum::Json<Value>) {
    use axum::http::StatusCode as Http;
    use subtle::ConstantTimeEq as _;
    let Some(buttons) = &state.shared.buttons else {
        return (Http::NOT_FOUND, axum::Json(json!({})));
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(press) = Press::parse(&body) else {
        tracing::warn!("mattermost: a request to the button endpoint that is not a press; refused");
        return (Http::BAD_REQUEST, axum::Json(json!({})));
    };
    let expected = buttons.secret.expose().as_bytes();
    if !bool::from(press.secret.as_bytes().ct_eq(expected)) {
        tracing::warn!(
            user_id = press.user_id,
            "mattermost: a press without the endpoint's secret; refused"
        );
        return (Http::FORBIDDEN, axum::Json(json!({})));
    }
    let Some(command) = buttons.ids.command(press.action) else {
        tracing::warn!(
            user_id = press.user_id,
            channel = press.channel_id,
            "mattermost: a press of a button this bot did not post (or no longer remembers); ignored"
        );
        return (
            Http::OK,
            axum::Json(json!({
                "ephemeral_text": "That button is no longer active: type the command in its message instead."
            })),
        );
    };
    let shared = &state.shared;
    let Some(channel) = shared.channel_info(press.channel_id).await else {
        return (
            Http::OK,
            axum::Json(json!({"ephemeral_text": "The bot cannot see this channel."})),
        );
    };
    let thread = match press.post_id {
        Some(post) => match shared.request(Method::GET, &["posts", post], None).await {
            Ok(p) if str_field(&p, "channel_id") == Some(press.channel_id) => {
                str_field(&p, "root_id")
                    .filter(|r| !r.is_empty())
                    .map(str::to_owned)
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "mattermost: the pressed post could not be read");
                None
            }
        },
        None => None,
    };
    let user = shared.user_name(press.user_id, None).await;
    tracing::info!(user = %user, room = %channel.name, "mattermost: button pressed");
    let message = Incoming {
        user_id: press.user_id.to_owned(),
        user,
        room: (!channel.direct).then(|| Room {
            id: press.channel_id.to_owned(),
            name: channel.name,
        }),
        text: command,
        mentioned: false,
        thread,
        message_id: None,
    };
    match tokio::time::timeout(PRESS_QUEUE_WAIT, state.incoming.send(message)).await {
        Ok(Ok(())) => (Http::OK, axum::Json(json!({}))),
        _ => (
            Http::SERVICE_UNAVAILABLE,
            axum::Json(json!({"ephemeral_text": "The bot is busy; try again."})),
        ),
    }
}

/// Post props hold `"true"` strings (and sometimes booleans).
fn truthy(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::Bool(true))) || matches!(v, Some(Value::String(s)) if s == "true")
}

/// Removes a leading `@botname` (any case) and the `:`/`,` after it.
fn strip_leading_mention<'a>(text: &'a str, bot: &str) -> (&'a str, bool) {
    mention::split(text, bot, &mention::MATTERMOST)
}

/// Echoed user text with Mattermost's mass mentions (`@here`, `@channel`, `@all`) broken.
pub fn defuse_mass_mentions(text: &str) -> String {
    super::defuse_at_words(text, &["here", "channel", "all"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_only_a_leading_bot_mention() {
        assert_eq!(
            strip_leading_mention("@st2bot help", "st2bot"),
            ("help", true)
        );
        assert_eq!(
            strip_leading_mention(" @ST2bot: run x", "st2bot"),
            ("run x", true)
        );
        assert_eq!(
            strip_leading_mention("@st2botx help", "st2bot"),
            ("@st2botx help", false)
        );
        assert_eq!(
            strip_leading_mention("hey @st2bot", "st2bot"),
            ("hey @st2bot", false)
        );
    }

    #[test]
    fn a_press_is_taken_apart_and_bounded() {
        let body = json!({
            "user_id": "bobuser0000000000000000001", "user_name": "admin",
            "channel_id": "opschannel0000000000000001", "post_id": "p0000000000000000000000001",
            "team_id": "opsteam0000000000000000001", "trigger_id": "t1", "type": "",
            "context": {"action": "st2bot-1", "secret": "s"},
        });
        assert_eq!(
            Press::parse(&body),
            Some(Press {
                user_id: "bobuser0000000000000000001",
                channel_id: "opschannel0000000000000001",
                post_id: Some("p0000000000000000000000001"),
                action: "st2bot-1",
                secret: "s",
            })
        );
        let mut bad = body.clone();
        bad["user_id"] = json!("../../users/me");
        assert_eq!(Press::parse(&bad), None);
        let mut bad = body.clone();
        bad["context"]["action"] = json!("x".repeat(65));
        assert_eq!(Press::parse(&bad), None);
        let mut bad = body.clone();
        bad.as_object_mut().unwrap().remove("context");
        assert_eq!(Press::parse(&bad), None);
        let mut no_secret = body.clone();
        no_secret["context"]
            .as_object_mut()
            .unwrap()
            .remove("secret");
        assert_eq!(Press::parse(&no_secret).map(|p| p.secret), Some(""));
    }

    #[test]
    fn ids_and_props() {
        assert!(looks_like_id("abcdefghijklmnopqrstuvwxyz"));
        assert!(!looks_like_id("town-square"));
        assert!(truthy(Some(&json!("true"))));
        assert!(truthy(Some(&json!(true))));
        assert!(!truthy(Some(&json!("false"))));
        assert!(!truthy(None));
    }
}
