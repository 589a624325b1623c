//! A real Prosody XMPP server for the tests: STARTTLS required, SASL, a MUC service at
//! `conference.localhost` with non-anonymous rooms that need no configuration before use.
//! The configuration is the one proven in CRATES-AND-SERVERS.md §3, in a throwaway
//! directory with a free port and a self-signed certificate for `localhost`.

use std::process::Command;
use std::time::Duration;

use crate::{Cert, ServerProcess, TempDir, free_port, self_signed_cert, tail, wait_for_port};

/// The XMPP domain of [`Prosody::start`].
pub const DOMAIN: &str = "localhost";
/// The MUC service of [`Prosody::start`].
pub const MUC: &str = "conference.localhost";

/// A Prosody server; [`Prosody::restart`] brings it back on the same port with its data.
#[derive(Debug)]
pub struct Prosody {
    /// Its directory (config, data, certificates, log).
    pub dir: TempDir,
    /// Client-to-server port.
    pub port: u16,
    /// Its self-signed certificate (for the domain and its `conference.` MUC service).
    pub cert: Cert,
    /// The XMPP domain it serves.
    pub domain: String,
    process: ServerProcess,
}

impl Prosody {
    /// Starts a server for `localhost` ([`DOMAIN`], MUC at [`MUC`]) and waits until it
    /// accepts connections.
    pub fn start() -> Self {
        Self::start_named(DOMAIN)
    }

    /// Starts a server for `domain` (MUC at `conference.<domain>`), so a definition's JIDs
    /// and rooms apply as written.
    pub fn start_named(domain: &str) -> Self {
        let muc = format!("conference.{domain}");
        let dir = TempDir::new("prosody");
        let certs = dir.join("certs");
        std::fs::create_dir_all(&certs).expect("create certs dir");
        std::fs::create_dir_all(dir.join("data")).expect("create data dir");
        let cert = self_signed_cert(&certs, domain, &[domain, &muc]);
        let port = free_port();
        let d = dir.path().display();
        let config = format!(
            r#"run_as_root = true
daemonize = false
pidfile = "{d}/prosody.pid"
data_path = "{d}/data"
log = {{ debug = "{d}/prosody.log" }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
s2s_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
modules_enabled = {{ "roster"; "saslauth"; "tls"; "disco"; "ping"; "register"; "private"; "posix" }}
modules_disabled = {{ "s2s" }}
authentication = "internal_hashed"
storage = "internal"
allow_registration = false
c2s_require_encryption = true
certificates = "{d}/certs"
VirtualHost "{domain}"
  ssl = {{ key = "{key}"; certificate = "{crt}"; }}
Component "{muc}" "muc"
  modules_enabled = {{ "muc_mam" }}
  muc_room_locking = false
  muc_room_default_public = true
  muc_room_default_public_jids = true
  ssl = {{ key = "{key}"; certificate = "{crt}"; }}
"#,
            key = cert.key.display(),
            crt = cert.cert.display(),
        );
        std::fs::write(dir.join("prosody.cfg.lua"), config).expect("write prosody config");
        let process = Self::spawn(&dir);
        let server = Self {
            dir,
            port,
            cert,
            domain: domain.to_owned(),
            process,
        };
        wait_for_port(server.port, Duration::from_secs(30));
        server
    }

    fn spawn(dir: &TempDir) -> ServerProcess {
        let mut command = Command::new("prosody");
        command.arg("--config").arg(dir.join("prosody.cfg.lua"));
        ServerProcess::spawn("prosody", command, &dir.join("prosody.out"))
    }

    /// Creates an account `user@<domain>`.
    pub fn register(&self, user: &str, password: &str) {
        let output = Command::new("prosodyctl")
            .arg("--config")
            .arg(self.dir.join("prosody.cfg.lua"))
            .args(["register", user, &self.domain, password])
            .output()
            .expect("run prosodyctl");
        assert!(
            output.status.success(),
            "prosodyctl register {user}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Kills the server (as a crash would).
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts it again with the same configuration, port and accounts.
    pub fn restart(&mut self) {
        self.process.kill();
        self.process = Self::spawn(&self.dir);
        wait_for_port(self.port, Duration::from_secs(30));
    }

    /// The end of its log.
    pub fn log_tail(&self) -> String {
        tail(&self.dir.join("prosody.log"), 60)
    }
}
