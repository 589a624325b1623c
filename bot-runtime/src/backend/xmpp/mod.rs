//! The XMPP backend, on tokio-xmpp 6 (xmpp-rs): client-to-server with STARTTLS and SASL,
//! presence, multi-user chat rooms (joined on start and after every reconnect), one-to-one
//! chats, replies where they were asked, `extra.xmpp` HTML as XHTML-IM.
//!
//! tokio-xmpp is used without any of its features: its built-in connectors trust a fixed
//! root store and resolve SRV records through hickory (another ~40 crates), and its
//! `Client` retries refused passwords forever. So [`connect`] supplies the STARTTLS
//! connector (system roots plus `ca_file`, ring) and the login loop (the shared
//! [`supervise`] loop: jittered backoff, stop on refused credentials), and this module
//! drives tokio-xmpp's `StanzaStream`, which does resource binding, stream management,
//! keep-alive pings and calling the login loop again when the connection drops; should its
//! worker stop, [`supervise`] starts a new one. [`rooms`] decides what a stanza means;
//! [`render`] builds the replies.

mod connect;
mod render;
mod rooms;

use std::collections::VecDeque;
use std::time::Duration;

use bot_config::XmppSpec;
use futures_util::StreamExt as _;
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;
use tokio_xmpp::Stanza;
use tokio_xmpp::jid::{BareJid, Jid};
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::ns;
use tokio_xmpp::parsers::presence::Presence;
use tokio_xmpp::parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};
use tokio_xmpp::stanzastream::{Event, StanzaStream, StreamEvent};
use tokio_xmpp::xmlstream::Timeouts;

use self::connect::StartTlsConnector;
use self::rooms::{PresenceOutcome, Rooms};
use super::backoff::Backoff;
use super::supervisor::{ConnectError, EventStream, SessionEnd, supervise};
use super::{
    Backend, BackendError, BackendIo, BoxFuture, Capabilities, ConnState, Outgoing, Target,
};
use crate::secret::{self, Secret};

/// Replies held while offline or not yet back in their room; beyond this the oldest go.
const MAX_PENDING: usize = 1_000;
/// How long shutdown waits for the stream to close cleanly.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Stanzas the stream queues in each direction.
const QUEUE_DEPTH: usize = 64;

/// The XMPP backend.
pub struct XmppBackend {
    jid: BareJid,
    password: Secret,
    connector: StartTlsConnector,
    rooms: Vec<BareJid>,
    nickname: String,
    timeouts: Timeouts,
}

impl std::fmt::Debug for XmppBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XmppBackend")
            .field("jid", &self.jid)
            .field("password", &self.password)
            .field("connector", &self.connector)
            .field("rooms", &self.rooms)
            .field("nickname", &self.nickname)
            .finish()
    }
}

fn config(what: &'static str, reason: impl Into<String>) -> BackendError {
    BackendError::Config {
        what,
        reason: reason.into(),
    }
}

impl XmppBackend {
    /// The backend for a definition: parses the JIDs, resolves the password and loads the
    /// TLS roots now, so mistakes show at start.
    pub fn new(spec: &XmppSpec) -> Result<Self, BackendError> {
        let jid = BareJid::new(&spec.jid)
            .map_err(|e| config("backend.jid", format!("`{}`: {e}", spec.jid)))?;
        if jid.node().is_none() {
            return Err(config(
                "backend.jid",
                format!("`{}` has no user part", spec.jid),
            ));
        }
        let password = secret::resolve(&spec.password)?;
        let rooms = spec
            .rooms
            .iter()
            .map(|r| BareJid::new(r).map_err(|e| config("backend.rooms", format!("`{r}`: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let host = if spec.server.is_empty() {
            jid.domain().as_str().to_owned()
        } else {
            spec.server.to_string()
        };
        let tls = if spec.tls {
            let config = crate::tls::client_config(spec.ca_file.as_deref())
                .map_err(|e| config("backend.ca_file", e.to_string()))?;
            Some(TlsConnector::from(config))
        } else {
            None
        };
        let nickname = if spec.nickname.is_empty() {
            jid.node()
                .map(|n| n.as_str())
                .unwrap_or("st2bot")
                .to_owned()
        } else {
            spec.nickname.to_string()
        };
        Ok(Self {
            jid,
            password,
            connector: StartTlsConnector {
                host,
                port: spec.port,
                tls,
            },
            rooms,
            nickname,
            timeouts: Timeouts {
                read_timeout: Duration::from_secs(90),
                response_timeout: Duration::from_secs(60),
            },
        })
    }
}

impl Backend for XmppBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_message_len: render::MAX_BODY,
            rich: true,
            threads: false,
            edit: false,
            buttons: false,
        }
    }

