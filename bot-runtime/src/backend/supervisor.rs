//! The reconnect supervisor streaming chat backends share: connect → read the session →
//! reconnect with the one [`Backoff`], stop on refused credentials, give way to shutdown.
//!
//! A backend says only what differs, as an [`EventStream`]: how to open a connection
//! (discover the URL, open the socket, check the token), how to read one connection until
//! it ends, and (rarely) what to keep doing while it waits to reconnect. [`supervise`]
//! owns the rest: the [`ConnState`] it reports, pacing (a connection that stayed up resets
//! the backoff, one that drops at once does not), and the one place a failed attempt is
//! logged. Slack (Socket Mode), Mattermost (the WebSocket event API), Discord (the
//! gateway), Rocket.Chat (the realtime DDP API), Matrix (the `/sync` long poll), IRC (one
//! TCP or TLS connection each) and XMPP (the login loop behind tokio-xmpp's
//! `StanzaStream`, and that stream itself) run on it. A stream that reports another state
//! than [`ConnState`] says how as a [`ConnReport`] and runs on [`supervise_with`]: the
//! StackStorm event stream does (`stackstorm::stream`, which reports its `StreamState`
//! and metrics).
//!
//! The send side of the web services is here too: a backend says how to deliver one
//! message through its API, as a [`MessageSink`] (splitting, rate-limit waits and retries
//! are the service's); [`send_loop`] owns the order, the flush on shutdown, stopping on
//! refused credentials and the log line for a message that could not be delivered. Slack,
//! Mattermost, Discord, Rocket.Chat and Microsoft Teams send through it.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::backoff::{Backoff, sleep_or_shutdown};
use super::error::ApiError;
use super::{BackendError, ConnState, Outgoing};

/// What differs between web services on the send side: delivering one message.
pub trait MessageSink: Send + Sync {
    /// The service's name, for logs and [`BackendError::Auth`].
    fn service(&self) -> &'static str;

    /// Delivers one message: posts it (in as many parts as the service needs), or edits the
    /// message it replaces, waiting out rate limits and retrying as the service asks.
    fn deliver(&self, out: &Outgoing) -> impl Future<Output = Result<(), ApiError>> + Send;
}

/// Delivers `outgoing` in order until it closes, or until `shutdown`: then what is still
/// queued is delivered first (a result posted while the bot stops is not lost). Refused
/// credentials stop the loop with [`BackendError::Auth`]; any other failure loses that one
/// message, with a log line.
pub async fn send_loop<S: MessageSink>(
    sink: &S,
    mut outgoing: mpsc::Receiver<Outgoing>,
    shutdown: &CancellationToken,
) -> Result<(), BackendError> {
    loop {
        tokio::select! {
            biased;
            next = outgoing.recv() => match next {
                Some(out) => send_one(sink, &out).await?,
                None => return Ok(()),
            },
            () = shutdown.cancelled() => {
                while let Ok(out) = outgoing.try_recv() {
                    send_one(sink, &out).await?;
                }
                return Ok(());
            }
        }
    }
}

/// One message through `sink`, as [`send_loop`] sends it: only refused credentials are an
/// error (anything else is logged).
pub(crate) async fn send_one<S: MessageSink>(sink: &S, out: &Outgoing) -> Result<(), BackendError> {
    let service = sink.service();
    match sink.deliver(out).await {
        Ok(()) => Ok(()),
        Err(ApiError::Auth(reason)) => {
            tracing::error!(service, reason = %reason, "credentials refused while sending");
            Err(BackendError::Auth { service, reason })
        }
        Err(e) => {
            tracing::warn!(service, target_ = ?out.target, error = %e, "reply not delivered");
            Ok(())
        }
    }
}

/// Why opening a connection did not give one.
#[derive(Debug)]
pub enum ConnectError {
    /// Worth another try after the backoff (network failure, 5xx, a failed handshake): why.
    Retry(String),
    /// Worth another try after `pause` instead of the backoff's delay (the service said how
    /// long: Matrix's `retry_after_ms` on a rate-limited login); the backoff does not grow.
    RetryAfter {
        /// Why.
        reason: String,
        /// How long the service asked to wait.
        pause: Duration,
    },
    /// Retrying cannot help (refused credentials): stop the backend with this error.
    Stop(BackendError),
    /// Shutdown came while connecting.
    Shutdown,
}

