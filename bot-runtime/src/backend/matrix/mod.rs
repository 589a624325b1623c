//! The Matrix backend (client-server API v3 over plain reqwest). It also serves Gitter
//! rooms: Gitter runs on Matrix, so `#room:gitter.im` is an ordinary Matrix room.
//!
//! Life of the backend ([`MatrixBackend::run`]):
//! 1. log in (`m.login.password`, or the given access token checked with `whoami`); wrong
//!    credentials stop the backend, network trouble is retried with backoff and jitter;
//! 2. join every room of `rooms` (ids or aliases), retrying failures every few minutes;
//! 3. long-poll `/sync` with a filter and the `since` token. The first sync only learns the
//!    rooms (its history is never acted on); later syncs turn new `m.text` messages from
//!    others into [`Incoming`] values, and accept every invite (that is how direct chats
//!    start). A sync failure backs off with jitter and resumes from the last `since`;
//!    `M_UNKNOWN_TOKEN` with a password login logs in again, a rate-limited sync waits what
//!    the homeserver asks. Steps 1 and 3 run on the backends' reconnect supervisor
//!    ([`supervise`]): logging in is its connect, the sync loop its session, which ends when
//!    a sync fails (or a lost token cannot be renewed yet);
//! 4. meanwhile, [`Outgoing`] replies are rendered ([`render`]) and queued; the queue is sent
//!    in order with per-process unique transaction ids (so a retried send is not
//!    duplicated), waits out `429 M_LIMIT_EXCEEDED` for `retry_after_ms`, and keeps what
//!    could not be sent while the homeserver is away until it is back (replies are taken and
//!    tried while the supervisor waits to reconnect too). That queue has its own retry
//!    pacing per message (`send_backoff`), not a reconnect loop. A reply posted with
//!    [`Outgoing::remember_as`] has its event id remembered; a later
//!    [`Outgoing::replaces`] sends an `m.replace` edit of it ([`render::replacement`]);
//!    live acks use it.
//!
//! Rooms and people: a room with exactly two joined members is a direct chat (`room: None`;
//! replies go back to that room), unless it is listed in `rooms`. The room name access rules
//! see is the canonical alias (`#ops:example.org`) if any, else the room id. The user name
//! they see is the full user id (`@alice:example.org`, written `'\@alice:example.org'` in
//! rules since `@` starts a group name there): a bare localpart could be anyone's on another
//! homeserver.
//! A message mentions the bot when it starts with the bot's display name or user id
//! followed by `:` (what clients insert for a mention pill), or lists the bot in
//! `m.mentions`. Direct messages to a user id reuse the direct chat with them (the one last
//! used, `m.direct`, or any room holding just the two of them) or create one
//! (`createRoom` with `is_direct`), recorded in `m.direct`.
//!
//! End-to-end encrypted rooms are not supported: the bot sees no text there.

mod api;
mod render;
mod rooms;

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bot_config::{MatrixLogin, MatrixSpec};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;

use self::api::{Api, Event, MatrixError, SyncResponse};
use self::render::{MAX_MESSAGE_CHARS, Mention, render, strip_mention, strip_reply_fallback};
use self::rooms::Rooms;
use super::backoff::{Backoff, sleep_or_shutdown};
use super::error::ApiError;
use super::supervisor::{ConnectError, EventStream, SessionEnd, supervise};
use super::{
    Backend, BackendError, BackendIo, BoxFuture, Capabilities, ConnState, Incoming, Outgoing, Room,
    Target,
};
use crate::secret::{self, Secret};

/// Long-poll timeout of each `/sync`.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeline events per room per sync after the first one.
const TIMELINE_LIMIT: u32 = 50;
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Longest wait between attempts to join a room.
const MAX_JOIN_RETRY: Duration = Duration::from_secs(300);
/// Longest single wait a rate limit may impose on a send before the queue is retried later.
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(30);
/// Replies kept while the homeserver is unreachable; older ones are dropped beyond this.
const MAX_QUEUED_REPLIES: usize = 1000;
/// Time allowed for sending what is queued at shutdown (the bot waits 5 s for its backend).
const FLUSH_TIMEOUT: Duration = Duration::from_secs(4);
/// Service name in errors.
const SERVICE: &str = "matrix";

/// How the bot proves who it is.
enum Credentials {
    /// `m.login.password` with this user (localpart or full id).
    Password {
        /// Localpart or user id.
        user: String,
        /// Password.
        password: Secret,
    },
    /// An access token.
    Token(Secret),
}

/// The Matrix backend, ready to run.
pub struct MatrixBackend {
    api: Api,
    credentials: Credentials,
    rooms: Vec<String>,
}

impl std::fmt::Debug for MatrixBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatrixBackend")
            .field("api", &self.api)
            .field("rooms", &self.rooms)
            .finish_non_exhaustive()
    }
}

