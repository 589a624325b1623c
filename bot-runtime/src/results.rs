//! Results the bot owes: every execution it started, kept until its result has been posted
//! (or `stackstorm.result_timeout` passes), so a result announced while the stream was down
//! is not lost. Read [`Ledger`] first.
//!
//! StackStorm's stream does not replay what was published while a client was away
//! (`shared/STACKSTORM.md` §3), so after every (re)connection — and at start, for what a
//! previous run still owed — [`recover`] asks StackStorm (`GET /v1/executions/<id>`) about
//! each execution still owed; for each that finished meanwhile it runs the action the stock
//! notify rule runs, `chatops.post_result` (`contrib/chatops/rules/notify_hubot.yaml`), with
//! the same parameters the rule passes (`execution_id`, `channel`, `user`, `context`) and the
//! bot's announcement route. StackStorm then formats the result exactly as the site's notify
//! chain does (the alias's `result.format` and `result.extra`, or `default.j2`) and announces
//! it on the stream, where the bot posts it like any other.
//!
//! Deduplication: the bot puts a random `request` key in each execution's `source_context`
//! (StackStorm echoes the context back in the announcement). The first announcement for a
//! request is posted and marks the record delivered; any later one for it (the original that
//! was only late, or a second recovery) is dropped with a log line. A delivered record is
//! kept for [`DELIVERED_KEPT`] for that purpose.
//!
//! Storage is behind [`OwedStore`], a three-call trait: [`MemoryOwedStore`] (no persistence),
//! the redb table `owed` (`crate::session::RedbOwedStore`) in the session store file or in
//! `stackstorm.results_store`, and under `ha:` the PostgreSQL table shared by the instances
//! (`crate::ha::owed_store::PgOwedStore`). Writes (`put`, `remove`) are synchronous calls
//! that must not wait on the network: the redb store commits a local transaction, the
//! PostgreSQL store queues the write for its writer task (fenced by the leader's term) and
//! returns. Only [`OwedStore::load`] is asynchronous; it runs at start and, under `ha:`, on
//! every promotion ([`Ledger::reload`]), before the new leader's recovery pass.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::stackstorm::{St2Client, St2Error};

/// The records in memory: by execution id, and by the `request` key of their context, so
/// settling an announcement is one lookup however many results are recorded. A record still
/// owed is kept whole (boxed: the table keeps a quarter of its slots empty, and a pointer per
/// slot costs less than a whole record per slot); a delivered one only by its keys and when it
/// was delivered, which is all that recognising a late duplicate needs (the store keeps the
/// whole record; a delivered one loaded from it is reduced the same way).
#[derive(Default)]
struct Records {
    by_id: HashMap<Box<str>, Entry>,
    /// `request` key → execution id (records with a key only).
    by_request: HashMap<Box<str>, Box<str>>,
}

/// One execution in memory.
enum Entry {
    /// Its result is still owed: everything recovery and the live ack read.
    Owed(Box<OwedExecution>),
    /// Its result was posted (unix seconds); kept to drop late duplicates.
    Delivered {
        /// The `request` key of its context (empty for `match_and_execute`).
        request: Box<str>,
        /// When.
        at: u64,
    },
}

impl Entry {
    fn request(&self) -> &str {
        match self {
            Entry::Owed(record) => &record.request,
            Entry::Delivered { request, .. } => request,
        }
    }

    /// Delivered first, then the oldest: the order in which [`evict`] drops records.
    fn eviction_rank(&self) -> (bool, u64) {
        match self {
            Entry::Owed(record) => (true, record.started_unix),
            Entry::Delivered { at, .. } => (false, *at),
        }
    }

    fn owed(&self) -> Option<&OwedExecution> {
        match self {
            Entry::Owed(record) => Some(record),
            Entry::Delivered { .. } => None,
        }
    }
}

impl Records {
    fn insert(&mut self, record: OwedExecution) {
        let id: Box<str> = record.execution_id.as_str().into();
        if !record.request.is_empty() {
            self.by_request
                .insert(record.request.as_str().into(), id.clone());
        }
        let entry = match record.state {
            OwedState::Delivered { at } => Entry::Delivered {
                request: record.request.into(),
                at,
            },
            _ => Entry::Owed(Box::new(record)),
        };
        if let Some(old) = self.by_id.insert(id.clone(), entry) {
            self.unlink_request(&id, old.request());
        }
    }

    fn remove(&mut self, execution_id: &str) {
        if let Some(old) = self.by_id.remove(execution_id) {
            self.unlink_request(execution_id, old.request());
        }
    }

