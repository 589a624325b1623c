//! WebSocket client connections for the web-API backends (Discord Gateway, Rocket.Chat
//! realtime API): `ws://` over plain TCP, `wss://` over rustls (ring provider, platform
//! certificate verifier, the same trust store reqwest uses), plus the reconnect backoff with
//! jitter every backend shares.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use url::Url;

/// Byte stream a WebSocket runs over (plain TCP or TLS).
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

/// An open client WebSocket.
pub type WsStream = WebSocketStream<Box<dyn Transport>>;

/// Why a WebSocket could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WsConnectError {
    /// The URL is not `ws://` or `wss://` with a host.
    #[error("not a WebSocket URL: {0}")]
    BadUrl(String),
    /// TCP connect failed.
    #[error("cannot connect to {host}:{port}: {source}")]
    Connect {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// TLS set-up or handshake failed.
    #[error("TLS with {host} failed: {reason}")]
    Tls {
        /// Host.
        host: String,
        /// Why.
        reason: String,
    },
    /// The HTTP upgrade was refused or the WebSocket handshake failed.
    #[error("WebSocket handshake failed: {0}")]
    Handshake(#[from] tokio_tungstenite::tungstenite::Error),
    /// Took longer than the connect timeout.
    #[error("WebSocket connect timed out after {0:?}")]
    Timeout(Duration),
}

/// How long a connect (TCP + TLS + upgrade) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Opens a WebSocket to `url` (`ws://` or `wss://`).
pub async fn connect(url: &Url) -> Result<WsStream, WsConnectError> {
    tokio::time::timeout(CONNECT_TIMEOUT, connect_inner(url))
        .await
        .map_err(|_| WsConnectError::Timeout(CONNECT_TIMEOUT))?
}

async fn connect_inner(url: &Url) -> Result<WsStream, WsConnectError> {
    let secure = match url.scheme() {
        "ws" => false,
        "wss" => true,
        _ => return Err(WsConnectError::BadUrl(url.to_string())),
    };
    let host = url
        .host_str()
        .ok_or_else(|| WsConnectError::BadUrl(url.to_string()))?
        .to_owned();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| WsConnectError::BadUrl(url.to_string()))?;
    let tcp = TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|source| WsConnectError::Connect {
            host: host.clone(),
            port,
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Transport> = if secure {
        Box::new(tls(tcp, &host).await?)
    } else {
        Box::new(tcp)
    };
    let request = url.as_str().into_client_request()?;
    let (ws, _response) = tokio_tungstenite::client_async(request, stream).await?;
    Ok(ws)
}

async fn tls(
    tcp: TcpStream,
    host: &str,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, WsConnectError> {
    use rustls_platform_verifier::ConfigVerifierExt as _;
    crate::http::install_crypto_provider();
    let tls_error = |reason: String| WsConnectError::Tls {
        host: host.to_owned(),
        reason,
    };
    let config =
        rustls::ClientConfig::with_platform_verifier().map_err(|e| tls_error(e.to_string()))?;
    let name = rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
        .map_err(|e| tls_error(e.to_string()))?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| tls_error(e.to_string()))
}

/// A uniformly random fraction in `[0, 1)`, from the standard library's per-process random
/// hash keys (enough for jitter; not for anything secret).
pub fn random_fraction() -> f64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Exponential backoff with full jitter: the n-th delay is uniform in
/// `[base·2ⁿ/2, base·2ⁿ]`, capped at `max`. [`Backoff::reset`] after a connection that worked.
#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// A backoff starting around `base`, never above `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            attempt: 0,
        }
    }

    /// The delay before the next attempt (and counts the attempt).
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        ceiling.mul_f64(0.5 + random_fraction() / 2.0)
    }

    /// Attempts since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Back to the first delay.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// `url` with its scheme switched from `http(s)` to `ws(s)` (other schemes unchanged).
pub fn http_to_ws(url: &Url) -> Url {
    let mut ws = url.clone();
    let scheme = match url.scheme() {
        "http" => "ws",
        "https" => "wss",
        other => other,
    }
    .to_owned();
    // Switching between special schemes of the same kind always succeeds.
    let _ = ws.set_scheme(&scheme);
    ws
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        for _ in 0..10 {
            b.next_delay();
        }
        let late = b.next_delay();
        assert!(late >= Duration::from_millis(500) && late <= Duration::from_secs(1));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn fractions_are_in_range_and_vary() {
        let values: Vec<f64> = (0..32).map(|_| random_fraction()).collect();
        assert!(values.iter().all(|v| (0.0..1.0).contains(v)));
        assert!(values.windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn switches_schemes() {
        let u = Url::parse("https://chat.example.com/sub/").unwrap();
        assert_eq!(http_to_ws(&u).as_str(), "wss://chat.example.com/sub/");
        let u = Url::parse("http://127.0.0.1:3000").unwrap();
        assert_eq!(http_to_ws(&u).as_str(), "ws://127.0.0.1:3000/");
    }

    #[tokio::test]
    async fn refuses_other_schemes() {
        let u = Url::parse("http://127.0.0.1:1/").unwrap();
        assert!(matches!(connect(&u).await, Err(WsConnectError::BadUrl(_))));
    }
}
