//! The IRC backend: a small client on tokio (plain TCP or TLS through tokio-rustls), written
//! here rather than taken from the `irc` crate because the bot needs exact control over what
//! that crate leaves to its users anyway — reconnecting with backoff and rejoining, the SASL
//! exchange, PEM `ca_file` trust with the ring provider, and the byte budget of every line
//! including the `nick!user@host` prefix the server adds.
//!
//! [`session`] holds the protocol state (no I/O), [`render`] turns replies into lines,
//! [`proto`] is the wire format. This module drives them: connect, register, serve, pace
//! what the bot says (a short burst, then a steady rate, so servers do not kick it for
//! flooding), detect dead links with `PING`, and on shutdown flush queued replies and
//! `QUIT`. Reconnecting (jittered exponential backoff, stopping on refused credentials) is
//! the shared [`supervise`] loop's; replies still queued for the pacer survive a reconnect.

mod proto;
mod render;
mod session;

use std::collections::VecDeque;
use std::time::Duration;

use bot_config::{IrcAuth, IrcSpec};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

use self::proto::Message;
use self::render::Line;
use self::session::{Action, Session, Settings};
use super::backoff::Backoff;
use super::supervisor::{ConnectError, EventStream, SessionEnd, supervise};
use super::{
    Backend, BackendError, BackendIo, BoxFuture, Capabilities, ConnState, Incoming, Outgoing,
};
use crate::secret;

/// Time allowed for TCP connect plus TLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Time allowed from connect to the end of registration.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long to wait for NickServ to confirm `IDENTIFY` before joining anyway.
const IDENTIFY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for the server to answer the channel joins.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Send a `PING` after this much silence from the server…
const IDLE_PING: Duration = Duration::from_secs(90);
/// …and drop the connection when the silence reaches this.
const DEAD_LINK: Duration = Duration::from_secs(180);
/// Longest line accepted from the server (tags may make lines longer than 512 bytes).
const MAX_INCOMING_LINE: usize = 16 * 1024;
/// Replies queued while waiting for the pacer; more blocks the dispatcher (backpressure).
const MAX_QUEUED_LINES: usize = 2_000;
/// How long shutdown waits for queued lines to go out before quitting.
const FLUSH_ON_SHUTDOWN: Duration = Duration::from_secs(10);

/// Flood control: every line costs `interval`; lines go out while the clock is less than
/// `burst` ahead of now (the RFC 1459 §8.10 scheme): a short burst, then one line per
/// `interval`.
#[derive(Clone, Copy, Debug)]
pub struct Pacing {
    /// Cost of one line.
    pub interval: Duration,
    /// How far ahead the clock may run (burst size ≈ `burst / interval`).
    pub burst: Duration,
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(500),
            burst: Duration::from_secs(2),
        }
    }
}

/// The pacing clock.
#[derive(Debug)]
struct Pacer {
    pacing: Pacing,
    clock: Instant,
}

impl Pacer {
    fn new(pacing: Pacing) -> Self {
        Self {
            pacing,
            clock: Instant::now(),
        }
    }

    /// When the next line may go.
    fn ready_at(&self) -> Instant {
        self.clock
            .checked_sub(self.pacing.burst)
            .unwrap_or(self.clock)
    }

    /// Accounts for one line sent now.
    fn spend(&mut self) {
        self.clock = self.clock.max(Instant::now()) + self.pacing.interval;
    }
}

/// Where to connect and how.
#[derive(Clone)]
struct Endpoint {
    host: String,
    port: u16,
    tls: Option<TlsConnector>,
}

/// The IRC backend.
pub struct IrcBackend {
    endpoint: Endpoint,
    settings: Settings,
    pacing: Pacing,
}

impl std::fmt::Debug for IrcBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IrcBackend")
            .field("host", &self.endpoint.host)
            .field("port", &self.endpoint.port)
            .field("tls", &self.endpoint.tls.is_some())
            .field("settings", &self.settings)
            .finish()
    }
}

