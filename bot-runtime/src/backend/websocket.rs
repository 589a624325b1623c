//! WebSocket client connections for the web-API backends (Slack Socket Mode, Mattermost):
//! tokio-tungstenite over the same TLS policy as [`crate::http`] (rustls with `ring`, the
//! platform's certificate verifier), with a connect timeout.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

/// A connected WebSocket.
pub type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why a WebSocket could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WsConnectError {
    /// The TLS settings could not be built (no usable root store).
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// The handshake failed (refused, bad status, TLS failure, bad URL).
    #[error("websocket handshake with {url} failed: {source}")]
    Handshake {
        /// Where.
        url: String,
        /// Why.
        #[source]
        source: tokio_tungstenite::tungstenite::Error,
    },
    /// No answer within the connect timeout.
    #[error("websocket connect to {0} timed out")]
    Timeout(String),
}

/// How long a handshake (TCP, TLS, HTTP upgrade) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// The TLS client settings every `wss://` connection uses.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_platform_verifier()?
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Opens `url` (`ws://` or `wss://`). The URL is not logged by this function: Slack's
/// Socket Mode URLs carry a ticket.
pub async fn connect(url: &str) -> Result<WsStream, WsConnectError> {
    let connector = if url.starts_with("wss://") {
        Connector::Rustls(tls_config()?)
    } else {
        Connector::Plain
    };
    let shown = redact_query(url);
    let handshake =
        tokio_tungstenite::connect_async_tls_with_config(url, None, true, Some(connector));
    match tokio::time::timeout(CONNECT_TIMEOUT, handshake).await {
        Ok(Ok((stream, _response))) => Ok(stream),
        Ok(Err(source)) => Err(WsConnectError::Handshake { url: shown, source }),
        Err(_) => Err(WsConnectError::Timeout(shown)),
    }
}

/// `url` without its query string (tickets, tokens), for messages.
pub fn redact_query(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_tickets() {
        assert_eq!(
            redact_query("wss://x.slack.com/link/?ticket=secret&app_id=A1"),
            "wss://x.slack.com/link/?…"
        );
        assert_eq!(
            redact_query("ws://h/api/v4/websocket"),
            "ws://h/api/v4/websocket"
        );
    }

    #[test]
    fn builds_tls_settings() {
        assert!(tls_config().is_ok());
    }
}