/// How one connection ended.
#[derive(Debug)]
pub enum SessionEnd {
    /// Shutdown was asked for (the connection is closed).
    Shutdown,
    /// The service asked for a new connection (Slack's `disconnect`): reconnect at once.
    Refresh,
    /// The connection dropped or went silent: why. The backoff resets when it had stayed
    /// up long enough ([`Backoff::reset_if_stable`]).
    Dropped(String),
    /// The connection ended and the stream has logged why. `healthy` when it had worked
    /// (the service confirmed the session), which resets the backoff; `pause` replaces the
    /// backoff's delay (Discord: resume at once after a working connection, or the 1–5 s an
    /// invalid session asks for). A healthy connection still counts one step of the backoff,
    /// so a loop of instant drops is paced.
    Closed {
        /// Whether the connection had worked.
        healthy: bool,
        /// Wait this long instead of the backoff's delay.
        pause: Option<Duration>,
    },
    /// Connect again at once, keeping the backoff (Rocket.Chat: a fresh login is needed).
    Again,
    /// A condition reconnecting cannot fix.
    Fatal(BackendError),
}

/// What differs between streaming services: opening one connection, reading it.
pub trait EventStream {
    /// One open connection.
    type Connection;

    /// The service's name, as logs say it (`slack`, `mattermost`).
    fn service(&self) -> &'static str;

    /// Opens one connection.
    fn connect(&mut self) -> impl Future<Output = Result<Self::Connection, ConnectError>> + Send;

    /// Reads `connection` until it ends.
    fn session(&mut self, connection: Self::Connection) -> impl Future<Output = SessionEnd> + Send;