impl MatrixBackend {
    /// The backend for a definition: checks the URL and reads the secret it needs.
    pub fn new(spec: &MatrixSpec) -> Result<Self, BackendError> {
        let base = Url::parse(&spec.url).map_err(|e| BackendError::Config {
            what: "backend.url",
            reason: format!("`{}` is not a URL: {e}", spec.url),
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(BackendError::Config {
                what: "backend.url",
                reason: format!("`{}` is not an http(s) homeserver URL", spec.url),
            });
        }
        let http = crate::http::client(true, None, None).map_err(|e| BackendError::Config {
            what: "HTTP client",
            reason: e.to_string(),
        })?;
        let credentials = match &spec.login {
            MatrixLogin::Password { username, password } => Credentials::Password {
                user: username.to_string(),
                password: secret::resolve(password)?,
            },
            MatrixLogin::Token(token) => Credentials::Token(secret::resolve(token)?),
        };
        Ok(Self {
            api: Api::new(http, base),
            credentials,
            rooms: spec.rooms.iter().map(|r| r.to_string()).collect(),
        })
    }
}

impl Backend for MatrixBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_message_len: MAX_MESSAGE_CHARS,
            rich: true,
            threads: true,
            edit: true,
            buttons: false,
        }
    }

    fn run(self: Box<Self>, io: BackendIo) -> BoxFuture<'static, Result<(), BackendError>> {
        Box::pin(async move { Worker::new(*self, io).run().await })
    }
}

/// Why a step failed: retry later, or give up for good.
enum Failure {
    /// Retry later (after this delay, when the server said).
    Transient(ApiError),
    /// Retrying cannot help.
    Fatal(BackendError),
}

/// What a failed sync leads to.
enum AfterSyncError {
    /// Sync again after this delay, in the same session.
    Retry(Duration),
    /// End the session: the supervisor waits its backoff, then syncs again.
    Reconnect,
}

/// Something for the send side to do ([`Worker::next_chore`]).
enum Chore {
    /// A reply from the bot (`None`: the channel closed).
    Reply(Option<Box<Outgoing>>),
    /// The queue's retry time came.
    RetryQueue,
    /// A room's join retry time came.
    RetryJoins,
}

/// Why a reply's destination could not be found.
#[derive(Debug, thiserror::Error)]
enum TargetError {
    /// The homeserver failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The target names nothing the bot can find.
    #[error("{0}")]
    Unknown(String),
}

/// The bot's identity once logged in.
#[derive(Debug, Default)]
struct Identity {
    user_id: String,
    device_id: Option<String>,
    display_name: Option<String>,
}

impl Identity {
    /// The homeserver part of the user id.
    fn server(&self) -> &str {
        self.user_id.split_once(':').map_or("", |(_, s)| s)
    }
}

/// A reply waiting to be sent.
#[derive(Debug)]
struct Pending {
    target: Target,
    room_id: Option<String>,
    /// Contents with their transaction ids, in order.
    pieces: VecDeque<(String, Value)>,
    /// Whether the bot already tried joining the room after a refusal.
    tried_join: bool,
    /// Remember the first piece's event id under this key ([`Outgoing::remember_as`]).
    remember_as: Option<String>,
    /// And report it there ([`Outgoing::report_posted`]).
    report_posted: Option<super::PostedSink>,
}

/// A room to join again later.
#[derive(Debug)]
struct PendingJoin {
    next: Instant,
    attempts: u32,
    /// Configured rooms are retried forever; invites only after transient failures.
    configured: bool,
}

/// Transaction ids unique within this process (and, with the start time, across restarts).
#[derive(Debug)]
struct TxnIds {
    prefix: String,
    counter: u64,
}

impl TxnIds {
    fn new() -> Self {
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        Self {
            prefix: format!("st2bot.{start}.{}", std::process::id()),
            counter: 0,
        }
    }

    fn next_id(&mut self) -> String {
        self.counter += 1;
        format!("{}.{}", self.prefix, self.counter)
    }
}

/// The running backend's state.
struct Worker {
    api: Api,
    credentials: Credentials,
    /// Configured rooms as written.
    configured: Vec<String>,
    /// Configured rooms as written plus the room ids they resolved to.
    configured_ids: HashSet<String>,
    me: Identity,
    /// Bumped at every login, so a failure of a request made with an older token does not
    /// trigger another login.
    token_generation: u64,
    rooms: Rooms,
    since: Option<String>,
    connected: bool,
    /// The homeserver accepted something since the current connection began (the first
    /// login, a sync): the supervisor's backoff starts again from its shortest wait.
    worked: bool,
    txn: TxnIds,
    queue: VecDeque<Pending>,
    /// Messages posted under [`Outgoing::remember_as`]: (room id, event id), for edits.
    remembered: super::RememberedMessages<(String, String)>,
    queue_retry_at: Option<Instant>,
    send_backoff: Backoff,
    pending_joins: HashMap<String, PendingJoin>,
    incoming: Option<mpsc::Sender<Incoming>>,
    outgoing: mpsc::Receiver<Outgoing>,
    state: watch::Sender<ConnState>,
    shutdown: CancellationToken,
}

