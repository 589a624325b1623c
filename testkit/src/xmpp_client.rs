//! A small XMPP client for the tests, separate from the bot's code: STARTTLS trusting only
//! the test server's certificate, SASL through tokio-xmpp, resource binding by tokio-xmpp's
//! `StanzaStream`, one login per client (no reconnection: tests make a new client), MUC
//! join, and helpers to say things and wait for stanzas.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use sasl::common::{ChannelBinding, Credentials};
use tokio::io::BufStream;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_xmpp::Stanza;
use tokio_xmpp::jid::{BareJid, Jid};
use tokio_xmpp::parsers::message::{Lang, Message, MessageType};
use tokio_xmpp::parsers::muc::Muc;
use tokio_xmpp::parsers::muc::user::{MucUser, Status};
use tokio_xmpp::parsers::ns;
use tokio_xmpp::parsers::presence::Presence;
use tokio_xmpp::parsers::starttls;
use tokio_xmpp::stanzastream::{Connection, Event, StanzaStream, StreamEvent};
use tokio_xmpp::xmlstream::{
    FallibleStreamElement, StreamHeader, Timeouts, XmppStreamElement, initiate_stream,
};

async fn login(
    port: u16,
    jid: &Jid,
    password: &str,
    tls: Arc<ClientConfig>,
) -> Result<Connection, String> {
    let domain = jid.domain().as_str().to_owned();
    let header = || StreamHeader {
        to: Some(Cow::Owned(domain.clone())),
        from: None,
        id: None,
    };
    let timeouts = Timeouts::tight();
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let stream = initiate_stream(BufStream::new(tcp), ns::JABBER_CLIENT, header(), timeouts)
        .await
        .map_err(|e| e.to_string())?;
    let (features, mut stream) = stream
        .recv_features::<FallibleStreamElement>()
        .await
        .map_err(|e| e.to_string())?;
    assert!(
        features.can_starttls(),
        "the test server must offer STARTTLS"
    );
    stream
        .send(&XmppStreamElement::Starttls(starttls::Nonza::Request(
            starttls::Request,
        )))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        match stream.next().await {
            Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::Starttls(
                starttls::Nonza::Proceed(_),
            )))) => break,
            Some(Ok(_)) => {}
            other => return Err(format!("no STARTTLS proceed: {other:?}")),
        }
    }
    let tcp = stream.into_inner().into_inner();
    let name = ServerName::try_from(domain.clone()).map_err(|e| e.to_string())?;
    let tls: TlsStream<TcpStream> = TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let stream = initiate_stream(BufStream::new(tls), ns::JABBER_CLIENT, header(), timeouts)
        .await
        .map_err(|e| e.to_string())?;
    let (features, stream) = stream
        .recv_features::<FallibleStreamElement>()
        .await
        .map_err(|e| e.to_string())?;
    let credentials = Credentials::default()
        .with_username(jid.node().map(|n| n.as_str()).unwrap_or_default())
        .with_password(password)
        .with_channel_binding(ChannelBinding::None);
    let stream = tokio_xmpp::client_login(stream, features.sasl_mechanisms, credentials)
        .await
        .map_err(|e| e.to_string())?;
    let stream = stream
        .send_header(header())
        .await
        .map_err(|e| e.to_string())?;
    let (features, stream) = stream
        .recv_features::<FallibleStreamElement>()
        .await
        .map_err(|e| e.to_string())?;
    Ok(Connection {
        stream: stream.box_stream(),
        features,
        identity: jid.clone(),
    })
}

/// A logged-in test user.
pub struct XmppClient {
    /// The account's bare JID.
    pub jid: BareJid,
    stream: Option<StanzaStream>,
}