    /// Waits `delay` before the next attempt, or until `shutdown`. `Ok(true)` when the wait
    /// is over, `Ok(false)` when the stream is to stop (shutdown came); `Err` stops it with
    /// that error. By default a plain wait; a stream whose send side shares its state keeps
    /// serving it meanwhile (Matrix keeps taking and sending replies).
    fn pause(
        &mut self,
        delay: Duration,
        shutdown: &CancellationToken,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send {
        async move { Ok(sleep_or_shutdown(delay, shutdown).await) }
    }
}

/// Why the supervisor is about to wait before the next attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Down<'a> {
    /// Opening a connection failed ([`ConnectError::Retry`], [`ConnectError::RetryAfter`]):
    /// why.
    ConnectFailed(&'a str),
    /// The connection ended and the stream logged why ([`SessionEnd::Closed`]).
    Closed,
    /// The connection dropped ([`SessionEnd::Dropped`]): why.
    Lost(&'a str),
}

/// How a supervised stream reports its state and logs a failed attempt: [`ConnState`]
/// for chat backends (`impl` for its [`watch::Sender`]); the StackStorm stream has its own.
pub trait ConnReport {
    /// Before each attempt to connect.
    fn connecting(&self);

    /// After a failed attempt or an ended connection, before waiting `retry_in`: the state
    /// to show and the log line.
    fn down(&self, service: &'static str, why: Down<'_>, retry_in: Duration);
}

impl ConnReport for watch::Sender<ConnState> {
    fn connecting(&self) {
        self.send_replace(ConnState::Connecting);
    }

    fn down(&self, service: &'static str, why: Down<'_>, retry_in: Duration) {
        let retry_in_ms = retry_in.as_millis() as u64;
        match why {
            Down::ConnectFailed(reason) => tracing::warn!(
                service,
                reason = %reason,
                retry_in_ms,
                "{service}: cannot connect; retrying"
            ),
            Down::Closed => {
                self.send_replace(ConnState::Connecting);
                tracing::info!(service, retry_in_ms, "{service}: reconnecting");
            }
            Down::Lost(reason) => {
                self.send_replace(ConnState::Connecting);
                tracing::warn!(
                    service,
                    reason = %reason,
                    retry_in_ms,
                    "{service}: connection lost; reconnecting"
                );
            }
        }
    }
}

/// Runs `stream` until shutdown: connects, reads each connection to its end, reconnects
/// after `backoff`'s delay. Reports `Connecting` before each attempt and after each drop
/// (the stream reports `Connected` itself, once the service confirms the session).
/// `Err` only for what [`ConnectError::Stop`] or [`SessionEnd::Fatal`] carries, or what
/// [`EventStream::pause`] fails with.
pub async fn supervise<S: EventStream>(
    stream: &mut S,
    backoff: Backoff,
    shutdown: &CancellationToken,
    state: &watch::Sender<ConnState>,
) -> Result<(), BackendError> {
    supervise_with(stream, backoff, shutdown, state).await
}

/// [`supervise`], reporting through `report` instead of a [`ConnState`] channel.
pub async fn supervise_with<S: EventStream, R: ConnReport + ?Sized>(
    stream: &mut S,
    mut backoff: Backoff,
    shutdown: &CancellationToken,
    report: &R,
) -> Result<(), BackendError> {
    let service = stream.service();
    loop {
        if shutdown.is_cancelled() {
            return Ok(());
        }
        report.connecting();
        let connection = match stream.connect().await {
            Ok(connection) => connection,
            Err(ConnectError::Stop(e)) => return Err(e),
            Err(ConnectError::Shutdown) => return Ok(()),
            Err(ConnectError::Retry(reason)) => {
                let delay = backoff.next_delay();
                report.down(service, Down::ConnectFailed(&reason), delay);
                if !stream.pause(delay, shutdown).await? {
                    return Ok(());
                }
                continue;
            }
            Err(ConnectError::RetryAfter { reason, pause }) => {
                report.down(service, Down::ConnectFailed(&reason), pause);
                if !stream.pause(pause, shutdown).await? {
                    return Ok(());
                }
                continue;
            }
        };
        let started = Instant::now();
        match stream.session(connection).await {
            SessionEnd::Shutdown => return Ok(()),
            SessionEnd::Refresh => backoff.reset(),
            SessionEnd::Fatal(e) => return Err(e),
            SessionEnd::Again => {}
            SessionEnd::Closed { healthy, pause } => {
                if healthy {
                    backoff.reset();
                }
                let delay = match pause {
                    Some(pause) => {
                        if healthy {
                            backoff.next_delay();
                        }
                        pause
                    }
                    None => backoff.next_delay(),
                };
                report.down(service, Down::Closed, delay);
                if !stream.pause(delay, shutdown).await? {
                    return Ok(());
                }
            }
            SessionEnd::Dropped(reason) => {
                backoff.reset_if_stable(started);
                let delay = backoff.next_delay();
                report.down(service, Down::Lost(&reason), delay);
                if !stream.pause(delay, shutdown).await? {
                    return Ok(());
                }
            }
        }
    }
}

/// Credentials a service refused: logged once, reported as [`ConnState::Failed`], and the
/// error that stops the backend (retrying cannot help). `credentials` names them in the
/// log line (`token`, `app credentials`); `reason` is the service's answer, never a secret.
pub fn credentials_refused(
    service: &'static str,
    credentials: &str,
    reason: String,
    state: &watch::Sender<ConnState>,
) -> BackendError {
    tracing::error!(service, reason = %reason, "{service}: {credentials} refused; not retrying");
    state.send_replace(ConnState::Failed(reason.clone()));
    BackendError::Auth { service, reason }
}

/// The call a web backend makes before anything else, which proves its credentials
/// (Slack's `auth.test`, Mattermost's `/users/me`, a first Teams connector token): tried
/// until it answers, `backoff`'s delay between failures, each failure logged as
/// `{service}: {call} failed; retrying`. `Ok(None)` when shutdown comes first; refused
/// credentials stop it ([`credentials_refused`]).
pub async fn first_contact<T, F, Fut>(
    service: &'static str,
    (call, credentials): (&str, &str),
    mut backoff: Backoff,
    shutdown: &CancellationToken,
    state: &watch::Sender<ConnState>,
    mut attempt: F,
) -> Result<Option<T>, BackendError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    loop {
        match attempt().await {
            Ok(answer) => return Ok(Some(answer)),
            Err(ApiError::Auth(reason)) => {
                return Err(credentials_refused(service, credentials, reason, state));
            }
            Err(ApiError::Shutdown) => return Ok(None),
            Err(e) => {
                tracing::warn!(service, error = %e, "{service}: {call} failed; retrying");
                if !sleep_or_shutdown(backoff.next_delay(), shutdown).await {
                    return Ok(None);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// A scripted stream: each connect and each session takes the next scripted outcome.
    struct Script {
        connects: VecDeque<Result<(), ConnectError>>,
        sessions: VecDeque<SessionEnd>,
        /// What each wait answers; a plain wait once they are used up.
        pauses: VecDeque<Result<bool, BackendError>>,
        /// Waits asked for.
        paused: usize,
        calls: Vec<&'static str>,
        shutdown: CancellationToken,
    }

    impl EventStream for Script {
        type Connection = ();

        fn service(&self) -> &'static str {
            "script"
        }

        async fn connect(&mut self) -> Result<(), ConnectError> {
            self.calls.push("connect");
            self.connects.pop_front().unwrap_or_else(|| {
                self.shutdown.cancel();
                Err(ConnectError::Shutdown)
            })
        }

        async fn session(&mut self, (): ()) -> SessionEnd {
            self.calls.push("session");
            self.sessions.pop_front().unwrap_or(SessionEnd::Shutdown)
        }

        async fn pause(
            &mut self,
            delay: Duration,
            shutdown: &CancellationToken,
        ) -> Result<bool, BackendError> {
            self.paused += 1;
            match self.pauses.pop_front() {
                Some(answer) => answer,
                None => Ok(sleep_or_shutdown(delay, shutdown).await),
            }
        }
    }

    fn script(connects: Vec<Result<(), ConnectError>>, sessions: Vec<SessionEnd>) -> Script {
        Script {
            connects: connects.into(),
            sessions: sessions.into(),
            pauses: VecDeque::new(),
            paused: 0,
            calls: Vec::new(),
            shutdown: CancellationToken::new(),
        }
    }

    fn quick() -> Backoff {
        Backoff::new(Duration::from_millis(1), Duration::from_millis(2))
    }

    #[tokio::test]
    async fn retries_connect_failures_and_reconnects_after_drops() {
        let mut s = script(
            vec![
                Err(ConnectError::Retry("down".into())),
                Ok(()),
                Ok(()),
                Ok(()),
            ],
            vec![
                SessionEnd::Dropped("reset".into()),
                SessionEnd::Refresh,
                SessionEnd::Shutdown,
            ],
        );
        let (state, states) = watch::channel(ConnState::Connected);
        let shutdown = s.shutdown.clone();
        let result = supervise(&mut s, quick(), &shutdown, &state).await;
        assert!(result.is_ok());
        assert_eq!(
            s.calls,
            [
                "connect", "connect", "session", "connect", "session", "connect", "session"
            ]
        );
        assert_eq!(*states.borrow(), ConnState::Connecting);
    }

    #[tokio::test]
    async fn closed_and_again_reconnect() {
        let mut s = script(
            vec![Ok(()), Ok(()), Ok(())],
            vec![
                SessionEnd::Again,
                SessionEnd::Closed {
                    healthy: true,
                    pause: None,
                },
                SessionEnd::Shutdown,
            ],
        );
        let (state, _states) = watch::channel(ConnState::Connecting);
        let shutdown = s.shutdown.clone();
        let result = tokio::time::timeout(
            Duration::from_secs(10),
            supervise(&mut s, quick(), &shutdown, &state),
        )
        .await
        .expect("no long wait");
        assert!(result.is_ok());
        assert_eq!(
            s.calls,
            [
                "connect", "session", "connect", "session", "connect", "session"
            ]
        );
    }

    #[tokio::test]
    async fn a_pause_replaces_the_backoff_delay() {
        let mut s = script(
            vec![Ok(()), Ok(()), Ok(())],
            vec![
                SessionEnd::Closed {
                    healthy: false,
                    pause: Some(Duration::from_millis(1)),
                },
                SessionEnd::Closed {
                    healthy: true,
                    pause: Some(Duration::from_millis(1)),
                },
                SessionEnd::Shutdown,
            ],
        );
        let (state, _states) = watch::channel(ConnState::Connecting);
        let shutdown = s.shutdown.clone();
        let slow = Backoff::new(Duration::from_secs(3600), Duration::from_secs(3600));
        let result = tokio::time::timeout(
            Duration::from_secs(10),
            supervise(&mut s, slow, &shutdown, &state),
        )
        .await
        .expect("the pauses, not the hour-long backoff, paced the reconnects");
        assert!(result.is_ok());
        assert_eq!(s.calls.len(), 6);
    }

    #[tokio::test]
    async fn refused_credentials_and_fatal_sessions_stop_at_once() {
        let auth = || BackendError::Auth {
            service: "script",
            reason: "invalid_auth".into(),
        };
        let mut s = script(vec![Err(ConnectError::Stop(auth()))], Vec::new());
        let (state, _states) = watch::channel(ConnState::Connecting);
        let shutdown = s.shutdown.clone();
        let result = supervise(&mut s, quick(), &shutdown, &state).await;
        assert!(matches!(result, Err(BackendError::Auth { .. })));
        assert_eq!(s.calls, ["connect"]);

        let mut s = script(vec![Ok(())], vec![SessionEnd::Fatal(auth())]);
        let shutdown = s.shutdown.clone();
        let result = supervise(&mut s, quick(), &shutdown, &state).await;
        assert!(matches!(result, Err(BackendError::Auth { .. })));
        assert_eq!(s.calls, ["connect", "session"]);
    }

    #[tokio::test]
    async fn shutdown_during_the_backoff_wait_ends_the_loop() {
        let mut s = script(vec![Err(ConnectError::Retry("down".into()))], Vec::new());
        let (state, _states) = watch::channel(ConnState::Connecting);
        let shutdown = s.shutdown.clone();
        let slow = Backoff::new(Duration::from_secs(3600), Duration::from_secs(3600));
        let stopper = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            stopper.cancel();
        });
        let result = tokio::time::timeout(
            Duration::from_secs(10),
            supervise(&mut s, slow, &shutdown, &state),
        )
        .await
        .expect("shutdown interrupts the wait");
        assert!(result.is_ok());
        assert_eq!(s.calls, ["connect"]);
    }

    /// A report that records what the supervisor told it.
    #[derive(Default)]
    struct Recorded(std::sync::Mutex<Vec<String>>);

    impl ConnReport for Recorded {
        fn connecting(&self) {
            self.0.lock().unwrap().push("connecting".into());
        }

        fn down(&self, service: &'static str, why: Down<'_>, _retry_in: Duration) {
            self.0
                .lock()
                .unwrap()
                .push(format!("{service} down: {why:?}"));
        }
    }

    #[tokio::test]
    async fn a_report_hears_of_every_attempt_and_every_wait() {
        let mut s = script(
            vec![
                Err(ConnectError::Retry("down".into())),
                Ok(()),
                Ok(()),
                Ok(()),
            ],
            vec![
                SessionEnd::Dropped("reset".into()),
                SessionEnd::Closed {
                    healthy: false,
                    pause: None,
                },
                SessionEnd::Shutdown,
            ],
        );
        let report = Recorded::default();
        let shutdown = s.shutdown.clone();
        let result = tokio::time::timeout(
            Duration::from_secs(10),
            supervise_with(&mut s, quick(), &shutdown, &report),
        )
        .await
        .expect("no long wait");
        assert!(result.is_ok());
        assert_eq!(
            *report.0.lock().unwrap(),
            [
                "connecting",
                "script down: ConnectFailed(\"down\")",
                "connecting",
                "script down: Lost(\"reset\")",
                "connecting",
                "script down: Closed",
                "connecting",
            ]
        );
        assert_eq!(s.paused, 3);
    }

    #[test]
    fn the_conn_state_report_says_connecting_before_attempts_and_after_drops() {
        let (state, states) = watch::channel(ConnState::Connected);
        state.connecting();
        assert_eq!(*states.borrow(), ConnState::Connecting);
        state.send_replace(ConnState::Connected);
        state.down("script", Down::ConnectFailed("down"), Duration::ZERO);
        assert_eq!(
            *states.borrow(),
            ConnState::Connected,
            "a failed attempt changes nothing until the next one"
        );
        for why in [Down::Closed, Down::Lost("reset")] {
            state.send_replace(ConnState::Connected);
            state.down("script", why, Duration::ZERO);
            assert_eq!(*states.borrow(), ConnState::Connecting, "{why:?}");
        }
    }

    #[tokio::test]
    async fn retry_after_waits_the_pause_the_service_asked_for() {
        let mut s = script(
            vec![
                Err(ConnectError::RetryAfter {
                    reason: "rate limited".into(),
                    pause: Duration::from_millis(1),
                }),
                Ok(()),
            ],
            vec![SessionEnd::Shutdown],
        );
        let (state, _states) = watch::channel(ConnState::Connecting);
        let shutdown = s.shutdown.clone();
        let slow = Backoff::new(Duration::from_secs(3600), Duration::from_secs(3600));
        let result = tokio::time::timeout(
            Duration::from_secs(10),
            supervise(&mut s, slow, &shutdown, &state),
        )
        .await
        .expect("the pause, not the hour-long backoff, paced the retry");
        assert!(result.is_ok());
        assert_eq!(s.calls, ["connect", "connect", "session"]);
    }

    #[tokio::test]
    async fn a_stream_that_stops_while_waiting_ends_the_loop() {
        let dropped = || SessionEnd::Dropped("reset".into());
        let mut s = script(vec![Ok(()), Ok(())], vec![dropped(), dropped()]);
        s.pauses.push_back(Ok(false));
        let (state, _states) = watch::channel(ConnState::Connecting);
        let shutdown = s.shutdown.clone();
        let result = supervise(&mut s, quick(), &shutdown, &state).await;
        assert!(result.is_ok());
        assert_eq!(s.calls, ["connect", "session"]);

        let mut s = script(vec![Ok(()), Ok(())], vec![dropped(), dropped()]);
        s.pauses.push_back(Ok(true));
        s.pauses.push_back(Err(BackendError::Auth {
            service: "script",
            reason: "token revoked".into(),
        }));
        let shutdown = s.shutdown.clone();
        let result = supervise(&mut s, quick(), &shutdown, &state).await;
        assert!(matches!(result, Err(BackendError::Auth { .. })));
        assert_eq!(s.calls, ["connect", "session", "connect", "session"]);
        assert_eq!(s.paused, 2);
    }

    #[tokio::test]
    async fn first_contact_retries_until_answered_and_stops_on_refused_credentials() {
        let (state, states) = watch::channel(ConnState::Connecting);
        let shutdown = CancellationToken::new();
        let mut answers = VecDeque::from([
            Err(ApiError::Transport("connection refused".into())),
            Err(ApiError::Refused {
                status: 503,
                code: String::new(),
                message: "starting".into(),
            }),
            Ok("U123"),
        ]);
        let mut calls = 0;
        let me = first_contact(
            "script",
            ("auth.test", "token"),
            quick(),
            &shutdown,
            &state,
            || {
                calls += 1;
                let answer = answers.pop_front().expect("no call after the answer");
                async move { answer }
            },
        )
        .await;
        assert_eq!(me.expect("no refusal"), Some("U123"));
        assert_eq!(calls, 3);
        assert_eq!(*states.borrow(), ConnState::Connecting);

        let refused = first_contact(
            "script",
            ("auth.test", "token"),
            quick(),
            &shutdown,
            &state,
            || async { Err::<(), _>(ApiError::Auth("invalid_auth".into())) },
        )
        .await;
        assert!(matches!(
            refused,
            Err(BackendError::Auth { service: "script", ref reason }) if reason == "invalid_auth"
        ));
        assert_eq!(
            *states.borrow(),
            ConnState::Failed("invalid_auth".into()),
            "the refusal is reported"
        );
    }

    #[tokio::test]
    async fn first_contact_gives_way_to_shutdown() {
        let (state, _states) = watch::channel(ConnState::Connecting);
        let shutdown = CancellationToken::new();
        let slow = Backoff::new(Duration::from_secs(3600), Duration::from_secs(3600));
        let stopper = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            stopper.cancel();
        });
        let ended = tokio::time::timeout(
            Duration::from_secs(10),
            first_contact(
                "script",
                ("auth.test", "token"),
                slow,
                &shutdown,
                &state,
                || async { Err::<(), _>(ApiError::Transport("down".into())) },
            ),
        )
        .await
        .expect("shutdown interrupts the wait");
        assert!(matches!(ended, Ok(None)));
        let ended = first_contact(
            "script",
            ("auth.test", "token"),
            quick(),
            &shutdown,
            &state,
            || async { Err::<(), _>(ApiError::Shutdown) },
        )
        .await;
        assert!(matches!(ended, Ok(None)), "a call cut by shutdown ends it");
    }

