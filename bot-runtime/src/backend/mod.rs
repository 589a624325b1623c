//! Chat backends: the [`Backend`] trait every chat service implements, the messages that
//! cross it, and helpers all backends share ([`split`]: cutting long output to size).
//!
//! A backend owns its connection: it connects, authenticates, reconnects with backoff, and
//! runs until shutdown. It talks to the rest of the bot through [`BackendIo`] channels:
//! [`Incoming`] messages out, [`Outgoing`] replies in, connection state on a watch channel.
//! One file per backend; [`build`] picks the one the definition names.

pub mod actions;
pub mod backoff;
pub mod discord;
pub mod irc;
pub(crate) mod listener;
pub mod matrix;
pub mod mattermost;
pub mod msteams;
pub mod rich;
pub mod rocketchat;
pub mod slack;
pub mod split;
pub mod text;
pub mod webapi;
pub mod websocket;
pub mod xmpp;

use std::future::Future;
use std::pin::Pin;

pub use actions::{Action, ActionIds, ActionStyle, approval_actions};
use bot_config::BackendSpec;
pub use split::{byte_len, char_len, split_message};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// A message someone said to (or near) the bot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// Stable user id on the service (used for sessions and replies).
    pub user_id: String,
    /// User name as access rules name it (nick, username, JID localpart…).
    pub user: String,
    /// Room id and name, or `None` for a direct message.
    pub room: Option<Room>,
    /// The text, with a leading mention of the bot removed when there was one.
    pub text: String,
    /// Whether the message mentioned the bot (then `text` has the mention removed).
    pub mentioned: bool,
    /// Thread the message belongs to or starts (service-specific id), for threaded replies.
    pub thread: Option<String>,
    /// Service-specific id of the message itself.
    pub message_id: Option<String>,
}

/// A room: the id to send to and the name access rules match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Room {
    /// Id to send to (channel id, MUC JID, `#channel`, Matrix room id).
    pub id: String,
    /// Name access rules match (`#ops`, `ops`), often equal to `id`.
    pub name: String,
}

/// Where a reply goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A room, optionally in a thread.
    Room {
        /// Room id.
        id: String,
        /// Thread id (service-specific), when replying in a thread.
        thread: Option<String>,
    },
    /// A private message to a user.
    Direct {
        /// User id (or name, for backends that address people by name).
        user: String,
    },
}

/// Structured status of an execution, for colours and icons (never guessed from text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Succeeded.
    Succeeded,
    /// Failed, timed out, abandoned.
    Failed,
    /// Still running or scheduled.
    Running,
}

/// A reply or announcement for the backend to post.
#[derive(Clone, Debug, PartialEq)]
pub struct Outgoing {
    /// Where.
    pub target: Target,
    /// Plain text (may contain the `{~}` pretext separator; see [`split_pretext`]).
    pub text: String,
    /// User to mention in front of the text, when the message answers someone.
    pub mention: Option<String>,
    /// StackStorm's `extra` object; a backend renders `extra.<its provider>` when present.
    pub extra: Option<serde_json::Value>,
    /// Execution status, when known.
    pub status: Option<Status>,
    /// Backends that can edit ([`Capabilities::edit`]) remember the id of the message they
    /// post for this under this key (a bounded number of keys), for a later
    /// [`Outgoing::replaces`]. The acks of live acks use `ack:<execution id>`.
    pub remember_as: Option<String>,
    /// Edit the message remembered under this key instead of posting a new one (its text
    /// becomes `text`). When the backend does not remember the key (posted before a
    /// restart, or forgotten) it edits the message [`Outgoing::handle`] names; without one
    /// the edit is dropped with a debug log line.
    pub replaces: Option<String>,
    /// With [`Outgoing::replaces`]: the message to edit as the backend reported it when
    /// posting it ([`PostedSink`]), kept by the dispatcher across restarts.
    pub handle: Option<String>,
    /// With [`Outgoing::replaces`]: the edit makes the message read as this one would have
    /// been posted, rich content and colours included (a result replacing its ack), where
    /// the service's edit allows it; otherwise only its text changes (a live ack's status
    /// line: its attachments stay).
    pub replaces_whole: bool,
    /// With [`Outgoing::remember_as`]: where the backend reports what it posted (the key
    /// and the message's handle, the backend's own JSON), for the dispatcher to keep.
    pub report_posted: Option<PostedSink>,
    /// Buttons under the message ([`Capabilities::buttons`]); a backend without buttons
    /// ignores them (the text says which command to type). Empty for most messages.
    pub actions: Vec<Action>,
}

