//! The dispatcher: one chat message in, replies out. Read [`Dispatcher::handle`] first.
//!
//! For each message addressed to the bot (prefix, mention, or a direct message) it: parses
//! the command; answers the bot's own commands (help, session); otherwise resolves the
//! command to one action alias (StackStorm's `POST /actionalias/match`, or the local
//! matcher), checks the access rules against that alias's `pack.name` (so raw text cannot
//! dodge a deny), holds it for a confirmation when a `confirm:` rule names its alias
//! (`dispatch/confirm.rs`), executes it with `POST /aliasexecution` carrying `source_context` (or
//! `match_and_execute` for `match_multiple` formats), and posts the ack. Every failure gets
//! a reply. Every execution started is recorded in the owed-results ledger
//! ([`crate::results`]; those of `match_and_execute` when their result names them). Announcements from the stream are settled against it (a duplicate of
//! a result already posted is dropped), rendered and routed by [`Dispatcher::announce`].

use std::sync::Arc;

use bot_config::acl::{
    AccessControl, CONFIRM_COMMAND, HELP_COMMAND, INQUIRY_COMMAND, Request, SESSION_COMMAND,
    Verdict,
};
use bot_config::{BotSpec, MatcherKind};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tracing::Instrument;

use crate::aliases::AliasCache;
use crate::backend::split::truncate;
use crate::backend::{
    Capabilities, Incoming, Outgoing, PostedMessage, PostedSink, Target, char_len, split_message,
};
use crate::results::{Ledger, OwedExecution, OwedState, SettledAck, Settlement};
use crate::session::SessionManager;
use crate::stackstorm::types::{
    Announcement, ExecuteRequest, ExecuteResponse, MatchAndExecuteRequest,
};
use crate::stackstorm::{St2Client, St2Error};
use crate::template::Templates;
use bot_config::templates::{
    AckContext, AmbiguousContext, DeniedContext, ErrorContext, ExecutionContext, HelpContext,
    NoMatchContext, ResultContext,
};

mod confirm;
mod inquiry;

/// How many formats a "no match" reply suggests.
const SUGGESTIONS: usize = 3;
/// Longest command the bot reads, in bytes. Above every chat service's own message limit
/// (Slack 40,000 characters, Matrix 64 KiB events), so no honest command is refused, and it
/// keeps a pasted mebibyte from costing seconds of matching per message.
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;
/// At most this many messages' worth of text per reply; the rest is cut with a note.
const MAX_REPLY_MESSAGES: usize = 10;
/// And at most this many characters per reply, whatever the backend's message size.
const MAX_REPLY_CHARS: usize = 40_000;

/// Echoed user text is cut to this many characters (with `…`), in replies and in logs.
pub const ECHO_MAX_CHARS: usize = 200;

/// User text as logs show it: at most [`ECHO_MAX_CHARS`] characters, `…` when cut.
pub fn capped(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(ECHO_MAX_CHARS) {
        None => std::borrow::Cow::Borrowed(text),
        Some(_) => {
            let end = text
                .char_indices()
                .nth(ECHO_MAX_CHARS - 1)
                .map_or(text.len(), |(i, _)| i);
            std::borrow::Cow::Owned(format!("{}…", &text[..end]))
        }
    }
}

/// The first StackStorm object id (24 hexadecimal digits) in `text`: in a result, the
/// execution's.
fn execution_id_in(text: &str) -> Option<&str> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .find(|w| w.len() == 24 && w.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A command resolved to an alias.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// `pack.name`.
    pub reference: String,
    /// Alias name.
    pub name: String,
    /// The format that matched.
    pub representation: String,
    /// Whether it is a `match_multiple` format (executed with match_and_execute).
    pub match_multiple: bool,
}

/// The lines `GET /actionalias/help?pack=…&filter=…` lists, from the bot's copy: `(alias
/// position, display, line position in [`st2_alias::AliasIndex::help_lines`])` of enabled
/// aliases, in help order; `filter` is a case-insensitive regular expression searched in
/// each display.
fn help_selection<'a>(
    index: &'a st2_alias::AliasIndex,
    pack: Option<&str>,
    filter: Option<&str>,
) -> Result<Vec<(usize, &'a str, usize)>, st2_alias::HelpFilterError> {
    let filter = filter
        .filter(|f| !f.is_empty())
        .map(st2_alias::HelpFilter::new)
        .transpose()?;
    let mut chosen = Vec::new();
    for (line, (position, display)) in index.help_lines().enumerate() {
        let alias = &index.aliases()[position];
        if !alias.enabled || pack.is_some_and(|pack| pack != alias.pack) {
            continue;
        }
        if let Some(filter) = &filter
            && !filter.matches(display)?
        {
            continue;
        }
        chosen.push((position, display, line));
    }
    Ok(chosen)
}

/// Resolves with the local matcher (StackStorm's semantics, see `st2-alias`).
fn resolve_locally(index: &st2_alias::AliasIndex, command: &str) -> Result<Resolved, Unresolved> {
    match index.resolve(command) {
        Ok(r) => Ok(Resolved {
            reference: r.alias_ref.clone(),
            name: r.alias_name.clone(),
            representation: r.representation.clone(),
            match_multiple: r.match_multiple.unwrap_or(false),
        }),
        Err(st2_alias::ResolveError::NoMatch { .. }) => Err(Unresolved::NoMatch),
        Err(st2_alias::ResolveError::Ambiguous { candidates, .. }) => Err(Unresolved::Ambiguous(
            candidates.into_iter().map(|(_, r)| r).collect(),
        )),
        Err(e) => Err(Unresolved::Failed(St2Error::Api {
            status: 400,
            faultstring: e.to_string(),
            request_id: None,
        })),
    }
}

/// What a message needs, decided without I/O by [`Dispatcher::plan`].
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// Not addressed to the bot.
    Ignore,
    /// Answer with this text, nothing else (empty command, denied, no match…).
    Reply(String),
    /// The help command, with its arguments.
    Help(Vec<String>),
    /// The session command, with its arguments.
    Session(Vec<String>),
    /// An inquiry command (`inquiry …`, `approve ID`, `reject ID`), as typed.
    Inquiry(String),
    /// An answer to a pending confirmation (`confirm CODE`, `approve ID`, `reject ID`),
    /// with the id (lowercased; empty when none was given).
    Confirm(crate::confirm::Verb, String),
    /// Ask StackStorm which alias this command is (then check access and execute).
    Match(String),
    /// Execute this command as this alias (access already allowed).
    Execute(String, Resolved),
}

/// Why resolution failed, in the terms of the reply.
enum Unresolved {
    NoMatch,
    Ambiguous(Vec<String>),
    Failed(St2Error),
}

/// Everything a message needs, shared by all in-flight messages.
pub struct Dispatcher {
    /// The dispatcher's own copy (shallow for the compiled spec, whose text is borrowed
    /// from the executable).
    spec: BotSpec,
    st2: St2Client,
    acl: AccessControl,
    templates: Templates,
    capabilities: Capabilities,
    aliases: AliasCache,
    outgoing: mpsc::Sender<Outgoing>,
    in_flight: Arc<Semaphore>,
    sessions: Option<Arc<SessionManager>>,
    /// Whether this instance may speak (always, without `ha:`).
    leadership: crate::ha::Leadership,
    /// Executions started whose result has not been announced yet, per message id.
    awaiting: std::sync::Mutex<std::collections::HashMap<String, i64>>,
    /// How many results are awaited in all (see [`Dispatcher::results_awaited`]).
    awaited: tokio::sync::watch::Sender<usize>,
    /// Executions whose result is owed (survives stream gaps, and restarts when stored).
    results: Arc<Ledger>,
    /// Acks being edited in place, by execution id (see [`Dispatcher::execution_update`]).
    live_acks: std::sync::Mutex<std::collections::HashMap<String, LiveAck>>,
    /// Where the backend reports the acks it posted (their handles go to the owed record,
    /// so an ack can still be edited after a restart), and the receiving end until
    /// [`Dispatcher::keep_ack_handles`] takes it.
    posted: PostedSink,
    posted_rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<PostedMessage>>>,
    /// The audit trail, when the definition names one (`log.audit_file`/`audit_stdout`).
    audit: Option<crate::audit::AuditTrail>,
    /// The definition's `confirm:` rules.
    confirm_rules: crate::confirm::ConfirmRules,
    /// Commands waiting for their confirmation.
    pending: Box<dyn crate::confirm::PendingConfirmations>,
    /// Yes/no inquiry questions posted in a thread, where a plain reply answers them.
    question_threads: std::sync::Mutex<crate::inquiry::QuestionThreads>,
}

