//! A fake Mattermost for the Mattermost backend's tests: the REST API v4 calls the bot
//! makes and the WebSocket event stream, on 127.0.0.1, with Mattermost's JSON shapes and
//! error bodies.
//!
//! Built from Mattermost's public documentation:
//! - <https://api.mattermost.com/> (REST v4: bearer tokens; errors as `{"id", "message",
//!   "detailed_error", "request_id", "status_code"}`; 401
//!   `api.context.session_expired.app_error`; `GET /users/me`, `/users/{id}`,
//!   `/users/username/{name}`, `/channels/{id}`, `/teams/name/{team}/channels/name/{name}`,
//!   `POST /channels/direct` with two user ids, `POST /posts` answering 201,
//!   `PUT /posts/{id}/patch` changing `message` and setting `edit_at`, 404 for an unknown
//!   post);
//! - <https://developers.mattermost.com/integrate/reference/websocket/> (the
//!   `authentication_challenge` action and its `{"status":"OK","seq_reply":N}` response,
//!   `hello` with `connection_id`, events `{"event","data","broadcast","seq"}`, `posted`
//!   whose `post` is a JSON string; reconnecting with `connection_id` and `sequence_number`
//!   replays missed events without a new `hello`, otherwise a new `hello` and connection id);
//! - <https://docs.mattermost.com/configure/rate-limiting-configuration-settings.html>
//!   (HTTP 429 with `X-Ratelimit-Limit`, `X-Ratelimit-Remaining`, `X-Ratelimit-Reset`,
//!   `Retry-After`, body `limit exceeded`);
//! - post limits: `MaxPostSize` (16,383 characters on current servers, 4,000 on old ones)
//!   refused with 400 `model.post.is_valid.msg.app_error`; a reply's `root_id` must name a
//!   root post of the same channel (`api.post.create_post.root_id.app_error`).
//!
//! - interactive message buttons:
//!   <https://developers.mattermost.com/integrate/plugins/interactive-messages/>
//!   (`props.attachments[].actions[]` with `id` (letters and digits), `name`, `type`
//!   `button`, `style`, `integration {url, context}`; a press makes the server POST
//!   `{user_id, user_name, channel_id, channel_name, team_id, team_domain, post_id,
//!   trigger_id, type, context}` to `integration.url` and show the JSON answer's
//!   `ephemeral_text` to the presser; clients never see `integration`, so the posts the
//!   fake broadcasts have it removed); `GET /posts/{id}`.
//!
//! A wrong token on the WebSocket's challenge closes the socket, as the server does.

// Shared by several test binaries: each uses a part, and `pub` marks the API they use.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::ws::{self, Served, ServerSocket};

/// The bot's personal access token.
pub const TOKEN: &str = "mmbottoken00000000000000001";
pub const BOT_ID: &str = "st2botuser0000000000000001";
pub const BOT_NAME: &str = "st2bot";
pub const ALICE: &str = "aliceuser00000000000000001";
pub const BOB: &str = "bobuser0000000000000000001";
pub const TEAM_ID: &str = "opsteam0000000000000000001";
pub const TEAM: &str = "ops-team";
pub const OPS: &str = "opschannel0000000000000001";
pub const PRIVATE: &str = "privchannel000000000000001";
/// Events kept for a dropped connection to resume from.
const DEAD_QUEUE: usize = 128;
/// The props size Mattermost accepts (runes of the JSON).
const MAX_PROPS: usize = 800_000;

/// A post the bot made.
#[derive(Clone, Debug)]
pub struct Post {
    pub id: String,
    pub channel_id: String,
    pub root_id: String,
    pub message: String,
    pub props: Value,
    /// Messages set by `PUT /posts/{id}/patch`, oldest first (`message` is the last).
    pub edits: Vec<String>,
}

#[derive(Clone, Debug)]
struct Channel {
    name: String,
    display_name: String,
    kind: &'static str,
    members: Vec<String>,
}

#[derive(Clone, Debug)]
struct StoredPost {
    channel_id: String,
    root_id: String,
}

/// One event-stream connection, alive or dead (kept for resuming).
struct Conn {
    user_id: String,
    next_seq: i64,
    buffer: VecDeque<(i64, String)>,
    live: Option<(u64, mpsc::UnboundedSender<SocketCommand>)>,
}