    /// Drops the `request` entry pointing at `execution_id` (its record just replaced or
    /// removed), unless the record now under that id still holds the same key.
    fn unlink_request(&mut self, execution_id: &str, request: &str) {
        if request.is_empty() {
            return;
        }
        let still_current = self
            .by_id
            .get(execution_id)
            .is_some_and(|current| current.request() == request);
        if !still_current && self.by_request.get(request).map(|id| &**id) == Some(execution_id) {
            self.by_request.remove(request);
        }
    }

    /// The execution id recorded with a `request` key.
    fn with_request(&self, request: &str) -> Option<&str> {
        self.by_request
            .get(request)
            .filter(|id| self.by_id.contains_key(&***id))
            .map(|id| &**id)
    }

    fn owed_mut(&mut self, execution_id: &str) -> Option<&mut OwedExecution> {
        match self.by_id.get_mut(execution_id)? {
            Entry::Owed(record) => Some(record),
            Entry::Delivered { .. } => None,
        }
    }
}

/// How long a delivered record is kept to recognise a late duplicate announcement.
pub const DELIVERED_KEPT: Duration = Duration::from_secs(3600);
/// At most this many records; past it the oldest delivered, then the oldest owed, go.
pub const MAX_RECORDS: usize = 10_000;

/// How many records are left after an eviction (see [`evict`]).
const EVICT_TO: usize = MAX_RECORDS - MAX_RECORDS / 10;
/// At most this many executions are looked up per recovery pass (the oldest first wait
/// for the next pass).
pub const MAX_LOOKUPS_PER_PASS: usize = 500;

/// StackStorm's `LIVEACTION_COMPLETED_STATES` (`st2common/constants/action.py`).
const COMPLETED: &[&str] = &["succeeded", "failed", "timeout", "canceled", "abandoned"];
/// The failed ones among them (`LIVEACTION_FAILED_STATES` plus canceled and abandoned).
const FAILED: &[&str] = &["failed", "timeout", "canceled", "abandoned"];

/// Where a record stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum OwedState {
    /// Started; no result posted yet.
    Awaiting,
    /// Finished during a stream gap; StackStorm was asked to announce it again (unix
    /// seconds of the request).
    RecoveryRequested {
        /// When.
        at: u64,
    },
    /// Its result was posted (unix seconds); kept a while to drop late duplicates.
    Delivered {
        /// When.
        at: u64,
    },
}

/// One execution the bot started, as recorded until its result is posted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OwedExecution {
    /// StackStorm execution id (the key).
    pub execution_id: String,
    /// The `request` key of the `source_context` the execution was started with; empty
    /// for one started by `match_and_execute` (no context: found by its id in the text).
    pub request: String,
    /// `source_channel` sent with the execution (room id, or `@<user id>`).
    pub source_channel: String,
    /// Room id, `None` for a direct message.
    pub room: Option<String>,
    /// Thread the command was in.
    pub thread: Option<String>,
    /// Chat user name, as sent in `user`.
    pub user: String,
    /// Chat user id.
    pub user_id: String,
    /// Id of the chat message that started it.
    pub message_id: Option<String>,
    /// When it was started (unix seconds).
    pub started_unix: u64,
    /// The `source_context` sent (passed again to `chatops.post_result` on recovery);
    /// `null` for `match_and_execute`.
    pub context: Value,
    /// Where it stands.
    pub state: OwedState,
    /// The live ack posted for it, so it can still be edited after a restart (records
    /// written before this field have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<AckMessage>,
}

/// A live ack as posted: its text, and the message's handle as the chat backend reported
/// it ([`crate::backend::PostedMessage`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckMessage {
    /// The text as posted (edits add a status line under it).
    pub text: String,
    /// What the backend needs to edit it; `None` until it reports the message posted.
    pub handle: Option<String>,
}

impl OwedExecution {
    /// Whether the result is still owed (not delivered).
    pub fn is_owed(&self) -> bool {
        !matches!(self.state, OwedState::Delivered { .. })
    }
}

/// Why the owed-results store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OwedStoreError {
    /// The database failed.
    #[error("results store `{path}`: {source}")]
    Database {
        /// Where.
        path: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A record could not be encoded.
    #[error("results store: cannot encode a record: {0}")]
    Encode(#[from] serde_json::Error),
    /// Under `ha:`, this instance does not lead: only the leader writes the shared list.
    #[error(
        "results store: this instance is not the leader; the shared list is the leader's to write"
    )]
    NotLeader,
    /// The queue of writes to the shared store is full (the database is not keeping up).
    #[error("results store: {0} writes already queued for the database; this one was dropped")]
    QueueFull(usize),
}

/// What [`OwedStore::load`] returns.
pub type OwedLoad<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Vec<OwedExecution>, OwedStoreError>> + Send + 'a>,
>;