impl Worker {
    fn new(backend: MatrixBackend, io: BackendIo) -> Self {
        let configured_ids = backend.rooms.iter().cloned().collect();
        Self {
            api: backend.api,
            credentials: backend.credentials,
            configured: backend.rooms,
            configured_ids,
            me: Identity::default(),
            token_generation: 0,
            rooms: Rooms::default(),
            since: None,
            connected: false,
            worked: false,
            txn: TxnIds::new(),
            queue: VecDeque::new(),
            remembered: super::RememberedMessages::default(),
            queue_retry_at: None,
            send_backoff: Backoff::new(Duration::from_millis(500), MAX_BACKOFF),
            pending_joins: HashMap::new(),
            incoming: Some(io.incoming),
            outgoing: io.outgoing,
            state: io.state,
            shutdown: io.shutdown,
        }
    }

    /// Logs in, joins the configured rooms and syncs until shutdown, on the reconnect
    /// supervisor; then sends what is still queued.
    async fn run(mut self) -> Result<(), BackendError> {
        let sync_backoff = Backoff::new(Duration::from_secs(1), MAX_BACKOFF);
        let shutdown = self.shutdown.clone();
        let state = self.state.clone();
        supervise(&mut self, sync_backoff, &shutdown, &state).await?;
        if self.logged_in() {
            self.flush().await;
        }
        Ok(())
    }

    /// Whether the first login succeeded.
    fn logged_in(&self) -> bool {
        self.token_generation > 0
    }