/// An ack posted with [`Outgoing::remember_as`], edited as its execution progresses.
#[derive(Debug)]
struct LiveAck {
    /// Where it was posted.
    target: Target,
    /// Its text as posted.
    text: String,
    /// The status it shows now (`None`: as posted).
    shown: Option<String>,
    /// When it was posted (the oldest go first past [`MAX_LIVE_ACKS`]).
    posted: std::time::Instant,
}

/// At most this many acks are followed at once.
const MAX_LIVE_ACKS: usize = 1024;

/// The line a live ack gets for a status, `None` for statuses not worth an edit
/// (`requested`, `scheduled`…).
fn live_ack_line(status: &str, elapsed: Option<std::time::Duration>) -> Option<String> {
    let took = elapsed.map(|d| {
        if d < std::time::Duration::from_secs(10) {
            format!("{:.1}s", d.as_secs_f64())
        } else {
            humantime::format_duration(std::time::Duration::from_secs(d.as_secs())).to_string()
        }
    });
    let after = |word: &str, how: &str| match &took {
        Some(t) => format!("{word} {how} {t}"),
        None => word.to_owned(),
    };
    Some(match status {
        "running" => "⏳ running".to_owned(),
        "succeeded" => format!("✅ {}", after("succeeded", "in")),
        "failed" => format!("❌ {}", after("failed", "after")),
        "timeout" => format!("❌ {}", after("timed out", "after")),
        "canceled" => format!("⛔ {}", after("canceled", "after")),
        "abandoned" => format!("❌ {}", after("abandoned", "after")),
        _ => return None,
    })
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("bot", &self.spec.name)
            .finish()
    }
}

