//! Test support: runs a chat backend as the bot does, through `BackendIo`, and gives the test
//! the dispatcher's ends of the channels (read `Incoming`, send `Outgoing`, watch the
//! connection state). Secrets go through a throwaway `file:` secret.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::Value;
use st2bot::config::{BackendSpec, SecretRef};
use st2bot::runtime::backend::{
    self, BackendError, BackendIo, BackendOptions, Capabilities, ConnState, Incoming, Outgoing,
    Status, Target,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a test waits for anything.
pub const WAIT: Duration = Duration::from_secs(15);

/// A secret in a throwaway file, removed on drop.
pub struct TokenFile(PathBuf);

impl TokenFile {
    /// Writes `value` (with a trailing newline, as editors do).
    pub fn new(value: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "st2bot-backend-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, format!("{value}\n")).expect("write secret file");
        Self(path)
    }

    /// The `file:` reference.
    pub fn secret(&self) -> SecretRef {
        SecretRef::File(self.0.to_string_lossy().into_owned().into())
    }
}

impl Drop for TokenFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The backend under test and the dispatcher's ends of its channels.
pub struct Bot {
    pub incoming: mpsc::Receiver<Incoming>,
    pub outgoing: mpsc::Sender<Outgoing>,
    pub state: watch::Receiver<ConnState>,
    pub shutdown: CancellationToken,
    pub task: Option<JoinHandle<Result<(), BackendError>>>,
    pub capabilities: Capabilities,
    _secrets: Vec<TokenFile>,
}

impl Drop for Bot {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

impl Bot {
    /// Builds the backend `spec` names and runs it.
    pub fn start(spec: &BackendSpec, secret: TokenFile) -> Self {
        let backend = backend::build(spec, &BackendOptions::default()).expect("backend builds");
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
            task: Some(task),
            capabilities,
            _secrets: vec![secret],
        }
    }

    /// Waits for `ConnState::Connected`.
    pub async fn connected(&mut self) {
        tokio::time::timeout(
            WAIT,
            self.state.wait_for(|s| matches!(s, ConnState::Connected)),
        )
        .await
        .expect("connected in time")
        .expect("state channel open");
    }

    /// The next message the backend hands over.
    pub async fn next(&mut self) -> Incoming {
        tokio::time::timeout(WAIT, self.incoming.recv())
            .await
            .expect("a message in time")
            .expect("incoming open")
    }

    /// Replies where `m` came from (room and thread, or privately), mentioning the sender,
    /// like the dispatcher does.
    pub async fn reply(
        &self,
        m: &Incoming,
        text: &str,
        status: Option<Status>,
        extra: Option<Value>,
    ) {
        let target = match &m.room {
            Some(room) => Target::Room {
                id: room.id.clone(),
                thread: m.thread.clone(),
            },
            None => Target::Direct {
                user: m.user_id.clone(),
            },
        };
        let mut out = Outgoing::text(target, text);
        out.mention = Some(m.user_id.clone());
        out.status = status;
        out.extra = extra;
        self.outgoing
            .send(out)
            .await
            .expect("backend takes replies");
    }

    /// Sends an `Outgoing` as is.
    pub async fn send(&self, out: Outgoing) {
        self.outgoing
            .send(out)
            .await
            .expect("backend takes replies");
    }

    /// Waits for the backend's own end (a fatal error, typically).
    pub async fn ended(&mut self) -> Result<(), BackendError> {
        let task = self.task.take().expect("running");
        tokio::time::timeout(WAIT, task)
            .await
            .expect("the backend stops by itself in time")
            .expect("no panic")
    }

    /// Shuts down and returns the backend's result.
    pub async fn finish(mut self) -> Result<(), BackendError> {
        self.shutdown.cancel();
        self.ended().await
    }

    /// Asserts nothing more comes in for a moment.
    pub async fn assert_quiet(&mut self) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if let Ok(m) = self.incoming.try_recv() {
            panic!("unexpected incoming message: {m:?}");
        }
    }
}

/// Polls `check` until it holds.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The whole bot (definition → dispatcher → backend) running in this process against a
/// StackStorm simulator; aborted on drop.
pub struct WholeBot {
    task: JoinHandle<std::process::ExitCode>,
    _secrets: Vec<TokenFile>,
}

impl Drop for WholeBot {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WholeBot {
    /// Loads `yaml` (after replacing `{st2_key}` with a `file:` secret holding the
    /// simulator's API key and `{st2_url}` with `st2_url`) and runs it as the executable does.
    pub fn start(yaml: &str, st2_url: &str, secrets: Vec<TokenFile>) -> Self {
        Self::start_with(
            yaml,
            st2_url,
            secrets,
            st2bot::runtime::cli::Options::default(),
        )
    }

    /// Waits for the bot to stop by itself (a fatal error) and returns its exit code.
    pub async fn finished(&mut self) -> std::process::ExitCode {
        (&mut self.task)
            .await
            .expect("the bot task ended without panicking")
    }

    /// [`WholeBot::start`] with command-line options.
    pub fn start_with(
        yaml: &str,
        st2_url: &str,
        mut secrets: Vec<TokenFile>,
        options: st2bot::runtime::cli::Options,
    ) -> Self {
        let key = TokenFile::new("sim-api-key");
        let SecretRef::File(key_path) = key.secret() else {
            unreachable!("TokenFile makes file secrets")
        };
        let yaml = yaml
            .replace("{st2_key}", &format!("file:{key_path}"))
            .replace("{st2_url}", st2_url);
        secrets.push(key);
        let source = st2bot::config::SourceFile::new("bots/e2e.yaml", yaml);
        let spec = match st2bot::config::load(&source) {
            Ok(spec) => spec,
            Err(diagnostics) => panic!("invalid test definition: {diagnostics:#?}"),
        };
        let spec: &'static st2bot::config::BotSpec = Box::leak(Box::new(spec));
        let client =
            st2bot::runtime::stackstorm::St2Client::new(&spec.stackstorm).expect("st2 client");
        let task =
            tokio::spawn(async move { st2bot::runtime::app::run(spec, client, &options).await });
        Self {
            task,
            _secrets: secrets,
        }
    }
}