/// Persistence for the owed list. Small on purpose: each backend implements these three
/// calls; all logic lives in [`Ledger`]. Records are JSON ([`OwedExecution`]'s serde form)
/// keyed by `execution_id`. A store holds the records of one bot.
///
/// `put` and `remove` are called from async code and must not wait on the network: a
/// local store commits one short transaction, a remote one queues the write and returns
/// (its writer reports failures in the log).
pub trait OwedStore: Send + Sync {
    /// Inserts or replaces the record with this `execution_id`.
    fn put(&self, record: &OwedExecution) -> Result<(), OwedStoreError>;
    /// Removes the records with these execution ids (missing ones are ignored).
    fn remove(&self, execution_ids: &[&str]) -> Result<(), OwedStoreError>;
    /// Every record (at start, and on promotion under `ha:`). Records that cannot be read
    /// are skipped with a log line.
    fn load(&self) -> OwedLoad<'_>;
}

/// A store that keeps nothing across restarts (the [`Ledger`] keeps the records in memory
/// anyway): stream gaps are covered, restarts are not.
#[derive(Debug, Default)]
pub struct MemoryOwedStore;

impl OwedStore for MemoryOwedStore {
    fn put(&self, _record: &OwedExecution) -> Result<(), OwedStoreError> {
        Ok(())
    }
    fn remove(&self, _execution_ids: &[&str]) -> Result<(), OwedStoreError> {
        Ok(())
    }
    fn load(&self) -> OwedLoad<'_> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }
}

/// What an announcement is, for the owed list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settlement {
    /// Not the result of an execution this bot owes (another bot's, a rule's, a workflow's,
    /// or one already dropped): post it.
    NotOwed,
    /// The result of this execution, owed until now: post it. `recovered` when it comes
    /// from a recovery request.
    Post {
        /// Execution id.
        execution_id: String,
        /// Whether the bot asked for it again after a stream gap.
        recovered: bool,
        /// The live ack posted for it, if one was (the result may replace it).
        ack: Option<SettledAck>,
    },
    /// Its result was posted already: drop this one.
    Duplicate {
        /// Execution id.
        execution_id: String,
    },
}

/// The live ack of an execution whose result is being posted, and where it was posted:
/// what `chat.ack.replace` needs once the record has been reduced to its keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettledAck {
    /// The ack as posted.
    pub ack: AckMessage,
    /// Room of the command, `None` for a direct message.
    pub room: Option<String>,
    /// Chat user id of who ran it.
    pub user_id: String,
}

/// What a recovery pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Executions still owed when the pass started.
    pub owed: usize,
    /// Of those, finished meanwhile: StackStorm was asked to announce them again.
    pub requested: usize,
    /// Still running.
    pub running: usize,
    /// Unknown to StackStorm (deleted, or another StackStorm): dropped.
    pub gone: usize,
    /// Dropped because `result_timeout` passed.
    pub expired: usize,
    /// Look-ups or requests that failed (the records stay for the next pass).
    pub failed: usize,
}

/// The owed list: in memory for look-ups, written through to an [`OwedStore`].
pub struct Ledger {
    bot: String,
    store: Box<dyn OwedStore>,
    records: Mutex<Records>,
    timeout: Duration,
    /// One recovery pass at a time.
    pass: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("bot", &self.bot)
            .field("records", &self.lock().by_id.len())
            .finish_non_exhaustive()
    }
}

/// Seconds since the epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A fresh random `request` key (16 hexadecimal digits).
pub fn new_request_key() -> String {
    match crate::session::random_key() {
        Some(bytes) => bytes.iter().map(|b| format!("{b:02x}")).collect(),
        // No random source: a clock-and-counter key still tells requests apart.
        None => {
            static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            format!("{:016x}", (nanos as u64) ^ n.rotate_left(48))
        }
    }
}

impl Ledger {
    /// A ledger for bot `bot` over `store`, loading what a previous run still owed.
    pub async fn open(bot: &str, store: Box<dyn OwedStore>, timeout: Duration) -> Self {
        let ledger = Self::empty(bot, store, timeout);
        if let Some(owed) = ledger.reload().await
            && owed > 0
        {
            tracing::info!(owed, "results owed by the previous run loaded");
        }
        ledger
    }

    fn empty(bot: &str, store: Box<dyn OwedStore>, timeout: Duration) -> Self {
        Self {
            bot: bot.to_owned(),
            store,
            records: Mutex::new(Records::default()),
            timeout,
            pass: tokio::sync::Mutex::new(()),
        }
    }

    /// An in-memory ledger.
    pub fn in_memory(bot: &str, timeout: Duration) -> Self {
        Self::empty(bot, Box::new(MemoryOwedStore), timeout)
    }