/// Why the dispatcher could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchSetupError {
    /// An access rule pattern does not compile.
    #[error(transparent)]
    Acl(#[from] bot_config::acl::PatternError),
    /// A template does not compile.
    #[error(transparent)]
    Template(#[from] crate::template::TemplateError),
    /// The audit trail file cannot be opened.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    /// A `confirm:` pattern does not compile.
    #[error(transparent)]
    Confirm(#[from] bot_config::acl::GlobError),
}

impl Dispatcher {
    /// A dispatcher for a bot, posting replies to `outgoing`.
    pub fn new(
        spec: &BotSpec,
        st2: St2Client,
        capabilities: Capabilities,
        aliases: AliasCache,
        outgoing: mpsc::Sender<Outgoing>,
    ) -> Result<Self, DispatchSetupError> {
        let (posted, posted_rx) = PostedSink::new();
        Ok(Self {
            posted,
            posted_rx: std::sync::Mutex::new(Some(posted_rx)),
            spec: spec.clone(),
            st2,
            acl: AccessControl::new(&spec.access)?,
            templates: Templates::new(&spec.templates)?,
            capabilities,
            aliases,
            outgoing,
            in_flight: Arc::new(Semaphore::new(spec.stackstorm.max_in_flight as usize)),
            sessions: None,
            leadership: crate::ha::Leadership::single(),
            awaiting: std::sync::Mutex::new(std::collections::HashMap::new()),
            awaited: tokio::sync::watch::Sender::new(0),
            results: Arc::new(Ledger::in_memory(
                &spec.name,
                spec.stackstorm.result_timeout,
            )),
            live_acks: std::sync::Mutex::new(std::collections::HashMap::new()),
            audit: crate::audit::AuditTrail::open(&spec.name, &spec.log)?,
            confirm_rules: crate::confirm::ConfirmRules::new(&spec.confirm)?,
            pending: Box::new(crate::confirm::MemoryConfirmations::default()),
            question_threads: std::sync::Mutex::new(Default::default()),
        })
    }

    /// Appends a line to the audit trail, when there is one.
    fn audit(&self, event: &str, fields: Value) {
        if let Some(trail) = &self.audit {
            trail.record(event, fields);
        }
    }

    /// Whether acks are edited in place (`chat.ack.live`, and the backend can edit): the
    /// stream then also carries `st2.execution__update` for [`Dispatcher::execution_update`].
    pub fn live_acks(&self) -> bool {
        self.spec.chat.ack && self.spec.chat.live_ack && self.capabilities.edit
    }

    /// Whether the result replaces the ack (`chat.ack.replace`; the build refuses it for
    /// backends that cannot edit, the capability check here is for embedders).
    fn replaces_acks(&self) -> bool {
        self.spec.chat.ack && self.spec.chat.replace_ack && self.capabilities.edit
    }

    /// Whether acks are posted under a key so they can be edited later (live acks, or a
    /// result replacing its ack).
    fn remembers_acks(&self) -> bool {
        self.live_acks() || self.replaces_acks()
    }

    /// Keeps the handles of the acks the backend posted in their owed records (run it as a
    /// task; it ends when the dispatcher and the backend are gone). `None` when already
    /// taken.
    pub fn keep_ack_handles(&self) -> Option<impl std::future::Future<Output = ()> + use<>> {
        let mut posted = self
            .posted_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        let results = self.results.clone();
        Some(async move {
            while let Some(message) = posted.recv().await {
                if let Some(id) = message.key.strip_prefix("ack:") {
                    results.set_ack_handle(id, message.handle);
                }
            }
        })
    }

    /// The live ack of an execution posted before a restart, from its owed record.
    fn restored_ack(&self, execution_id: &str) -> Option<LiveAck> {
        let record = self.results.owed_record(execution_id)?;
        let ack = record.ack?;
        ack.handle.as_ref()?;
        Some(LiveAck {
            target: match record.room {
                Some(id) => Target::Room {
                    id,
                    thread: record.thread.filter(|_| self.capabilities.threads),
                },
                None => Target::Direct {
                    user: record.user_id,
                },
            },
            text: ack.text,
            shown: None,
            posted: std::time::Instant::now(),
        })
    }

    /// Edits the live ack of an execution to show its new status (running, then
    /// succeeded/failed with its duration). Updates for other executions are ignored. An
    /// ack posted before a restart is found again in its owed record.
    pub async fn execution_update(&self, update: crate::stackstorm::stream::ExecutionUpdate) {
        if self.replaces_acks() && self.results.is_delivered(&update.id) {
            // The result has replaced the ack already: a late status line must not
            // overwrite it.
            self.live_acks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&update.id);
            return;
        }
        let restored = if self.live_acks()
            && !self
                .live_acks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(&update.id)
        {
            self.restored_ack(&update.id)
        } else {
            None
        };
        let edit = {
            let mut acks = self.live_acks.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(restored) = restored {
                acks.entry(update.id.clone()).or_insert(restored);
            }
            let Some(live) = acks.get_mut(&update.id) else {
                return;
            };
            if live.shown.as_deref() == Some(update.status.as_str()) {
                return;
            }
            let Some(line) = live_ack_line(&update.status, update.elapsed()) else {
                return;
            };
            live.shown = Some(update.status.clone());
            let edit = (live.target.clone(), format!("{}\n{line}", live.text));
            if crate::results::is_completed(&update.status) {
                acks.remove(&update.id);
            }
            edit
        };
        let (target, text) = edit;
        let mut out = Outgoing::text(target, text);
        out.replaces = Some(format!("ack:{}", update.id));
        // A delivered record no longer holds the handle; the backend still knows the key.
        out.handle = self
            .results
            .owed_record(&update.id)
            .and_then(|r| r.ack)
            .and_then(|a| a.handle);
        out.status = Some(crate::results::chat_status(&update.status));
        tracing::debug!(execution = %update.id, status = %update.status, "editing the ack");
        if self.outgoing.send(out).await.is_err() {
            tracing::warn!("chat backend stopped; dropping an ack edit");
        }
    }

    /// Keeps the owed results in `ledger` (by default they are kept in memory only).
    #[must_use]
    pub fn with_results(mut self, ledger: Arc<Ledger>) -> Self {
        self.results = ledger;
        self
    }

    /// The owed-results ledger (the stream task runs [`crate::results::recover`] on it).
    pub fn results(&self) -> &Arc<Ledger> {
        &self.results
    }

    /// Per-user StackStorm sessions (when the definition has an `auth_page`): the session
    /// command and commands run with the user's own token.
    #[must_use]
    pub fn with_sessions(mut self, sessions: Arc<SessionManager>) -> Self {
        self.sessions = Some(sessions);
        self
    }

    /// With `ha:`: executions start and announcements are posted only while this instance
    /// leads (checked at that moment, not when the message arrived).
    #[must_use]
    pub fn with_leadership(mut self, leadership: crate::ha::Leadership) -> Self {
        self.leadership = leadership;
        self
    }

    /// Also writes the audit trail (when the definition names one) to the instances'
    /// shared copy in PostgreSQL (`ha:`).
    pub fn with_shared_audit(mut self, ha: &crate::ha::Ha) -> Self {
        if let Some(audit) = &mut self.audit {
            audit.share(ha.audit_lines());
        }
        self
    }

    /// How many executions this bot started whose result has not come back through the
    /// stream yet (results are matched by the message id in the execution's context). The
    /// text backend waits for it to reach 0 at end of input (`--linger`).
    pub fn results_awaited(&self) -> tokio::sync::watch::Receiver<usize> {
        self.awaited.subscribe()
    }

    /// Counts a result awaited for `message_id` (`started`) or one arrived. A result may
    /// come back before its execution's answer: the count goes below zero until then.
    fn await_results(&self, message_id: &str, started: bool) {
        let Ok(mut awaiting) = self.awaiting.lock() else {
            return;
        };
        let n = awaiting.entry(message_id.to_owned()).or_default();
        *n += if started { 1 } else { -1 };
        if *n == 0 {
            awaiting.remove(message_id);
        }
        if awaiting.len() > 4096 {
            // Results for messages this process never sent (another instance's): forget.
            awaiting.retain(|_, n| *n > 0);
        }
        let total: i64 = awaiting.values().filter(|n| **n > 0).sum();
        self.awaited
            .send_replace(usize::try_from(total).unwrap_or_default());
    }

    /// The command in a message, when it is addressed to the bot: after the prefix, after a
    /// mention, or the whole text of a direct message (prefix optional there).
    pub fn command_of<'a>(&self, message: &'a Incoming) -> Option<&'a str> {
        let text = message.text.trim();
        let prefix = self.spec.chat.prefix.as_ref();
        let command = if let Some(rest) = text.strip_prefix(prefix) {
            rest
        } else if message.room.is_none() || (message.mentioned && self.spec.chat.mention) {
            text
        } else {
            return None;
        };
        Some(command.trim())
    }

    /// A plain `yes` or `no` (without the prefix) in the thread of a yes/no inquiry
    /// question, as the inquiry command it stands for (`approve ID` / `reject ID`).
    fn thread_answer(&self, message: &Incoming) -> Option<String> {
        let (room, thread) = (message.room.as_ref()?, message.thread.as_deref()?);
        let yes = crate::inquiry::thread_reply(&message.text)?;
        let threads = self
            .question_threads
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let id = threads.inquiry(&room.id, thread)?;
        Some(format!("{} {id}", if yes { "approve" } else { "reject" }))
    }

    /// Decides what a message needs without any I/O: ignore it, reply at once, list help,
    /// run a session command, ask StackStorm to match it, or execute a resolved alias (access
    /// rules already checked). This is the per-message overhead the benchmarks measure.
    pub fn plan(&self, message: &Incoming) -> Plan {
        if let Some(answer) = self.thread_answer(message) {
            if let Err(text) = self.check_access(message, INQUIRY_COMMAND, &message.text) {
                return Plan::Reply(text);
            }
            return Plan::Inquiry(answer);
        }
        let Some(command) = self.command_of(message) else {
            return Plan::Ignore;
        };
        if command.is_empty() {
            return Plan::Reply(format!(
                "{}: say `{}{}` to see what I can do",
                message.user, self.spec.chat.prefix, self.spec.chat.help_command
            ));
        }
        if command.len() > MAX_COMMAND_BYTES {
            return Plan::Reply(format!(
                "{}: that command is {} bytes long; commands are limited to {} bytes (pass large inputs by reference, a URL or a file path, instead)",
                message.user,
                command.len(),
                MAX_COMMAND_BYTES
            ));
        }
        let mut words = command.split_whitespace();
        let first = words.next().unwrap_or("");
        if first == self.spec.chat.help_command.as_ref() {
            if let Err(text) = self.check_access(message, HELP_COMMAND, command) {
                return Plan::Reply(text);
            }
            let mut args = words.clone();
            if args.next() == Some(crate::help_rights::ALL_FLAG)
                && let Err(text) =
                    self.check_access(message, crate::help_rights::HELP_ALL_COMMAND, command)
            {
                return Plan::Reply(text);
            }
            return Plan::Help(words.map(str::to_owned).collect());
        }
        if first == self.spec.chat.session_command.as_ref() {
            if let Err(text) = self.check_access(message, SESSION_COMMAND, command) {
                return Plan::Reply(text);
            }
            return Plan::Session(words.map(str::to_owned).collect());
        }
        if let Some((verb, id)) = crate::confirm::parse(command) {
            if let Err(text) = self.check_access(message, CONFIRM_COMMAND, command) {
                return Plan::Reply(text);
            }
            return Plan::Confirm(verb, id);
        }
        if crate::inquiry::COMMAND_WORDS.contains(&first) {
            if let Err(text) = self.check_access(message, INQUIRY_COMMAND, command) {
                return Plan::Reply(text);
            }
            return Plan::Inquiry(command.to_owned());
        }
        match self.spec.stackstorm.matcher {
            MatcherKind::StackStorm => Plan::Match(command.to_owned()),
            MatcherKind::Local => {
                let Some(index) = self.aliases.get() else {
                    return Plan::Match(command.to_owned());
                };
                match resolve_locally(&index, command) {
                    Ok(resolved) => {
                        match self.check_access(message, &resolved.reference, command) {
                            Ok(()) => Plan::Execute(command.to_owned(), resolved),
                            Err(text) => Plan::Reply(text),
                        }
                    }
                    Err(Unresolved::NoMatch) => Plan::Reply(self.no_match_text(message, command)),
                    Err(Unresolved::Ambiguous(candidates)) => {
                        Plan::Reply(self.ambiguous_text(message, command, &candidates))
                    }
                    Err(Unresolved::Failed(e)) => {
                        Plan::Reply(self.error_text(message, command, &e))
                    }
                }
            }
        }
    }

    /// Handles one message (spawn it: it waits for StackStorm). Replies go to `outgoing`.
    pub async fn handle(self: Arc<Self>, message: Incoming) {
        let plan = self.plan(&message);
        if plan == Plan::Ignore {
            return;
        }
        let span = tracing::info_span!(
            "message",
            user = %message.user,
            room = message.room.as_ref().map(|r| r.name.as_str()).unwrap_or("(direct)"),
            command = %capped(self.command_of(&message).unwrap_or("")),
        );
        let _permit = match self.in_flight.clone().acquire_owned().await {
            Ok(p) => p,
            Err(_) => return,
        };
        self.carry_out(&message, plan).instrument(span).await;
    }

    async fn carry_out(&self, message: &Incoming, plan: Plan) {
        let m = crate::ops::metrics();
        m.command(match &plan {
            Plan::Ignore => "ignored",
            Plan::Reply(_) => "replied",
            Plan::Help(_) => "help",
            Plan::Session(_) => "session",
            Plan::Inquiry(_) => "inquiry",
            Plan::Confirm(..) => "confirm",
            Plan::Match(_) | Plan::Execute(..) => "alias",
        });
        match plan {
            Plan::Ignore => {}
            Plan::Reply(text) => self.reply(message, text).await,
            Plan::Help(args) => {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                self.help(message, &args).await;
            }
            Plan::Session(args) => match &self.sessions {
                Some(sessions) => {
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    let reply = sessions
                        .command(
                            &message.user_id,
                            &message.user,
                            message.room.is_none(),
                            &args,
                        )
                        .await;
                    if let Some(text) = reply.private {
                        let target = Target::Direct {
                            user: message.user_id.clone(),
                        };
                        self.send(Outgoing::text(target, text)).await;
                    }
                    if let Some(text) = reply.public {
                        self.reply(message, text).await;
                    }
                }
                None => {
                    let text = format!(
                        "{}: per-user StackStorm sessions are not configured for this bot (no `auth_page` in its definition); commands run as the bot's StackStorm identity",
                        message.user
                    );
                    self.reply(message, text).await;
                }
            },
            Plan::Inquiry(command) => self.inquiry_command(message, &command).await,
            Plan::Confirm(verb, id) => self.confirm_command(message, verb, &id).await,
            Plan::Match(command) => match self.resolve_remotely(&command).await {
                Ok(resolved) => match self.check_access(message, &resolved.reference, &command) {
                    Ok(()) => self.run_or_confirm(message, &command, &resolved).await,
                    Err(text) => self.reply(message, text).await,
                },
                Err(Unresolved::NoMatch) => {
                    let text = self.no_match_text(message, &command);
                    self.reply(message, text).await;
                }
                Err(Unresolved::Ambiguous(candidates)) => {
                    let text = self.ambiguous_text(message, &command, &candidates);
                    self.reply(message, text).await;
                }
                Err(Unresolved::Failed(e)) => {
                    let text = self.error_text(message, &command, &e);
                    self.reply(message, text).await;
                }
            },
            Plan::Execute(command, resolved) => {
                self.run_or_confirm(message, &command, &resolved).await
            }
        }
    }

    /// Checks the access rules; logs every decision; on deny, the reply text.
    fn check_access(
        &self,
        message: &Incoming,
        reference: &str,
        command: &str,
    ) -> Result<(), String> {
        let room = message.room.as_ref().map(|r| r.name.as_str());
        let verdict: Verdict = self.acl.decide(&Request {
            user: &message.user,
            command: reference,
            room,
        });
        tracing::info!(
            user = %message.user,
            room = room.unwrap_or("(direct)"),
            command = reference,
            decision = verdict.decision.as_str(),
            rule = %verdict.describe(),
            "access decision"
        );
        self.audit(
            "access",
            json!({
                "user": message.user, "user_id": message.user_id, "room": room,
                "command": reference, "text": capped(command),
                "decision": verdict.decision.as_str(), "rule": verdict.describe(),
            }),
        );
        if verdict.allowed() {
            return Ok(());
        }
        crate::ops::metrics().denied();
        let place = match room {
            Some(r) => format!("in {r}"),
            None => "in a direct message".to_owned(),
        };
        Err(self.templates.render(&DeniedContext {
            user: &message.user,
            command: &self.echo(command),
            room: room.unwrap_or("a direct message"),
            place: &place,
            instead: &self.where_allowed(&message.user, reference, room),
            rule: &verdict.describe(),
        }))
    }

    /// What a refused user may do instead: the rooms (named literally in the access rules)
    /// and the direct message where the same command is allowed for them, else whom to ask.
    fn where_allowed(&self, user: &str, reference: &str, room: Option<&str>) -> String {
        const MAX_ROOMS: usize = 5;
        let allowed = |room: Option<&str>| {
            self.acl
                .decide(&Request {
                    user,
                    command: reference,
                    room,
                })
                .allowed()
        };
        let mut rooms: Vec<&str> = Vec::new();
        for rule in self.spec.access.rules.iter() {
            for pattern in rule.rooms.iter().flat_map(|r| r.iter()) {
                let name = pattern.as_ref();
                if Some(name) != room
                    && !bot_config::acl::is_glob(name)
                    && !rooms.contains(&name)
                    && allowed(Some(name))
                {
                    rooms.push(name);
                }
            }
        }
        let more = rooms.len().saturating_sub(MAX_ROOMS);
        rooms.truncate(MAX_ROOMS);
        let mut places: Vec<String> = rooms.iter().map(|r| format!("in {r}")).collect();
        if more > 0 {
            places.push(format!("in {more} other room(s)"));
        }
        if room.is_some() && allowed(None) {
            places.push("in a direct message".to_owned());
        }
        match places.as_slice() {
            [] => {
                let admins = self
                    .spec
                    .access
                    .groups
                    .iter()
                    .find(|g| g.name == "admins")
                    .map(|g| {
                        g.members
                            .iter()
                            .filter(|m| !bot_config::acl::is_glob(m))
                            .map(|m| m.to_string())
                            .collect::<Vec<_>>()
                    })
                    .filter(|m| !m.is_empty());
                match admins {
                    Some(names) => format!("Ask an admin ({}) if you need it.", names.join(", ")),
                    None => "Ask an admin if you need it.".to_owned(),
                }
            }
            [one] => format!("You may run it {one}."),
            [first @ .., last] => format!("You may run it {} or {last}.", first.join(", ")),
        }
    }

    /// User text as a reply echoes it: capped ([`capped`]), `{~}` unable to act as the
    /// pretext separator, and the service's mass mentions made inert.
    fn echo(&self, text: &str) -> String {
        let text = capped(text).replace("{~}", "{\u{200D}~}");
        crate::backend::defuse_mass_mentions(&self.spec.backend, &text)
    }

    /// Resolves a command with StackStorm's `POST /actionalias/match`.
    async fn resolve_remotely(&self, command: &str) -> Result<Resolved, Unresolved> {
        if self.spec.stackstorm.matcher == MatcherKind::Local {
            // The local index was not loaded yet: load it now, once.
            if let Err(e) = self.aliases.ensure_loaded(&self.st2).await {
                return Err(Unresolved::Failed(e));
            }
            if let Some(index) = self.aliases.get() {
                return resolve_locally(&index, command);
            }
        }
        match self.st2.match_command(command).await {
            Ok(m) => {
                let match_multiple = self
                    .aliases
                    .get()
                    .and_then(|index| {
                        index
                            .matches(command)
                            .ok()?
                            .into_iter()
                            .find(|x| {
                                x.alias_ref == m.actionalias.reference()
                                    && x.representation == m.representation
                            })
                            .and_then(|x| x.match_multiple)
                    })
                    .unwrap_or(false);
                Ok(Resolved {
                    reference: m.actionalias.reference(),
                    name: m.actionalias.name.clone(),
                    representation: m.representation,
                    match_multiple,
                })
            }
            Err(St2Error::Api {
                status: 400,
                faultstring,
                ..
            }) if faultstring.contains("matched no patterns") => {
                self.aliases.refresh_if_matching(&self.st2, command).await;
                Err(Unresolved::NoMatch)
            }
            Err(St2Error::Api {
                status: 400,
                faultstring,
                ..
            }) if faultstring.contains("matched more than 1") => {
                let candidates = self
                    .aliases
                    .get()
                    .and_then(|index| index.matches(command).ok())
                    .map(|ms| ms.into_iter().map(|m| m.representation).collect())
                    .unwrap_or_default();
                Err(Unresolved::Ambiguous(candidates))
            }
            Err(e) => Err(Unresolved::Failed(e)),
        }
    }

    /// Where the command came from, as StackStorm's `source_channel`: the room id, or
    /// `@<user id>` for a direct message (announcements to it come back privately).
    fn source_channel(message: &Incoming) -> String {
        match &message.room {
            Some(r) => r.id.clone(),
            None => format!("@{}", message.user_id),
        }
    }

    /// What StackStorm echoes back in the announcement's `context`, so a result finds the
    /// room and thread the command came from; `request` (random, per command) tells which
    /// owed execution an announcement settles. `confirmation` (who confirmed or approved a
    /// command that needed it) is added as it is.
    fn source_context(
        &self,
        message: &Incoming,
        request: &str,
        confirmation: Option<&Value>,
    ) -> Value {
        let mut context = json!({
            "bot": self.spec.name,
            "backend": self.spec.backend.kind(),
            "room": message.room.as_ref().map(|r| r.id.clone()),
            "thread": message.thread,
            "message_id": message.message_id,
            "user_id": message.user_id,
            "request": request,
        });
        if let (Value::Object(c), Some(Value::Object(extra))) = (&mut context, confirmation) {
            c.extend(extra.clone());
        }
        context
    }

    /// Runs a resolved command (access allowed) as `message`'s sender; `confirmation`
    /// (`{"confirmed": …, "approved_by": …}`) goes into its `source_context` when it needed
    /// one.
    async fn execute(
        &self,
        message: &Incoming,
        command: &str,
        resolved: &Resolved,
        confirmation: Option<&Value>,
    ) {
        // Fencing: a leader whose lease ran out while it matched the command must not start
        // it; the new leader, which saw the same message, may.
        if !self.leadership.is_leader() {
            tracing::warn!(
                alias = %resolved.reference,
                "no longer the leader: the command is not started here"
            );
            return;
        }
        let user_token = match &self.sessions {
            Some(sessions) => match sessions.token_for(&message.user_id) {
                Some(token) => Some(token),
                None if sessions.required() => {
                    let text = format!(
                        "{}: this bot runs commands as your own StackStorm user; log in first with `{}{} login`",
                        message.user, self.spec.chat.prefix, self.spec.chat.session_command
                    );
                    return self.reply(message, text).await;
                }
                None => None,
            },
            None => None,
        };
        let source_channel = Self::source_channel(message);
        let route = self.spec.stackstorm.notification_route.as_ref();
        // match_and_execute takes no `source_context`: its executions are recorded by id
        // alone, when their announcement names the id (see `record_owed`).
        let context = (!resolved.match_multiple).then(|| {
            let request = crate::results::new_request_key();
            let context = self.source_context(message, &request, confirmation);
            (request, context)
        });
        let results: Result<Vec<ExecuteResponse>, St2Error> = if resolved.match_multiple {
            self.st2
                .match_and_execute(
                    &MatchAndExecuteRequest {
                        command,
                        user: &message.user,
                        source_channel: &source_channel,
                        notification_route: route,
                    },
                    user_token.as_ref(),
                )
                .await
                .map(|r| r.results)
        } else {
            let source_context = context.as_ref().map_or(&Value::Null, |(_, c)| c);
            self.st2
                .execute(
                    &ExecuteRequest {
                        name: &resolved.name,
                        format: &resolved.representation,
                        command,
                        user: &message.user,
                        source_channel: &source_channel,
                        source_context,
                        notification_route: route,
                    },
                    user_token.as_ref(),
                )
                .await
                .map(|r| vec![r])
        };
        match results {
            Ok(results) => {
                for r in results {
                    crate::ops::metrics().command("executed");
                    if let Some(id) = &message.message_id {
                        self.await_results(id, true);
                    }
                    tracing::info!(alias = %resolved.reference, execution = %r.execution.id, "execution started");
                    self.audit(
                        "execution",
                        json!({
                            "user": message.user, "user_id": message.user_id,
                            "room": message.room.as_ref().map(|r| r.name.clone()),
                            "command": resolved.reference, "execution": r.execution.id,
                        }),
                    );
                    self.record_owed(message, &source_channel, context.as_ref(), &r);
                    self.ack(message, command, resolved, &r).await;
                }
            }
            Err(St2Error::Unauthorized { .. }) if user_token.is_some() => {
                crate::ops::metrics().command("failed");
                if let Some(sessions) = &self.sessions {
                    sessions.forget(&message.user_id);
                }
                let text = format!(
                    "{}: StackStorm no longer accepts your session (expired or revoked); log in again with `{}{} login`",
                    message.user, self.spec.chat.prefix, self.spec.chat.session_command
                );
                self.reply(message, text).await;
            }
            Err(e) => {
                crate::ops::metrics().command("failed");
                self.audit(
                    "execution_refused",
                    json!({
                        "user": message.user, "user_id": message.user_id,
                        "room": message.room.as_ref().map(|r| r.name.clone()),
                        "command": resolved.reference, "status": e.status(),
                        "error": capped(&e.user_message()),
                    }),
                );
                if e.is_unknown_alias() {
                    self.aliases
                        .refresh_stale(&self.st2, &resolved.reference)
                        .await;
                }
                let text = self.error_text(message, command, &e);
                self.reply(message, text).await;
            }
        }
    }

    /// Records an execution just started as owed. One started with its `source_context`
    /// (`context`: request key and context) is found again by the request key its
    /// announcement echoes. One started by `match_and_execute` carries no context
    /// (StackStorm's `AliasMatchAndExecuteInputAPI` has no `source_context`, so the notify
    /// rule passes none on): it is recorded by its execution id alone, and only when its
    /// announcement will name that id ([`AliasSummary::result_names_execution`]);
    /// otherwise the announcement could not be matched, the record would stay owed, and
    /// every later stream gap would post the result again.
    ///
    /// [`AliasSummary::result_names_execution`]: crate::stackstorm::types::AliasSummary::result_names_execution
    fn record_owed(
        &self,
        message: &Incoming,
        source_channel: &str,
        context: Option<&(String, Value)>,
        r: &ExecuteResponse,
    ) {
        let (request, context) = match context {
            Some((request, context)) => (request.clone(), context.clone()),
            None if r.actionalias.result_names_execution() => (String::new(), Value::Null),
            None => {
                tracing::info!(execution = %r.execution.id, alias = %r.actionalias.reference(), "the result of this execution cannot be told apart (no source_context, and its result format does not name the execution); not recorded as owed");
                return;
            }
        };
        self.results.record(OwedExecution {
            execution_id: r.execution.id.clone(),
            request,
            source_channel: source_channel.to_owned(),
            room: message.room.as_ref().map(|r| r.id.clone()),
            thread: message.thread.clone(),
            user: message.user.clone(),
            user_id: message.user_id.clone(),
            message_id: message.message_id.clone(),
            started_unix: crate::results::unix_now(),
            context,
            state: OwedState::Awaiting,
            ack: None,
        });
    }

    /// Posts the acknowledgement, honouring the alias's `ack` settings.
    async fn ack(
        &self,
        message: &Incoming,
        command: &str,
        resolved: &Resolved,
        r: &ExecuteResponse,
    ) {
        let ack = r.actionalias.ack.clone().unwrap_or_default();
        if !self.spec.chat.ack || ack.enabled == Some(false) {
            return;
        }
        let url = if ack.append_url == Some(false) {
            String::new()
        } else if let Some(web) = &r.execution.web_url {
            web.clone()
        } else if let Some(webui) = &self.spec.stackstorm.webui_url {
            format!("{webui}/#/history/{}/general", r.execution.id)
        } else {
            String::new()
        };
        let text = self.templates.render(&AckContext {
            user: &message.user,
            room: message.room.as_ref().map_or("", |r| r.name.as_str()),
            command: &self.echo(command),
            alias: &resolved.reference,
            message: r.message.as_deref().unwrap_or_default(),
            url: &url,
            execution: ExecutionContext {
                id: &r.execution.id,
                status: r.execution.status.as_deref(),
                web_url: r.execution.web_url.as_deref(),
            },
        });
        let mut out = Outgoing::text(self.reply_target(message), text);
        out.extra = r.extra.clone();
        if self.remembers_acks() {
            out.remember_as = Some(format!("ack:{}", r.execution.id));
            out.report_posted = Some(self.posted.clone());
            self.results.set_ack(&r.execution.id, &out.text);
        }
        if self.live_acks() {
            let mut acks = self.live_acks.lock().unwrap_or_else(|e| e.into_inner());
            if acks.len() >= MAX_LIVE_ACKS
                && let Some(oldest) = acks
                    .iter()
                    .min_by_key(|(_, a)| a.posted)
                    .map(|(id, _)| id.clone())
            {
                acks.remove(&oldest);
            }
            acks.insert(
                r.execution.id.clone(),
                LiveAck {
                    target: out.target.clone(),
                    text: out.text.clone(),
                    shown: None,
                    posted: std::time::Instant::now(),
                },
            );
        }
        self.send(out).await;
    }

    /// With `chat.ack.replace`: whether the result `out` of execution `id` replaces its ack,
    /// and then the ack's handle as the backend reported it (`None` when it has not yet:
    /// the backend still remembers the key). It does when the ack was posted, the result
    /// goes to the same room, and it fits one message (a longer result follows the ack as
    /// new messages). The ack is no longer followed by live edits then.
    fn ack_to_replace(
        &self,
        id: &str,
        settled: SettledAck,
        out: &Outgoing,
    ) -> Option<Option<String>> {
        if !self.replaces_acks() {
            return None;
        }
        let SettledAck { ack, room, user_id } = settled;
        let same_place = match &out.target {
            Target::Room { id: target, .. } => room.as_deref() == Some(target.as_str()),
            Target::Direct { user } => room.is_none() && *user == user_id,
        };
        if !same_place {
            return None;
        }
        if char_len(&out.text) > self.message_limit() {
            tracing::info!(execution = %id, "the result is too long for one message: it follows its ack");
            return None;
        }
        self.live_acks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        Some(ack.handle)
    }

    /// The chat status of an execution, from StackStorm (colours and icons of a result
    /// come from the execution, not only from `extra`); `None` when it cannot be read.
    async fn execution_status(&self, id: &str) -> Option<crate::backend::Status> {
        match self.st2.execution_status(id).await {
            Ok(status) if !status.is_empty() => Some(crate::results::chat_status(&status)),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(execution = id, error = %e, "cannot read the status of an announced execution");
                None
            }
        }
    }

    fn no_match_text(&self, message: &Incoming, command: &str) -> String {
        let suggestions: Vec<String> = self
            .aliases
            .get()
            .map(|index| {
                index
                    .suggestions(command, SUGGESTIONS)
                    .into_iter()
                    .map(|(_, display)| display)
                    .collect()
            })
            .unwrap_or_default();
        self.templates.render(&NoMatchContext {
            user: &message.user,
            command: &self.echo(command),
            prefix: &self.spec.chat.prefix,
            help_command: &self.spec.chat.help_command,
            suggestions: &suggestions,
        })
    }

    fn ambiguous_text(&self, message: &Incoming, command: &str, candidates: &[String]) -> String {
        self.templates.render(&AmbiguousContext {
            user: &message.user,
            command: &self.echo(command),
            prefix: &self.spec.chat.prefix,
            candidates,
        })
    }

    fn error_text(&self, message: &Incoming, command: &str, e: &St2Error) -> String {
        tracing::warn!(error = %e, request_id = e.request_id().unwrap_or(""), "command failed");
        self.templates.render(&ErrorContext {
            user: &message.user,
            command: &self.echo(command),
            error: &e.user_message(),
            status: e.status(),
            request_id: e.request_id(),
        })
    }

    /// `help [pack] [keyword…]`: one word is tried as a pack, then as a keyword. Answered
    /// from the bot's copy of the aliases as StackStorm's `GET /actionalias/help` would
    /// (enabled aliases, `pack` exact, the keyword a case-insensitive regular expression
    /// searched in each line), over lines rendered once per alias load.
    async fn help(&self, message: &Incoming, args: &[&str]) {
        // `--all` was allowed by `plan`; without it, only what the caller may run.
        let (all, args) = crate::help_rights::split_all_flag(args);
        let command = || {
            std::iter::once(self.spec.chat.help_command.as_ref())
                .chain(args.iter().copied())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let catalogue = match self.aliases.ensure_loaded(&self.st2).await {
            Ok(_) => self.aliases.get(),
            Err(e) => {
                let command = if all {
                    command()
                } else {
                    self.spec.chat.help_command.to_string()
                };
                let text = self.error_text(message, &command, &e);
                return self.reply(message, text).await;
            }
        };
        let Some(catalogue) = catalogue else {
            return self
                .reply(message, format!("{}: no commands.", message.user))
                .await;
        };
        let allowed = (!all).then(|| {
            let room = message.room.as_ref().map(|r| r.name.as_str());
            crate::help_rights::AllowedHelp::new(&catalogue, &self.acl, &message.user, room)
        });
        let (pack, filter) = match args {
            [] => (None, None),
            [one] => (Some(*one), None),
            [pack, rest @ ..] => (Some(*pack), Some(rest.join(" "))),
        };
        let lines = catalogue.help_lines(|index| self.render_help_lines(index));
        let mut chosen = help_selection(&catalogue, pack, filter.as_deref());
        let mut filter = filter;
        if let (Ok(found), [one]) = (&chosen, args)
            && found.is_empty()
        {
            filter = Some((*one).to_owned());
            chosen = help_selection(&catalogue, None, filter.as_deref());
        }
        let mut chosen = match chosen {
            Ok(chosen) => chosen,
            Err(e) => {
                tracing::warn!(error = %e, "help filter refused");
                let text = self.templates.render(&ErrorContext {
                    user: &message.user,
                    command: &self.echo(&command()),
                    error: &e.to_string(),
                    status: Some(400),
                    request_id: None,
                });
                return self.reply(message, text).await;
            }
        };
        if let Some(allowed) = &allowed {
            chosen.retain(|&(alias, display, _)| {
                allowed.permits(&catalogue.aliases()[alias].pack, display)
            });
        }
        if chosen.is_empty() {
            let what = match (pack, &filter) {
                (_, Some(f)) => format!(" matching `{}`", self.echo(f)),
                (Some(p), None) => format!(" in pack `{}`", self.echo(p)),
                _ => String::new(),
            };
            return self
                .reply(message, format!("{}: no commands{what}.", message.user))
                .await;
        }
        let mut text = String::new();
        let mut current_pack = "";
        for (alias, _, line) in chosen {
            let pack = catalogue.aliases()[alias].pack.as_str();
            if pack != current_pack {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(pack);
                text.push_str(":\n");
                current_pack = pack;
            }
            text.push_str("  ");
            text.push_str(lines.get(line));
            text.push('\n');
        }
        text.truncate(text.trim_end().len());
        self.reply(message, text).await;
    }

    /// Every help line of `index` through the `help` template, in
    /// [`st2_alias::AliasIndex::help_lines`] order (once per alias load).
    fn render_help_lines(&self, index: &st2_alias::AliasIndex) -> crate::aliases::HelpLines {
        let mut lines = crate::aliases::HelpLines::default();
        for (alias, display) in index.help_lines() {
            let alias = &index.aliases()[alias];
            lines.push(&self.templates.render(&HelpContext {
                pack: &alias.pack,
                display,
                description: alias.description.as_deref().unwrap_or_default(),
                prefix: &self.spec.chat.prefix,
            }));
        }
        lines
    }

    /// Where a reply to `message` goes: its room (and thread), or back privately.
    fn reply_target(&self, message: &Incoming) -> Target {
        match &message.room {
            Some(r) => Target::Room {
                id: r.id.clone(),
                thread: message.thread.clone(),
            },
            None => Target::Direct {
                user: message.user_id.clone(),
            },
        }
    }

    async fn reply(&self, message: &Incoming, text: String) {
        self.send(Outgoing::text(self.reply_target(message), text))
            .await;
    }

    /// The longest message sent in one piece: `chat.max_message_len` when set, never more
    /// than the backend's own limit.
    fn message_limit(&self) -> usize {
        let backend_limit = self.capabilities.max_message_len;
        match self.spec.chat.max_message_len as usize {
            0 => backend_limit,
            n => n.min(backend_limit),
        }
    }

    /// Sends a reply: bounded to [`MAX_REPLY_MESSAGES`] messages' worth of text (the rest
    /// replaced by a note pointing at the execution), and cut into pieces of
    /// `chat.max_message_len` when the definition asks for pieces smaller than the backend's
    /// own limit. Otherwise the backend splits to its limit (with [`split_message`], as
    /// every backend does), knowing what it adds (mentions, pretext, markup).
    async fn send(&self, mut out: Outgoing) {
        if !self.capabilities.threads
            && let Target::Room { thread, .. } = &mut out.target
        {
            *thread = None;
        }
        let backend_limit = self.capabilities.max_message_len;
        let limit = self.message_limit();
        let bound = (limit * MAX_REPLY_MESSAGES).min(MAX_REPLY_CHARS);
        if let Some((kept, dropped)) = truncate(&out.text, bound, char_len) {
            let see = match execution_id_in(&kept) {
                Some(id) => match &self.spec.stackstorm.webui_url {
                    Some(webui) => format!("see {webui}/#/history/{id}/general"),
                    None => format!("see execution {id}"),
                },
                None => "see the execution in StackStorm".to_owned(),
            };
            tracing::info!(dropped, "reply truncated");
            out.text = format!("{kept}\n… (truncated, {dropped} more characters; {see})");
        }
        let pieces = if limit < backend_limit {
            split_message(&out.text, limit, char_len)
        } else {
            vec![std::mem::take(&mut out.text)]
        };
        let last = pieces.len().saturating_sub(1);
        for (i, text) in pieces.into_iter().enumerate() {
            let mut piece = out.clone();
            piece.text = text;
            if i != last {
                piece.extra = None; // rich content once, with the last piece
                piece.actions.clear(); // and the buttons under it
            }
            if self.outgoing.send(piece).await.is_err() {
                tracing::warn!("chat backend stopped; dropping a reply");
                return;
            }
        }
    }

    /// Posts a stream announcement: privately to `user` when `whisper`, else to `channel`
    /// (in the command's thread when the context says so), mentioning `user`.
    pub async fn announce(&self, a: Announcement) {
        if !self.leadership.is_leader() {
            tracing::debug!("standby: the announcement is the leader's to post");
            return;
        }
        if let Some(id) = crate::inquiry::announced(a.extra.as_ref()) {
            return self.ask_inquiry(&id, a.channel.as_deref()).await;
        }
        let settlement = self
            .results
            .settle(a.context.as_ref(), a.message.as_deref().unwrap_or(""));
        let mut settled_ack = None;
        let execution_id = match settlement {
            Settlement::Duplicate { execution_id } => {
                tracing::info!(execution = %execution_id, "result already posted; duplicate announcement dropped");
                crate::ops::metrics().result_duplicate();
                return;
            }
            Settlement::Post {
                execution_id,
                recovered,
                ack,
            } => {
                settled_ack = ack;
                if recovered {
                    tracing::info!(execution = %execution_id, "posting a result recovered after a stream gap");
                    crate::ops::metrics().result_recovered();
                }
                Some(execution_id)
            }
            Settlement::NotOwed => a
                .message
                .as_deref()
                .and_then(execution_id_in)
                .map(str::to_owned),
        };
        let status = match (&execution_id, self.capabilities.rich) {
            (Some(id), true) => self.execution_status(id).await,
            _ => None,
        };
        let text = self.templates.render(&ResultContext {
            message: a.message.as_deref().unwrap_or_default(),
            user: a.user.as_deref(),
            channel: a.channel.as_deref(),
            whisper: a.whisper.unwrap_or(false),
            context: a.context.as_ref(),
            extra: a.extra.as_ref(),
        });
        let whisper = a.whisper.unwrap_or(false);
        let context = a.context.clone().unwrap_or(Value::Null);
        let target = match (&a.channel, &a.user) {
            (_, Some(user)) if whisper => Target::Direct {
                user: context
                    .get("user_id")
                    .and_then(Value::as_str)
                    .filter(|_| {
                        context.get("bot").and_then(Value::as_str) == Some(self.spec.name.as_ref())
                    })
                    .unwrap_or(user)
                    .to_owned(),
            },
            (Some(channel), _) if channel.starts_with('@') => Target::Direct {
                user: channel[1..].to_owned(),
            },
            (Some(channel), _) => {
                let same_room =
                    context.get("room").and_then(Value::as_str) == Some(channel.as_str());
                let wants_thread = a
                    .extra
                    .as_ref()
                    .and_then(Value::as_object)
                    .is_some_and(|o| {
                        o.values()
                            .any(|v| v.get("thread_response") == Some(&Value::Bool(true)))
                    });
                let thread = if same_room {
                    let in_thread = context.get("thread").and_then(Value::as_str);
                    let message_id = context.get("message_id").and_then(Value::as_str);
                    in_thread
                        .or(if wants_thread { message_id } else { None })
                        .map(str::to_owned)
                } else {
                    None
                };
                Target::Room {
                    id: channel.clone(),
                    thread,
                }
            }
            (None, _) => {
                tracing::warn!("announcement without channel or whisper target; dropped");
                return;
            }
        };
        let mut out = Outgoing::text(target, text);
        if !whisper {
            out.mention = a.user.clone().filter(|u| !u.is_empty());
        }
        out.extra = a.extra.clone();
        out.status = status;
        if !whisper
            && let Some(id) = &execution_id
            && let Some(settled) = settled_ack
            && let Some(handle) = self.ack_to_replace(id, settled, &out)
        {
            // An edit notifies no one and the ack it replaces already named the user.
            tracing::info!(execution = %id, "the result replaces its ack");
            out.replaces = Some(format!("ack:{id}"));
            out.replaces_whole = true;
            out.handle = handle;
            out.mention = None;
        }
        tracing::info!(
            channel = a.channel.as_deref().unwrap_or(""),
            whisper,
            "posting announcement"
        );
        crate::ops::metrics().announcement();
        self.send(out).await;
        if context.get("bot").and_then(Value::as_str) == Some(self.spec.name.as_ref())
            && let Some(id) = context.get("message_id").and_then(Value::as_str)
        {
            self.await_results(id, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Room;

    /// Help from the bot's copy selects what `GET /actionalias/help` would: enabled aliases,
    /// the pack exactly, the keyword a case-insensitive regex searched in each line; an
    /// invalid keyword is an error, not an empty list.
    #[test]
    fn help_selection_filters_like_stackstorm_help() {
        use st2_alias::{Alias, AliasIndex, FormatEntry};
        let plain = |s: &str| FormatEntry::Plain(s.to_owned());
        let mut off = Alias::new("core", "off", vec![plain("reboot {{host}}")]);
        off.enabled = false;
        let index = AliasIndex::new(vec![
            Alias::new("core", "local", vec![plain("local {{cmd}}")]),
            off,
            Alias::new(
                "packs",
                "get",
                vec![plain("pack get {{pack}}"), plain("pack show {{pack}}")],
            ),
        ]);
        let displays = |pack: Option<&str>, filter: Option<&str>| -> Vec<String> {
            help_selection(&index, pack, filter)
                .expect("valid filter")
                .into_iter()
                .map(|(_, display, _)| display.to_owned())
                .collect()
        };
        assert_eq!(
            displays(None, None),
            ["local {{cmd}}", "pack get {{pack}}", "pack show {{pack}}"]
        );
        assert_eq!(displays(Some("packs"), None).len(), 2);
        assert!(
            displays(Some("pack"), None).is_empty(),
            "pack names are exact"
        );
        assert_eq!(displays(None, Some("SHOW")), ["pack show {{pack}}"]);
        assert!(displays(None, Some("reboot")).is_empty(), "disabled");
        // Line positions index the rendered lines, disabled aliases included.
        let chosen = help_selection(&index, Some("packs"), None).expect("valid");
        assert_eq!(chosen.iter().map(|c| c.2).collect::<Vec<_>>(), [2, 3]);
        assert!(help_selection(&index, None, Some("(unclosed")).is_err());
    }

    fn dispatcher(access: &str) -> Dispatcher {
        let key = std::env::temp_dir().join(format!("st2bot-dispatch-test-{}", std::process::id()));
        std::fs::write(&key, "test-key").unwrap();
        let yaml = format!(
            "name: t\nbackend: {{kind: text}}\nstackstorm:\n  url: http://127.0.0.1:9\n  auth: {{api_key: \"file:{}\"}}\n{access}",
            key.display()
        );
        let spec = bot_config::load(&bot_config::SourceFile::new("t.yaml", yaml)).expect("valid");
        let (tx, _rx) = mpsc::channel(8);
        Dispatcher::new(
            &spec,
            St2Client::new(&spec.stackstorm).unwrap(),
            Capabilities {
                max_message_len: 4000,
                rich: false,
                threads: false,
                edit: false,
                buttons: false,
            },
            AliasCache::new(),
            tx,
        )
        .unwrap()
    }

    fn said(user: &str, room: Option<&str>) -> Incoming {
        Incoming {
            user_id: user.into(),
            user: user.into(),
            room: room.map(|r| Room {
                id: r.into(),
                name: r.into(),
            }),
            text: String::new(),
            mentioned: false,
            thread: None,
            message_id: None,
        }
    }

    const RULES: &str = "access:\n  default: deny\n  rules:\n    - allow: { users: [dave], commands: [examples.deploy], rooms: [\"#deploys\", \"#ops-*\", \"#release\"] }\n    - allow: { users: [erin], commands: [examples.deploy], direct: true }\ngroups:\n  admins: [alice, bob]\n";

    /// Issue 12 item 6: a denial says where the command is allowed (or whom to ask), names
    /// a direct message as such, and never shows the rule or its line.
    #[test]
    fn denials_say_what_the_user_may_do_instead_and_hide_the_rule() {
        let d = dispatcher(RULES);
        let deny = |user, room| {
            d.check_access(&said(user, room), "examples.deploy", "deploy api")
                .expect_err("denied")
        };
        assert_eq!(
            deny("dave", Some("#ops")),
            "dave: you are not allowed to run `deploy api` in #ops. You may run it in #deploys or in #release."
        );
        assert_eq!(
            deny("dave", None),
            "dave: you are not allowed to run `deploy api` in a direct message. You may run it in #deploys or in #release."
        );
        assert_eq!(
            deny("erin", Some("#ops")),
            "erin: you are not allowed to run `deploy api` in #ops. You may run it in a direct message."
        );
        let frank = deny("frank", None);
        assert_eq!(
            frank,
            "frank: you are not allowed to run `deploy api` in a direct message. Ask an admin (alice, bob) if you need it."
        );
        for text in [frank, deny("dave", Some("#ops"))] {
            assert!(!text.contains("rule") && !text.contains("line"), "{text}");
        }
        assert!(
            d.check_access(
                &said("dave", Some("#deploys")),
                "examples.deploy",
                "deploy api"
            )
            .is_ok()
        );
    }

    /// A pasted mebibyte is refused at once with its size, before any matching; a command
    /// at the limit is read.
    #[test]
    fn commands_over_the_size_limit_are_refused_before_matching() {
        let d = dispatcher(RULES);
        let mut message = said("frank", None);
        message.text = format!("!deploy {}", "x".repeat(1 << 20));
        let Plan::Reply(text) = d.plan(&message) else {
            panic!("a 1 MiB command was not refused")
        };
        assert_eq!(
            text,
            format!(
                "frank: that command is {} bytes long; commands are limited to 65536 bytes (pass large inputs by reference, a URL or a file path, instead)",
                (1 << 20) + "deploy ".len()
            )
        );
        message.text = format!(
            "!deploy {}",
            "x".repeat(MAX_COMMAND_BYTES - "deploy ".len())
        );
        assert!(
            !matches!(d.plan(&message), Plan::Reply(t) if t.contains("limited to")),
            "a command at the limit was refused"
        );
    }

    /// Issue 12 item 5: echoed user text is capped and cannot act as the pretext separator.
    #[test]
    fn echoes_are_capped_and_a_typed_separator_is_inert() {
        let d = dispatcher(RULES);
        let command = format!("deploy {{~}}{}", "x".repeat(5_000));
        let text = d
            .check_access(&said("frank", Some("#ops")), "examples.deploy", &command)
            .expect_err("denied");
        assert!(
            text.chars().count() < 320,
            "{} characters",
            text.chars().count()
        );
        assert!(text.contains("x…` in #ops."), "{text}");
        assert_eq!(crate::backend::split_pretext(&text).0, None, "{text}");
        assert_eq!(capped("short"), "short");
        let long = "é".repeat(ECHO_MAX_CHARS + 1);
        assert_eq!(capped(&long).chars().count(), ECHO_MAX_CHARS);
        assert!(capped(&long).ends_with('…'));
        assert_eq!(
            capped(&"é".repeat(ECHO_MAX_CHARS)),
            "é".repeat(ECHO_MAX_CHARS)
        );
    }

    /// Issue 13 item 4: what `--linger` waits for, whichever of the answer and the result
    /// comes first.
    #[test]
    fn results_awaited_are_counted_in_either_order() {
        let d = dispatcher(RULES);
        let awaited = d.results_awaited();
        d.await_results("1", true);
        d.await_results("2", true);
        assert_eq!(*awaited.borrow(), 2);
        d.await_results("1", false);
        assert_eq!(*awaited.borrow(), 1);
        d.await_results("3", false); // the result came before the answer
        d.await_results("3", true);
        assert_eq!(*awaited.borrow(), 1);
        d.await_results("2", false);
        assert_eq!(*awaited.borrow(), 0);
    }

    #[test]
    fn live_ack_lines_say_the_status_and_how_long_it_took() {
        use std::time::Duration;
        assert_eq!(
            live_ack_line("running", None).as_deref(),
            Some("⏳ running")
        );
        assert_eq!(
            live_ack_line("succeeded", Some(Duration::from_millis(2140))).as_deref(),
            Some("✅ succeeded in 2.1s")
        );
        assert_eq!(
            live_ack_line("timeout", Some(Duration::from_secs(600))).as_deref(),
            Some("❌ timed out after 10m")
        );
        assert_eq!(live_ack_line("failed", None).as_deref(), Some("❌ failed"));
        assert_eq!(live_ack_line("scheduled", None), None);
    }

    #[test]
    fn execution_ids_are_found_in_results() {
        assert_eq!(
            execution_id_in("Execution 5f0c9a3b2e1d4c5b6a798877 succeeded:"),
            Some("5f0c9a3b2e1d4c5b6a798877")
        );
        assert_eq!(execution_id_in("no id here"), None);
    }
}