/// A message posted under a [`Outgoing::remember_as`] key, as its backend reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostedMessage {
    /// The key.
    pub key: String,
    /// What the backend needs to edit it (Slack: channel and `ts`; Matrix: room and event
    /// id…), as JSON; handed back in [`Outgoing::handle`].
    pub handle: String,
}

/// Where backends report the messages they post under a key ([`Outgoing::report_posted`]).
#[derive(Clone, Debug)]
pub struct PostedSink(mpsc::UnboundedSender<PostedMessage>);

impl PostedSink {
    /// A sink and the receiving end.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<PostedMessage>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self(tx), rx)
    }

    fn report(&self, key: &str, handle: String) {
        // Nobody listening any more (shutting down): nothing to keep.
        let _ = self.0.send(PostedMessage {
            key: key.to_owned(),
            handle,
        });
    }
}

impl PartialEq for PostedSink {
    fn eq(&self, other: &Self) -> bool {
        self.0.same_channel(&other.0)
    }
}

impl Outgoing {
    /// A plain text message to a target.
    pub fn text(target: Target, text: impl Into<String>) -> Self {
        Self {
            target,
            text: text.into(),
            mention: None,
            extra: None,
            status: None,
            remember_as: None,
            replaces: None,
            handle: None,
            replaces_whole: false,
            report_posted: None,
            actions: Vec::new(),
        }
    }
}

/// Connection state, reported by the backend for health checks and logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnState {
    /// Not connected yet, or reconnecting.
    Connecting,
    /// Connected and joined.
    Connected,
    /// Gave up for good (bad credentials); the reason.
    Failed(String),
}

/// What a backend can do; the dispatcher uses it to split and format replies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Longest message the service takes in one piece (characters, or bytes for IRC).
    pub max_message_len: usize,
    /// Whether the backend renders `extra` rich content.
    pub rich: bool,
    /// Whether the backend can edit a message it posted ([`Outgoing::replaces`]).
    pub edit: bool,
    /// Whether the service has threads.
    pub threads: bool,
    /// Whether the backend renders [`Outgoing::actions`] as buttons whose presses come
    /// back as [`Incoming`] commands from the presser.
    pub buttons: bool,
}

/// The channels between a backend and the bot.
#[derive(Debug)]
pub struct BackendIo {
    /// Messages received: send each here.
    pub incoming: mpsc::Sender<Incoming>,
    /// Replies to post: receive them here, in order.
    pub outgoing: mpsc::Receiver<Outgoing>,
    /// Report connection state changes here.
    pub state: watch::Sender<ConnState>,
    /// Cancelled on shutdown: flush what `outgoing` still holds, close, return.
    pub shutdown: CancellationToken,
}