    /// Replaces the records in memory with the store's: at start, and under `ha:` when this
    /// instance is promoted (the previous leader wrote the shared list meanwhile). Returns
    /// how many results the store says are owed, `None` when it cannot be read (the
    /// records in memory are then kept).
    pub async fn reload(&self) -> Option<usize> {
        let loaded = match self.store.load().await {
            Ok(records) => records,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the owed results");
                return None;
            }
        };
        let owed = loaded.iter().filter(|r| r.is_owed()).count();
        let mut records = Records::default();
        for record in loaded {
            records.insert(record);
        }
        *self.lock() = records;
        Some(owed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self, record: &OwedExecution) {
        if let Err(e) = self.store.put(record) {
            tracing::error!(error = %e, execution = %record.execution_id, "cannot save an owed result");
        }
    }

    fn delete(&self, ids: &[&str]) {
        if ids.is_empty() {
            return;
        }
        if let Err(e) = self.store.remove(ids) {
            tracing::error!(error = %e, "cannot remove owed results from the store");
        }
    }

    /// Records an execution just started.
    pub fn record(&self, record: OwedExecution) {
        self.write(&record);
        let evicted = {
            let mut records = self.lock();
            records.insert(record);
            evict(&mut records)
        };
        if !evicted.is_empty() {
            tracing::warn!(
                evicted = evicted.len(),
                limit = MAX_RECORDS,
                "too many owed results; the oldest were forgotten"
            );
            let ids: Vec<&str> = evicted.iter().map(String::as_str).collect();
            self.delete(&ids);
        }
    }

    /// Every record still owed, oldest first.
    pub fn owed(&self) -> Vec<OwedExecution> {
        let mut owed: Vec<OwedExecution> = self
            .lock()
            .by_id
            .values()
            .filter_map(Entry::owed)
            .cloned()
            .collect();
        owed.sort_by_key(|r| r.started_unix);
        owed
    }

    /// The execution an announcement belongs to, by its context's `request` key (when the
    /// context is this bot's), else by a recorded execution id in its text.
    fn find<'a>(
        &self,
        records: &'a Records,
        context: Option<&Value>,
        text: &'a str,
    ) -> Option<&'a str> {
        let ours = context
            .and_then(|c| c.get("bot"))
            .and_then(Value::as_str)
            .is_some_and(|b| b == self.bot);
        if ours
            && let Some(request) = context
                .and_then(|c| c.get("request"))
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty())
        {
            return records.with_request(request);
        }
        text.split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| w.len() == 24 && w.bytes().all(|b| b.is_ascii_hexdigit()))
            .find(|w| records.by_id.contains_key(*w))
    }

    /// Settles an announcement against the owed list (see [`Settlement`]). The record is
    /// written through as delivered (without its context, which only recovery reads); in
    /// memory only its keys stay.
    pub fn settle(&self, context: Option<&Value>, text: &str) -> Settlement {
        let (settlement, delivered) = {
            let mut records = self.lock();
            let Some(id) = self.find(&records, context, text).map(str::to_owned) else {
                return Settlement::NotOwed;
            };
            let Some(entry) = records.by_id.get_mut(id.as_str()) else {
                return Settlement::NotOwed;
            };
            let Entry::Owed(owed) = entry else {
                return Settlement::Duplicate { execution_id: id };
            };
            let at = unix_now();
            let request: Box<str> = owed.request.as_str().into();
            let mut record = match std::mem::replace(entry, Entry::Delivered { request, at }) {
                Entry::Owed(record) => record,
                // Seen owed just above, under the same lock.
                Entry::Delivered { .. } => return Settlement::Duplicate { execution_id: id },
            };
            let recovered = matches!(record.state, OwedState::RecoveryRequested { .. });
            record.state = OwedState::Delivered { at };
            record.context = Value::Null;
            let ack = record.ack.clone().map(|ack| SettledAck {
                ack,
                room: record.room.clone(),
                user_id: record.user_id.clone(),
            });
            (
                Settlement::Post {
                    execution_id: id,
                    recovered,
                    ack,
                },
                record,
            )
        };
        self.write(&delivered);
        settlement
    }

    /// The record of an execution whose result is still owed.
    pub fn owed_record(&self, execution_id: &str) -> Option<OwedExecution> {
        self.lock()
            .by_id
            .get(execution_id)
            .and_then(Entry::owed)
            .cloned()
    }

    /// Whether the result of an execution was posted (and is still remembered).
    pub fn is_delivered(&self, execution_id: &str) -> bool {
        self.lock()
            .by_id
            .get(execution_id)
            .is_some_and(|entry| matches!(entry, Entry::Delivered { .. }))
    }

    /// Keeps the text of the live ack posted for an execution.
    pub fn set_ack(&self, execution_id: &str, text: &str) {
        self.update(execution_id, |r| {
            r.ack = Some(AckMessage {
                text: text.to_owned(),
                handle: None,
            });
        });
    }

    /// Keeps the handle of an execution's live ack, as its backend reported it.
    pub fn set_ack_handle(&self, execution_id: &str, handle: String) {
        self.update(execution_id, |r| {
            if let Some(ack) = &mut r.ack {
                ack.handle = Some(handle);
            }
        });
    }

    /// Changes a record still owed (if there is one) and writes it through.
    fn update(&self, execution_id: &str, change: impl FnOnce(&mut OwedExecution)) {
        let changed = {
            let mut records = self.lock();
            records.owed_mut(execution_id).map(|r| {
                change(r);
                r.clone()
            })
        };
        if let Some(r) = changed {
            self.write(&r);
        }
    }

    fn set_state(&self, execution_id: &str, state: OwedState) {
        self.update(execution_id, |r| r.state = state);
    }

    fn forget(&self, execution_ids: &[&str]) {
        {
            let mut records = self.lock();
            for id in execution_ids {
                records.remove(id);
            }
        }
        self.delete(execution_ids);
    }

    /// Drops owed records older than `result_timeout` (one log line each) and delivered
    /// ones older than [`DELIVERED_KEPT`]. Returns how many owed records were dropped.
    pub fn expire(&self, now: u64) -> usize {
        let timeout = self.timeout.as_secs();
        let (expired, stale): (Vec<OwedExecution>, Vec<String>) = {
            let records = self.lock();
            let expired = records
                .by_id
                .values()
                .filter_map(Entry::owed)
                .filter(|r| now.saturating_sub(r.started_unix) >= timeout)
                .cloned()
                .collect();
            let stale = records
                .by_id
                .iter()
                .filter(|(_, entry)| match entry {
                    Entry::Delivered { at, .. } => {
                        now.saturating_sub(*at) >= DELIVERED_KEPT.as_secs()
                    }
                    Entry::Owed(_) => false,
                })
                .map(|(id, _)| id.to_string())
                .collect();
            (expired, stale)
        };
        for r in &expired {
            tracing::warn!(
                execution = %r.execution_id,
                user = %r.user,
                channel = %r.source_channel,
                waited = %humantime::format_duration(Duration::from_secs(now.saturating_sub(r.started_unix))),
                "no result for this execution within stackstorm.result_timeout; it is no longer awaited"
            );
        }
        let mut ids: Vec<&str> = expired.iter().map(|r| r.execution_id.as_str()).collect();
        ids.extend(stale.iter().map(String::as_str));
        self.forget(&ids);
        if !expired.is_empty() {
            crate::ops::metrics().results_expired(expired.len() as u64);
        }
        expired.len()
    }
}

