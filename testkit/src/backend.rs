//! The one backend test harness. [`Driven`] runs a chat backend as the bot's dispatcher does,
//! through `BackendIo`: the test reads what the backend hands over ([`Incoming`]), hands it
//! replies ([`Outgoing`]), watches its connection state and shuts it down. [`WholeBot`] runs
//! a whole bot (definition, dispatcher, StackStorm client, backend) in this process, for
//! definitions whose addresses are only known at run time (fakes and servers on free ports).
//!
//! Every wait is bounded: the `*_within` forms take the bound, the short forms use [`WAIT`].
//! A failed wait panics with what was last seen, so a test fails with a reason, never hangs.

use std::time::Duration;

use bot_config::{BackendSpec, BotSpec, SecretRef, SourceFile};
use bot_runtime::backend::{
    self, Backend, BackendError, BackendIo, BackendOptions, Capabilities, ConnState, Incoming,
    Outgoing, Status, Target,
};
use bot_runtime::cli::Options;
use bot_runtime::stackstorm::St2Client;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;

use crate::{TempDir, init_logs};

/// How long a test waits for anything by default.
pub const WAIT: Duration = Duration::from_secs(15);

/// How long [`Driven::assert_quiet`] listens for an unexpected message.
pub const QUIET: Duration = Duration::from_millis(300);

/// A running backend and the dispatcher's ends of its channels. Dropping it cancels and
/// aborts the backend.
pub struct Driven {
    /// What the backend hands to the dispatcher.
    pub incoming: mpsc::Receiver<Incoming>,
    /// Where the dispatcher's replies go.
    pub outgoing: mpsc::Sender<Outgoing>,
    /// The connection state the backend reports.
    pub state: watch::Receiver<ConnState>,
    /// Cancelled to shut the backend down (as SIGTERM does in the bot).
    pub shutdown: CancellationToken,
    /// What the backend said it can do, read before it started.
    pub capabilities: Capabilities,
    task: Option<JoinHandle<Result<(), BackendError>>>,
    _secrets: Vec<TempDir>,
}

impl Driven {
    /// Runs `backend` on the current tokio runtime.
    pub fn start(backend: Box<dyn Backend>) -> Self {
        init_logs();
        let capabilities = backend.capabilities();
        let (incoming_tx, incoming) = mpsc::channel(64);
        let (outgoing, outgoing_rx) = mpsc::channel(64);
        let (state_tx, state) = watch::channel(ConnState::Connecting);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(backend.run(BackendIo {
            incoming: incoming_tx,
            outgoing: outgoing_rx,
            state: state_tx,
            shutdown: shutdown.clone(),
        }));
        Self {
            incoming,
            outgoing,
            state,
            shutdown,
            capabilities,
            task: Some(task),
            _secrets: Vec::new(),
        }
    }

    /// Builds the backend `spec` names, as the bot does, and runs it; `secrets` (the files
    /// its `file:` references point at) live as long as the harness.
    pub fn from_spec(spec: &BackendSpec, secrets: TempDir) -> Self {
        let backend = backend::build(spec, &BackendOptions::default()).expect("backend builds");
        let mut driven = Self::start(backend);
        driven._secrets.push(secrets);
        driven
    }

    /// Waits until the reported state satisfies `matches`.
    pub async fn wait_state(&mut self, within: Duration, matches: impl Fn(&ConnState) -> bool) {
        let reached = tokio::time::timeout(within, self.state.wait_for(|s| matches(s)))
            .await
            .map(|r| r.is_ok());
        match reached {
            Ok(true) => {}
            Ok(false) => panic!("the backend stopped; last state {:?}", *self.state.borrow()),
            Err(_) => panic!(
                "state not reached within {within:?}; last state {:?}",
                *self.state.borrow()
            ),
        }
    }

    /// Waits up to `within` for `ConnState::Connected`.
    pub async fn connected_within(&mut self, within: Duration) {
        self.wait_state(within, |s| *s == ConnState::Connected)
            .await;
    }

    /// Waits up to [`WAIT`] for `ConnState::Connected`.
    pub async fn connected(&mut self) {
        self.connected_within(WAIT).await;
    }

    /// The state last reported.
    pub fn state(&self) -> ConnState {
        self.state.borrow().clone()
    }

    /// The next message the backend hands over, waiting up to `within`.
    pub async fn next_within(&mut self, within: Duration) -> Incoming {
        match timeout_at(Instant::now() + within, self.incoming.recv()).await {
            Ok(Some(message)) => message,
            Ok(None) => panic!("the backend closed its incoming channel"),
            Err(_) => panic!("no incoming message within {within:?}"),
        }
    }

    /// The next message the backend hands over, waiting up to [`WAIT`].
    pub async fn next(&mut self) -> Incoming {
        self.next_within(WAIT).await
    }

    /// Asserts that nothing more arrives within `quiet`.
    pub async fn nothing_more(&mut self, quiet: Duration) {
        if let Ok(Some(m)) = tokio::time::timeout(quiet, self.incoming.recv()).await {
            panic!("unexpected incoming message: {m:?}");
        }
    }

    /// Asserts that nothing more arrives within [`QUIET`].
    pub async fn assert_quiet(&mut self) {
        self.nothing_more(QUIET).await;
    }