    fn run(self: Box<Self>, io: BackendIo) -> BoxFuture<'static, Result<(), BackendError>> {
        Box::pin(run(*self, io))
    }
}

/// The connection-independent state of the backend loop.
struct Driver {
    io: BackendIo,
    own: BareJid,
    rooms: Rooms,
    online: bool,
    /// Replies waiting for the connection or for their room.
    pending: VecDeque<Outgoing>,
}

impl Driver {
    fn report(&self) {
        let state = if self.online && self.rooms.settled() {
            ConnState::Connected
        } else {
            ConnState::Connecting
        };
        self.io.state.send_if_modified(|current| {
            if *current == state {
                false
            } else {
                *current = state;
                true
            }
        });
    }

    /// Whether a reply can go out now.
    fn deliverable(&self, out: &Outgoing) -> bool {
        if !self.online {
            return false;
        }
        match &out.target {
            Target::Direct { .. } => true,
            Target::Room { id, .. } => match BareJid::new(id) {
                Ok(room) => self.rooms.is_joined(&room) || !self.configured(&room),
                Err(_) => true,
            },
        }
    }

    fn configured(&self, room: &BareJid) -> bool {
        self.rooms.knows(room)
    }

    fn hold(&mut self, out: Outgoing) {
        if self.pending.len() >= MAX_PENDING {
            tracing::warn!("too many XMPP replies waiting for the connection; dropping the oldest");
            self.pending.pop_front();
        }
        self.pending.push_back(out);
    }
}

async fn send(stream: &StanzaStream, stanza: Stanza) {
    // The token reports progress; the stream queues and retransmits on its own.
    let _token = stream.send(Box::new(stanza)).await;
}

async fn send_reply(stream: &StanzaStream, out: &Outgoing) {
    match render::messages(out) {
        Ok(messages) => {
            for message in messages {
                tracing::debug!(to = ?message.to.as_ref().map(|j| j.to_string()), html = !message.payloads.is_empty(), "XMPP reply sent");
                send(stream, Stanza::Message(message)).await;
            }
        }
        Err(error) => tracing::error!(%error, "dropping an XMPP reply"),
    }
}

/// Sends every held reply that can go now, in order.
async fn flush(stream: &StanzaStream, driver: &mut Driver) {
    let mut kept = VecDeque::new();
    while let Some(out) = driver.pending.pop_front() {
        if driver.deliverable(&out) {
            send_reply(stream, &out).await;
        } else {
            kept.push_back(out);
        }
    }
    driver.pending = kept;
}

/// Answers IQ requests: pings get a result, everything else `service-unavailable`.
fn answer_iq(iq: Iq) -> Option<Iq> {
    let (from, id, payload) = match iq {
        Iq::Get {
            from, id, payload, ..
        }
        | Iq::Set {
            from, id, payload, ..
        } => (from, id, payload),
        Iq::Result { .. } | Iq::Error { .. } => return None,
    };
    if payload.is("ping", ns::PING) {
        return Some(Iq::Result {
            from: None,
            to: from,
            id,
            payload: None,
        });
    }
    Some(Iq::Error {
        from: None,
        to: from,
        id,
        error: StanzaError::new(
            ErrorType::Cancel,
            DefinedCondition::ServiceUnavailable,
            "en",
            "not supported by this bot",
        ),
        payload: None,
    })
}

