//! Per-user StackStorm identity: chat users bind their own StackStorm token to their chat
//! identity through a one-time link to the bot's login page, so that their commands run as
//! them (and StackStorm RBAC applies). `docs/sessions.md` is the user and security guide.
//!
//! [`SessionManager`] is the whole API: [`SessionManager::open`] at start-up,
//! [`SessionManager::command`] for the chat command (`login`, `logout`, `status`, `list`,
//! `revoke <user>`), [`SessionManager::token_for`] before each StackStorm call,
//! [`SessionManager::forget`] after StackStorm refused a user's token, and
//! [`SessionManager::serve`] for the login page (module `auth_page`).
//!
//! Sessions live in memory for lookups and in an encrypted store ([`store`]) for restarts:
//! a redb file for a single instance, PostgreSQL with `ha:` (`crate::ha::session_store`),
//! re-read when an instance becomes the leader (`SessionManager::reload`). Pending links
//! live in memory only ([`links`]).

mod crypto;
mod links;
mod store;
pub(crate) mod throttle;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use bot_config::AuthPageSpec;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::secret::{self, Secret, SecretError};
use crate::stackstorm::{St2Client, St2Error};

pub use crypto::CryptoError;
pub(crate) use crypto::{CsrfKey, LinkId};
pub(crate) use links::{AfterFailure, LinkOwner, LinkRefusal, PendingLinks};
pub use store::{LoginMethod, RedbOwedStore, SessionInfo, StoreError};

use crypto::MIN_SECRET_LEN;
use futures_util::FutureExt as _;
use store::{Loaded, Session, SessionStore};
pub(crate) use store::{SealedStore, StoreFuture, StoredMeta};
use throttle::{Budget, TokenBuckets};

/// Failed attempts a login link allows before it is burnt.
pub(crate) const MAX_ATTEMPTS_PER_LINK: u32 = 5;
/// Login links one chat user may ask for: 3 at once, then one per 10 minutes (at most 9 in
/// an hour).
pub(crate) const LINK_BUDGET: Budget = Budget {
    burst: 3,
    refill: Duration::from_secs(600),
};
/// Password attempts on one StackStorm username, across all links and chat users: 5 at
/// once, then one per 5 minutes (at most 17 in an hour). Only refused attempts count.
pub(crate) const PASSWORD_BUDGET: Budget = Budget {
    burst: 5,
    refill: Duration::from_secs(300),
};
/// Chat users and StackStorm usernames tracked by those budgets.
const MAX_THROTTLED: usize = 10_000;

/// Why the session manager or its login page could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The encryption key's secret reference could not be resolved.
    #[error("auth_page.encryption_key: {0}")]
    Key(#[from] SecretError),
    /// The encryption key is too short to be a key.
    #[error(
        "auth_page.encryption_key is shorter than {min} bytes; use a random value, e.g. `openssl rand -base64 32`"
    )]
    WeakKey {
        /// The minimum length in bytes.
        min: usize,
    },
    /// The session store could not be opened or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The system random source failed.
    #[error("cannot generate random values: {0}")]
    Random(#[from] CryptoError),
    /// `public_url` is not a URL the bot can put a link id into.
    #[error("auth_page.public_url `{url}`: {reason}")]
    PublicUrl {
        /// The configured URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The listen address does not parse.
    #[error("auth_page.listen `{address}` is not an IP address and port")]
    ListenAddress {
        /// The configured address.
        address: String,
    },
    /// A non-loopback address without TLS and without `allow_plain_http`.
    #[error(
        "refusing to serve the login page over plain HTTP on non-loopback `{address}`: set tls_cert/tls_key, or allow_plain_http behind a TLS proxy"
    )]
    PlainHttp {
        /// The configured address.
        address: String,
    },
    /// The listen socket could not be opened.
    #[error("cannot listen on `{address}`: {source}")]
    Bind {
        /// The configured address.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client for token checks could not be built (CA bundle).
    #[error("cannot build the HTTP client for StackStorm token checks: {0}")]
    HttpClient(String),
    /// The TLS certificate or key could not be used.
    #[error("auth_page TLS: {0}")]
    Tls(String),
}