    /// Replies to `message` as the dispatcher does: to its room and thread, or privately.
    pub async fn reply(&self, message: &Incoming, text: &str) {
        self.send(Outgoing::text(reply_target(message), text)).await;
    }

    /// [`Driven::reply`], mentioning the sender, with a status and extra rich content (the
    /// dispatcher's result replies).
    pub async fn reply_with(
        &self,
        message: &Incoming,
        text: &str,
        status: Option<Status>,
        extra: Option<Value>,
    ) {
        let mut out = Outgoing::text(reply_target(message), text);
        out.mention = Some(message.user_id.clone());
        out.status = status;
        out.extra = extra;
        self.send(out).await;
    }

    /// Hands one outgoing message to the backend as it is.
    pub async fn send(&self, out: Outgoing) {
        self.outgoing
            .send(out)
            .await
            .expect("the backend stopped taking replies");
    }

    /// Waits up to `within` for the backend to return on its own (a fatal error,
    /// typically) and gives its result.
    pub async fn finished(&mut self, within: Duration) -> Result<(), BackendError> {
        let task = self.task.take().expect("the backend is still running");
        tokio::time::timeout(within, task)
            .await
            .expect("the backend did not return in time")
            .expect("the backend task panicked")
    }

    /// Requests shutdown and waits up to [`WAIT`] for the backend's result.
    pub async fn stop(&mut self) -> Result<(), BackendError> {
        self.shutdown.cancel();
        self.finished(WAIT).await
    }
}

impl Drop for Driven {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Where the dispatcher sends a reply to `message`.
fn reply_target(message: &Incoming) -> Target {
    match &message.room {
        Some(room) => Target::Room {
            id: room.id.clone(),
            thread: message.thread.clone(),
        },
        None => Target::Direct {
            user: message.user_id.clone(),
        },
    }
}

/// Polls `check` every 25 ms until it holds; panics naming `what` after [`WAIT`].
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Loads a test definition as the `bot!` macro does (`bot_config::load`); panics with the
/// diagnostics when it is invalid.
fn load_definition(yaml: &str) -> BotSpec {
    let source = SourceFile::new("tests/whole-bot.yaml", yaml);
    bot_config::load(&source).unwrap_or_else(|d| panic!("invalid test definition: {d:#?}"))
}

/// The whole bot running in this process as its executable would (`app::run`), aborted on
/// drop.
pub struct WholeBot {
    task: JoinHandle<std::process::ExitCode>,
    stop: CancellationToken,
    _secrets: Vec<TempDir>,
}

impl WholeBot {
    /// Runs the bot `yaml` defines. `{st2_url}` in it is replaced with `st2_url` and
    /// `{st2_key}` with a `file:` secret holding the simulator's API key; `secrets` (the
    /// files other `file:` references point at) live as long as the bot.
    pub fn start(yaml: &str, st2_url: &str, secrets: Vec<TempDir>) -> Self {
        Self::start_with(yaml, st2_url, secrets, Options::default())
    }

    /// [`WholeBot::start`] with command-line options.
    pub fn start_with(
        yaml: &str,
        st2_url: &str,
        mut secrets: Vec<TempDir>,
        options: Options,
    ) -> Self {
        let key_dir = TempDir::new("whole-bot-key");
        let SecretRef::File(key) = key_dir.secret("st2-api-key", "sim-api-key") else {
            unreachable!("TempDir::secret makes file secrets")
        };
        secrets.push(key_dir);
        let yaml = yaml
            .replace("{st2_key}", &format!("file:{key}"))
            .replace("{st2_url}", st2_url);
        let stop = CancellationToken::new();
        Self {
            task: spawn_bot(load_definition(&yaml), options, stop.clone()),
            stop,
            _secrets: secrets,
        }
    }

    /// Runs the bot `yaml` defines as it is (its addresses and secrets already filled in).
    pub fn run(yaml: &str) -> Self {
        let stop = CancellationToken::new();
        Self {
            task: spawn_bot(load_definition(yaml), Options::default(), stop.clone()),
            stop,
            _secrets: Vec::new(),
        }
    }

    /// Stops the bot as SIGTERM does and waits up to [`WAIT`] for its exit code (a restart:
    /// stop, then run again).
    pub async fn stop(mut self) -> std::process::ExitCode {
        self.stop.cancel();
        tokio::time::timeout(WAIT, &mut self.task)
            .await
            .expect("the bot stops in time")
            .expect("the bot task ended without panicking")
    }

    /// Waits for the bot to stop by itself (a fatal error) and returns its exit code.
    pub async fn finished(&mut self) -> std::process::ExitCode {
        (&mut self.task)
            .await
            .expect("the bot task ended without panicking")
    }
}

impl Drop for WholeBot {
    fn drop(&mut self) {
        self.stop.cancel();
        self.task.abort();
    }
}

/// Spawns `app::run_until` for `spec` on the current runtime; it stops when `stop` is
/// cancelled.
fn spawn_bot(
    spec: BotSpec,
    options: Options,
    stop: CancellationToken,
) -> JoinHandle<std::process::ExitCode> {
    let client = St2Client::new(&spec.stackstorm).expect("StackStorm client");
    tokio::spawn(async move { bot_runtime::app::run_until(&spec, client, &options, stop).await })
}
