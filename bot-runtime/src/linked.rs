//! What an executable links in besides the core of the runtime. The generated `main` of
//! each bot names, in a [`Linked`] value, only the subsystems its definition uses; the
//! others are not referenced from `main`, so the linker leaves their code out (and the
//! crates behind them: tokio-postgres for `ha:`, redb and the login page for `auth_page`,
//! the StackStorm simulator for demo mode, the other chat services).
//!
//! Each subsystem is a plain `fn` pointer: code the core calls through it, never by name.
//! A command-line flag that needs a subsystem the executable was built without is refused
//! with a message that says which key of the definition links it in ([`Missing`]).

use std::path::Path;
use std::sync::Arc;

use bot_config::{AuthPageSpec, BotSpec, HaSpec};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backend::{self, BoxFuture};
use crate::results::{OwedStore, OwedStoreError};
use crate::session::{SessionError, SessionManager};
use crate::stackstorm::St2Client;

/// The subsystems one executable carries. Generated code fills it from the definition;
/// [`Linked::everything`] is for tests and tools that run any definition.
#[derive(Clone, Copy, Debug)]
pub struct Linked {
    /// Builds the chat backend ([`backend::factory`]).
    pub backend: backend::Factory,
    /// Starts the simulator for `--simulate` ([`SIMULATOR`]); `None`: not linked in.
    pub simulator: Option<SimulatorStart>,
    /// High availability (`ha:`, [`HA`]).
    pub ha: Option<HaStart>,
    /// Login sessions and their page (`auth_page:`, [`SESSIONS`]).
    pub sessions: Option<SessionsStart>,
    /// The owed-results file (`stackstorm.results_store`, `--results-store`,
    /// [`RESULTS_FILE`]).
    pub results_file: Option<ResultsFileOpen>,
}

impl Linked {
    /// Every subsystem and every backend ([`backend::build`]): for tests and tools that run
    /// definitions not known when they were built.
    pub fn everything() -> Self {
        Self {
            backend: backend::build,
            simulator: SIMULATOR,
            ha: Some(HA),
            sessions: Some(SESSIONS),
            results_file: Some(RESULTS_FILE),
        }
    }

    /// The one chat backend `backend` and nothing else (the smallest executable).
    pub fn only(backend: backend::Factory) -> Self {
        Self {
            backend,
            simulator: None,
            ha: None,
            sessions: None,
            results_file: None,
        }
    }
}

/// A subsystem the executable was built without: `what` needs the definition to say
/// `key` (the same definition at build time links it in).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} needs `{key}` in the definition: this executable was built without it")]
pub struct Missing {
    /// What asked for it (a flag, or a key of the definition).
    pub what: &'static str,
    /// The definition key that links the subsystem in.
    pub key: &'static str,
}

/// Starts a simulated StackStorm for demo mode.
pub type SimulatorStart = for<'a> fn(&'a BotSpec) -> BoxFuture<'a, Result<Simulated, String>>;

/// A running simulated StackStorm and the spec/client that talk to it.
pub struct Simulated {
    /// The bot's spec with StackStorm URLs pointing at the simulator.
    pub spec: BotSpec,
    /// A client using the simulator's credentials.
    pub client: St2Client,
    /// The simulator itself, kept alive for the bot's lifetime.
    pub keep_running: Box<dyn std::any::Any + Send>,
}

/// The built-in simulator (`None` when this runtime is built without feature `simulator`).
#[cfg(feature = "simulator")]
pub const SIMULATOR: Option<SimulatorStart> = Some(crate::simulator::start_boxed);
/// The built-in simulator (`None` when this runtime is built without feature `simulator`).
#[cfg(not(feature = "simulator"))]
pub const SIMULATOR: Option<SimulatorStart> = None;

/// Starts high availability: [`crate::ha::start`] (`bot` is the bot's name). The error is
/// boxed so that only the implementation names the PostgreSQL client's error type.
pub type HaStart = for<'a> fn(
    &'a HaSpec,
    &'a str,
    CancellationToken,
) -> BoxFuture<'a, Result<crate::ha::Ha, StartError>>;

/// Why a subsystem could not start (its own error type, boxed).
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

/// High availability in PostgreSQL.
pub const HA: HaStart = crate::ha::start_boxed;

/// What the session subsystem needs to start ([`SessionsStart`]).
#[derive(Debug)]
pub struct SessionSetup<'a> {
    /// `auth_page` of the definition.
    pub page: &'a AuthPageSpec,
    /// The bot's name.
    pub bot: &'a str,
    /// The bot's StackStorm client.
    pub st2: St2Client,
    /// With `ha:`, the sessions are kept in its database instead of the file.
    pub shared: Option<&'a crate::ha::Ha>,
    /// How users type the session command (`!session`), for hints.
    pub command_name: String,
    /// Who may list and revoke sessions (`auth_page.admins`).
    pub admins: bot_config::acl::UserSet,
    /// Each completed login: `(user id, confirmation)` to post privately.
    pub notify: mpsc::Sender<(String, String)>,
    /// Stops the login page.
    pub shutdown: CancellationToken,
}

/// A started session subsystem: the manager the dispatcher consults, and the owed-results
/// table of the session file (`None` in PostgreSQL).
pub struct SessionsStarted {
    /// The sessions.
    pub manager: Arc<SessionManager>,
    /// The owed-results table in the session store's file.
    pub owed: Option<Box<dyn OwedStore>>,
}

/// Opens the session store and starts the login page.
pub type SessionsStart =
    for<'a> fn(SessionSetup<'a>) -> BoxFuture<'a, Result<SessionsStarted, SessionError>>;

/// Sessions in a redb file (or in PostgreSQL under `ha:`) and the login page.
pub const SESSIONS: SessionsStart = crate::session::start_boxed;

/// Opens (creating) the owed-results file at a path.
pub type ResultsFileOpen = fn(&Path) -> Result<Box<dyn OwedStore>, OwedStoreError>;

/// The owed-results list in a redb file.
pub const RESULTS_FILE: ResultsFileOpen = crate::session::open_results_file;
