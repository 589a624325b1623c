//! Test support for st2bot's integration tests, one crate that every test binary links
//! (instead of each including its own copy of these files):
//!
//! - [`backend`]: the one backend harness ([`backend::Driven`] runs a chat backend through
//!   its `BackendIo` channels as the dispatcher does; [`backend::WholeBot`] runs a whole bot
//!   in this process);
//! - [`bot`]: drives a compiled bot executable over its Text backend (stdin/stdout);
//! - [`fakes`]: in-repo fakes of the chat services that cannot run here (Slack, Mattermost,
//!   Discord, Rocket.Chat, the Teams token endpoint), each built from the vendor's documented
//!   wire protocol; [`ws`] is the one way they serve WebSockets;
//! - real servers started on 127.0.0.1 (installed by `scripts/setup-test-deps`): IRC in
//!   [`ircd`], XMPP in [`prosody`], Matrix in [`matrix_server`], PostgreSQL in [`postgres`],
//!   and the test users' clients [`irc_client`], [`xmpp_client`], [`matrix_client`];
//! - [`sessions`] and [`login_page`]: the per-user session manager and its login page;
//! - here: throwaway directories and secret files, free ports, self-signed certificates made
//!   with `openssl`, and a guard that kills a server process when the test ends (also when it
//!   fails).

pub mod backend;
pub mod bot;
pub mod fakes;
pub mod irc_client;
pub mod ircd;
pub mod login_page;
pub mod matrix_client;
pub mod matrix_server;
pub mod postgres;
pub mod prosody;
pub mod sessions;
pub mod ws;
pub mod xmpp_client;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bot_config::SecretRef;

/// The st2bot checkout (the workspace root), where `scripts/setup-test-deps` installs what
/// the tests need (`.venv/synapse`, say).
pub fn project_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Sends the bot's logs to the test output when `RUST_LOG` is set (e.g.
/// `RUST_LOG=bot_runtime=debug cargo test --test irc -- --nocapture`).
pub fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// A directory removed when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh empty directory under the system temp dir, named after `label`.
    pub fn new(label: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path =
            std::env::temp_dir().join(format!("st2bot-{label}-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `value` (with a trailing newline, as editors do) to the file `name` and
    /// returns its path. Secrets are files in the tests: parallel tests share the process
    /// environment, so none is set there.
    pub fn file(&self, name: &str, value: &str) -> String {
        let path = self.join(name);
        std::fs::write(&path, format!("{value}\n")).expect("write secret file");
        path.to_string_lossy().into_owned()
    }

    /// [`TempDir::file`] as the `file:` secret reference a definition holds.
    pub fn secret(&self, name: &str, value: &str) -> SecretRef {
        SecretRef::File(self.file(name, value).into())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port nobody listens on right now (the OS picks it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// Waits until something accepts TCP connections on the port.
pub fn wait_for_port(port: u16, within: Duration) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on 127.0.0.1:{port} after {within:?}");
}

/// Waits until nothing accepts TCP connections on the port any more.
pub fn wait_for_port_closed(port: u16, within: Duration) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("127.0.0.1:{port} still accepts connections after {within:?}");
}

/// A self-signed certificate and its key, valid for `names` (DNS names or IP addresses).
#[derive(Debug, Clone)]
pub struct Cert {
    /// PEM certificate (also usable as the CA file: it signs itself).
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// Makes a throwaway self-signed certificate with `openssl`.
pub fn self_signed_cert(dir: &Path, stem: &str, names: &[&str]) -> Cert {
    let cert = dir.join(format!("{stem}.crt"));
    let key = dir.join(format!("{stem}.key"));
    let san: Vec<String> = names
        .iter()
        .map(|n| {
            if n.parse::<std::net::IpAddr>().is_ok() {
                format!("IP:{n}")
            } else {
                format!("DNS:{n}")
            }
        })
        .collect();
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", &format!("/CN={}", names[0])])
        .args(["-addext", &format!("subjectAltName={}", san.join(","))])
        // A server certificate, not a CA: rustls refuses a CA certificate as the end entity.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run openssl (installed by scripts/setup-test-deps)");
    assert!(status.success(), "openssl could not make a certificate");
    Cert { cert, key }
}

/// A server process, killed when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    name: String,
    child: Option<Child>,
}

impl ServerProcess {
    /// Starts `command` with its output appended to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Self {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open server log");
        let err = out.try_clone().expect("clone log handle");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {name} (run scripts/setup-test-deps first): {e}")
            });
        Self {
            name: name.to_owned(),
            child: Some(child),
        }
    }

    /// Kills the process at once (SIGKILL), as a crash would, and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Its process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.child.is_some() {
            eprintln!("stopping {}", self.name);
        }
        self.kill();
    }
}

/// The last lines of a log file, for failure messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A TLS front for a plain-text server on 127.0.0.1, as stunnel or a load balancer puts
/// one before a chat server: accepts TLS on its own port with a self-signed certificate
/// and relays each connection to `backend_port`. Stops with the test's runtime.
#[derive(Debug)]
pub struct TlsFront {
    /// The TLS port.
    pub port: u16,
    /// The certificate it presents (for `localhost` and `127.0.0.1`).
    pub cert: Cert,
    _dir: TempDir,
}

impl TlsFront {
    /// Starts relaying TLS on a free port to `backend_port` (call inside a tokio runtime).
    pub async fn start(backend_port: u16) -> Self {
        use tokio_rustls::rustls::pki_types::pem::PemObject as _;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

        let dir = TempDir::new("tls-front");
        let cert = self_signed_cert(dir.path(), "front", &["localhost", "127.0.0.1"]);
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert.cert)
            .expect("read certificate")
            .map(|c| c.expect("certificate parses"))
            .collect();
        let key = PrivateKeyDer::from_pem_file(&cert.key).expect("read key");
        let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server certificate");
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind TLS front");
        let port = listener.local_addr().expect("local addr").port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut backend) =
                        tokio::net::TcpStream::connect(("127.0.0.1", backend_port)).await
                    else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut backend).await;
                });
            }
        });
        Self {
            port,
            cert,
            _dir: dir,
        }
    }
}