enum SocketCommand {
    Frame(String),
    Drop,
}

#[derive(Default)]
struct Inner {
    users: BTreeMap<String, String>,
    channels: BTreeMap<String, Channel>,
    stored: HashMap<String, StoredPost>,
    posts: Vec<Post>,
    rejections: Vec<(String, String)>,
    calls: Vec<String>,
    conns: HashMap<String, Conn>,
    sockets_opened: u64,
    resumed: u64,
    hellos: u64,
    rate_limits: HashMap<String, (u32, u64)>,
    rate_limited: u32,
    max_post_size: usize,
    counter: u64,
}

struct Shared {
    addr: SocketAddr,
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The running fake; dropping it stops the server and its sockets.
pub struct MattermostFake {
    shared: Arc<Shared>,
    _server: Served,
}

impl Drop for MattermostFake {
    fn drop(&mut self) {
        for conn in self.shared.lock().conns.values_mut() {
            if let Some((_, tx)) = conn.live.take() {
                let _ = tx.send(SocketCommand::Drop);
            }
        }
    }
}

fn new_id(inner: &mut Inner, prefix: char) -> String {
    inner.counter += 1;
    format!("{prefix}{:025}", inner.counter)
}

fn now_ms(inner: &mut Inner) -> u64 {
    inner.counter += 1;
    1_700_000_000_000 + inner.counter
}

impl MattermostFake {
    /// Starts a fake with the limits of a current server.
    pub async fn start() -> Self {
        let listener = Served::bind().await;
        let addr = listener.local_addr().expect("local addr");
        let mut inner = Inner {
            max_post_size: 16_383,
            ..Inner::default()
        };
        for (id, name) in [(ALICE, "alice"), (BOB, "bob"), (BOT_ID, BOT_NAME)] {
            inner.users.insert(id.into(), name.into());
        }
        let everyone = vec![ALICE.to_owned(), BOB.to_owned(), BOT_ID.to_owned()];
        for (id, name, display, kind) in [
            (OPS, "ops", "Ops", "O"),
            (PRIVATE, "secret-ops", "Secret Ops", "P"),
        ] {
            inner.channels.insert(
                id.into(),
                Channel {
                    name: name.into(),
                    display_name: display.into(),
                    kind,
                    members: everyone.clone(),
                },
            );
        }
        let shared = Arc::new(Shared {
            addr,
            inner: Mutex::new(inner),
        });
        let app = Router::new()
            .route("/api/v4/{*path}", any(api))
            .with_state(shared.clone());
        Self {
            shared,
            _server: Served::serve(listener, app),
        }
    }

    /// The server URL (`backend.url` in a definition).
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// Behaves like an old server: posts longer than `chars` are refused.
    pub fn set_max_post_size(&self, chars: usize) {
        self.shared.lock().max_post_size = chars;
    }

    /// The direct channel between the bot and `user` (created as a client would).
    pub fn direct_channel(&self, user: &str) -> String {
        direct_channel(&mut self.shared.lock(), BOT_ID, user)
    }

    /// `user` posts `message` in `channel_id` (a reply to `root_id` when given): the post
    /// is stored and a `posted` event goes to every member's sockets. Returns the post id.
    pub fn user_says(
        &self,
        user: &str,
        channel_id: &str,
        message: &str,
        root_id: Option<&str>,
    ) -> String {
        let mut inner = self.shared.lock();
        let post = new_post(
            &mut inner,
            user,
            channel_id,
            message,
            root_id.unwrap_or_default(),
            json!({}),
        );
        let id = post["id"].as_str().unwrap_or_default().to_owned();
        broadcast_posted(&mut inner, &post);
        id
    }

