//! Drives a chat backend directly through its `BackendIo` channels, as the bot's dispatcher
//! would: collects what it receives, hands it replies, watches its connection state.

use std::time::Duration;

use st2bot::runtime::backend::{Backend, BackendError, BackendIo, ConnState, Incoming, Outgoing};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;

/// A running backend and the dispatcher's ends of its channels.
pub struct BotHarness {
    incoming: mpsc::Receiver<Incoming>,
    outgoing: mpsc::Sender<Outgoing>,
    state: watch::Receiver<ConnState>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), BackendError>>>,
}

impl BotHarness {
    /// Starts the backend on the current runtime.
    pub fn start(backend: Box<dyn Backend>) -> Self {
        super::init_logs();
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

    /// Waits until the backend reports `Connected`.
    pub async fn wait_connected(&mut self, within: Duration) {
        self.wait_state(within, |s| *s == ConnState::Connected)
            .await;
    }

    /// The next message the backend hands to the bot.
    pub async fn next_incoming(&mut self, within: Duration) -> Incoming {
        let deadline = Instant::now() + within;
        match timeout_at(deadline, self.incoming.recv()).await {
            Ok(Some(message)) => message,
            Ok(None) => panic!("the backend closed its incoming channel"),
            Err(_) => panic!("no incoming message within {within:?}"),
        }
    }

    /// Hands a reply to the backend.
    pub async fn reply(&self, out: Outgoing) {
        self.outgoing
            .send(out)
            .await
            .expect("the backend stopped taking replies");
    }

    /// Waits for the backend to stop on its own, returning its result.
    pub async fn finished(&mut self, within: Duration) -> Result<(), BackendError> {
        let task = self.task.take().expect("backend task");
        tokio::time::timeout(within, task)
            .await
            .expect("the backend did not stop in time")
            .expect("the backend task panicked")
    }

    /// The state last reported.
    pub fn state(&self) -> ConnState {
        self.state.borrow().clone()
    }

    /// Requests shutdown and waits for the backend to return.
    pub async fn stop(mut self) -> Result<(), BackendError> {
        self.shutdown.cancel();
        self.finished(Duration::from_secs(30)).await
    }
}

impl Drop for BotHarness {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
