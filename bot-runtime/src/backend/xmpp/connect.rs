//! Opening and authenticating one XMPP client-to-server stream: TCP to the configured host,
//! STARTTLS (RFC 6120 §5) verified against the system roots plus `ca_file` for the JID's
//! domain, then SASL through tokio-xmpp (SCRAM-SHA-256, SCRAM-SHA-1 or PLAIN, whichever the
//! server offers first in that order) and the stream restart. Resource binding and
//! everything after it is tokio-xmpp's `StanzaStream`, which calls [`reconnector`] whenever
//! it needs a fresh stream; behind it the login loop runs on the shared [`supervise`] loop
//! (its backoff, its "wrong password, stop"), as the [`EventStream`] [`Login`].

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use sasl::common::{ChannelBinding, Credentials};
use tokio::io::{AsyncRead, AsyncWrite, BufStream};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_xmpp::connect::ServerConnector;
use tokio_xmpp::error::{AuthError, ProtocolError};
use tokio_xmpp::jid::Jid;
use tokio_xmpp::parsers::{ns, starttls};
use tokio_xmpp::stanzastream::Connection;
use tokio_xmpp::xmlstream::{
    FallibleStreamElement, PendingFeaturesRecv, ReadError, StreamHeader, Timeouts,
    XmppStreamElement, initiate_stream,
};

use tokio_util::sync::{CancellationToken, DropGuard};

use crate::backend::backoff::{Backoff, STABLE_AFTER};
use crate::backend::supervisor::{ConnectError, EventStream, SessionEnd, supervise};
use crate::backend::{BackendError, ConnState};
use crate::secret::Secret;

/// Time allowed for one whole login (connect, TLS, SASL, restart).
const LOGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// A byte stream, plain or TLS.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

/// Connects to a fixed host and port and upgrades with STARTTLS (or stays plain when the
/// definition says `tls: false`).
#[derive(Clone)]
pub(crate) struct StartTlsConnector {
    /// Host to connect to.
    pub(crate) host: String,
    /// Port.
    pub(crate) port: u16,
    /// `None`: plain TCP, no STARTTLS.
    pub(crate) tls: Option<TlsConnector>,
}

impl std::fmt::Debug for StartTlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartTlsConnector")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

fn io_error(message: String) -> tokio_xmpp::Error {
    tokio_xmpp::Error::Io(std::io::Error::other(message))
}

impl ServerConnector for StartTlsConnector {
    type Stream = BufStream<Box<dyn Transport>>;

    async fn connect(
        &self,
        jid: &Jid,
        ns: &'static str,
        timeouts: Timeouts,
    ) -> Result<(PendingFeaturesRecv<Self::Stream>, ChannelBinding), tokio_xmpp::Error> {
        let domain = jid.domain().as_str().to_owned();
        let header = || StreamHeader {
            to: Some(Cow::Owned(domain.clone())),
            from: None,
            id: None,
        };
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| {
                io_error(format!(
                    "cannot connect to {}:{}: {e}",
                    self.host, self.port
                ))
            })?;
        let _ = tcp.set_nodelay(true);
        let plain: Box<dyn Transport> = Box::new(tcp);
        let stream = initiate_stream(BufStream::new(plain), ns, header(), timeouts).await?;
        let Some(connector) = &self.tls else {
            tracing::warn!(host = %self.host, "XMPP without TLS (`tls: false`): the password crosses the network in the clear unless SCRAM is used");
            return Ok((stream, ChannelBinding::None));
        };
        let (features, mut stream) = stream.recv_features::<FallibleStreamElement>().await?;
        if !features.can_starttls() {
            return Err(ProtocolError::NoTls.into());
        }
        stream
            .send(&XmppStreamElement::Starttls(starttls::Nonza::Request(
                starttls::Request,
            )))
            .await?;
        loop {
            match stream
                .next()
                .await
                .map(|v| v.and_then(|v| v.into_read_error()))
            {
                Some(Ok(XmppStreamElement::Starttls(starttls::Nonza::Proceed(_)))) => break,
                Some(Ok(_)) | Some(Err(ReadError::SoftTimeout)) => {}
                Some(Err(ReadError::HardError(e))) => return Err(e.into()),
                Some(Err(ReadError::ParseError(e))) => {
                    return Err(io_error(format!("invalid XML during STARTTLS: {e}")));
                }
                None | Some(Err(ReadError::StreamFooterReceived)) => {
                    return Err(tokio_xmpp::Error::Disconnected);
                }
            }
        }
        let inner = stream.into_inner().into_inner();
        let name = ServerName::try_from(domain.clone())
            .map_err(|e| io_error(format!("`{domain}` is not a valid TLS server name: {e}")))?;
        let tls = connector
            .connect(name, inner)
            .await
            .map_err(|e| io_error(format!("TLS handshake with {domain} failed: {e}")))?;
        let binding = channel_binding(&tls);
        let secure: Box<dyn Transport> = Box::new(tls);
        let stream = initiate_stream(BufStream::new(secure), ns, header(), timeouts).await?;
        Ok((stream, binding))
    }
}