/// What the chat command answers. `public` goes where the command was typed; `private` goes
/// to the user alone, as a direct message (it may hold a login link: do not log it).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SessionReply {
    /// Reply in the room or DM where the command was typed.
    pub public: Option<String>,
    /// Reply to the user alone (a direct message).
    pub private: Option<String>,
}

impl std::fmt::Debug for SessionReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private part may hold a login link: never print it.
        f.debug_struct("SessionReply")
            .field("public", &self.public)
            .field("private", &self.private.as_ref().map(|_| "<private>"))
            .finish()
    }
}

impl SessionReply {
    fn public(text: impl Into<String>) -> Self {
        Self {
            public: Some(text.into()),
            private: None,
        }
    }

    /// A reply for the user alone; in a room, `room_note` says where it went.
    fn private(direct: bool, room_note: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            public: (!direct).then(|| room_note.into()),
            private: Some(text.into()),
        }
    }
}

/// Why a login on the page did not bind a session.
#[derive(Debug)]
pub(crate) enum LoginFailure {
    /// StackStorm refused the credentials (counts as a failed attempt).
    Rejected,
    /// StackStorm could not be asked (down, misconfigured); not the user's fault.
    Unavailable(String),
    /// The session could not be saved.
    Store(StoreError),
    /// Too many refused passwords for this StackStorm username lately; StackStorm was not
    /// asked. The wait is until the next attempt is allowed.
    Throttled(Duration),
}

/// Eight random bytes from the system source (`None` if it fails): request keys.
pub(crate) fn random_key() -> Option<[u8; 8]> {
    crypto::random_bytes::<8>().ok()
}

/// Opens the session store (the redb file, or PostgreSQL under `ha:`), sets who may list
/// and revoke sessions, and starts the login page: the session subsystem as
/// [`crate::linked::SESSIONS`] names it.
pub async fn start(
    setup: crate::linked::SessionSetup<'_>,
) -> Result<crate::linked::SessionsStarted, SessionError> {
    let crate::linked::SessionSetup {
        page,
        bot,
        st2,
        shared,
        command_name,
        admins,
        notify,
        shutdown,
    } = setup;
    let manager = match shared {
        Some(ha) => SessionManager::open_shared(page, bot, st2, ha.session_store()).await?,
        None => SessionManager::open(page, bot, st2)?,
    };
    manager.set_command_name(command_name);
    manager.set_admins(admins);
    let server = manager.clone();
    tokio::spawn(async move {
        if let Err(e) = server.serve(notify, shutdown).await {
            tracing::error!(error = %e, "login page stopped");
        }
    });
    let owed = manager
        .owed_store()
        .map(|table| Box::new(table) as Box<dyn crate::results::OwedStore>);
    Ok(crate::linked::SessionsStarted { manager, owed })
}

/// [`start`] as a [`crate::linked::SessionsStart`].
pub(crate) fn start_boxed(
    setup: crate::linked::SessionSetup<'_>,
) -> crate::backend::BoxFuture<'_, Result<crate::linked::SessionsStarted, SessionError>> {
    Box::pin(start(setup))
}

/// The owed-results list in its own redb file (`stackstorm.results_store` without a
/// session store): [`crate::linked::RESULTS_FILE`].
pub(crate) fn open_results_file(
    path: &Path,
) -> Result<Box<dyn crate::results::OwedStore>, crate::results::OwedStoreError> {
    Ok(Box::new(RedbOwedStore::open(path)?))
}

/// Per-user StackStorm sessions and the login page that creates them.
pub struct SessionManager {
    spec: AuthPageSpec,
    bot_name: String,
    st2: St2Client,
    /// For `GET /v1/user` with a pasted token (the client has no call for it).
    validation_http: reqwest::Client,
    public_url: url::Url,
    store: SessionStore,
    sessions: Mutex<HashMap<String, Session>>,
    links: Arc<PendingLinks>,
    csrf: CsrfKey,
    admins: RwLock<bot_config::acl::UserSet>,
    command_name: RwLock<String>,
    /// Login links per chat user id.
    link_requests: TokenBuckets<String>,
    /// Password attempts per StackStorm username (lowercase).
    password_attempts: TokenBuckets<String>,
}

impl std::fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionManager")
            .field("bot", &self.bot_name)
            .field("listen", &self.spec.listen)
            .field("sessions", &self.lock_sessions().len())
            .finish_non_exhaustive()
    }
}