    /// One session: syncs until a sync fails, serving the send side meanwhile.
    async fn sync_loop(&mut self) -> Result<SessionEnd, BackendError> {
        let shutdown = self.shutdown.clone();
        let mut sync = Box::pin(self.sync_call(Duration::ZERO));
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ok(SessionEnd::Shutdown),
                (generation, result) = &mut sync => {
                    let delay = match result {
                        Ok(response) => {
                            self.on_sync(response).await?;
                            Duration::ZERO
                        }
                        Err(e) => match self.on_sync_error(e, generation).await? {
                            AfterSyncError::Retry(delay) => delay,
                            AfterSyncError::Reconnect => {
                                return Ok(SessionEnd::Closed {
                                    healthy: self.worked,
                                    pause: None,
                                });
                            }
                        },
                    };
                    sync = Box::pin(self.sync_call(delay));
                }
                chore = self.next_chore() => {
                    if !self.do_chore(chore).await? {
                        return Ok(SessionEnd::Shutdown);
                    }
                }
            }
        }
    }

    /// Waits for the send side's next chore: a reply, the queue's or a join's retry time.
    /// Cancel-safe (nothing is taken until it is returned).
    async fn next_chore(&mut self) -> Chore {
        let queue_retry = self.queue_retry_at;
        let join_retry = self.pending_joins.values().map(|j| j.next).min();
        tokio::select! {
            biased;
            reply = self.outgoing.recv() => Chore::Reply(reply.map(Box::new)),
            () = sleep_until(queue_retry) => Chore::RetryQueue,
            () = sleep_until(join_retry) => Chore::RetryJoins,
        }
    }

    /// Does `chore`; `Ok(false)` when the reply channel closed (the backend stops).
    async fn do_chore(&mut self, chore: Chore) -> Result<bool, BackendError> {
        match chore {
            Chore::Reply(Some(reply)) => {
                self.enqueue(*reply);
                self.drain().await?;
            }
            Chore::Reply(None) => return Ok(false),
            Chore::RetryQueue => {
                self.queue_retry_at = None;
                self.drain().await?;
            }
            Chore::RetryJoins => self.retry_joins().await,
        }
        Ok(true)
    }

    // ----- login -----

    async fn log_in(&mut self) -> Result<(), Failure> {
        let classify = |e: ApiError| {
            if e.is_transient() {
                Failure::Transient(e)
            } else {
                Failure::Fatal(BackendError::Auth {
                    service: SERVICE,
                    reason: e.to_string(),
                })
            }
        };
        match &self.credentials {
            Credentials::Password { user, password } => {
                let response = self
                    .api
                    .login_password(user, password, self.me.device_id.as_deref())
                    .await
                    .map_err(classify)?;
                if let Some(token) = response.access_token {
                    self.api.set_token(Secret::new(token));
                }
                self.me.user_id = response.user_id;
                self.me.device_id = response.device_id;
            }
            Credentials::Token(token) => {
                self.api.set_token(token.clone());
                let response = self.api.whoami().await.map_err(classify)?;
                self.me.user_id = response.user_id;
                self.me.device_id = response.device_id;
            }
        }
        self.token_generation += 1;
        match self.api.display_name(&self.me.user_id).await {
            Ok(name) => self.me.display_name = name,
            Err(e) => tracing::warn!(error = %e, "matrix: cannot read the bot's display name"),
        }
        tracing::info!(
            user_id = %self.me.user_id,
            device_id = self.me.device_id.as_deref().unwrap_or("-"),
            display_name = self.me.display_name.as_deref().unwrap_or("-"),
            "matrix: logged in"
        );
        Ok(())
    }

    /// After `M_UNKNOWN_TOKEN`: logs in again with the password. `Ok(false)` means the
    /// homeserver could not be reached (try again later).
    async fn log_in_again(&mut self) -> Result<bool, BackendError> {
        if matches!(self.credentials, Credentials::Token(_)) {
            let e = BackendError::Auth {
                service: SERVICE,
                reason: "the access token is no longer valid (M_UNKNOWN_TOKEN)".into(),
            };
            let _ = self.state.send(ConnState::Failed(e.to_string()));
            return Err(e);
        }
        tracing::warn!("matrix: access token expired or revoked, logging in again");
        match self.log_in().await {
            Ok(()) => Ok(true),
            Err(Failure::Transient(e)) => {
                tracing::warn!(error = %e, "matrix: login failed, will retry");
                Ok(false)
            }
            Err(Failure::Fatal(e)) => {
                let _ = self.state.send(ConnState::Failed(e.to_string()));
                Err(e)
            }
        }
    }

    // ----- rooms -----

    /// Joins a room (or accepts an invite); failures are retried later.
    async fn join(&mut self, room: &str, configured: bool) -> Option<String> {
        match self.api.join(room).await {
            Ok(room_id) => {
                tracing::info!(room = %room, room_id = %room_id, "matrix: joined room");
                self.pending_joins.remove(room);
                if configured {
                    self.configured_ids.insert(room_id.clone());
                }
                self.rooms.entry(&room_id);
                Some(room_id)
            }
            Err(e) => {
                let retry = configured || e.is_transient();
                let entry = self
                    .pending_joins
                    .entry(room.to_owned())
                    .or_insert(PendingJoin {
                        next: Instant::now(),
                        attempts: 0,
                        configured,
                    });
                entry.attempts += 1;
                let delay = e.rate_limited().unwrap_or_else(|| {
                    Duration::from_secs(5)
                        .saturating_mul(1u32 << entry.attempts.min(10))
                        .min(MAX_JOIN_RETRY)
                });
                entry.next = Instant::now() + delay;
                if retry {
                    tracing::warn!(room = %room, error = %e, retry_in = ?delay, "matrix: cannot join room, will retry");
                } else {
                    tracing::warn!(room = %room, error = %e, "matrix: cannot join room");
                    self.pending_joins.remove(room);
                }
                None
            }
        }
    }

    async fn retry_joins(&mut self) {
        let now = Instant::now();
        let due: Vec<(String, bool)> = self
            .pending_joins
            .iter()
            .filter(|(_, j)| j.next <= now)
            .map(|(room, j)| (room.clone(), j.configured))
            .collect();
        for (room, configured) in due {
            self.join(&room, configured).await;
        }
    }

    // ----- sync -----

    /// The next `/sync`, after `delay`; resolves to the token generation it used and its
    /// result. Owns everything it needs, so the worker stays free while it is pending.
    fn sync_call(
        &self,
        delay: Duration,
    ) -> impl Future<Output = (u64, Result<SyncResponse, ApiError>)> + Send + 'static + use<> {
        let initial = self.since.is_none();
        let filter = sync_filter(if initial { 1 } else { TIMELINE_LIMIT });
        let timeout = if initial {
            Duration::ZERO
        } else {
            SYNC_TIMEOUT
        };
        let request = self.api.sync(self.since.as_deref(), &filter, timeout);
        let generation = self.token_generation;
        async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            (generation, request.await)
        }
    }

    /// What to do after a failed sync: sync again after a delay, or reconnect.
    async fn on_sync_error(
        &mut self,
        error: ApiError,
        generation: u64,
    ) -> Result<AfterSyncError, BackendError> {
        if error.is_unknown_token() {
            if generation != self.token_generation {
                return Ok(AfterSyncError::Retry(Duration::ZERO));
            }
            if self.log_in_again().await? {
                return Ok(AfterSyncError::Retry(Duration::ZERO));
            }
            // No new token yet: the supervisor paces the next try.
            self.connected = false;
            return Ok(AfterSyncError::Reconnect);
        }
        if let Some(delay) = error.rate_limited() {
            tracing::debug!(retry_in = ?delay, "matrix: sync rate-limited");
            return Ok(AfterSyncError::Retry(delay));
        }
        self.connected = false;
        tracing::warn!(error = %error, "matrix: sync failed, reconnecting");
        Ok(AfterSyncError::Reconnect)
    }

    async fn on_sync(&mut self, response: SyncResponse) -> Result<(), BackendError> {
        let initial = self.since.is_none();
        self.since = Some(response.next_batch);
        self.worked = true;
        if !self.connected {
            self.connected = true;
            let _ = self.state.send(ConnState::Connected);
            tracing::info!(initial, "matrix: syncing");
        }
        for event in &response.account_data.events {
            if event.kind == "m.direct" {
                self.rooms.set_m_direct(&event.content);
            }
        }
        for room_id in response.rooms.leave.keys() {
            tracing::info!(room_id = %room_id, "matrix: left room");
            self.rooms.remove(room_id);
        }
        for (room_id, invited) in &response.rooms.invite {
            let invite = invited.invite_state.events.iter().find(|e| {
                e.kind == "m.room.member"
                    && e.state_key.as_deref() == Some(self.me.user_id.as_str())
                    && e.content.get("membership").and_then(Value::as_str) == Some("invite")
            });
            let Some(invite) = invite else { continue };
            let direct = invite.content.get("is_direct").and_then(Value::as_bool) == Some(true);
            let inviter = invite.sender.clone();
            tracing::info!(room_id = %room_id, inviter = %inviter, direct, "matrix: accepting invite");
            if let Some(joined) = self.join(room_id, false).await
                && direct
            {
                self.rooms.set_direct(&inviter, &joined);
            }
        }
        let mut messages = Vec::new();
        for (room_id, joined) in response.rooms.join {
            let room = self.rooms.entry(&room_id);
            let known = room.synced && !initial;
            room.synced = true;
            room.apply_summary(&joined.summary);
            for event in &joined.state.events {
                room.apply(event);
            }
            // In a room joined since the last sync, only what follows the bot's own join.
            let mut listening = known;
            for event in joined.timeline.events {
                if event.state_key.is_some() {
                    self.rooms.entry(&room_id).apply(&event);
                    if event.kind == "m.room.member"
                        && event.state_key.as_deref() == Some(self.me.user_id.as_str())
                        && event.content.get("membership").and_then(Value::as_str) == Some("join")
                    {
                        listening = true;
                    }
                } else if listening
                    && !initial
                    && let Some(message) = self.read_message(&room_id, &event)
                {
                    messages.push(message);
                }
            }
        }
        for message in messages {
            tracing::debug!(
                user = %message.user,
                room = message.room.as_ref().map_or("(direct)", |r| r.name.as_str()),
                "matrix: message"
            );
            if let Some(tx) = &self.incoming
                && tx.send(message).await.is_err()
            {
                tracing::debug!("matrix: nobody reads incoming messages any more");
                self.incoming = None;
            }
        }
        if !self.queue.is_empty() {
            // The homeserver answers again: send what waited for it now.
            self.queue_retry_at = None;
            self.send_backoff.reset();
            self.drain().await?;
        }
        Ok(())
    }

    /// A new message event as an [`Incoming`], when it is text from someone else.
    fn read_message(&mut self, room_id: &str, event: &Event) -> Option<Incoming> {
        if event.sender == self.me.user_id {
            return None;
        }
        let TextMessage {
            text,
            mentioned,
            thread,
        } = TextMessage::parse(event, &self.me.user_id, &self.my_names(room_id))?;
        let direct = self.rooms.is_direct(room_id, &self.configured_ids);
        if direct {
            self.rooms.set_direct(&event.sender, room_id);
        }
        Some(Incoming {
            user_id: event.sender.clone(),
            user: event.sender.clone(),
            room: (!direct).then(|| Room {
                id: room_id.to_owned(),
                name: self.rooms.name(room_id),
            }),
            text,
            mentioned,
            thread,
            message_id: event.event_id.clone(),
        })
    }

    /// Names that address the bot: display names (room and global), user id, localpart.
    fn my_names(&self, room_id: &str) -> Vec<String> {
        let mut names = Vec::with_capacity(4);
        if let Some(n) = self
            .rooms
            .get(room_id)
            .and_then(|r| r.display_name(&self.me.user_id))
        {
            names.push(n.to_owned());
        }
        if let Some(n) = &self.me.display_name {
            names.push(n.clone());
        }
        names.push(self.me.user_id.clone());
        if let Some((local, _)) = self.me.user_id.split_once(':') {
            names.push(local.trim_start_matches('@').to_owned());
        }
        // Longest first, so "St2 Bot Two" wins over "St2 Bot".
        names.sort_by_key(|n| std::cmp::Reverse(n.chars().count()));
        names
    }

    // ----- sending -----

    /// A user id from what a reply names: `@u:server`, `u:server`, or a bare localpart on
    /// the bot's own homeserver.
    fn user_id_of(&self, name: &str) -> Option<String> {
        let name = name.trim();
        if name.is_empty() {
            return None;
        }
        let bare = name.trim_start_matches('@');
        if bare.contains(':') {
            Some(format!("@{bare}"))
        } else if !self.me.server().is_empty() {
            Some(format!("@{bare}:{}", self.me.server()))
        } else {
            None
        }
    }

    fn enqueue(&mut self, reply: Outgoing) {
        if let Some(key) = &reply.replaces {
            let Some((room_id, event_id)) = self.remembered.replaced(&reply) else {
                tracing::debug!(key, "matrix: no remembered message to edit");
                return;
            };
            let content = render::replacement(&event_id, &reply);
            self.queue.push_back(Pending {
                target: reply.target,
                room_id: Some(room_id),
                pieces: VecDeque::from([(self.txn.next_id(), content)]),
                tried_join: false,
                remember_as: None,
                report_posted: None,
            });
            return;
        }
        let room_hint = match &reply.target {
            Target::Room { id, .. } => Some(id.as_str()),
            Target::Direct { .. } => None,
        };
        let mention = reply.mention.as_deref().and_then(|m| {
            let user_id = self.user_id_of(m)?;
            let display = self
                .rooms
                .display_name(room_hint, &user_id)
                .unwrap_or_else(|| user_id.clone());
            Some(Mention { user_id, display })
        });
        let thread = match &reply.target {
            Target::Room { thread, .. } => thread.clone(),
            Target::Direct { .. } => None,
        };
        let pieces = render(&reply, mention.as_ref(), thread.as_deref())
            .into_iter()
            .map(|content| (self.txn.next_id(), content))
            .collect();
        if self.queue.len() >= MAX_QUEUED_REPLIES
            && let Some(dropped) = self.queue.pop_front()
        {
            tracing::error!(target_room = ?dropped.target, "matrix: reply queue full, dropping the oldest reply");
        }
        self.queue.push_back(Pending {
            target: reply.target,
            room_id: None,
            pieces,
            tried_join: false,
            remember_as: reply.remember_as,
            report_posted: reply.report_posted,
        });
    }

    /// Sends what is queued, in order, until done or the homeserver fails (then a retry is
    /// scheduled). `Err` only when the credentials stopped working for good.
    async fn drain(&mut self) -> Result<(), BackendError> {
        while let Some(front) = self.queue.front() {
            let room_id = match &front.room_id {
                Some(id) => id.clone(),
                None => {
                    let target = front.target.clone();
                    match self.resolve_target(&target).await {
                        Ok(id) => {
                            if let Some(front) = self.queue.front_mut() {
                                front.room_id = Some(id.clone());
                            }
                            id
                        }
                        Err(TargetError::Api(e)) if e.is_unknown_token() => {
                            if !self.log_in_again().await? {
                                self.schedule_queue_retry(None);
                                return Ok(());
                            }
                            continue;
                        }
                        Err(TargetError::Api(e)) if e.is_transient() => {
                            tracing::warn!(target_room = ?target, error = %e, "matrix: cannot reach the reply's room yet");
                            self.schedule_queue_retry(e.rate_limited());
                            return Ok(());
                        }
                        Err(e) => {
                            tracing::error!(target_room = ?target, error = %e, "matrix: dropping a reply that has nowhere to go");
                            self.queue.pop_front();
                            continue;
                        }
                    }
                }
            };
            let Some((txn, content)) = self.queue.front().and_then(|p| p.pieces.front()) else {
                self.queue.pop_front();
                self.send_backoff.reset();
                continue;
            };
            match self.api.send_message(&room_id, txn, content).await {
                Ok(event_id) => {
                    tracing::debug!(room_id = %room_id, event_id = %event_id, "matrix: sent");
                    if let Some(front) = self.queue.front_mut() {
                        front.pieces.pop_front();
                        if let Some(key) = front.remember_as.take() {
                            self.remembered.posted_as(
                                &key,
                                (room_id.clone(), event_id),
                                front.report_posted.as_ref(),
                            );
                        }
                    }
                }
                Err(e) if e.is_unknown_token() => {
                    if !self.log_in_again().await? {
                        self.schedule_queue_retry(None);
                        return Ok(());
                    }
                }
                Err(e) if e.rate_limited().is_some_and(|d| d <= MAX_RATE_LIMIT_WAIT) => {
                    let wait = e.rate_limited().unwrap_or_default();
                    tracing::debug!(wait = ?wait, "matrix: send rate-limited");
                    tokio::time::sleep(wait).await;
                }
                Err(e) if e.is_transient() => {
                    tracing::warn!(room_id = %room_id, error = %e, "matrix: send failed, will retry");
                    self.schedule_queue_retry(e.rate_limited());
                    return Ok(());
                }
                Err(e)
                    if e.errcode() == Some("M_FORBIDDEN")
                        && self.queue.front().is_some_and(|p| !p.tried_join) =>
                {
                    if let Some(front) = self.queue.front_mut() {
                        front.tried_join = true;
                    }
                    tracing::info!(room_id = %room_id, "matrix: not allowed to post, trying to join first");
                    self.join(&room_id, false).await;
                }
                Err(e) => {
                    tracing::error!(room_id = %room_id, error = %e, "matrix: the homeserver refused a reply, dropping it");
                    self.queue.pop_front();
                }
            }
        }
        self.queue_retry_at = None;
        Ok(())
    }

    fn schedule_queue_retry(&mut self, after: Option<Duration>) {
        let delay = after.unwrap_or_else(|| self.send_backoff.next_delay());
        self.queue_retry_at = Some(Instant::now() + delay);
    }

    /// The room id a reply goes to; joins the room or creates the direct chat if needed.
    async fn resolve_target(&mut self, target: &Target) -> Result<String, TargetError> {
        match target {
            Target::Room { id, .. } => {
                let room_id = if id.starts_with('!') {
                    id.clone()
                } else if id.starts_with('#') {
                    match self.rooms.by_alias(id) {
                        Some(room_id) => room_id.to_owned(),
                        None => self.api.resolve_alias(id).await?,
                    }
                } else {
                    return Err(TargetError::Unknown(format!(
                        "`{id}` is neither a room id (`!…`) nor an alias (`#…:server`)"
                    )));
                };
                if self.rooms.get(&room_id).is_none() {
                    // An announcement for a room the bot is not in yet.
                    self.api.join(&room_id).await?;
                    self.rooms.entry(&room_id);
                    tracing::info!(room = %id, room_id = %room_id, "matrix: joined room to post");
                }
                Ok(room_id)
            }
            Target::Direct { user } => {
                let user_id = self.user_id_of(user).ok_or_else(|| {
                    TargetError::Unknown(format!("`{user}` is not a Matrix user id"))
                })?;
                if let Some(room) = self.rooms.direct_room(&self.me.user_id, &user_id) {
                    return Ok(room);
                }
                let room_id = self.api.create_direct_room(&user_id).await?;
                tracing::info!(user_id = %user_id, room_id = %room_id, "matrix: created direct chat");
                self.rooms.entry(&room_id);
                self.rooms.set_direct(&user_id, &room_id);
                let m_direct = self.rooms.m_direct_with(&user_id, &room_id);
                if let Err(e) = self
                    .api
                    .set_account_data(&self.me.user_id, "m.direct", &m_direct)
                    .await
                {
                    tracing::warn!(error = %e, "matrix: cannot record the direct chat in m.direct");
                }
                Ok(room_id)
            }
        }
    }

    /// At shutdown: takes what is still in the channel and sends the queue, within
    /// [`FLUSH_TIMEOUT`].
    async fn flush(&mut self) {
        while let Ok(reply) = self.outgoing.try_recv() {
            self.enqueue(reply);
        }
        if self.queue.is_empty() {
            return;
        }
        match tokio::time::timeout(FLUSH_TIMEOUT, self.drain()).await {
            Ok(Ok(())) if self.queue.is_empty() => {}
            Ok(Ok(())) | Err(_) => tracing::warn!(
                unsent = self.queue.len(),
                "matrix: shutting down with replies not sent"
            ),
            Ok(Err(e)) => tracing::warn!(error = %e, "matrix: shutting down, replies not sent"),
        }
    }
}