/// `tls-exporter` channel binding (RFC 9266) on TLS 1.3; none on older versions.
fn channel_binding<S>(tls: &tokio_rustls::client::TlsStream<S>) -> ChannelBinding {
    let (_, connection) = tls.get_ref();
    if connection.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3) {
        return ChannelBinding::None;
    }
    match connection.export_keying_material(vec![0u8; 32], b"EXPORTER-Channel-Binding", None) {
        Ok(data) => ChannelBinding::TlsExporter(data),
        Err(_) => ChannelBinding::None,
    }
}

/// The channel binding to announce, given what the server offers. tokio-xmpp tries only
/// the `-PLUS` SCRAM variants when it has binding data, so a server without them (Prosody
/// 0.12 on TLS 1.3) would get PLAIN; announcing `y` ("the client could bind, the server
/// cannot") keeps SCRAM and still lets a server that strips `-PLUS` be caught (RFC 5802 §6).
fn binding_for(offered: &BTreeSet<String>, binding: ChannelBinding) -> ChannelBinding {
    let server_binds = offered.iter().any(|m| m.ends_with("-PLUS"));
    match binding {
        ChannelBinding::TlsExporter(_) | ChannelBinding::TlsUnique(_) if server_binds => binding,
        ChannelBinding::TlsExporter(_) | ChannelBinding::TlsUnique(_) => {
            ChannelBinding::Unsupported
        }
        other => other,
    }
}

/// Connects, authenticates and restarts the stream, ready for resource binding.
pub(crate) async fn login(
    connector: &StartTlsConnector,
    jid: &Jid,
    password: &Secret,
    timeouts: Timeouts,
) -> Result<Connection, tokio_xmpp::Error> {
    let (pending, binding) = connector.connect(jid, ns::JABBER_CLIENT, timeouts).await?;
    let (features, stream) = pending.recv_features::<FallibleStreamElement>().await?;
    let username = jid.node().map(|n| n.as_str()).unwrap_or_default();
    let binding = binding_for(&features.sasl_mechanisms, binding);
    let credentials = Credentials::default()
        .with_username(username)
        .with_password(password.expose())
        .with_channel_binding(binding);
    let stream = tokio_xmpp::client_login(stream, features.sasl_mechanisms, credentials).await?;
    let stream = stream
        .send_header(StreamHeader {
            to: Some(Cow::Owned(jid.domain().as_str().to_owned())),
            from: None,
            id: None,
        })
        .await?;
    let (features, stream) = stream.recv_features::<FallibleStreamElement>().await?;
    Ok(Connection {
        stream: stream.box_stream(),
        features,
        identity: jid.clone(),
    })
}

/// The login loop behind [`reconnector`], as the [`supervise`] loop runs it: each
/// connection is one login, handed to the `StanzaStream` that asked for it; it ends when
/// the stream asks for the next one.
struct Login {
    connector: StartTlsConnector,
    jid: Jid,
    password: Secret,
    timeouts: Timeouts,
    /// Where each call of the reconnector puts its slot.
    requests: mpsc::UnboundedReceiver<oneshot::Sender<Connection>>,
    /// The slot waiting for a stream, once asked for.
    slot: Option<oneshot::Sender<Connection>>,
}

impl EventStream for Login {
    type Connection = Connection;