impl SessionManager {
    /// Resolves the encryption key, opens (or creates) the session store and loads the
    /// sessions in it. Sessions the key cannot decrypt are dropped with a warning.
    pub fn open(
        spec: &AuthPageSpec,
        bot_name: &str,
        st2: St2Client,
    ) -> Result<Arc<SessionManager>, SessionError> {
        let key = Self::key(spec)?;
        let (store, loaded) = SessionStore::open_file(Path::new(spec.store.as_ref()), &key)?;
        drop(key);
        Self::with_store(spec, bot_name, st2, store, loaded)
    }

    /// [`SessionManager::open`] with the sessions in a shared store (PostgreSQL with
    /// `ha:`) instead of the redb file.
    pub(crate) async fn open_shared(
        spec: &AuthPageSpec,
        bot_name: &str,
        st2: St2Client,
        backend: Arc<dyn SealedStore>,
    ) -> Result<Arc<SessionManager>, SessionError> {
        let key = Self::key(spec)?;
        let (store, loaded) = SessionStore::open(backend, &key).await?;
        drop(key);
        Self::with_store(spec, bot_name, st2, store, loaded)
    }

    /// Re-reads every session from the store (this instance just became the leader: the
    /// previous leader may have bound or dropped sessions meanwhile).
    pub(crate) async fn reload(&self) -> Result<usize, StoreError> {
        let loaded = self.store.load().await?;
        let count = loaded.sessions.len();
        *self.lock_sessions() = loaded.sessions;
        tracing::info!(
            sessions = count,
            dropped_expired = loaded.dropped_expired,
            dropped_unreadable = loaded.dropped_damaged,
            "sessions reloaded from the shared store"
        );
        Ok(count)
    }

    fn key(spec: &AuthPageSpec) -> Result<Secret, SessionError> {
        let key = secret::resolve(&spec.encryption_key)?;
        if key.expose().len() < MIN_SECRET_LEN {
            return Err(SessionError::WeakKey {
                min: MIN_SECRET_LEN,
            });
        }
        Ok(key)
    }

    fn with_store(
        spec: &AuthPageSpec,
        bot_name: &str,
        st2: St2Client,
        store: SessionStore,
        loaded: Loaded,
    ) -> Result<Arc<SessionManager>, SessionError> {
        let public_url = url::Url::parse(&spec.public_url)
            .map_err(|e| SessionError::PublicUrl {
                url: spec.public_url.to_string(),
                reason: e.to_string(),
            })
            .and_then(|u| {
                if u.cannot_be_a_base() || !matches!(u.scheme(), "http" | "https") {
                    Err(SessionError::PublicUrl {
                        url: spec.public_url.to_string(),
                        reason: "needs an http or https URL".to_owned(),
                    })
                } else {
                    Ok(u)
                }
            })?;
        let st2_spec = st2.spec();
        let validation_http = crate::stackstorm::client::http_client(
            st2_spec.verify_tls,
            st2_spec.ca_file.as_deref(),
            Some(st2_spec.timeout),
        )
        .map_err(|e| SessionError::HttpClient(e.to_string()))?;
        tracing::info!(
            store = %spec.store,
            sessions = loaded.sessions.len(),
            dropped_expired = loaded.dropped_expired,
            dropped_unreadable = loaded.dropped_for_key + loaded.dropped_damaged,
            "session store opened"
        );
        Ok(Arc::new(SessionManager {
            spec: spec.clone(),
            bot_name: bot_name.to_owned(),
            st2,
            validation_http,
            public_url,
            store,
            sessions: Mutex::new(loaded.sessions),
            links: Arc::new(PendingLinks::new(spec.link_ttl, MAX_ATTEMPTS_PER_LINK)),
            csrf: CsrfKey::generate()?,
            admins: RwLock::new(bot_config::acl::UserSet::default()),
            command_name: RwLock::new("!session".to_owned()),
            link_requests: TokenBuckets::new(LINK_BUDGET, MAX_THROTTLED),
            password_attempts: TokenBuckets::new(PASSWORD_BUDGET, MAX_THROTTLED),
        }))
    }