impl IrcBackend {
    /// The backend for a definition: resolves the password and loads the TLS roots now, so
    /// mistakes show at start rather than at the first connection.
    pub fn new(spec: &IrcSpec) -> Result<Self, BackendError> {
        let password = spec.password.as_ref().map(secret::resolve).transpose()?;
        if spec.auth != IrcAuth::None && password.is_none() {
            return Err(BackendError::Config {
                what: "backend.password",
                reason: "IRC authentication needs a password".to_owned(),
            });
        }
        if spec.server.is_empty() {
            return Err(BackendError::Config {
                what: "backend.server",
                reason: "no IRC server given".to_owned(),
            });
        }
        let tls = if spec.tls {
            let config = crate::tls::client_config(spec.ca_file.as_deref()).map_err(|e| {
                BackendError::Config {
                    what: "backend.ca_file",
                    reason: e.to_string(),
                }
            })?;
            Some(TlsConnector::from(config))
        } else {
            None
        };
        let account = if spec.username.is_empty() {
            spec.nickname.to_string()
        } else {
            spec.username.to_string()
        };
        Ok(Self {
            endpoint: Endpoint {
                host: spec.server.to_string(),
                port: spec.port,
                tls,
            },
            settings: Settings {
                nickname: spec.nickname.to_string(),
                account,
                password,
                auth: spec.auth,
                rooms: spec.rooms.iter().map(|r| r.to_string()).collect(),
                realname: "st2bot StackStorm ChatOps".to_owned(),
            },
            pacing: Pacing::default(),
        })
    }

    /// Replaces the flood-control pacing (the default suits public networks).
    pub fn with_pacing(mut self, pacing: Pacing) -> Self {
        self.pacing = pacing;
        self
    }
}

impl Backend for IrcBackend {
    fn capabilities(&self) -> Capabilities {
        // A conservative per-line budget: nick, the longest user and host, a 50-byte channel.
        let worst_mask = self.settings.nickname.len() + 1 + 10 + 1 + 63;
        Capabilities {
            max_message_len: render::text_budget(worst_mask, &"#".repeat(50)),
            rich: false,
            threads: false,
            edit: false,
            buttons: false,
        }
    }

    fn run(self: Box<Self>, io: BackendIo) -> BoxFuture<'static, Result<(), BackendError>> {
        Box::pin(run(*self, io))
    }
}

/// What survives from one connection to the next.
struct Shared {
    io: BackendIo,
    /// Lines waiting for the pacer (kept across reconnects: replies are not lost).
    queue: VecDeque<Line>,
    /// `outgoing` has closed: finish once the queue is empty.
    outgoing_closed: bool,
}

/// The backend as the [`supervise`] loop runs it: one TCP (or TLS) connection per
/// [`EventStream::connect`], registration and serving per [`EventStream::session`].
struct Irc {
    backend: IrcBackend,
    shared: Shared,
}

async fn run(backend: IrcBackend, io: BackendIo) -> Result<(), BackendError> {
    let shutdown = io.shutdown.clone();
    let state = io.state.clone();
    let mut irc = Irc {
        backend,
        shared: Shared {
            io,
            queue: VecDeque::new(),
            outgoing_closed: false,
        },
    };
    let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    let result = supervise(&mut irc, backoff, &shutdown, &state).await;
    if let Err(error) = &result {
        tracing::error!(%error, server = %irc.backend.endpoint.host, "IRC backend stopped");
        let _ = state.send(ConnState::Failed(error.to_string()));
    }
    result
}

impl EventStream for Irc {
    type Connection = Box<dyn Transport>;

    fn service(&self) -> &'static str {
        "irc"
    }

    async fn connect(&mut self) -> Result<Box<dyn Transport>, ConnectError> {
        let endpoint = &self.backend.endpoint;
        tokio::select! {
            opened = timeout(CONNECT_TIMEOUT, open(endpoint)) => match opened {
                Ok(Ok(stream)) => Ok(stream),
                Ok(Err(reason)) => Err(ConnectError::Retry(reason)),
                Err(_) => Err(ConnectError::Retry(format!(
                    "connecting to {}:{} timed out",
                    endpoint.host, endpoint.port
                ))),
            },
            () = self.shared.io.shutdown.cancelled() => Err(ConnectError::Shutdown),
        }
    }

    async fn session(&mut self, stream: Box<dyn Transport>) -> SessionEnd {
        let end = connection(&self.backend, &mut self.shared, stream).await;
        if matches!(end, SessionEnd::Shutdown) {
            let _ = self.shared.io.state.send(ConnState::Connecting);
        }
        end
    }
}

/// A byte stream, plain or TLS.
trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