/// Matrix on the reconnect supervisor: the first connect logs in and joins the configured
/// rooms (later ones have nothing to open: a lost token is renewed inside the session), a
/// session is the sync loop until a sync fails, and the waits between keep the send side
/// going once logged in.
impl EventStream for Worker {
    type Connection = ();

    fn service(&self) -> &'static str {
        SERVICE
    }

    async fn connect(&mut self) -> Result<(), ConnectError> {
        self.worked = false;
        if self.logged_in() {
            return Ok(());
        }
        match self.log_in().await {
            Ok(()) => {}
            Err(Failure::Fatal(e)) => {
                let _ = self.state.send(ConnState::Failed(e.to_string()));
                return Err(ConnectError::Stop(e));
            }
            Err(Failure::Transient(e)) => {
                let reason = format!("login failed: {e}");
                return Err(match e.rate_limited() {
                    Some(pause) => ConnectError::RetryAfter { reason, pause },
                    None => ConnectError::Retry(reason),
                });
            }
        }
        self.worked = true;
        for room in self.configured.clone() {
            self.join(&room, true).await;
        }
        Ok(())
    }

    async fn session(&mut self, (): ()) -> SessionEnd {
        self.sync_loop().await.unwrap_or_else(SessionEnd::Fatal)
    }

    async fn pause(
        &mut self,
        delay: Duration,
        shutdown: &CancellationToken,
    ) -> Result<bool, BackendError> {
        if !self.logged_in() {
            return Ok(sleep_or_shutdown(delay, shutdown).await);
        }
        let until = Instant::now() + delay;
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ok(false),
                () = tokio::time::sleep_until(until) => return Ok(true),
                chore = self.next_chore() => {
                    if !self.do_chore(chore).await? {
                        return Ok(false);
                    }
                }
            }
        }
    }
}