/// Once there are more than [`MAX_RECORDS`], drops the oldest (delivered first) down to
/// [`EVICT_TO`], so the sort is paid once per thousand records, not on every one; their ids.
fn evict(records: &mut Records) -> Vec<String> {
    if records.by_id.len() <= MAX_RECORDS {
        return Vec::new();
    }
    let mut order: Vec<((bool, u64), &str)> = records
        .by_id
        .iter()
        .map(|(id, entry)| (entry.eviction_rank(), &**id))
        .collect();
    order.sort_unstable();
    let excess = records.by_id.len() - EVICT_TO;
    let gone: Vec<String> = order
        .into_iter()
        .take(excess)
        .map(|(_, id)| id.to_owned())
        .collect();
    for id in &gone {
        records.remove(id);
    }
    gone
}

/// Whether a StackStorm status is final.
pub fn is_completed(status: &str) -> bool {
    COMPLETED.contains(&status)
}

/// The chat status of a final or running StackStorm status.
pub fn chat_status(status: &str) -> crate::backend::Status {
    if FAILED.contains(&status) {
        crate::backend::Status::Failed
    } else if status == "succeeded" {
        crate::backend::Status::Succeeded
    } else {
        crate::backend::Status::Running
    }
}

/// Closes a stream gap: drops what expired, then for every execution still owed asks
/// StackStorm for its status, and has each finished one announced again through
/// `chatops.post_result` on `route` (the bot's announcement route). Logs one line with the
/// counts; the results themselves are posted when their announcements arrive.
pub async fn recover(ledger: &Ledger, st2: &St2Client, route: &str) -> RecoveryReport {
    let _one_at_a_time = ledger.pass.lock().await;
    let mut report = RecoveryReport {
        expired: ledger.expire(unix_now()),
        ..RecoveryReport::default()
    };
    let owed = ledger.owed();
    report.owed = owed.len();
    for record in owed.iter().take(MAX_LOOKUPS_PER_PASS) {
        let status = match st2.execution_status(&record.execution_id).await {
            Ok(s) => s,
            Err(St2Error::Api { status: 404, .. }) => {
                tracing::warn!(
                    execution = %record.execution_id,
                    "an owed execution is unknown to StackStorm; it is no longer awaited"
                );
                ledger.forget(&[record.execution_id.as_str()]);
                report.gone += 1;
                continue;
            }
            Err(e) => {
                tracing::warn!(execution = %record.execution_id, error = %e, "cannot look up an owed execution; will retry after the next reconnect");
                report.failed += 1;
                if e.is_transient() {
                    break; // StackStorm is away: the next reconnect runs another pass.
                }
                continue;
            }
        };
        if !is_completed(&status) {
            report.running += 1;
            continue;
        }
        let mut parameters = json!({
            "execution_id": record.execution_id,
            "channel": record.source_channel,
            "user": record.user,
            "whisper": false,
            "route": route,
        });
        // `context` is an optional object parameter: a record without one
        // (`match_and_execute`) passes none rather than `null`, which is not an object.
        if !record.context.is_null() {
            parameters["context"] = record.context.clone();
        }
        match st2.run_action("chatops.post_result", &parameters).await {
            Ok(()) => {
                ledger.set_state(
                    &record.execution_id,
                    OwedState::RecoveryRequested { at: unix_now() },
                );
                report.requested += 1;
            }
            Err(e) => {
                tracing::warn!(execution = %record.execution_id, error = %e, "cannot ask StackStorm to announce a missed result; will retry after the next reconnect");
                report.failed += 1;
            }
        }
    }
    if report.owed > 0 || report.expired > 0 {
        tracing::info!(
            owed = report.owed,
            recovered = report.requested,
            running = report.running,
            gone = report.gone,
            expired = report.expired,
            failed = report.failed,
            "stream gap closed: results missed meanwhile were asked for again"
        );
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, request: &str, started: u64) -> OwedExecution {
        OwedExecution {
            execution_id: id.into(),
            request: request.into(),
            source_channel: "ops".into(),
            room: Some("ops".into()),
            thread: None,
            user: "alice".into(),
            user_id: "alice".into(),
            message_id: Some("1".into()),
            started_unix: started,
            context: json!({"bot": "demo", "request": request}),
            state: OwedState::Awaiting,
            ack: None,
        }
    }

    const ID: &str = "5f5e00000000000000000001";

    #[test]
    fn an_announcement_settles_its_record_once_then_is_a_duplicate() {
        let ledger = Ledger::in_memory("demo", Duration::from_secs(60));
        ledger.record(record(ID, "r1", unix_now()));
        let ctx = json!({"bot": "demo", "request": "r1"});
        assert_eq!(
            ledger.settle(Some(&ctx), "done"),
            Settlement::Post {
                execution_id: ID.into(),
                recovered: false,
                ack: None
            }
        );
        assert_eq!(
            ledger.settle(Some(&ctx), "done"),
            Settlement::Duplicate {
                execution_id: ID.into()
            }
        );
        // Another bot's context with the same request key is not ours.
        let other = json!({"bot": "other", "request": "r1"});
        assert_eq!(ledger.settle(Some(&other), "x"), Settlement::NotOwed);
        assert!(ledger.owed().is_empty());
    }

    #[test]
    fn a_recovered_result_is_counted_as_recovered_and_found_by_id_in_text() {
        let ledger = Ledger::in_memory("demo", Duration::from_secs(60));
        ledger.record(record(ID, "r1", unix_now()));
        ledger.set_state(ID, OwedState::RecoveryRequested { at: unix_now() });
        assert_eq!(
            ledger.settle(
                None,
                &format!("Action core.local completed.\nexecution: {ID}")
            ),
            Settlement::Post {
                execution_id: ID.into(),
                recovered: true,
                ack: None
            }
        );
    }

    #[test]
    fn owed_records_expire_after_the_timeout_and_delivered_ones_after_an_hour() {
        let ledger = Ledger::in_memory("demo", Duration::from_secs(60));
        let now = unix_now();
        ledger.record(record(ID, "r1", now - 61));
        ledger.record(record("5f5e00000000000000000002", "r2", now - 10));
        ledger.record(record("5f5e00000000000000000003", "r3", now - 10));
        ledger.settle(Some(&json!({"bot": "demo", "request": "r3"})), "");
        assert_eq!(ledger.expire(now), 1);
        assert_eq!(ledger.owed().len(), 1);
        assert_eq!(ledger.lock().by_id.len(), 2, "the delivered record is kept");
        assert_eq!(ledger.expire(now + DELIVERED_KEPT.as_secs()), 1);
        assert!(ledger.lock().by_id.is_empty());
        assert!(
            ledger.lock().by_request.is_empty(),
            "no request key left behind"
        );
    }

    #[test]
    fn a_delivered_record_keeps_no_context_but_still_catches_the_duplicate() {
        let ledger = Ledger::in_memory("demo", Duration::from_secs(60));
        let mut owed = record(ID, "r1", unix_now());
        owed.context = json!({"bot": "demo", "request": "r1", "user": "alice"});
        ledger.record(owed);
        let announced = json!({"bot": "demo", "request": "r1"});
        assert!(matches!(
            ledger.settle(Some(&announced), ""),
            Settlement::Post { .. }
        ));
        assert!(ledger.owed_record(ID).is_none() && ledger.is_delivered(ID));
        assert_eq!(
            ledger.settle(Some(&announced), ""),
            Settlement::Duplicate {
                execution_id: ID.into()
            }
        );
    }

    #[test]
    fn settling_hands_over_the_ack_and_keeps_only_the_keys() {
        let shared = std::sync::Arc::new(SharedStore::default());
        let ledger = Ledger::empty("demo", Box::new(shared.clone()), Duration::from_secs(60));
        let mut owed = record(ID, "r1", unix_now());
        owed.room = Some("ops".into());
        owed.user_id = "U1".into();
        ledger.record(owed);
        ledger.set_ack(ID, "On it: core.local");
        ledger.set_ack_handle(ID, "1700000000.0001".into());
        let settled = ledger.settle(Some(&json!({"bot": "demo", "request": "r1"})), "done");
        let expected_ack = SettledAck {
            ack: AckMessage {
                text: "On it: core.local".into(),
                handle: Some("1700000000.0001".into()),
            },
            room: Some("ops".into()),
            user_id: "U1".into(),
        };
        assert_eq!(
            settled,
            Settlement::Post {
                execution_id: ID.into(),
                recovered: false,
                ack: Some(expected_ack)
            }
        );
        // The store got the whole record as delivered, without its context.
        let stored = shared.0.lock().unwrap().get(ID).cloned().expect("written");
        assert!(matches!(stored.state, OwedState::Delivered { .. }));
        assert_eq!(stored.context, Value::Null);
        assert_eq!(stored.user_id, "U1");
        assert!(stored.ack.is_some(), "the store keeps the ack");
        // In memory only the keys are left: nothing more to read or change.
        assert!(ledger.is_delivered(ID));
        assert!(ledger.owed_record(ID).is_none());
        ledger.set_ack(ID, "changed");
        assert_eq!(
            shared
                .0
                .lock()
                .unwrap()
                .get(ID)
                .and_then(|r| r.ack.clone())
                .map(|a| a.text),
            Some("On it: core.local".into()),
            "a delivered record is not written again"
        );
        assert!(matches!(
            ledger.settle(None, &format!("execution: {ID}")),
            Settlement::Duplicate { .. }
        ));
    }

    #[test]
    fn a_duplicate_does_not_make_a_delivered_record_younger() {
        let shared = std::sync::Arc::new(SharedStore::default());
        let ledger = Ledger::empty("demo", Box::new(shared.clone()), Duration::from_secs(60));
        ledger.record(record(ID, "r1", unix_now()));
        let announced = json!({"bot": "demo", "request": "r1"});
        ledger.settle(Some(&announced), "");
        let stored = shared.0.lock().unwrap().get(ID).map(|r| r.state);
        let Some(OwedState::Delivered { at }) = stored else {
            panic!("written through as delivered: {stored:?}");
        };
        // Past the next second, so a refreshed delivery time would differ.
        std::thread::sleep(Duration::from_millis(1100));
        assert!(matches!(
            ledger.settle(Some(&announced), ""),
            Settlement::Duplicate { .. }
        ));
        ledger.expire(at + DELIVERED_KEPT.as_secs());
        assert!(
            !ledger.is_delivered(ID),
            "forgotten an hour after the first delivery"
        );
    }

    #[tokio::test]
    async fn a_delivered_record_loaded_from_the_store_is_kept_by_its_keys() {
        let shared = std::sync::Arc::new(SharedStore::default());
        let mut delivered = record(ID, "r1", unix_now());
        delivered.state = OwedState::Delivered { at: unix_now() };
        shared.put(&delivered).unwrap();
        let ledger = Ledger::open("demo", Box::new(shared.clone()), Duration::from_secs(60)).await;
        assert!(ledger.owed().is_empty());
        assert!(ledger.is_delivered(ID));
        assert_eq!(
            ledger.settle(Some(&json!({"bot": "demo", "request": "r1"})), ""),
            Settlement::Duplicate {
                execution_id: ID.into()
            }
        );
        assert_eq!(ledger.expire(unix_now() + DELIVERED_KEPT.as_secs()), 0);
        assert!(!ledger.is_delivered(ID), "forgotten after an hour");
        assert!(
            shared.0.lock().unwrap().is_empty(),
            "and removed from the store"
        );
    }

    #[test]
    fn announcements_are_found_by_request_key_among_many_records() {
        let ledger = Ledger::in_memory("demo", Duration::from_secs(3600));
        let now = unix_now();
        for n in 0..2_000u32 {
            ledger.record(record(&format!("{n:024x}"), &format!("r{n}"), now));
        }
        let settled = ledger.settle(Some(&json!({"bot": "demo", "request": "r1234"})), "");
        assert_eq!(
            settled,
            Settlement::Post {
                execution_id: format!("{:024x}", 1234),
                recovered: false,
                ack: None
            }
        );
        // Recorded again under the same id with another key: only the new key finds it.
        ledger.record(record(&format!("{:024x}", 7), "r-new", now));
        assert_eq!(
            ledger.settle(Some(&json!({"bot": "demo", "request": "r7"})), ""),
            Settlement::NotOwed
        );
        assert!(matches!(
            ledger.settle(Some(&json!({"bot": "demo", "request": "r-new"})), ""),
            Settlement::Post { .. }
        ));
    }

    #[test]
    fn past_the_limit_the_oldest_tenth_goes_at_once_delivered_first() {
        let ledger = Ledger::in_memory("demo", Duration::from_secs(3600));
        let start = unix_now() - 100_000;
        for n in 0..MAX_RECORDS as u64 {
            ledger.record(record(&format!("{n:024x}"), &format!("r{n}"), start + n));
        }
        // The newest record is delivered: it goes before older owed ones.
        let newest = MAX_RECORDS as u64 - 1;
        ledger.settle(
            Some(&json!({"bot": "demo", "request": format!("r{newest}")})),
            "",
        );
        assert_eq!(ledger.lock().by_id.len(), MAX_RECORDS);
        ledger.record(record(
            "ffffffffffffffffffffffff",
            "r-last",
            start + 200_000,
        ));
        let records = ledger.lock();
        assert_eq!(records.by_id.len(), EVICT_TO);
        assert_eq!(records.by_request.len(), EVICT_TO);
        assert!(
            !records
                .by_id
                .contains_key(format!("{newest:024x}").as_str())
        );
        assert!(records.by_id.contains_key("ffffffffffffffffffffffff"));
        // Of the owed ones, the oldest went: the first kept is the (excess - 1)th.
        let excess = MAX_RECORDS + 1 - EVICT_TO;
        assert!(
            !records
                .by_id
                .contains_key(format!("{:024x}", excess - 2).as_str())
        );
        assert!(
            records
                .by_id
                .contains_key(format!("{:024x}", excess - 1).as_str())
        );
    }

    /// A store another instance writes to (the shared table under `ha:`).
    #[derive(Default)]
    struct SharedStore(Mutex<HashMap<String, OwedExecution>>);

    impl OwedStore for std::sync::Arc<SharedStore> {
        fn put(&self, record: &OwedExecution) -> Result<(), OwedStoreError> {
            let mut records = self.0.lock().unwrap();
            records.insert(record.execution_id.clone(), record.clone());
            Ok(())
        }
        fn remove(&self, execution_ids: &[&str]) -> Result<(), OwedStoreError> {
            let mut records = self.0.lock().unwrap();
            for id in execution_ids {
                records.remove(*id);
            }
            Ok(())
        }
        fn load(&self) -> OwedLoad<'_> {
            let records = self.0.lock().unwrap().values().cloned().collect();
            Box::pin(std::future::ready(Ok(records)))
        }
    }

    #[tokio::test]
    async fn a_reload_takes_what_another_instance_wrote_since_the_start() {
        let shared = std::sync::Arc::new(SharedStore::default());
        let leader = Ledger::open("demo", Box::new(shared.clone()), Duration::from_secs(60)).await;
        let standby = Ledger::open("demo", Box::new(shared.clone()), Duration::from_secs(60)).await;
        leader.record(record(ID, "r1", unix_now()));
        leader.record(record("5f5e00000000000000000002", "r2", unix_now()));
        leader.settle(Some(&json!({"bot": "demo", "request": "r2"})), "");
        assert!(standby.owed().is_empty(), "not yet reloaded");
        assert_eq!(standby.reload().await, Some(1));
        assert_eq!(standby.owed().len(), 1);
        assert_eq!(standby.owed()[0].execution_id, ID);
        // The delivered one came along too: its late duplicate is still recognised.
        assert_eq!(
            standby.settle(Some(&json!({"bot": "demo", "request": "r2"})), ""),
            Settlement::Duplicate {
                execution_id: "5f5e00000000000000000002".into()
            }
        );
    }

    #[test]
    fn statuses_map_to_chat_statuses() {
        use crate::backend::Status;
        assert!(is_completed("succeeded") && is_completed("abandoned"));
        assert!(!is_completed("running") && !is_completed("requested"));
        assert_eq!(chat_status("succeeded"), Status::Succeeded);
        assert_eq!(chat_status("timeout"), Status::Failed);
        assert_eq!(chat_status("running"), Status::Running);
    }
}