async fn open(endpoint: &Endpoint) -> Result<Box<dyn Transport>, String> {
    let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
        .await
        .map_err(|e| format!("cannot connect to {}:{}: {e}", endpoint.host, endpoint.port))?;
    let _ = tcp.set_nodelay(true);
    match &endpoint.tls {
        None => Ok(Box::new(tcp)),
        Some(connector) => {
            let name = ServerName::try_from(endpoint.host.clone())
                .map_err(|e| format!("`{}` is not a valid TLS server name: {e}", endpoint.host))?;
            let tls = connector
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake with {} failed: {e}", endpoint.host))?;
            Ok(Box::new(tls))
        }
    }
}

/// Reads one line, at most [`MAX_INCOMING_LINE`] bytes (longer ones are cut), decoding
/// invalid UTF-8 lossily. `None` at end of stream. Cancel-safe: a partial line stays in
/// `buf` for the next call.
async fn read_line<R: AsyncBufReadExt + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<String>> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            if buf.is_empty() {
                return Ok(None);
            }
            let line = String::from_utf8_lossy(buf).into_owned();
            buf.clear();
            return Ok(Some(line));
        }
        let (chunk, found) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let room = MAX_INCOMING_LINE.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = chunk.len();
        reader.consume(used);
        if found {
            let line = String::from_utf8_lossy(buf).into_owned();
            buf.clear();
            return Ok(Some(line));
        }
    }
}

/// Writes one line plus CRLF; `secret` lines are not logged.
async fn write_line<W: AsyncWrite + Unpin>(
    writer: &mut W,
    line: &str,
    secret: bool,
) -> Result<(), String> {
    if secret {
        tracing::trace!(line = "<redacted>", "irc >>");
    } else {
        tracing::trace!(line, "irc >>");
    }
    let mut bytes = Vec::with_capacity(line.len() + 2);
    bytes.extend_from_slice(line.as_bytes());
    bytes.extend_from_slice(b"\r\n");
    writer
        .write_all(&bytes)
        .await
        .map_err(|e| format!("write failed: {e}"))
}

/// Takes the next piece of the first queued line that fits the line limit, re-queueing
/// the rest of it in front.
fn next_piece(queue: &mut VecDeque<Line>, mask_len: usize) -> Option<String> {
    let line = queue.pop_front()?;
    let budget = render::text_budget(mask_len, &line.target);
    let mut pieces = render::fit(&line.text, budget).into_iter();
    let first = pieces.next()?;
    let rest: Vec<String> = pieces.collect();
    if !rest.is_empty() {
        queue.push_front(Line {
            target: line.target.clone(),
            text: rest.concat(),
        });
    }
    Some(proto::privmsg(&line.target, &first))
}