    /// The owed-results table in this session store's file (see `crate::results`); `None`
    /// for the PostgreSQL store of `ha:`, which has no such table yet.
    pub fn owed_store(&self) -> Option<RedbOwedStore> {
        self.store.owed()
    }

    /// Who may use `list` and `revoke` (`auth_page.admins`): matched against the chat user
    /// id and name. Empty (the default) turns those two commands off.
    pub fn set_admins(&self, admins: bot_config::acl::UserSet) {
        *self.admins.write().unwrap_or_else(PoisonError::into_inner) = admins;
    }

    /// How users type the command, for the hints in replies (default `!session`).
    pub fn set_command_name(&self, command: impl Into<String>) {
        *self
            .command_name
            .write()
            .unwrap_or_else(PoisonError::into_inner) = command.into();
    }

    /// Whether the definition requires a session: users without one are refused rather than
    /// served with the bot's own identity.
    pub fn required(&self) -> bool {
        self.spec.required
    }

    /// The user's StackStorm token, or `None` when they have no live session. An expired
    /// session is removed on the way.
    pub fn token_for(&self, user_id: &str) -> Option<Secret> {
        let now = SystemTime::now();
        let mut sessions = self.lock_sessions();
        let session = sessions.get(user_id)?;
        if !session.info.is_expired(now) {
            return Some(session.token.clone());
        }
        sessions.remove(user_id);
        drop(sessions);
        tracing::info!(user_id, "session expired");
        self.remove_stored(&[user_id]);
        None
    }

    /// The description of the user's live session (no token), if any.
    pub fn session_of(&self, user_id: &str) -> Option<SessionInfo> {
        let now = SystemTime::now();
        self.lock_sessions()
            .get(user_id)
            .filter(|s| !s.info.is_expired(now))
            .map(|s| s.info.clone())
    }

    /// Drops the user's session (StackStorm answered 401 to their token: it expired or was
    /// revoked). They must log in again.
    pub fn forget(&self, user_id: &str) {
        let removed = self.lock_sessions().remove(user_id);
        self.links.cancel_user(user_id);
        if let Some(session) = removed {
            tracing::info!(user_id, st2_user = %session.info.st2_user, "session dropped: StackStorm no longer accepts its token");
            self.remove_stored(&[user_id]);
        }
    }

    /// Handles `<command> <args…>` from a chat user. `args` excludes the command word.
    pub async fn command(
        &self,
        user_id: &str,
        user_name: &str,
        direct: bool,
        args: &[&str],
    ) -> SessionReply {
        let sub = args.first().map(|a| a.to_ascii_lowercase());
        match sub.as_deref() {
            None | Some("help") => SessionReply::public(self.usage()),
            Some("login") => self.login_link(user_id, user_name, direct),
            Some("logout") => self.logout(user_id, user_name),
            Some("status") => self.status(user_id, user_name),
            Some("list") => self.list(user_id, user_name, direct),
            Some("revoke") => self.revoke(user_id, user_name, args.get(1..).unwrap_or(&[])),
            Some(other) => {
                let shown: String = other.chars().take(32).collect();
                SessionReply::public(format!(
                    "Unknown session command `{shown}`.\n{}",
                    self.usage()
                ))
            }
        }
    }

    /// Runs the login page until `shutdown`; each completed login sends
    /// `(user_id, confirmation)` to `notify` for the chat side to deliver privately.
    pub async fn serve(
        self: Arc<Self>,
        notify: mpsc::Sender<(String, String)>,
        shutdown: CancellationToken,
    ) -> Result<(), SessionError> {
        crate::auth_page::run(self, notify, shutdown).await
    }

    fn usage(&self) -> String {
        let c = self.command_text();
        format!(
            "Log in to StackStorm as yourself (commands then run as your StackStorm user):\n\
{c} login: get a one-time login link (sent privately)\n\
{c} status: show your session\n\
{c} logout: end your session\n\
{c} list: list all sessions (admins)\n\
{c} revoke <user>: end someone's session (admins)"
        )
    }