impl XmppClient {
    /// Logs in as `user` (a bare JID, or a name taken as `name@localhost`) on
    /// `127.0.0.1:port`, trusting only `ca`.
    pub async fn connect(port: u16, user: &str, password: &str, ca: &Path) -> Self {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).expect("read test CA") {
            roots
                .add(cert.expect("test CA parses"))
                .expect("add test CA");
        }
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = Arc::new(
            ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth(),
        );
        let jid = if user.contains('@') {
            BareJid::new(user)
        } else {
            BareJid::new(&format!("{user}@localhost"))
        }
        .expect("test JID");
        let password = password.to_owned();
        let identity = Jid::from(jid.clone());
        let mut logged_in = false;
        let connector = move |_: Option<String>, slot: tokio::sync::oneshot::Sender<Connection>| {
            let identity = identity.clone();
            let password = password.clone();
            let config = Arc::clone(&config);
            let first = !logged_in;
            logged_in = true;
            tokio::spawn(async move {
                if first {
                    match login(port, &identity, &password, config).await {
                        Ok(connection) => {
                            let _ = slot.send(connection);
                            return;
                        }
                        Err(e) => eprintln!("test client {identity}: login failed: {e}"),
                    }
                }
                // One login per test client: park until the stream is dropped.
                let mut slot = slot;
                slot.closed().await;
            });
        };
        let mut stream = StanzaStream::new(Box::new(connector), 16);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match timeout_at(deadline, stream.next()).await {
                Ok(Some(Event::Stream(StreamEvent::Reset { .. }))) => break,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => panic!("test client {jid} could not log in"),
            }
        }
        let client = Self {
            jid,
            stream: Some(stream),
        };
        client.send(Stanza::Presence(Presence::available())).await;
        client
    }

    fn stream(&self) -> &StanzaStream {
        self.stream.as_ref().expect("open stream")
    }

    /// Sends a stanza.
    pub async fn send(&self, stanza: Stanza) {
        let _ = self.stream().send(Box::new(stanza)).await;
    }

    /// Joins `room` as `nick` and waits for the room's confirmation (status 110).
    pub async fn join(&mut self, room: &str, nick: &str) {
        let to = Jid::new(&format!("{room}/{nick}")).expect("occupant JID");
        let presence = Presence::available().with_to(to).with_payload(Muc::new());
        self.send(Stanza::Presence(presence)).await;
        self.expect(Duration::from_secs(20), |stanza| match stanza {
            Stanza::Presence(p) => p.payloads.iter().any(|x| {
                x.is("x", ns::MUC_USER)
                    && MucUser::try_from(x.clone())
                        .is_ok_and(|u| u.status.contains(&Status::SelfPresence))
            }),
            _ => false,
        })
        .await;
    }

    /// Says `text` in a room.
    pub async fn say_in_room(&self, room: &str, text: &str) {
        let to = Jid::new(room).expect("room JID");
        let message = Message::groupchat(Some(to)).with_body(Lang::default(), text.to_owned());
        self.send(Stanza::Message(message)).await;
    }

    /// Says `text` to a user (one-to-one chat).
    pub async fn say_to(&self, jid: &str, text: &str) {
        let to = Jid::new(jid).expect("user JID");
        let message = Message::chat(Some(to)).with_body(Lang::default(), text.to_owned());
        self.send(Stanza::Message(message)).await;
    }

    /// Waits for a stanza that matches, panicking after `within` with what was seen.
    pub async fn expect(&mut self, within: Duration, matches: impl Fn(&Stanza) -> bool) -> Stanza {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        let jid = self.jid.clone();
        let stream = self.stream.as_mut().expect("open stream");
        loop {
            match timeout_at(deadline, stream.next()).await {
                Ok(Some(Event::Stanza(stanza))) => {
                    if matches(&stanza) {
                        return stanza;
                    }
                    seen.push(format!("{stanza:?}"));
                }
                Ok(Some(Event::Stream(_))) => {}
                Ok(None) | Err(_) => panic!(
                    "test client {jid}: no matching stanza within {within:?}; saw:\n{}",
                    seen.join("\n")
                ),
            }
        }
    }

    /// Waits for a message of `kind` from `from` (compared as a bare JID when it has no
    /// resource) whose body is `body`, and returns it.
    pub async fn expect_message(
        &mut self,
        kind: MessageType,
        from: &str,
        body: &str,
        within: Duration,
    ) -> Message {
        self.expect_message_where(kind, from, within, |b| b == body)
            .await
    }

    /// Waits for a message of `kind` from `from` whose body contains `needle`.
    pub async fn expect_message_containing(
        &mut self,
        kind: MessageType,
        from: &str,
        needle: &str,
        within: Duration,
    ) -> Message {
        self.expect_message_where(kind, from, within, |b| b.contains(needle))
            .await
    }

    async fn expect_message_where(
        &mut self,
        kind: MessageType,
        from: &str,
        within: Duration,
        body_matches: impl Fn(&str) -> bool,
    ) -> Message {
        let stanza = self
            .expect(within, |stanza| match stanza {
                Stanza::Message(m) => {
                    m.type_ == kind
                        && m.from.as_ref().is_some_and(|f| {
                            f.to_string() == from || f.to_bare().to_string() == from
                        })
                        && m.get_best_body(vec![])
                            .is_some_and(|(_, b)| body_matches(b))
                }
                _ => false,
            })
            .await;
        match stanza {
            Stanza::Message(m) => m,
            _ => unreachable!("matched a message"),
        }
    }

    /// Closes the stream (briefly waiting for a clean close when the server is up).
    pub async fn close(mut self) {
        if let Some(stream) = self.stream.take() {
            let _ = tokio::time::timeout(Duration::from_secs(3), stream.close()).await;
        }
    }
}