async fn run(backend: XmppBackend, io: BackendIo) -> Result<(), BackendError> {
    let shutdown = io.shutdown.clone();
    let state = io.state.clone();
    let mut xmpp = Xmpp {
        driver: Driver {
            io,
            own: backend.jid.clone(),
            rooms: Rooms::new(backend.rooms.clone(), &backend.nickname),
            online: false,
            pending: VecDeque::new(),
        },
        backend,
    };
    let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    let result = supervise(&mut xmpp, backoff, &shutdown, &state).await;
    if let Err(error) = &result {
        tracing::error!(%error, jid = %xmpp.backend.jid, "XMPP backend stopped");
        let _ = state.send(ConnState::Failed(error.to_string()));
    }
    result
}

/// The backend as the [`supervise`] loop runs it: one `StanzaStream` per connection (it
/// reconnects and resumes by itself, logging in through [`connect::reconnector`]), a new
/// one only if its worker stops, which is not expected.
struct Xmpp {
    backend: XmppBackend,
    driver: Driver,
}

impl EventStream for Xmpp {
    /// The stream, and where its login loop reports refused credentials.
    type Connection = (StanzaStream, mpsc::UnboundedReceiver<BackendError>);

    fn service(&self) -> &'static str {
        "xmpp"
    }

    async fn connect(&mut self) -> Result<Self::Connection, ConnectError> {
        let backend = &self.backend;
        let (refused_tx, refused) = mpsc::unbounded_channel();
        let reconnector = connect::reconnector(
            backend.connector.clone(),
            Jid::from(backend.jid.clone()),
            backend.password.clone(),
            backend.timeouts,
            refused_tx,
        );
        Ok((
            StanzaStream::new(Box::new(reconnector), QUEUE_DEPTH),
            refused,
        ))
    }

    async fn session(&mut self, (stream, refused): Self::Connection) -> SessionEnd {
        serve(&mut self.driver, stream, refused).await
    }
}