/// One connection, from the open TCP (or TLS) stream to its end.
async fn connection(
    backend: &IrcBackend,
    shared: &mut Shared,
    stream: Box<dyn Transport>,
) -> SessionEnd {
    let endpoint = &backend.endpoint;
    tracing::info!(server = %endpoint.host, port = endpoint.port, tls = endpoint.tls.is_some(), "connected to IRC server");
    let (read_half, mut writer) = tokio::io::split(stream);
    let mut reader = BufReader::new(read_half);
    let mut buf = Vec::new();
    let mut session = Session::new(backend.settings.clone());
    let mut pacer = Pacer::new(backend.pacing);
    let mut last_heard = Instant::now();
    let mut pinged = false;
    let register_deadline = Instant::now() + REGISTER_TIMEOUT;
    // What the session waits for (NickServ, channel joins) and until when.
    let mut waiting: Option<(Waiting, Instant)> = None;
    let mut ready = false;

    for action in session.start() {
        if let Action::Send { line, secret } = action
            && let Err(e) = write_line(&mut writer, &line, secret).await
        {
            return SessionEnd::Dropped(e);
        }
    }

    loop {
        let can_send = ready && !shared.queue.is_empty();
        let can_take = !shared.outgoing_closed && shared.queue.len() < MAX_QUEUED_LINES;
        if shared.outgoing_closed && shared.queue.is_empty() {
            quit(&mut writer, "bye").await;
            return SessionEnd::Shutdown;
        }
        let idle_deadline = last_heard + if pinged { DEAD_LINK } else { IDLE_PING };
        let now_waiting = if ready || !session.registered() {
            None
        } else if session.awaiting_identify() {
            Some((Waiting::Identify, IDENTIFY_TIMEOUT))
        } else {
            Some((Waiting::Joins, JOIN_TIMEOUT))
        };
        match (now_waiting, waiting) {
            (None, _) => waiting = None,
            (Some((kind, _)), Some((current, _))) if kind == current => {}
            (Some((kind, limit)), _) => waiting = Some((kind, Instant::now() + limit)),
        }
        tokio::select! {
            biased;
            () = shared.io.shutdown.cancelled() => {
                flush_and_quit(&mut writer, &mut session, shared, &mut pacer, ready).await;
                return SessionEnd::Shutdown;
            }
            read = read_line(&mut reader, &mut buf) => {
                let line = match read {
                    Ok(Some(line)) => line,
                    Ok(None) => return SessionEnd::Dropped("server closed the connection".to_owned()),
                    Err(e) => return SessionEnd::Dropped(format!("read failed: {e}")),
                };
                last_heard = Instant::now();
                pinged = false;
                tracing::trace!(line = %line.trim_end(), "irc <<");
                let Some(message) = Message::parse(&line) else { continue };
                for action in session.handle(&message) {
                    match apply(action, &mut writer, shared, &mut pacer).await {
                        Applied::Continue => {}
                        Applied::Ready => {
                            ready = true;
                            let _ = shared.io.state.send(ConnState::Connected);
                            tracing::info!(nick = %session.nick(), "IRC backend ready");
                        }
                        Applied::End(ended) => return ended,
                    }
                }
            }
            () = sleep_until(pacer.ready_at()), if can_send => {
                if let Some(line) = next_piece(&mut shared.queue, session.mask_len()) {
                    pacer.spend();
                    if let Err(e) = write_line(&mut writer, &line, false).await {
                        return SessionEnd::Dropped(e);
                    }
                }
            }
            reply = shared.io.outgoing.recv(), if can_take => {
                match reply {
                    Some(reply) => enqueue(&mut shared.queue, &reply),
                    None => shared.outgoing_closed = true,
                }
            }
            () = sleep_until(waiting.map(|(_, at)| at).unwrap_or(register_deadline)), if waiting.is_some() => {
                waiting = None;
                for action in session.timed_out() {
                    match apply(action, &mut writer, shared, &mut pacer).await {
                        Applied::Continue => {}
                        Applied::Ready => {
                            ready = true;
                            let _ = shared.io.state.send(ConnState::Connected);
                        }
                        Applied::End(ended) => return ended,
                    }
                }
            }
            () = sleep_until(register_deadline), if !session.registered() => {
                return SessionEnd::Dropped("registration timed out".to_owned());
            }
            () = sleep_until(idle_deadline) => {
                if pinged {
                    return SessionEnd::Dropped(format!("no reply from the server for {}s", DEAD_LINK.as_secs()));
                }
                pinged = true;
                if let Err(e) = write_line(&mut writer, &proto::line("PING", &[&endpoint.host]), false).await {
                    return SessionEnd::Dropped(e);
                }
            }
        }
    }
}

/// What a registered connection is waiting for before it is ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Waiting {
    /// NickServ's confirmation of `IDENTIFY`.
    Identify,
    /// Answers to the channel joins.
    Joins,
}

/// What applying an action means for the connection loop.
enum Applied {
    Continue,
    Ready,
    End(SessionEnd),
}

async fn apply<W: AsyncWrite + Unpin>(
    action: Action,
    writer: &mut W,
    shared: &mut Shared,
    pacer: &mut Pacer,
) -> Applied {
    match action {
        Action::Send { line, secret } => {
            pacer.spend();
            match write_line(writer, &line, secret).await {
                Ok(()) => Applied::Continue,
                Err(e) => Applied::End(SessionEnd::Dropped(e)),
            }
        }
        Action::Deliver(message) => {
            deliver(shared, message).await;
            Applied::Continue
        }
        Action::Ready => Applied::Ready,
        Action::AuthFailed(reason) => Applied::End(SessionEnd::Fatal(BackendError::Auth {
            service: "IRC",
            reason,
        })),
        Action::Invalid(reason) => Applied::End(SessionEnd::Fatal(BackendError::Config {
            what: "backend.nickname",
            reason,
        })),
        Action::Reconnect(reason) => {
            let _ = writer.shutdown().await;
            Applied::End(SessionEnd::Dropped(reason))
        }
    }
}