    /// A sink that records what it was given and answers as scripted (text → outcome).
    struct Recorder {
        delivered: std::sync::Mutex<Vec<String>>,
    }

    impl MessageSink for Recorder {
        fn service(&self) -> &'static str {
            "recorder"
        }

        async fn deliver(&self, out: &Outgoing) -> Result<(), ApiError> {
            self.delivered.lock().unwrap().push(out.text.clone());
            match out.text.as_str() {
                "refused" => Err(ApiError::Refused {
                    status: 400,
                    code: "channel_not_found".into(),
                    message: String::new(),
                }),
                "auth" => Err(ApiError::Auth("invalid_auth".into())),
                _ => Ok(()),
            }
        }
    }

    fn recorder() -> Recorder {
        Recorder {
            delivered: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn message(text: &str) -> Outgoing {
        Outgoing::text(
            super::super::Target::Room {
                id: "ops".into(),
                thread: None,
            },
            text,
        )
    }

    #[tokio::test]
    async fn sends_in_order_and_one_failed_message_loses_only_itself() {
        let sink = recorder();
        let (tx, rx) = mpsc::channel(8);
        for text in ["one", "refused", "two"] {
            tx.send(message(text)).await.unwrap();
        }
        drop(tx);
        let result = send_loop(&sink, rx, &CancellationToken::new()).await;
        assert!(result.is_ok());
        assert_eq!(*sink.delivered.lock().unwrap(), ["one", "refused", "two"]);
    }

    #[tokio::test]
    async fn refused_credentials_stop_sending() {
        let sink = recorder();
        let (tx, rx) = mpsc::channel(8);
        for text in ["one", "auth", "never"] {
            tx.send(message(text)).await.unwrap();
        }
        let result = send_loop(&sink, rx, &CancellationToken::new()).await;
        assert!(matches!(
            result,
            Err(BackendError::Auth {
                service: "recorder",
                ..
            })
        ));
        assert_eq!(*sink.delivered.lock().unwrap(), ["one", "auth"]);
    }

    #[tokio::test]
    async fn shutdown_delivers_what_is_queued_then_stops() {
        let sink = recorder();
        let (tx, rx) = mpsc::channel(8);
        for text in ["queued 1", "queued 2"] {
            tx.send(message(text)).await.unwrap();
        }
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        // The sender is still open: only the shutdown can end the loop.
        let result = tokio::time::timeout(Duration::from_secs(5), send_loop(&sink, rx, &shutdown))
            .await
            .expect("the loop ends at shutdown");
        assert!(result.is_ok());
        assert_eq!(*sink.delivered.lock().unwrap(), ["queued 1", "queued 2"]);
        drop(tx);
    }
}
