//! TLS client settings for backends that open their own sockets (IRC, XMPP): rustls with
//! the `ring` provider, the system's trusted roots plus an optional PEM CA bundle from the
//! definition (`ca_file`), certificate and host name always verified.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Why a TLS client configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsSetupError {
    /// The CA bundle could not be read, held no certificate, or held one rustls refuses.
    #[error("cannot use CA bundle `{path}`: {reason}")]
    CaFile {
        /// Path as written in the definition.
        path: String,
        /// Why.
        reason: String,
    },
    /// Neither the system nor `ca_file` provided a single trusted root.
    #[error("no trusted root certificates: the system store is empty and no `ca_file` is set")]
    NoRoots,
    /// rustls refused the protocol versions of the ring provider (not expected).
    #[error("cannot configure TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Reads every certificate of a PEM bundle.
pub fn read_ca_file(path: &str) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let bad = |reason: String| TlsSetupError::CaFile {
        path: path.to_owned(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not a PEM certificate bundle ({e})")))?;
    if certs.is_empty() {
        return Err(bad("no `BEGIN CERTIFICATE` block in the file".to_owned()));
    }
    Ok(certs)
}

/// Whether the system store holds at least one trusted root (read once per process; for
/// telling "no roots" apart from other client set-up failures).
pub(crate) fn system_has_roots() -> bool {
    static HAS_ROOTS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS_ROOTS.get_or_init(|| !rustls_native_certs::load_native_certs().certs.is_empty())
}

/// A client configuration trusting the system roots and the certificates in `ca_file`.
pub fn client_config(ca_file: Option<&str>) -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!(%error, "skipping an unreadable system certificate");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, ignored, "system trust roots loaded");
    if let Some(path) = ca_file {
        for cert in read_ca_file(path)? {
            roots.add(cert).map_err(|e| TlsSetupError::CaFile {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        }
    }
    if roots.is_empty() {
        return Err(TlsSetupError::NoRoots);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_files_without_certificates() {
        let path = std::env::temp_dir().join(format!("st2bot-tls-{}.pem", std::process::id()));
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err = client_config(Some(path.to_str().unwrap())).unwrap_err();
        assert!(err.to_string().contains("no `BEGIN CERTIFICATE`"), "{err}");
        std::fs::remove_file(&path).unwrap();
        let missing = client_config(Some("/nonexistent/st2bot-ca.pem")).unwrap_err();
        assert!(matches!(missing, TlsSetupError::CaFile { .. }), "{missing}");
    }
}