async fn deliver(shared: &mut Shared, message: Incoming) {
    tracing::debug!(user = %message.user, room = ?message.room.as_ref().map(|r| &r.name), mentioned = message.mentioned, "IRC message received");
    if shared.io.incoming.send(message).await.is_err() {
        tracing::debug!("the bot no longer takes messages; dropping one");
    }
}

fn enqueue(queue: &mut VecDeque<Line>, reply: &Outgoing) {
    let lines = render::lines(reply);
    tracing::debug!(
        target = render::target(reply),
        lines = lines.len(),
        "IRC reply queued"
    );
    queue.extend(lines);
}

/// Sends what is queued (paced, for at most [`FLUSH_ON_SHUTDOWN`]) and quits.
async fn flush_and_quit<W: AsyncWrite + Unpin>(
    writer: &mut W,
    session: &mut Session,
    shared: &mut Shared,
    pacer: &mut Pacer,
    ready: bool,
) {
    while let Ok(reply) = shared.io.outgoing.try_recv() {
        enqueue(&mut shared.queue, &reply);
    }
    if ready {
        let deadline = Instant::now() + FLUSH_ON_SHUTDOWN;
        while !shared.queue.is_empty() && Instant::now() < deadline {
            sleep_until(pacer.ready_at().min(deadline)).await;
            if let Some(line) = next_piece(&mut shared.queue, session.mask_len()) {
                pacer.spend();
                if write_line(writer, &line, false).await.is_err() {
                    break;
                }
            }
        }
    }
    if !shared.queue.is_empty() {
        tracing::warn!(
            dropped = shared.queue.len(),
            "shutting down with IRC lines unsent"
        );
    }
    quit(writer, "shutting down").await;
}

async fn quit<W: AsyncWrite + Unpin>(writer: &mut W, reason: &str) {
    let _ = write_line(writer, &proto::line("QUIT", &[reason]), false).await;
    let _ = writer.flush().await;
    let _ = timeout(Duration::from_secs(2), writer.shutdown()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_of_a_long_line_stay_in_order_and_within_the_limit() {
        let mut queue = VecDeque::from([
            Line {
                target: "#ops".into(),
                text: "a".repeat(1000),
            },
            Line {
                target: "#ops".into(),
                text: "next".into(),
            },
        ]);
        let mask = 30;
        let mut sent = Vec::new();
        while let Some(line) = next_piece(&mut queue, mask) {
            sent.push(line);
        }
        assert_eq!(sent.len(), 4, "{sent:?}");
        for line in &sent {
            assert!(
                1 + mask + 1 + line.len() + 2 <= render::MAX_LINE,
                "{}",
                line.len()
            );
        }
        assert_eq!(sent[3], "PRIVMSG #ops :next");
        let text: String = sent[..3]
            .iter()
            .map(|l| l.trim_start_matches("PRIVMSG #ops :"))
            .collect();
        assert_eq!(text, "a".repeat(1000));
    }

    #[tokio::test(start_paused = true)]
    async fn pacer_allows_a_burst_then_a_steady_rate() {
        let mut pacer = Pacer::new(Pacing::default());
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..8 {
            sleep_until(pacer.ready_at()).await;
            times.push(Instant::now() - start);
            pacer.spend();
        }
        assert!(times[..5].iter().all(|t| *t == Duration::ZERO), "{times:?}");
        assert_eq!(times[5], Duration::from_millis(500));
        assert_eq!(times[7], Duration::from_millis(1500));
    }

    #[tokio::test]
    async fn long_incoming_lines_are_cut_not_buffered_forever() {
        let mut data = vec![b'x'; MAX_INCOMING_LINE * 2];
        data.extend_from_slice(b"\r\nPING :a\r\n");
        let mut reader = BufReader::new(&data[..]);
        let mut buf = Vec::new();
        let first = read_line(&mut reader, &mut buf).await.unwrap().unwrap();
        assert_eq!(first.len(), MAX_INCOMING_LINE);
        let second = read_line(&mut reader, &mut buf).await.unwrap().unwrap();
        assert_eq!(second, "PING :a\r\n");
        assert_eq!(read_line(&mut reader, &mut buf).await.unwrap(), None);
    }
}