    fn login_link(&self, user_id: &str, user_name: &str, direct: bool) -> SessionReply {
        if let Err(wait) = self
            .link_requests
            .take(&user_id.to_owned(), std::time::Instant::now())
        {
            tracing::info!(user_id, "login link refused: too many asked for lately");
            return SessionReply::public(format!(
                "{user_name}: you asked for too many login links lately; ask again in {}. Your last link still works until it expires.",
                format_duration(round_up_to_minute(wait))
            ));
        }
        let owner = LinkOwner {
            user_id: user_id.to_owned(),
            user_name: user_name.to_owned(),
        };
        let id = match self.links.issue(owner) {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(error = %e, "cannot issue a login link");
                return SessionReply::public(
                    "Sorry, the bot cannot create a login link right now.",
                );
            }
        };
        let mut url = self.public_url.clone();
        url.query_pairs_mut()
            .append_pair("id", id.to_hex().expose());
        tracing::info!(user_id, direct, "login link issued");
        let current = match self.session_of(user_id) {
            Some(s) => format!(
                "\nYou are logged in as StackStorm user {} until {}; logging in again replaces that session.",
                s.st2_user,
                format_time(s.expires)
            ),
            None => String::new(),
        };
        SessionReply::private(
            direct,
            format!("{user_name}: I sent you a StackStorm login link in a private message."),
            format!(
                "Log in to StackStorm here: {url}\n\
This link is for you ({user_name}) only, works once, and expires in {}. Do not share it; if you did not ask for it, ignore it.{current}",
                format_duration(self.spec.link_ttl)
            ),
        )
    }

    fn logout(&self, user_id: &str, user_name: &str) -> SessionReply {
        self.links.cancel_user(user_id);
        let removed = self.lock_sessions().remove(user_id);
        match removed {
            Some(session) => {
                self.remove_stored(&[user_id]);
                tracing::info!(user_id, st2_user = %session.info.st2_user, "session ended by its user");
                SessionReply::public(format!(
                    "{user_name}: logged out; your commands no longer run as StackStorm user {}.{}",
                    session.info.st2_user,
                    self.fallback_note()
                ))
            }
            None => SessionReply::public(format!("{user_name}: you had no StackStorm session.")),
        }
    }

    fn status(&self, user_id: &str, user_name: &str) -> SessionReply {
        match self.session_of(user_id) {
            Some(s) => {
                let left = s
                    .expires
                    .duration_since(SystemTime::now())
                    .unwrap_or_default();
                SessionReply::public(format!(
                    "{user_name}: your commands run as StackStorm user {} (logged in with {}) until {} ({} left).",
                    s.st2_user,
                    method_name(s.method),
                    format_time(s.expires),
                    format_duration(left)
                ))
            }
            None => SessionReply::public(format!(
                "{user_name}: you have no StackStorm session.{} Use `{} login` to log in.",
                self.fallback_note(),
                self.command_text()
            )),
        }
    }

    fn list(&self, user_id: &str, user_name: &str, direct: bool) -> SessionReply {
        if let Err(refusal) = self.check_admin(user_id, user_name, "list sessions") {
            return refusal;
        }
        let now = SystemTime::now();
        let mut infos: Vec<SessionInfo> = self
            .lock_sessions()
            .values()
            .filter(|s| !s.info.is_expired(now))
            .map(|s| s.info.clone())
            .collect();
        infos.sort_by(|a, b| a.user_name.cmp(&b.user_name));
        let text = if infos.is_empty() {
            "No StackStorm sessions.".to_owned()
        } else {
            let mut text = format!("{} StackStorm session(s):", infos.len());
            for s in &infos {
                text.push_str(&format!(
                    "\n{} ({}): StackStorm user {}, {}, until {}",
                    s.user_name,
                    s.user_id,
                    s.st2_user,
                    method_name(s.method),
                    format_time(s.expires)
                ));
            }
            text
        };
        SessionReply::private(
            direct,
            format!("{user_name}: I sent you the session list in a private message."),
            text,
        )
    }

    fn revoke(&self, user_id: &str, user_name: &str, args: &[&str]) -> SessionReply {
        if let Err(refusal) = self.check_admin(user_id, user_name, "revoke sessions") {
            return refusal;
        }
        let Some(target) = args.first().map(|t| t.trim_start_matches('@')) else {
            return SessionReply::public(format!(
                "Usage: {} revoke <chat user id or name>",
                self.command_text()
            ));
        };
        let matches: Vec<String> = {
            let sessions = self.lock_sessions();
            match sessions.get(target) {
                Some(_) => vec![target.to_owned()],
                None => sessions
                    .values()
                    .filter(|s| s.info.user_name.eq_ignore_ascii_case(target))
                    .map(|s| s.info.user_id.clone())
                    .collect(),
            }
        };
        let shown: String = target.chars().take(64).collect();
        match matches.as_slice() {
            [] => SessionReply::public(format!("No session for `{shown}`.")),
            [one] => {
                self.links.cancel_user(one);
                let removed = self.lock_sessions().remove(one);
                self.remove_stored(&[one.as_str()]);
                let st2_user = removed.map(|s| s.info.st2_user).unwrap_or_default();
                tracing::info!(admin = user_id, user_id = %one, st2_user = %st2_user, "session revoked by an admin");
                SessionReply::public(format!(
                    "Revoked the session of `{shown}` (StackStorm user {st2_user})."
                ))
            }
            several => SessionReply::public(format!(
                "`{shown}` names {} users; revoke by id: {}",
                several.len(),
                several.join(", ")
            )),
        }
    }

    fn check_admin(&self, user_id: &str, user_name: &str, what: &str) -> Result<(), SessionReply> {
        let admins = self.admins.read().unwrap_or_else(PoisonError::into_inner);
        if admins.is_empty() {
            return Err(SessionReply::public(format!(
                "Session administration is off: no bot admins are configured, so nobody can {what}."
            )));
        }
        if admins.contains(user_id) || admins.contains(user_name) {
            Ok(())
        } else {
            tracing::info!(
                user_id,
                what,
                "session administration refused: not an admin"
            );
            Err(SessionReply::public(format!(
                "{user_name}: only bot admins can {what}."
            )))
        }
    }

    fn fallback_note(&self) -> &'static str {
        if self.spec.required {
            " This bot requires a StackStorm session: your commands are refused until you log in."
        } else {
            " Your commands run as the bot's own StackStorm identity."
        }
    }

    fn command_text(&self) -> String {
        self.command_name
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn lock_sessions(&self) -> MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Deletes stored sessions without waiting: the delete is ordered now; a store that
    /// answers later (PostgreSQL) logs its own failures.
    fn remove_stored(&self, user_ids: &[&str]) {
        if let Some(Err(e)) = self.store.remove(user_ids).now_or_never() {
            tracing::error!(error = %e, "cannot remove a session from the store");
        }
    }

    /// Drops expired sessions and links (run periodically by the page server).
    pub(crate) fn purge_expired(&self) {
        self.links.purge_expired();
        let now = SystemTime::now();
        let expired: Vec<String> = {
            let mut sessions = self.lock_sessions();
            let expired: Vec<String> = sessions
                .values()
                .filter(|s| s.info.is_expired(now))
                .map(|s| s.info.user_id.clone())
                .collect();
            for user_id in &expired {
                sessions.remove(user_id);
            }
            expired
        };
        if !expired.is_empty() {
            let ids: Vec<&str> = expired.iter().map(String::as_str).collect();
            self.remove_stored(&ids);
            tracing::info!(count = expired.len(), "expired sessions removed");
        }
    }

    // --- what the login page uses ---

    /// The chat message confirming a login.
    pub(crate) fn login_confirmation(&self, info: &SessionInfo) -> String {
        format!(
            "You are now logged in to StackStorm as {} until {}. Your commands run as that StackStorm user; `{} logout` ends the session.",
            info.st2_user,
            format_time(info.expires),
            self.command_text()
        )
    }

    pub(crate) fn spec(&self) -> &AuthPageSpec {
        &self.spec
    }

    pub(crate) fn bot_name(&self) -> &str {
        &self.bot_name
    }

    pub(crate) fn links(&self) -> &Arc<PendingLinks> {
        &self.links
    }

    pub(crate) fn csrf(&self) -> &CsrfKey {
        &self.csrf
    }

    /// Exchanges username and password for a token (`POST {auth_url}/tokens`) and binds it.
    pub(crate) async fn login_with_password(
        &self,
        owner: &LinkOwner,
        username: &str,
        password: &Secret,
    ) -> Result<SessionInfo, LoginFailure> {
        let key = username.to_lowercase();
        if let Err(wait) = self.password_attempts.take(&key, std::time::Instant::now()) {
            tracing::warn!(user_id = %owner.user_id, "login refused without asking StackStorm: too many wrong passwords for this StackStorm username lately");
            return Err(LoginFailure::Throttled(wait));
        }
        // Only a refusal spends the attempt.
        let result = self.password_login(owner, username, password).await;
        if !matches!(result, Err(LoginFailure::Rejected)) {
            self.password_attempts.refund(&key);
        }
        result
    }

    async fn password_login(
        &self,
        owner: &LinkOwner,
        username: &str,
        password: &Secret,
    ) -> Result<SessionInfo, LoginFailure> {
        let mut ttl = self.spec.session_ttl;
        let mut retried = false;
        let response = loop {
            match self.st2.create_token(username, password, ttl).await {
                Ok(r) => break r,
                Err(St2Error::Unauthorized { .. }) => return Err(LoginFailure::Rejected),
                Err(St2Error::Api {
                    status: 400,
                    faultstring,
                    ..
                }) if !retried => match crate::stackstorm::auth::max_ttl_from(&faultstring) {
                    // StackStorm caps user tokens at `auth.token_ttl`: ask for that instead.
                    Some(max) => {
                        tracing::info!(
                            requested = ttl.as_secs(),
                            max = max.as_secs(),
                            "StackStorm caps token lifetimes below session_ttl; asking for its maximum"
                        );
                        ttl = max;
                        retried = true;
                    }
                    None => return Err(LoginFailure::Unavailable(faultstring)),
                },
                Err(e) => return Err(LoginFailure::Unavailable(e.to_string())),
            }
        };
        let token_expiry = parse_expiry(&response.expiry);
        let token = Secret::new(response.token);
        self.bind(
            owner,
            response.user,
            token,
            LoginMethod::Password,
            token_expiry,
        )
        .await
    }

    /// Checks a pasted token with one authenticated call and binds it. `GET /v1/user` gives
    /// the StackStorm user and the token's expiry; a server without it (404) is asked
    /// `GET /v1/actionalias?limit=1`, which only proves the token is valid.
    pub(crate) async fn login_with_token(
        &self,
        owner: &LinkOwner,
        token: Secret,
    ) -> Result<SessionInfo, LoginFailure> {
        let api = &self.st2.spec().api_url;
        let who = self
            .validation_get(&format!("{api}/v1/user"), &token)
            .await?;
        let (st2_user, expiry) = match who {
            Some(body) => {
                let user = body
                    .get("username")
                    .and_then(|v| v.as_str())
                    .unwrap_or("(unknown)")
                    .to_owned();
                let expiry = body
                    .pointer("/authentication/token_expire")
                    .and_then(|v| v.as_str())
                    .and_then(parse_expiry);
                (user, expiry)
            }
            None => {
                if self
                    .validation_get(&format!("{api}/v1/actionalias?limit=1"), &token)
                    .await?
                    .is_none()
                {
                    return Err(LoginFailure::Unavailable(
                        "StackStorm has neither /v1/user nor /v1/actionalias".to_owned(),
                    ));
                }
                ("(token)".to_owned(), None)
            }
        };
        self.bind(owner, st2_user, token, LoginMethod::Token, expiry)
            .await
    }

    /// One GET with `X-Auth-Token`; `Ok(None)` on 404, `Rejected` on 401/403.
    async fn validation_get(
        &self,
        url: &str,
        token: &Secret,
    ) -> Result<Option<serde_json::Value>, LoginFailure> {
        let response = self
            .validation_http
            .get(url)
            .header("X-Auth-Token", token.expose())
            .send()
            .await
            .map_err(|e| LoginFailure::Unavailable(format!("StackStorm unreachable: {e}")))?;
        match response.status().as_u16() {
            401 | 403 => Err(LoginFailure::Rejected),
            404 => Ok(None),
            s if (200..300).contains(&s) => Ok(Some(
                response
                    .json::<serde_json::Value>()
                    .await
                    .unwrap_or(serde_json::Value::Null),
            )),
            s => Err(LoginFailure::Unavailable(format!(
                "StackStorm answered {s} to a token check"
            ))),
        }
    }

    async fn bind(
        &self,
        owner: &LinkOwner,
        st2_user: String,
        token: Secret,
        method: LoginMethod,
        token_expiry: Option<SystemTime>,
    ) -> Result<SessionInfo, LoginFailure> {
        let now = SystemTime::now();
        let mut expires = now + self.spec.session_ttl;
        if let Some(t) = token_expiry {
            expires = expires.min(t);
        }
        // Whole seconds, as stored.
        let expires = round_down_to_second(expires);
        let session = Session {
            info: SessionInfo {
                user_id: owner.user_id.clone(),
                user_name: owner.user_name.clone(),
                st2_user,
                method,
                created: round_down_to_second(now),
                expires,
            },
            token,
        };
        self.store
            .put(&session)
            .await
            .map_err(LoginFailure::Store)?;
        let info = session.info.clone();
        self.lock_sessions().insert(owner.user_id.clone(), session);
        tracing::info!(user_id = %info.user_id, st2_user = %info.st2_user, method = method_name(method), expires = %format_time(info.expires), "session bound");
        Ok(info)
    }
}

