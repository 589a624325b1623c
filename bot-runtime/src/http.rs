//! The HTTP client every StackStorm and web-API call goes through: rustls with the `ring`
//! provider, system roots plus an optional CA bundle, verification on unless the definition
//! turns it off.

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
    Ok(builder(verify_tls, ca_file, timeout)?.build()?)
}

/// [`client`]'s settings, for callers that add their own (the StackStorm client's redirect
/// policy).
pub fn builder(
    verify_tls: bool,
    ca_file: Option<&str>,
    timeout: Option<Duration>,
) -> Result<reqwest::ClientBuilder, HttpSetupError> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("st2bot/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
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
