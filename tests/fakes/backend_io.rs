//! Test harness that drives a chat [`Backend`] through [`BackendIo`] the way the bot's
//! dispatcher does: it receives [`Incoming`] messages, sends [`Outgoing`] replies, watches
//! the connection state, and shuts the backend down. Also writes throwaway secret files
//! (secrets are files here: tests must not set process-wide environment variables), and
//! runs a whole bot (dispatcher, StackStorm client, backend) from a definition in-process,
//! for definitions whose addresses are only known at run time (fakes on free ports).

// Shared by several test binaries: each uses a part, and `pub` marks the API they use.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use st2bot::config::SecretRef;
use st2bot::runtime::backend::{
    Backend, BackendError, BackendIo, ConnState, Incoming, Outgoing, Target,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory under the system temp dir.
    pub fn new(label: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("st2bot-{label}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    /// Writes `value` to a file and returns a `file:` secret reference to it.
    pub fn secret(&self, name: &str, value: &str) -> SecretRef {
        SecretRef::File(self.file(name, value).into())
    }

    /// Writes `value` (and a newline) to a file; returns its path.
    pub fn file(&self, name: &str, value: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, format!("{value}\n")).expect("write secret");
        path.to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running backend and the dispatcher's ends of its channels.
pub struct Driven {
    pub incoming: mpsc::Receiver<Incoming>,
    pub outgoing: mpsc::Sender<Outgoing>,
    pub state: watch::Receiver<ConnState>,
    pub shutdown: CancellationToken,
    pub task: Option<JoinHandle<Result<(), BackendError>>>,
}

impl Driven {
    /// Starts `backend`.
    pub fn start(backend: Box<dyn Backend>) -> Self {
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
            task: Some(task),
        }
    }

    /// Waits until the backend reports `Connected`.
    pub async fn connected(&mut self, timeout: Duration) {
        let wait = self.state.wait_for(|s| *s == ConnState::Connected);
        tokio::time::timeout(timeout, wait)
            .await
            .expect("backend did not connect in time")
            .expect("state channel closed");
    }

    /// The next message the backend hands over (panics after `timeout`).
    pub async fn next(&mut self, timeout: Duration) -> Incoming {
        tokio::time::timeout(timeout, self.incoming.recv())
            .await
            .expect("no incoming message in time")
            .expect("backend closed its incoming channel")
    }

    /// Asserts nothing more arrives within `quiet`.
    pub async fn nothing_more(&mut self, quiet: Duration) {
        if let Ok(Some(m)) = tokio::time::timeout(quiet, self.incoming.recv()).await {
            panic!("unexpected incoming message: {m:?}");
        }
    }

    /// Replies as the dispatcher would: to the room and thread of `message`, or privately.
    pub async fn reply(&self, message: &Incoming, text: &str) {
        self.send(Outgoing::text(reply_target(message), text)).await;
    }

    /// Queues one outgoing message.
    pub async fn send(&self, out: Outgoing) {
        self.outgoing.send(out).await.expect("backend stopped");
    }

    /// Cancels and waits for the backend's result.
    pub async fn stop(&mut self) -> Result<(), BackendError> {
        self.shutdown.cancel();
        self.finished(Duration::from_secs(10)).await
    }

    /// Waits for the backend to return on its own.
    pub async fn finished(&mut self, timeout: Duration) -> Result<(), BackendError> {
        let task = self.task.take().expect("already finished");
        tokio::time::timeout(timeout, task)
            .await
            .expect("backend did not return in time")
            .expect("backend task panicked")
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

/// Runs the bot `yaml` defines, in this process, as its executable would (`app::run`):
/// the definition is validated by `bot_config::load` like the `bot!` macro does.
pub fn run_whole_bot(yaml: &str) -> JoinHandle<std::process::ExitCode> {
    run_whole_bot_until(yaml, CancellationToken::new())
}

/// [`run_whole_bot`], stopping as on SIGTERM when `stop` is cancelled (a restart: cancel,
/// await the handle, start again).
#[allow(dead_code)] // not every test file that includes this module restarts a bot
pub fn run_whole_bot_until(
    yaml: &str,
    stop: CancellationToken,
) -> JoinHandle<std::process::ExitCode> {
    let file = st2bot::config::SourceFile::new("tests/whole-bot.yaml", yaml);
    let spec = st2bot::config::load(&file).unwrap_or_else(|d| panic!("invalid definition: {d:#?}"));
    let spec: &'static st2bot::config::BotSpec = Box::leak(Box::new(spec));
    let client =
        st2bot::runtime::stackstorm::St2Client::new(&spec.stackstorm).expect("StackStorm client");
    tokio::spawn(async move {
        st2bot::runtime::app::run_until(
            spec,
            client,
            &st2bot::runtime::cli::Options::default(),
            stop,
        )
        .await
    })
}

/// Where the dispatcher sends a reply to `message`.
pub fn reply_target(message: &Incoming) -> Target {
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
