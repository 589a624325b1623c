//! The HTTP client every StackStorm and web-API call goes through: rustls with the `ring`
//! provider, system roots plus an optional CA bundle, verification on unless the definition
//! turns it off, and redirects followed only within the origin called. Every service the
//! bots call carries credentials in headers (`St2-Api-Key`, `X-Auth-Token`, Rocket.Chat's
//! `X-User-Id`), and reqwest strips only `Authorization` when a redirect leaves the origin.

use std::time::Duration;

/// Why an HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpSetupError {
    /// The CA bundle could not be read or parsed.
    #[error("cannot use CA bundle `{path}`: {reason}")]
    CaFile {
        /// Path.
        path: String,
        /// Why.
        reason: String,
    },
    /// TLS verification is on and there is nothing to verify against: the system store
    /// is empty (a container without CA certificates) and the definition names no bundle.
    #[error(
        "no trusted root certificates: the system store is empty and no `ca_file` is set \
         (install the CA certificates package, point SSL_CERT_FILE at a PEM bundle, or set \
         `ca_file` in the definition)"
    )]
    NoRoots,
    /// reqwest refused the configuration.
    #[error("cannot build the HTTP client: {0}")]
    Build(#[from] reqwest::Error),
}

/// Installs `ring` as the process-wide rustls provider (idempotent).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client with the given TLS policy and per-request timeout.
pub fn client(
    verify_tls: bool,
    ca_file: Option<&str>,
    timeout: Option<Duration>,
) -> Result<reqwest::Client, HttpSetupError> {
    builder(verify_tls, ca_file, timeout)?.build().map_err(|e| {
        // reqwest says only "builder error" when the platform verifier finds no roots.
        if verify_tls && ca_file.is_none() && !crate::tls::system_has_roots() {
            HttpSetupError::NoRoots
        } else {
            HttpSetupError::Build(e)
        }
    })
}

/// [`client`]'s settings, for callers that add their own.
pub fn builder(
    verify_tls: bool,
    ca_file: Option<&str>,
    timeout: Option<Duration>,
) -> Result<reqwest::ClientBuilder, HttpSetupError> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("st2bot/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .redirect(same_origin_redirects())
        .tls_danger_accept_invalid_certs(!verify_tls);
    if let Some(t) = timeout {
        builder = builder.timeout(t);
    }
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| HttpSetupError::CaFile {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| HttpSetupError::CaFile {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder)
}

/// Follows at most 10 redirects, each to the origin (scheme, host, port) of the first URL;
/// a redirect elsewhere is not followed and its response reaches the caller.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let Some(first) = attempt.previous().first() else {
            return attempt.stop();
        };
        if attempt.previous().len() > 10 {
            attempt.error("more than 10 redirects")
        } else if first.origin() == attempt.url().origin() {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn redirect_to(location: &str) -> String {
        format!(
            "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
    }

    /// Every client (chat services too, not only StackStorm) keeps custom credential
    /// headers within the origin: a redirect elsewhere comes back to the caller unfollowed.
    #[tokio::test]
    async fn custom_credential_headers_never_follow_a_redirect_to_another_origin() {
        let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let elsewhere = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let front_url = format!("http://{}/api/v1/me", front.local_addr().unwrap());
        let elsewhere_url = format!("http://{}/steal", elsewhere.local_addr().unwrap());
        let served =
            tokio::spawn(async move { answer_once_on(&front, redirect_to(&elsewhere_url)).await });
        let http = super::client(true, None, Some(std::time::Duration::from_secs(5))).unwrap();
        let response = http
            .get(&front_url)
            .header("X-Auth-Token", "secret-token")
            .header("X-User-Id", "bot-user")
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            302,
            "the redirect is handed back, not followed"
        );
        assert!(served.await.unwrap().contains("x-auth-token: secret-token"));
        let visited =
            tokio::time::timeout(std::time::Duration::from_millis(300), elsewhere.accept()).await;
        assert!(visited.is_err(), "the other origin was contacted");
    }

    /// Within the origin, redirects are followed with the headers.
    #[tokio::test]
    async fn a_redirect_within_the_origin_is_followed() {
        let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", front.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let first = answer_once_on(&front, redirect_to("/moved")).await;
            let second = answer_once_on(
                &front,
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".to_owned(),
            )
            .await;
            (first, second)
        });
        let http = super::client(true, None, Some(std::time::Duration::from_secs(5))).unwrap();
        let response = http
            .get(format!("{origin}/first"))
            .header("X-Auth-Token", "secret-token")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let (_, second) = server.await.unwrap();
        assert!(second.starts_with("GET /moved "), "{second}");
        assert!(second.contains("x-auth-token: secret-token"), "{second}");
    }

    /// Answers one request with `response` and returns the request's head.
    async fn answer_once_on(listener: &TcpListener, response: String) -> String {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed before the request ended");
            head.extend_from_slice(&buf[..n]);
        }
        socket.write_all(response.as_bytes()).await.unwrap();
        String::from_utf8_lossy(&head).into_owned()
    }
}