/// StackStorm's ISO 8601 UTC times (`2026-11-25T14:03:07.123456Z`, `…07Z`).
fn parse_expiry(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(text)
        .or_else(|_| humantime::parse_rfc3339_weak(text.trim_end_matches('Z')))
        .ok()
}

fn method_name(method: LoginMethod) -> &'static str {
    match method {
        LoginMethod::Password => "password",
        LoginMethod::Token => "a pasted token",
    }
}

/// `2026-11-25 14:03 UTC`.
pub(crate) fn format_time(t: SystemTime) -> String {
    let text = humantime::format_rfc3339_seconds(t).to_string();
    // 2026-11-25T14:03:07Z → 2026-11-25 14:03 UTC
    match (text.get(..10), text.get(11..16)) {
        (Some(date), Some(time)) => format!("{date} {time} UTC"),
        _ => text,
    }
}

/// `11h 59m`, `4m 30s`: at most two units.
pub(crate) fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (days, hours, minutes, seconds) =
        (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let parts = [(days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")];
    let shown: Vec<String> = parts
        .iter()
        .skip_while(|(v, _)| *v == 0)
        .take(2)
        .filter(|(v, _)| *v > 0)
        .map(|(v, u)| format!("{v}{u}"))
        .collect();
    if shown.is_empty() {
        "0s".to_owned()
    } else {
        shown.join(" ")
    }
}

/// Whole minutes, rounded up (waits shown to users).
fn round_up_to_minute(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs().div_ceil(60).max(1) * 60)
}

fn round_down_to_second(t: SystemTime) -> SystemTime {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => SystemTime::UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(_) => SystemTime::UNIX_EPOCH,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times_read_well() {
        assert_eq!(format_duration(Duration::from_secs(43_140)), "11h 59m");
        assert_eq!(format_duration(Duration::from_secs(270)), "4m 30s");
        assert_eq!(format_duration(Duration::from_secs(300)), "5m");
        assert_eq!(format_duration(Duration::from_secs(90_000)), "1d 1h");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        let t = humantime::parse_rfc3339("2026-11-25T14:03:07Z").unwrap();
        assert_eq!(format_time(t), "2026-11-25 14:03 UTC");
    }

    /// The figures docs/sessions.md gives for an attacker's hour.
    #[test]
    fn the_documented_hourly_limits_hold() {
        let hour = Duration::from_secs(3600);
        assert_eq!(LINK_BUDGET.most_in(hour), 9, "links per chat user");
        assert_eq!(
            LINK_BUDGET.most_in(hour) * u64::from(MAX_ATTEMPTS_PER_LINK),
            45,
            "guesses per chat user"
        );
        assert_eq!(
            PASSWORD_BUDGET.most_in(hour),
            17,
            "guesses per StackStorm user"
        );
        assert_eq!(
            PASSWORD_BUDGET.most_in(hour * 24),
            293,
            "guesses per StackStorm user a day"
        );
    }

    #[test]
    fn a_reply_never_prints_its_private_part() {
        let reply = SessionReply {
            public: Some("sent".into()),
            private: Some("https://x/?id=secret".into()),
        };
        let shown = format!("{reply:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("sent"));
    }
}