    /// `user` presses the button named `label` on `post`: the fake POSTs what Mattermost
    /// posts to the button's `integration.url` and returns the integration's answer (HTTP
    /// status and JSON body; `Value::Null` when not JSON).
    pub async fn press(&self, user: &str, post: &Post, label: &str) -> (u16, Value) {
        let action = post_actions(&post.props)
            .into_iter()
            .find(|a| a["name"] == label)
            .unwrap_or_else(|| panic!("no button `{label}` on {post:#?}"));
        let url = action["integration"]["url"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let context = action["integration"]["context"].clone();
        self.press_with(user, post, &url, context).await
    }

    /// `user` presses a button of `post` whose `context` was replaced (a forged press, or
    /// one from someone who found the endpoint): what the integration answers.
    pub async fn press_forged(&self, user: &str, post: &Post, context: Value) -> (u16, Value) {
        let action = post_actions(&post.props)
            .into_iter()
            .next()
            .expect("a button");
        let url = action["integration"]["url"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.press_with(user, post, &url, context).await
    }

    async fn press_with(&self, user: &str, post: &Post, url: &str, context: Value) -> (u16, Value) {
        let body = {
            let mut inner = self.shared.lock();
            let name = inner.users.get(user).cloned().expect("known user");
            let channel = inner
                .channels
                .get(&post.channel_id)
                .cloned()
                .expect("known channel");
            let trigger_id = new_id(&mut inner, 't');
            json!({
                "user_id": user, "user_name": name, "channel_id": post.channel_id,
                "channel_name": channel.name, "team_id": TEAM_ID, "team_domain": TEAM,
                "post_id": post.id, "trigger_id": trigger_id, "type": "", "data_source": "",
                "context": context,
            })
        };
        let client = bot_runtime::http::client(true, None, Some(Duration::from_secs(10)))
            .expect("HTTP client");
        let response = client
            .post(url)
            .json(&body)
            .send()
            .await
            .expect("the integration answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The next `times` calls of `"METHOD /path"` (e.g. `"POST /posts"`) answer 429 with
    /// `Retry-After` and `X-Ratelimit-Reset` of `seconds`.
    pub fn rate_limit(&self, call: &str, times: u32, seconds: u64) {
        self.shared
            .lock()
            .rate_limits
            .insert(call.into(), (times, seconds));
    }

    /// How many calls were answered 429.
    pub fn rate_limited(&self) -> u32 {
        self.shared.lock().rate_limited
    }

    /// Cuts every socket without a close frame; the server keeps each connection's queue,
    /// so a client that reconnects with `connection_id` resumes.
    pub fn drop_connections(&self) {
        for conn in self.shared.lock().conns.values_mut() {
            if let Some((_, tx)) = conn.live.take() {
                let _ = tx.send(SocketCommand::Drop);
            }
        }
    }

    /// Cuts every socket and forgets the connections (a server restart): reconnecting
    /// clients get a new `hello`.
    pub fn restart_connections(&self) {
        self.drop_connections();
        self.shared.lock().conns.clear();
    }

    /// Sockets opened, connections resumed, `hello`s sent.
    pub fn sockets_opened(&self) -> u64 {
        self.shared.lock().sockets_opened
    }
    pub fn resumed(&self) -> u64 {
        self.shared.lock().resumed
    }
    pub fn hellos(&self) -> u64 {
        self.shared.lock().hellos
    }
    /// Sockets open and authenticated now.
    pub fn live_sockets(&self) -> usize {
        self.shared
            .lock()
            .conns
            .values()
            .filter(|c| c.live.is_some())
            .count()
    }

    /// Calls answered with an error, as (call, error id).
    pub fn rejections(&self) -> Vec<(String, String)> {
        self.shared.lock().rejections.clone()
    }

    /// Every REST call, as `METHOD /path`.
    pub fn calls(&self) -> Vec<String> {
        self.shared.lock().calls.clone()
    }

    /// The bot's posts so far.
    pub fn posts(&self) -> Vec<Post> {
        self.shared.lock().posts.clone()
    }

    /// Waits until the bot made at least `n` posts (panics after `timeout`).
    pub async fn wait_posts(&self, n: usize, timeout: Duration) -> Vec<Post> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let posts = self.posts();
            if posts.len() >= n {
                return posts;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "expected {n} posts within {timeout:?}, got {posts:#?}; rejections {:?}",
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

fn direct_channel(inner: &mut Inner, a: &str, b: &str) -> String {
    let mut pair = [a.to_owned(), b.to_owned()];
    pair.sort();
    let name = format!("{}__{}", pair[0], pair[1]);
    if let Some((id, _)) = inner.channels.iter().find(|(_, c)| c.name == name) {
        return id.clone();
    }
    let id = new_id(inner, 'd');
    inner.channels.insert(
        id.clone(),
        Channel {
            name,
            display_name: String::new(),
            kind: "D",
            members: pair.to_vec(),
        },
    );
    id
}

fn new_post(
    inner: &mut Inner,
    user: &str,
    channel_id: &str,
    message: &str,
    root_id: &str,
    props: Value,
) -> Value {
    let id = new_id(inner, 'p');
    let at = now_ms(inner);
    inner.stored.insert(
        id.clone(),
        StoredPost {
            channel_id: channel_id.to_owned(),
            root_id: root_id.to_owned(),
        },
    );
    json!({
        "id": id, "create_at": at, "update_at": at, "edit_at": 0, "delete_at": 0,
        "is_pinned": false, "user_id": user, "channel_id": channel_id, "root_id": root_id,
        "original_id": "", "message": message, "type": "", "props": props, "hashtags": "",
        "pending_post_id": "", "reply_count": 0, "last_reply_at": 0, "participants": null,
        "metadata": {},
    })
}

/// Sends a `posted` event to the sockets of the channel's members (the author included, as
/// the server does), numbering it per connection; dead connections queue it for resuming.
fn broadcast_posted(inner: &mut Inner, post: &Value) {
    let channel_id = post["channel_id"].as_str().unwrap_or_default().to_owned();
    let Some(channel) = inner.channels.get(&channel_id).cloned() else {
        return;
    };
    let author = post["user_id"].as_str().unwrap_or_default();
    let sender = inner.users.get(author).cloned().unwrap_or_default();
    let mut data = json!({
        "channel_display_name": channel.display_name,
        "channel_name": channel.name,
        "channel_type": channel.kind,
        "post": post.to_string(),
        "sender_name": format!("@{sender}"),
        "set_online": true,
        "team_id": if channel.kind == "D" { "" } else { TEAM_ID },
    });
    let message = post["message"].as_str().unwrap_or_default();
    let mentioned: Vec<&String> = inner
        .users
        .iter()
        .filter(|(_, name)| message.contains(&format!("@{name}")))
        .map(|(id, _)| id)
        .collect();
    if !mentioned.is_empty() {
        data["mentions"] = json!(json!(mentioned).to_string());
    }
    for conn in inner
        .conns
        .values_mut()
        .filter(|c| channel.members.contains(&c.user_id))
    {
        push_event(conn, "posted", data.clone(), &channel_id);
    }
}

fn push_event(conn: &mut Conn, event: &str, data: Value, channel_id: &str) {
    let seq = conn.next_seq;
    conn.next_seq += 1;
    let frame = json!({
        "event": event,
        "data": data,
        "broadcast": {"omit_users": null, "user_id": "", "channel_id": channel_id, "team_id": "", "connection_id": "", "omit_connection_id": ""},
        "seq": seq,
    })
    .to_string();
    conn.buffer.push_back((seq, frame.clone()));
    if conn.buffer.len() > DEAD_QUEUE {
        conn.buffer.pop_front();
    }
    if let Some((_, tx)) = &conn.live
        && tx.send(SocketCommand::Frame(frame)).is_err()
    {
        conn.live = None;
    }
}

fn app_error(status: StatusCode, id: &str, message: &str) -> Response {
    let body = json!({"id": id, "message": message, "detailed_error": "", "request_id": "fakerequestid0000000000001", "status_code": status.as_u16()});
    (status, axum::Json(body)).into_response()
}

fn fail(shared: &Shared, call: &str, status: StatusCode, id: &str, message: &str) -> Response {
    shared
        .lock()
        .rejections
        .push((call.to_owned(), id.to_owned()));
    app_error(status, id, message)
}

fn user_object(id: &str, name: &str) -> Value {
    json!({
        "id": id, "create_at": 1_600_000_000_000u64, "update_at": 1_600_000_000_000u64, "delete_at": 0,
        "username": name, "auth_data": "", "auth_service": "", "email": format!("{name}@example.invalid"),
        "nickname": "", "first_name": "", "last_name": "", "position": "", "roles": "system_user",
        "locale": "en", "is_bot": id == BOT_ID,
    })
}

fn channel_object(id: &str, c: &Channel) -> Value {
    json!({
        "id": id, "create_at": 1_600_000_000_000u64, "update_at": 1_600_000_000_000u64, "delete_at": 0,
        "team_id": if c.kind == "D" { "" } else { TEAM_ID }, "type": c.kind, "display_name": c.display_name,
        "name": c.name, "header": "", "purpose": "", "last_post_at": 0, "total_msg_count": 0, "creator_id": "",
    })
}

/// Everything under `/api/v4/`.
async fn api(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<String>,
    request: Request,
) -> Response {
    let method = request.method().clone();
    let call = format!("{method} /{path}");
    if path == "websocket" {
        return websocket(shared, request);
    }
    shared.lock().calls.push(call.clone());
    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        == Some(TOKEN);
    if !authorized {
        return fail(
            &shared,
            &call,
            StatusCode::UNAUTHORIZED,
            "api.context.session_expired.app_error",
            "Invalid or expired session, please login again.",
        );
    }
    {
        let mut inner = shared.lock();
        if let Some((times, secs)) = inner.rate_limits.get_mut(&call)
            && *times > 0
        {
            *times -= 1;
            let secs = *secs;
            inner.rate_limited += 1;
            inner.rejections.push((call.clone(), "rate_limited".into()));
            return Response::builder()
                .status(StatusCode::TOO_MANY_REQUESTS)
                .header("x-ratelimit-limit", "10")
                .header("x-ratelimit-remaining", "0")
                .header("x-ratelimit-reset", secs.to_string())
                .header(header::RETRY_AFTER, secs.to_string())
                .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                .body(Body::from("limit exceeded\n"))
                .expect("static response");
        }
    }
    let Ok(body) = axum::body::to_bytes(request.into_body(), 4 << 20).await else {
        return fail(
            &shared,
            &call,
            StatusCode::PAYLOAD_TOO_LARGE,
            "api.context.invalid_body_param.app_error",
            "Request body too large.",
        );
    };
    let segments: Vec<&str> = path.split('/').collect();
    let not_found_user = || {
        fail(
            &shared,
            &call,
            StatusCode::NOT_FOUND,
            "app.user.missing_account.const",
            "Unable to find the user.",
        )
    };
    let not_found_channel = || {
        fail(
            &shared,
            &call,
            StatusCode::NOT_FOUND,
            "app.channel.get.existing.app_error",
            "Unable to find the existing channel.",
        )
    };
    match (&method, segments.as_slice()) {
        (&Method::GET, ["users", "me"]) => {
            axum::Json(user_object(BOT_ID, BOT_NAME)).into_response()
        }
        (&Method::GET, ["users", "username", name]) => {
            let found = shared
                .lock()
                .users
                .iter()
                .find(|(_, n)| n == name)
                .map(|(id, n)| user_object(id, n));
            found.map_or_else(not_found_user, |u| axum::Json(u).into_response())
        }
        (&Method::GET, ["users", id]) => {
            let found = shared.lock().users.get(*id).map(|n| user_object(id, n));
            found.map_or_else(not_found_user, |u| axum::Json(u).into_response())
        }
        (&Method::GET, ["channels", id]) => {
            let found = shared
                .lock()
                .channels
                .get(*id)
                .map(|c| channel_object(id, c));
            found.map_or_else(not_found_channel, |c| axum::Json(c).into_response())
        }
        (&Method::GET, ["teams", "name", team, "channels", "name", name]) => {
            if *team != TEAM {
                return fail(
                    &shared,
                    &call,
                    StatusCode::NOT_FOUND,
                    "app.team.get_by_name.missing.app_error",
                    "Unable to find the existing team.",
                );
            }
            let found = shared
                .lock()
                .channels
                .iter()
                .find(|(_, c)| c.name == *name && c.kind != "D")
                .map(|(id, c)| channel_object(id, c));
            found.map_or_else(not_found_channel, |c| axum::Json(c).into_response())
        }
        (&Method::POST, ["channels", "direct"]) => {
            let ids: Vec<String> = serde_json::from_slice(&body).unwrap_or_default();
            let mut inner = shared.lock();
            if ids.len() != 2 || ids.iter().any(|id| !inner.users.contains_key(id)) {
                drop(inner);
                return fail(
                    &shared,
                    &call,
                    StatusCode::BAD_REQUEST,
                    "api.context.invalid_body_param.app_error",
                    "Invalid or missing user_ids in request body.",
                );
            }
            let id = direct_channel(&mut inner, &ids[0], &ids[1]);
            let channel = channel_object(&id, &inner.channels[&id]);
            (StatusCode::CREATED, axum::Json(channel)).into_response()
        }
        (&Method::POST, ["posts"]) => create_post(&shared, &call, &body),
        (&Method::GET, ["posts", id]) => {
            let inner = shared.lock();
            let found = match inner.posts.iter().find(|p| p.id == *id) {
                Some(p) => Some(
                    json!({"id": p.id, "channel_id": p.channel_id, "root_id": p.root_id,
                                       "user_id": BOT_ID, "message": p.message,
                                       "props": client_props(&p.props)}),
                ),
                None => inner
                    .stored
                    .get(*id)
                    .map(|p| json!({"id": id, "channel_id": p.channel_id, "root_id": p.root_id})),
            };
            drop(inner);
            match found {
                Some(post) => axum::Json(post).into_response(),
                None => fail(
                    &shared,
                    &call,
                    StatusCode::NOT_FOUND,
                    "app.post.get.app_error",
                    "Unable to get the post.",
                ),
            }
        }
        (&Method::PUT, ["posts", id, "patch"]) => patch_post(&shared, &call, id, &body),
        _ => fail(
            &shared,
            &call,
            StatusCode::NOT_FOUND,
            "api.context.404.app_error",
            "Sorry, we could not find the page.",
        ),
    }
}

/// The buttons of a post: `props.attachments[].actions[]`.
fn post_actions(props: &Value) -> Vec<Value> {
    props["attachments"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["actions"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// Whether the actions of `props` are ones Mattermost takes: a `name`, an `id` of letters
/// and digits when given, a `type` of `button` or `select`, an integration URL that is
/// absolute (`http`/`https`) or a plugin path.
fn actions_ok(props: &Value) -> bool {
    post_actions(props).iter().all(|a| {
        let url = a["integration"]["url"].as_str().unwrap_or_default();
        a["name"].as_str().is_some_and(|n| !n.trim().is_empty())
            && a["id"]
                .as_str()
                .is_none_or(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()))
            && matches!(a["type"].as_str(), None | Some("button" | "select"))
            && (url.starts_with("http://")
                || url.starts_with("https://")
                || url.starts_with("/plugins/"))
    })
}

/// `props` as clients see them: every action's `integration` removed.
fn client_props(props: &Value) -> Value {
    let mut props = props.clone();
    if let Some(attachments) = props["attachments"].as_array_mut() {
        for a in attachments {
            if let Some(actions) = a["actions"].as_array_mut() {
                for action in actions {
                    if let Some(o) = action.as_object_mut() {
                        o.remove("integration");
                    }
                }
            }
        }
    }
    props
}

fn create_post(shared: &Arc<Shared>, call: &str, body: &[u8]) -> Response {
    let Ok(post) = serde_json::from_slice::<Value>(body) else {
        return fail(
            shared,
            call,
            StatusCode::BAD_REQUEST,
            "api.context.invalid_body_param.app_error",
            "Invalid or missing post in request body.",
        );
    };
    let channel_id = post["channel_id"].as_str().unwrap_or_default().to_owned();
    let message = post["message"].as_str().unwrap_or_default().to_owned();
    let root_id = post["root_id"].as_str().unwrap_or_default().to_owned();
    let props = post.get("props").cloned().unwrap_or_else(|| json!({}));
    let mut inner = shared.lock();
    let Some(channel) = inner.channels.get(&channel_id).cloned() else {
        drop(inner);
        return fail(
            shared,
            call,
            StatusCode::BAD_REQUEST,
            "api.context.invalid_body_param.app_error",
            "Invalid or missing channel_id in request body.",
        );
    };
    if !channel.members.iter().any(|m| m == BOT_ID) {
        drop(inner);
        return fail(
            shared,
            call,
            StatusCode::FORBIDDEN,
            "api.context.permissions.app_error",
            "You do not have the appropriate permissions.",
        );
    }
    if message.chars().count() > inner.max_post_size {
        let limit = inner.max_post_size;
        drop(inner);
        return fail(
            shared,
            call,
            StatusCode::BAD_REQUEST,
            "model.post.is_valid.msg.app_error",
            &format!("Invalid Message: message is longer than {limit} characters."),
        );
    }
    let has_attachments = props
        .get("attachments")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if props.get("attachments").is_some_and(|a| !a.is_array())
        || props.to_string().chars().count() > MAX_PROPS
        || !actions_ok(&props)
    {
        drop(inner);
        return fail(
            shared,
            call,
            StatusCode::BAD_REQUEST,
            "model.post.is_valid.props.app_error",
            "Invalid props.",
        );
    }
    if message.trim().is_empty() && !has_attachments {
        drop(inner);
        return fail(
            shared,
            call,
            StatusCode::BAD_REQUEST,
            "api.post.create_post.empty.app_error",
            "Post is empty.",
        );
    }
    if !root_id.is_empty() {
        let root_ok = inner
            .stored
            .get(&root_id)
            .is_some_and(|r| r.channel_id == channel_id && r.root_id.is_empty());
        if !root_ok {
            drop(inner);
            return fail(
                shared,
                call,
                StatusCode::BAD_REQUEST,
                "api.post.create_post.root_id.app_error",
                "Invalid RootId parameter.",
            );
        }
    }
    let mut props = props;
    props["from_bot"] = json!("true");
    let stored = new_post(
        &mut inner,
        BOT_ID,
        &channel_id,
        &message,
        &root_id,
        props.clone(),
    );
    inner.posts.push(Post {
        id: stored["id"].as_str().unwrap_or_default().to_owned(),
        channel_id,
        root_id,
        message,
        props,
        edits: Vec::new(),
    });
    let mut visible = stored.clone();
    visible["props"] = client_props(&stored["props"]);
    broadcast_posted(&mut inner, &visible);
    (StatusCode::CREATED, axum::Json(visible)).into_response()
}

/// `PUT /api/v4/posts/{id}/patch` with a new `message`.
fn patch_post(shared: &Arc<Shared>, call: &str, id: &str, body: &[u8]) -> Response {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|b| b.get("message").and_then(Value::as_str).map(str::to_owned));
    let mut inner = shared.lock();
    let max = inner.max_post_size;
    let Some(post) = inner.posts.iter_mut().find(|p| p.id == id) else {
        drop(inner);
        return fail(
            shared,
            call,
            StatusCode::NOT_FOUND,
            "app.post.get.app_error",
            "Unable to get the post.",
        );
    };
    let Some(message) = message.filter(|m| m.chars().count() <= max) else {
        drop(inner);
        return fail(
            shared,
            call,
            StatusCode::BAD_REQUEST,
            "model.post.is_valid.msg.app_error",
            "Invalid Message.",
        );
    };
    post.message = message.clone();
    post.edits.push(message.clone());
    let answer = json!({"id": post.id, "channel_id": post.channel_id, "root_id": post.root_id,
        "message": message, "edit_at": 1_700_000_000_000u64, "user_id": BOT_ID});
    drop(inner);
    axum::Json(answer).into_response()
}

/// `GET /api/v4/websocket`, with `connection_id` and `sequence_number` when resuming.
fn websocket(shared: Arc<Shared>, request: Request) -> Response {
    let mut resume_id = None;
    let mut resume_seq = None;
    for (k, v) in url::form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes())
    {
        match k.as_ref() {
            "connection_id" => resume_id = Some(v.into_owned()),
            "sequence_number" => resume_seq = v.parse::<i64>().ok(),
            _ => {}
        }
    }
    let header_auth = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        == Some(TOKEN);
    ws::upgrade(request, move |socket| {
        socket_session(shared, socket, header_auth, resume_id, resume_seq)
    })
}

async fn socket_session(
    shared: Arc<Shared>,
    mut socket: ServerSocket,
    header_auth: bool,
    resume_id: Option<String>,
    resume_seq: Option<i64>,
) {
    let socket_id = {
        let mut inner = shared.lock();
        inner.sockets_opened += 1;
        inner.sockets_opened
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut authenticated = false;
    if header_auth {
        register(&shared, socket_id, &tx, resume_id.as_deref(), resume_seq);
        authenticated = true;
    }
    loop {
        tokio::select! {
            command = rx.recv() => match command {
                Some(SocketCommand::Frame(text)) => {
                    if socket.send(Message::Text(text.into())).await.is_err() { break; }
                }
                Some(SocketCommand::Drop) | None => return,
            },
            incoming = socket.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let Ok(request) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                    let seq = request["seq"].as_i64().unwrap_or(0);
                    let action = request["action"].as_str().unwrap_or_default();
                    if action.is_empty() || seq <= 0 {
                        let id = if action.is_empty() { "api.web_socket_router.no_action.app_error" } else { "api.web_socket_router.bad_seq.app_error" };
                        let _ = socket.send(Message::Text(ws_error(seq, id).into())).await;
                        continue;
                    }
                    if action == "authentication_challenge" {
                        if authenticated { continue; }
                        if request["data"]["token"].as_str() != Some(TOKEN) {
                            // The server closes the socket on a bad token.
                            let _ = socket.close(None).await;
                            return;
                        }
                        let resumed = register(&shared, socket_id, &tx, resume_id.as_deref(), resume_seq);
                        authenticated = true;
                        let ok = json!({"status": "OK", "seq_reply": seq}).to_string();
                        if resumed {
                            // Replayed events are already queued behind this reply's turn:
                            // send the reply first, as the server answers before draining.
                            if socket.send(Message::Text(ok.into())).await.is_err() { break; }
                        } else {
                            tx.send(SocketCommand::Frame(ok)).ok();
                        }
                        continue;
                    }
                    if !authenticated {
                        let _ = socket.send(Message::Text(ws_error(seq, "api.web_socket_router.not_authenticated.app_error").into())).await;
                        continue;
                    }
                    let ok = json!({"status": "OK", "seq_reply": seq}).to_string();
                    let _ = socket.send(Message::Text(ok.into())).await;
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    let mut inner = shared.lock();
    for conn in inner.conns.values_mut() {
        if conn.live.as_ref().is_some_and(|(id, _)| *id == socket_id) {
            conn.live = None;
        }
    }
}

fn ws_error(seq: i64, id: &str) -> String {
    json!({"status": "FAIL", "seq_reply": seq, "error": {"id": id, "message": id, "detailed_error": "", "request_id": "", "status_code": 400}}).to_string()
}

/// Attaches an authenticated socket to its connection: the old one when `resume_id` names
/// a connection whose queue still holds `resume_seq` (missed events are replayed, no
/// `hello`), else a new one greeted with `hello`. Returns whether it resumed.
fn register(
    shared: &Arc<Shared>,
    socket_id: u64,
    tx: &mpsc::UnboundedSender<SocketCommand>,
    resume_id: Option<&str>,
    resume_seq: Option<i64>,
) -> bool {
    let mut inner = shared.lock();
    if let (Some(id), Some(seq)) = (resume_id, resume_seq)
        && let Some(conn) = inner.conns.get_mut(id)
        && conn.live.is_none()
        && (seq == conn.next_seq || conn.buffer.front().is_some_and(|(first, _)| *first <= seq))
    {
        for (s, frame) in &conn.buffer {
            if *s >= seq {
                let _ = tx.send(SocketCommand::Frame(frame.clone()));
            }
        }
        conn.live = Some((socket_id, tx.clone()));
        inner.resumed += 1;
        return true;
    }
    let connection_id = new_id(&mut inner, 'c');
    let mut conn = Conn {
        user_id: BOT_ID.to_owned(),
        next_seq: 0,
        buffer: VecDeque::new(),
        live: Some((socket_id, tx.clone())),
    };
    push_event(
        &mut conn,
        "hello",
        json!({"connection_id": connection_id, "server_version": "10.5.0.10.5.0.fake.false"}),
        "",
    );
    inner.conns.insert(connection_id, conn);
    inner.hellos += 1;
    false
}