/// Sleeps until `at`, or forever when `None`.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The inline sync filter: only what the bot reads; members lazy-loaded (big rooms stay
/// cheap; the summary still gives member counts).
fn sync_filter(timeline_limit: u32) -> String {
    json!({
        "presence": { "not_types": ["*"] },
        "account_data": { "types": ["m.direct"] },
        "room": {
            "state": {
                "types": ["m.room.member", "m.room.canonical_alias"],
                "lazy_load_members": true,
            },
            "timeline": {
                "types": ["m.room.message", "m.room.member", "m.room.canonical_alias"],
                "limit": timeline_limit,
                "lazy_load_members": true,
            },
            "ephemeral": { "not_types": ["*"] },
            "account_data": { "not_types": ["*"] },
        },
    })
    .to_string()
}

/// A text message event taken apart: the text after a mention of the bot (reply fallback
/// removed), whether the bot was mentioned, and the thread.
#[derive(Debug)]
struct TextMessage {
    text: String,
    mentioned: bool,
    thread: Option<String>,
}

impl TextMessage {
    /// The text of an `m.room.message` `m.text` event that is not an edit; `me` is the bot's
    /// user id, `my_names` the names that address it.
    fn parse(event: &Event, me: &str, my_names: &[String]) -> Option<Self> {
        if event.kind != "m.room.message" || event.sender.is_empty() {
            return None;
        }
        let content = &event.content;
        if content.get("msgtype").and_then(Value::as_str) != Some("m.text") {
            return None;
        }
        let relation = content.get("m.relates_to");
        let rel_type = relation
            .and_then(|r| r.get("rel_type"))
            .and_then(Value::as_str);
        if rel_type == Some("m.replace") {
            return None; // an edit: the original was already handled
        }
        let body = content.get("body").and_then(Value::as_str)?;
        let body = strip_reply_fallback(body, content);
        let thread = (rel_type == Some("m.thread"))
            .then(|| {
                relation
                    .and_then(|r| r.get("event_id"))
                    .and_then(Value::as_str)
            })
            .flatten()
            .map(str::to_owned);
        let (text, mentioned) = match strip_mention(body, my_names) {
            Some(rest) => (rest.to_owned(), true),
            None => {
                let listed = content
                    .get("m.mentions")
                    .and_then(|m| m.get("user_ids"))
                    .and_then(Value::as_array)
                    .is_some_and(|ids| ids.iter().any(|i| i.as_str() == Some(me)));
                (body.trim().to_owned(), listed)
            }
        };
        (!text.is_empty()).then_some(Self {
            text,
            mentioned,
            thread,
        })
    }
}