/// Why a backend stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// A secret it needs could not be read.
    #[error(transparent)]
    Secret(#[from] crate::secret::SecretError),
    /// The service refused the credentials (not retried).
    #[error("authentication refused by {service}: {reason}")]
    Auth {
        /// Which service.
        service: &'static str,
        /// What it said.
        reason: String,
    },
    /// Settings that cannot work (caught at run time, e.g. a CA file that does not parse).
    #[error("invalid {what}: {reason}")]
    Config {
        /// What.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// Terminal I/O failed (text backend).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// A boxed future, for the object-safe trait.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A chat service connection.
pub trait Backend: Send {
    /// What the service can do.
    fn capabilities(&self) -> Capabilities;

    /// Connects and runs until `io.shutdown` is cancelled (or the input ends, for the text
    /// backend), reconnecting with backoff on its own. Returns `Err` only for conditions
    /// retrying cannot fix.
    fn run(self: Box<Self>, io: BackendIo) -> BoxFuture<'static, Result<(), BackendError>>;
}

/// Options that come from the command line rather than the definition.
#[derive(Clone, Debug, Default)]
pub struct BackendOptions {
    /// Text backend: act as this user.
    pub user: Option<String>,
    /// Text backend: say things in this room (`-` or empty for direct messages).
    pub room: Option<String>,
    /// Text backend: print the start banner naming this help command (`!help`); `None`
    /// prints none (standard error then carries JSON logs only).
    pub banner_help: Option<String>,
    /// Teams: the value of [`msteams::UNSIGNED_INBOUND_ENV`] (test-only; refused off
    /// loopback).
    pub msteams_unsigned_inbound: Option<String>,
}

/// With `ha:`, whether a standby may hold its own chat connection (and drop what it
/// receives) or must connect only once it leads.
///
/// A standby connects where every connection of the bot receives every message, so a
/// second one takes nothing from the leader: the terminal (each instance its own), Matrix
/// (each client syncs on its own), Mattermost (every WebSocket gets every event), Discord
/// (every gateway session gets every event) and Rocket.Chat (every DDP subscription). It
/// waits for the leadership where a second connection would steal or clash: Slack Socket
/// Mode hands each event to *one* of the app's connections (a standby would swallow
/// commands), an IRC network allows one connection per nick, an XMPP room one occupant
/// per nickname, and Teams posts each activity to the one messaging endpoint registered
/// (only the leader listens).
pub fn standby_connects(spec: &BackendSpec) -> bool {
    match spec {
        BackendSpec::Text(_)
        | BackendSpec::Matrix(_)
        | BackendSpec::Mattermost(_)
        | BackendSpec::Discord(_)
        | BackendSpec::RocketChat(_) => true,
        BackendSpec::Slack(_)
        | BackendSpec::Irc(_)
        | BackendSpec::Xmpp(_)
        | BackendSpec::MsTeams(_) => false,
    }
}

/// Builds a definition's backend. Each executable's generated `main` names the one
/// [`factory`] its definition needs, so the linker keeps that backend's code and drops every
/// other backend's (and its protocol crates'): a terminal bot carries no Slack, XMPP or
/// Matrix code. [`build`] takes every kind, for tests and tools.
pub type Factory = fn(&BackendSpec, &BackendOptions) -> Result<Box<dyn Backend>, BackendError>;

/// One [`Factory`] per backend kind; each refuses a definition of another kind (a bug in the
/// generated code, reported rather than a panic).
pub mod factory {
    use super::{Backend, BackendError, BackendOptions, BackendSpec};

    fn other_kind(wanted: &'static str, spec: &BackendSpec) -> BackendError {
        BackendError::Config {
            what: "backend.kind",
            reason: format!(
                "this executable was built for `{wanted}`, the definition says `{}`",
                spec.kind()
            ),
        }
    }

    /// `kind: text`.
    pub fn text(
        spec: &BackendSpec,
        options: &BackendOptions,
    ) -> Result<Box<dyn Backend>, BackendError> {
        match spec {
            BackendSpec::Text(t) => Ok(Box::new(super::text::TextBackend::new(t, options))),
            other => Err(other_kind("text", other)),
        }
    }

    /// `kind: slack`.
    pub fn slack(spec: &BackendSpec, _: &BackendOptions) -> Result<Box<dyn Backend>, BackendError> {
        match spec {
            BackendSpec::Slack(s) => Ok(Box::new(super::slack::SlackBackend::new(s))),
            other => Err(other_kind("slack", other)),
        }
    }

    /// `kind: mattermost`.
    pub fn mattermost(
        spec: &BackendSpec,
        _: &BackendOptions,
    ) -> Result<Box<dyn Backend>, BackendError> {
        match spec {
            BackendSpec::Mattermost(m) => {
                Ok(Box::new(super::mattermost::MattermostBackend::new(m)))
            }
            other => Err(other_kind("mattermost", other)),
        }
    }

    /// `kind: irc`.
    pub fn irc(spec: &BackendSpec, _: &BackendOptions) -> Result<Box<dyn Backend>, BackendError> {
        match spec {
            BackendSpec::Irc(i) => Ok(Box::new(super::irc::IrcBackend::new(i)?)),
            other => Err(other_kind("irc", other)),
        }
    }

    /// `kind: xmpp`.
    pub fn xmpp(spec: &BackendSpec, _: &BackendOptions) -> Result<Box<dyn Backend>, BackendError> {
        match spec {
            BackendSpec::Xmpp(x) => Ok(Box::new(super::xmpp::XmppBackend::new(x)?)),
            other => Err(other_kind("xmpp", other)),
        }
    }

    /// `kind: matrix`.
    pub fn matrix(
        spec: &BackendSpec,
        _: &BackendOptions,
    ) -> Result<Box<dyn Backend>, BackendError> {
        match spec {
            BackendSpec::Matrix(m) => Ok(Box::new(super::matrix::MatrixBackend::new(m)?)),
            other => Err(other_kind("matrix", other)),
        }
    }

    /// `kind: discord`.
    pub fn discord(
        spec: &BackendSpec,
        _: &BackendOptions,
    ) -> Result<Box<dyn Backend>, BackendError> {
        match spec {
            BackendSpec::Discord(d) => Ok(Box::new(super::discord::DiscordBackend::new(d)?)),
            other => Err(other_kind("discord", other)),
        }
    }

    /// `kind: msteams`.
    pub fn msteams(
        spec: &BackendSpec,
        options: &BackendOptions,
    ) -> Result<Box<dyn Backend>, BackendError> {
        match spec {
            BackendSpec::MsTeams(t) => Ok(Box::new(super::msteams::MsTeamsBackend::new(
                t,
                options.msteams_unsigned_inbound.clone(),
            )?)),
            other => Err(other_kind("msteams", other)),
        }
    }

    /// `kind: rocketchat`.
    pub fn rocketchat(
        spec: &BackendSpec,
        _: &BackendOptions,
    ) -> Result<Box<dyn Backend>, BackendError> {
        match spec {
            BackendSpec::RocketChat(r) => {
                Ok(Box::new(super::rocketchat::RocketChatBackend::new(r)?))
            }
            other => Err(other_kind("rocketchat", other)),
        }
    }
}

/// The backend a definition names, whatever its kind (links every backend in: executables
/// use their one [`factory`] instead).
pub fn build(
    spec: &BackendSpec,
    options: &BackendOptions,
) -> Result<Box<dyn Backend>, BackendError> {
    let factory: Factory = match spec {
        BackendSpec::Text(_) => factory::text,
        BackendSpec::Slack(_) => factory::slack,
        BackendSpec::Mattermost(_) => factory::mattermost,
        BackendSpec::Irc(_) => factory::irc,
        BackendSpec::Xmpp(_) => factory::xmpp,
        BackendSpec::Matrix(_) => factory::matrix,
        BackendSpec::Discord(_) => factory::discord,
        BackendSpec::RocketChat(_) => factory::rocketchat,
        BackendSpec::MsTeams(_) => factory::msteams,
    };
    factory(spec, options)
}

/// How many posted messages a backend remembers for later edits ([`Outgoing::remember_as`]).
pub const REMEMBERED_MESSAGES: usize = 1024;

/// The messages a backend posted under [`Outgoing::remember_as`] keys, for
/// [`Outgoing::replaces`]: at most [`REMEMBERED_MESSAGES`], the oldest forgotten first.
/// `V` is what the service needs to edit one (Slack: channel and `ts`; Matrix: room and
/// event id).
#[derive(Debug)]
pub struct RememberedMessages<V> {
    entries: std::sync::Mutex<(
        std::collections::HashMap<String, V>,
        std::collections::VecDeque<String>,
    )>,
}

impl<V: Clone> Default for RememberedMessages<V> {
    fn default() -> Self {
        Self {
            entries: std::sync::Mutex::new(Default::default()),
        }
    }
}

impl<V: Clone> RememberedMessages<V> {
    /// Remembers `value` under `key` (replacing an older one).
    pub fn remember(&self, key: &str, value: V) {
        let mut guard = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (map, order) = &mut *guard;
        if map.insert(key.to_owned(), value).is_none() {
            order.push_back(key.to_owned());
        }
        while order.len() > REMEMBERED_MESSAGES {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }

    /// What was remembered under `key`.
    pub fn get(&self, key: &str) -> Option<V> {
        let guard = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        guard.0.get(key).cloned()
    }
}

impl<V: Clone + serde::Serialize + serde::de::DeserializeOwned> RememberedMessages<V> {
    /// `out` was posted as `value`: remembered under its [`Outgoing::remember_as`] key
    /// (if any) and reported to its [`Outgoing::report_posted`] sink.
    pub fn posted(&self, out: &Outgoing, value: V) {
        if let Some(key) = &out.remember_as {
            self.posted_as(key, value, out.report_posted.as_ref());
        }
    }

    /// A message posted under `key` as `value`: remembered, and reported to `sink`.
    pub fn posted_as(&self, key: &str, value: V, sink: Option<&PostedSink>) {
        if let Some(sink) = sink
            && let Ok(handle) = serde_json::to_string(&value)
        {
            sink.report(key, handle);
        }
        self.remember(key, value);
    }

    /// The message `out` edits ([`Outgoing::replaces`]): remembered under its key, else
    /// the one its [`Outgoing::handle`] names.
    pub fn replaced(&self, out: &Outgoing) -> Option<V> {
        let key = out.replaces.as_deref()?;
        self.get(key).or_else(|| {
            out.handle
                .as_deref()
                .and_then(|h| serde_json::from_str(h).ok())
        })
    }
}

/// Zero-width joiner: put inside a mention it keeps the text readable and stops the service
/// from notifying anyone.
pub(crate) const ZWJ: char = '\u{200D}';

/// `text` with `@word` (for each of `words`, ASCII case-insensitive, followed by the end or
/// a character that cannot continue a name) broken by a zero-width joiner after the `@`.
pub(crate) fn defuse_at_words(text: &str, words: &[&str]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let hit = words.iter().any(|w| {
            rest.get(..w.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(w))
                && !rest[w.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-')
        });
        if hit {
            out.push(ZWJ);
        }
    }
    out.push_str(rest);
    out
}

/// User text about to be echoed in a reply, with the mass mentions of the definition's
/// service made inert (each backend owns its syntax): Slack `<!here>`, `<!channel>`,
/// `<!everyone>`, `<!subteam^…>`; Mattermost and Rocket.Chat `@here`, `@channel`, `@all`;
/// Discord `@everyone`, `@here`, `<@&role>`; Matrix `@room`; Teams `<at>` markup. IRC,
/// XMPP and the terminal have none.
pub fn defuse_mass_mentions(spec: &BackendSpec, text: &str) -> String {
    match spec {
        BackendSpec::Slack(_) => slack::defuse_mass_mentions(text),
        BackendSpec::Mattermost(_) => mattermost::defuse_mass_mentions(text),
        BackendSpec::RocketChat(_) => rocketchat::defuse_mass_mentions(text),
        BackendSpec::Discord(_) => discord::defuse_mass_mentions(text),
        BackendSpec::Matrix(_) => matrix::defuse_mass_mentions(text),
        BackendSpec::MsTeams(_) => msteams::defuse_mass_mentions(text),
        BackendSpec::Text(_) | BackendSpec::Irc(_) | BackendSpec::Xmpp(_) => text.to_owned(),
    }
}

/// Splits `{~}`-separated text into (pretext, body); a trailing `{~}` means all pretext.
pub fn split_pretext(text: &str) -> (Option<&str>, &str) {
    match text.split_once("{~}") {
        Some((pre, "")) => (None, pre),
        Some((pre, body)) => (Some(pre), body),
        None => (None, text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_messages_are_bounded_oldest_first() {
        let r = RememberedMessages::<u32>::default();
        for i in 0..=REMEMBERED_MESSAGES as u32 {
            r.remember(&format!("k{i}"), i);
        }
        assert_eq!(r.get("k0"), None);
        assert_eq!(r.get("k1"), Some(1));
        r.remember("k1", 7);
        assert_eq!(r.get("k1"), Some(7));
        assert_eq!(
            r.get(&format!("k{REMEMBERED_MESSAGES}")),
            Some(REMEMBERED_MESSAGES as u32)
        );
    }

    #[test]
    fn a_posted_message_is_reported_and_can_be_edited_by_its_handle_elsewhere() {
        let (sink, mut reported) = PostedSink::new();
        let first = RememberedMessages::<(String, String)>::default();
        let mut ack = Outgoing::text(Target::Direct { user: "u".into() }, "ack");
        ack.remember_as = Some("ack:1".into());
        ack.report_posted = Some(sink);
        first.posted(&ack, ("C1".into(), "1.5".into()));
        let message = reported.try_recv().expect("reported");
        assert_eq!(message.key, "ack:1");
        // Another process (after a restart) has no memory of it, only the handle.
        let second = RememberedMessages::<(String, String)>::default();
        let mut edit = Outgoing::text(Target::Direct { user: "u".into() }, "done");
        edit.replaces = Some("ack:1".into());
        assert_eq!(second.replaced(&edit), None);
        edit.handle = Some(message.handle);
        assert_eq!(second.replaced(&edit), Some(("C1".into(), "1.5".into())));
        assert_eq!(first.replaced(&edit), Some(("C1".into(), "1.5".into())));
    }

    #[test]
    fn pretext() {
        assert_eq!(split_pretext("a{~}b"), (Some("a"), "b"));
        assert_eq!(split_pretext("all plain{~}"), (None, "all plain"));
        assert_eq!(split_pretext("x"), (None, "x"));
    }

    #[test]
    fn mass_mentions_are_defused_per_service() {
        let z = ZWJ;
        assert_eq!(
            slack::defuse_mass_mentions(
                "hi <!here> <!channel|channel> <!everyone> <!subteam^S1|ops> <@U1>"
            ),
            "hi &lt;!here> &lt;!channel|channel> &lt;!everyone> &lt;!subteam^S1|ops> <@U1>"
        );
        assert_eq!(
            mattermost::defuse_mass_mentions("@here @Channel @all @alice @allison x@all."),
            format!("@{z}here @{z}Channel @{z}all @alice @allison x@{z}all.")
        );
        assert_eq!(
            rocketchat::defuse_mass_mentions("@all @here"),
            format!("@{z}all @{z}here")
        );
        assert_eq!(
            discord::defuse_mass_mentions("@everyone @here <@&123> <@456>"),
            format!("@{z}everyone @{z}here <@{z}&123> <@456>")
        );
        assert_eq!(
            matrix::defuse_mass_mentions("@room @roomba"),
            format!("@{z}room @roomba")
        );
    }
}