    fn service(&self) -> &'static str {
        "xmpp"
    }

    /// Waits until a stream is asked for (unless one already is), then logs in once.
    async fn connect(&mut self) -> Result<Connection, ConnectError> {
        if self.slot.is_none() {
            match self.requests.recv().await {
                Some(slot) => self.slot = Some(slot),
                None => return Err(ConnectError::Shutdown),
            }
        }
        let refused = |reason: String| {
            ConnectError::Stop(BackendError::Auth {
                service: "XMPP",
                reason,
            })
        };
        let attempt = tokio::time::timeout(
            LOGIN_TIMEOUT,
            login(&self.connector, &self.jid, &self.password, self.timeouts),
        )
        .await;
        let reason = match attempt {
            Ok(Ok(connection)) => return Ok(connection),
            Ok(Err(tokio_xmpp::Error::Auth(AuthError::Fail(condition)))) => {
                return Err(refused(format!("SASL failure: {condition:?}")));
            }
            Ok(Err(tokio_xmpp::Error::Auth(AuthError::NoMechanism))) => return Err(refused(
                "the server offers no SASL mechanism st2bot supports (SCRAM-SHA-256, SCRAM-SHA-1, PLAIN)"
                    .to_owned(),
            )),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("timed out after {}s", LOGIN_TIMEOUT.as_secs()),
        };
        let connector = &self.connector;
        Err(ConnectError::Retry(format!(
            "login as {} at {}:{}: {reason}",
            self.jid, connector.host, connector.port
        )))
    }

    /// Hands the stream over and waits for the next request: at once after a stream that
    /// lasted (backoff reset), after the backoff's delay after one that did not.
    async fn session(&mut self, connection: Connection) -> SessionEnd {
        tracing::info!(jid = %self.jid, host = %self.connector.host, "XMPP stream authenticated");
        let delivered = Instant::now();
        if let Some(slot) = self.slot.take() {
            let _ = slot.send(connection);
        }
        match self.requests.recv().await {
            None => SessionEnd::Shutdown,
            Some(slot) => {
                self.slot = Some(slot);
                if delivered.elapsed() >= STABLE_AFTER {
                    SessionEnd::Refresh
                } else {
                    SessionEnd::Closed {
                        healthy: false,
                        pause: None,
                    }
                }
            }
        }
    }
}

/// The reconnector's end of the login loop: passes the slots on, and stops the loop when
/// the `StanzaStream` drops it.
struct Requests {
    slots: mpsc::UnboundedSender<oneshot::Sender<Connection>>,
    _stop: DropGuard,
}

impl Requests {
    fn ask(&self, slot: oneshot::Sender<Connection>) {
        let _ = self.slots.send(slot);
    }
}

/// The closure `StanzaStream` calls whenever it needs a stream, and the task behind it that
/// runs [`Login`] on the [`supervise`] loop (jittered backoff) and hands each stream over
/// through the slot it was given. On refused credentials it sends the error on `refused`
/// and keeps the slot open until the stream goes (dropping it would make tokio-xmpp's
/// worker panic).
pub(crate) fn reconnector(
    connector: StartTlsConnector,
    jid: Jid,
    password: Secret,
    timeouts: Timeouts,
    refused: mpsc::UnboundedSender<BackendError>,
) -> impl FnMut(Option<String>, oneshot::Sender<Connection>) + Send + 'static {
    let (slots, requests) = mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let handle = Requests {
        slots,
        _stop: stop.clone().drop_guard(),
    };
    let mut login = Login {
        connector,
        jid,
        password,
        timeouts,
        requests,
        slot: None,
    };
    tokio::spawn(async move {
        // The backend reports the state (online and in its rooms); this loop's reports are
        // not wanted.
        let (state, _) = watch::channel(ConnState::Connecting);
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        if let Err(error) = supervise(&mut login, backoff, &stop, &state).await {
            let _ = refused.send(error);
            if let Some(slot) = &mut login.slot {
                slot.closed().await;
            }
        }
    });
    move |_preferred_location, slot| handle.ask(slot)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(mechs: &[&str]) -> BTreeSet<String> {
        mechs.iter().map(|m| (*m).to_owned()).collect()
    }

    #[test]
    fn channel_binding_follows_what_the_server_offers() {
        let exporter = ChannelBinding::TlsExporter(vec![1; 32]);
        let plus = offered(&["SCRAM-SHA-1", "SCRAM-SHA-1-PLUS", "PLAIN"]);
        let no_plus = offered(&["SCRAM-SHA-1", "PLAIN"]);
        assert!(matches!(
            binding_for(&plus, exporter.clone()),
            ChannelBinding::TlsExporter(_)
        ));
        assert!(matches!(
            binding_for(&no_plus, exporter),
            ChannelBinding::Unsupported
        ));
        assert!(matches!(
            binding_for(&plus, ChannelBinding::None),
            ChannelBinding::None
        ));
    }
}