/// The fuzz target's way in: a `/sync` answer to the messages in its joined rooms' timelines
/// (the bot is `me`, addressed by its user id; every room counted as a room, not a DM).
#[doc(hidden)]
pub fn incoming_from_sync(body: &[u8], me: &str) -> Vec<Incoming> {
    let Ok(sync) = serde_json::from_slice::<SyncResponse>(body) else {
        return Vec::new();
    };
    let names = [me.to_owned()];
    let mut out = Vec::new();
    for (room_id, room) in &sync.rooms.join {
        for event in &room.timeline.events {
            if event.sender == me {
                continue;
            }
            if let Some(m) = TextMessage::parse(event, me, &names) {
                out.push(Incoming {
                    user_id: event.sender.clone(),
                    user: event.sender.clone(),
                    room: Some(Room {
                        id: room_id.clone(),
                        name: room_id.clone(),
                    }),
                    text: m.text,
                    mentioned: m.mentioned,
                    thread: m.thread,
                    message_id: event.event_id.clone(),
                });
            }
        }
    }
    out
}

/// Echoed user text with Matrix's room mention (`@room`) broken.
pub fn defuse_mass_mentions(text: &str) -> String {
    super::defuse_at_words(text, &["room"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txn_ids_are_unique() {
        let mut t = TxnIds::new();
        let a = t.next_id();
        let b = t.next_id();
        assert_ne!(a, b);
        assert!(a.starts_with("st2bot."));
    }

    #[test]
    fn rejects_non_http_urls() {
        let spec = MatrixSpec {
            url: "ftp://example.org".into(),
            login: MatrixLogin::Token(bot_config::SecretRef::Env("UNUSED".into())),
            rooms: Vec::new().into(),
        };
        let err = MatrixBackend::new(&spec).unwrap_err();
        assert!(err.to_string().contains("homeserver URL"), "{err}");
    }

    #[test]
    fn filter_is_json_with_lazy_members() {
        let f: Value = serde_json::from_str(&sync_filter(7)).unwrap();
        assert_eq!(f["room"]["timeline"]["limit"], 7);
        assert_eq!(f["room"]["state"]["lazy_load_members"], true);
    }
}