/// Runs one `StanzaStream` (which itself reconnects) until shutdown, refused credentials
/// (from its login loop, on `refused`) or the end of its worker.
async fn serve(
    driver: &mut Driver,
    mut stream: StanzaStream,
    mut refused: mpsc::UnboundedReceiver<BackendError>,
) -> SessionEnd {
    driver.online = false;
    loop {
        tokio::select! {
            biased;
            () = driver.io.shutdown.cancelled() => {
                close(stream, driver).await;
                return SessionEnd::Shutdown;
            }
            Some(error) = refused.recv() => {
                // Offline: dropping the stream stops its worker and the login task.
                drop(stream);
                return SessionEnd::Fatal(error);
            }
            event = stream.next() => match event {
                None => {
                    tracing::warn!("XMPP stream worker ended; starting a new one");
                    return SessionEnd::Closed { healthy: false, pause: None };
                }
                Some(Event::Stream(StreamEvent::Reset { bound_jid, .. })) => {
                    tracing::info!(jid = %bound_jid, "XMPP session started");
                    driver.online = true;
                    send(&stream, Stanza::Presence(Presence::available())).await;
                    for join in driver.rooms.join_all() {
                        send(&stream, Stanza::Presence(join)).await;
                    }
                    flush(&stream, driver).await;
                    driver.report();
                }
                Some(Event::Stream(StreamEvent::Suspended)) => {
                    tracing::warn!("XMPP connection lost; reconnecting");
                    driver.online = false;
                    driver.rooms.suspend();
                    driver.report();
                }
                Some(Event::Stream(StreamEvent::Resumed)) => {
                    tracing::info!("XMPP session resumed");
                    driver.online = true;
                    driver.rooms.resume();
                    flush(&stream, driver).await;
                    driver.report();
                }
                Some(Event::Stanza(Stanza::Message(message))) => {
                    if let Some(incoming) = driver.rooms.classify(&message, &driver.own) {
                        tracing::debug!(user = %incoming.user, room = ?incoming.room.as_ref().map(|r| &r.name), mentioned = incoming.mentioned, "XMPP message received");
                        if driver.io.incoming.send(incoming).await.is_err() {
                            tracing::debug!("the bot no longer takes messages; dropping one");
                        }
                    }
                }
                Some(Event::Stanza(Stanza::Presence(presence))) => {
                    match driver.rooms.on_presence(&presence) {
                        Some(PresenceOutcome::Joined(room)) => {
                            tracing::info!(room = %room, "joined room");
                            flush(&stream, driver).await;
                        }
                        Some(PresenceOutcome::Send(join)) => send(&stream, Stanza::Presence(join)).await,
                        Some(PresenceOutcome::Refused(room, reason)) => {
                            tracing::warn!(room = %room, %reason, "cannot join room");
                        }
                        None => {}
                    }
                    driver.report();
                }
                Some(Event::Stanza(Stanza::Iq(iq))) => {
                    if let Some(answer) = answer_iq(iq) {
                        send(&stream, Stanza::Iq(answer)).await;
                    }
                }
            },
            reply = driver.io.outgoing.recv() => match reply {
                Some(out) => {
                    if driver.deliverable(&out) {
                        send_reply(&stream, &out).await;
                    } else {
                        driver.hold(out);
                    }
                }
                None => {
                    close(stream, driver).await;
                    return SessionEnd::Shutdown;
                }
            },
        }
    }
}

/// Sends what can still go, says goodbye and closes the stream.
async fn close(stream: StanzaStream, driver: &mut Driver) {
    while let Ok(out) = driver.io.outgoing.try_recv() {
        driver.hold(out);
    }
    if !driver.online {
        if !driver.pending.is_empty() {
            tracing::warn!(
                dropped = driver.pending.len(),
                "shutting down offline with XMPP replies unsent"
            );
        }
        // Nothing to close cleanly; dropping the stream stops its worker and login task.
        drop(stream);
        return;
    }
    flush(&stream, driver).await;
    send(&stream, Stanza::Presence(Presence::unavailable())).await;
    if !driver.pending.is_empty() {
        tracing::warn!(
            dropped = driver.pending.len(),
            "shutting down with XMPP replies unsent (rooms not joined)"
        );
    }
    if tokio::time::timeout(CLOSE_TIMEOUT, stream.close())
        .await
        .is_err()
    {
        tracing::warn!("the XMPP stream did not close in time");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_xmpp::minidom::Element;

    #[test]
    fn answers_pings_and_refuses_other_requests() {
        let ping: Element = "<iq xmlns='jabber:client' type='get' id='p1' from='localhost'><ping xmlns='urn:xmpp:ping'/></iq>".parse().unwrap();
        let answer = answer_iq(Iq::try_from(ping).unwrap()).unwrap();
        assert!(matches!(answer, Iq::Result { ref id, .. } if id == "p1"));
        let version: Element = "<iq xmlns='jabber:client' type='get' id='v1' from='a@localhost/x'><query xmlns='jabber:iq:version'/></iq>".parse().unwrap();
        let answer = answer_iq(Iq::try_from(version).unwrap()).unwrap();
        assert!(
            matches!(answer, Iq::Error { ref error, .. } if error.defined_condition == DefinedCondition::ServiceUnavailable)
        );
        let result: Element = "<iq xmlns='jabber:client' type='result' id='r1'/>"
            .parse()
            .unwrap();
        assert_eq!(answer_iq(Iq::try_from(result).unwrap()), None);
    }
}
