//! A throwaway PostgreSQL cluster from Debian's packages (`postgresql`, installed by
//! `scripts/setup-test-deps`): `initdb` in a temporary directory, the server on a free
//! 127.0.0.1 port with its socket in that directory, stopped when the test ends. Nothing
//! depends on a system service. PostgreSQL refuses to run as root, so as root the cluster
//! belongs to the `postgres` user the package creates and runs under it (`setpriv`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{Cert, ServerProcess, TempDir, free_port, tail, wait_for_port, wait_for_port_closed};

/// A running (or stopped) cluster.
pub struct Postgres {
    dir: TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres_user: bool,
    server: Option<ServerProcess>,
    /// Extra `-c name=value` settings of the server.
    settings: Vec<String>,
}

/// The newest installed server's binaries (`/usr/lib/postgresql/<version>/bin`).
fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed: run scripts/setup-test-deps")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .expect("no /usr/lib/postgresql/<version>/bin/initdb: run scripts/setup-test-deps")
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

impl Postgres {
    /// Creates and starts a cluster whose superuser `st2bot` needs no password on
    /// 127.0.0.1 (trust authentication: a test cluster, reachable from this host only).
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// [`Postgres::start`] with TLS on (`ssl=on`) with this certificate and key; clients
    /// may still connect without TLS.
    pub fn start_tls(cert: &Cert) -> Self {
        Self::start_with(Some(cert))
    }

    fn start_with(cert: Option<&Cert>) -> Self {
        let dir = TempDir::new("postgres");
        let mut settings = Vec::new();
        if let Some(cert) = cert {
            // The server reads them as its own user, and wants the key private.
            let (crt, key) = (dir.join("server.crt"), dir.join("server.key"));
            std::fs::copy(&cert.cert, &crt).expect("copy the certificate");
            std::fs::copy(&cert.key, &key).expect("copy the key");
            std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .expect("chmod the key");
            settings.extend([
                "ssl=on".to_owned(),
                format!("ssl_cert_file={}", crt.display()),
                format!("ssl_key_file={}", key.display()),
            ]);
        }
        let as_postgres_user = is_root();
        if as_postgres_user {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown the cluster directory to postgres");
        }
        let mut pg = Self {
            dir,
            bin: bin_dir(),
            port: free_port(),
            as_postgres_user,
            server: None,
            settings,
        };
        let data = pg.data();
        let output = pg
            .command("initdb")
            .args([
                "--auth=trust",
                "--username=st2bot",
                "--encoding=UTF8",
                "--no-sync",
            ])
            .arg("-D")
            .arg(&data)
            .output()
            .expect("run initdb");
        assert!(
            output.status.success(),
            "initdb failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        pg.resume();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// A command for one of the server's programs, as the right user.
    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        if self.as_postgres_user {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=postgres",
                "--regid=postgres",
                "--clear-groups",
                "--",
            ])
            .arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    /// The connection URL of database `postgres`.
    pub fn url(&self) -> String {
        format!("postgres://st2bot@127.0.0.1:{}/postgres", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts the server (again) on the same port and data.
    pub fn resume(&mut self) {
        assert!(self.server.is_none(), "already running");
        let mut command = self.command("postgres");
        command
            .arg("-D")
            .arg(self.data())
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.dir.path().display()
            ))
            .args(["-c", "fsync=off"]);
        for setting in &self.settings {
            command.arg("-c").arg(setting);
        }
        self.server = Some(ServerProcess::spawn("postgres", command, &self.log()));
        let started =
            std::panic::catch_unwind(|| wait_for_port(self.port, Duration::from_secs(30)));
        if started.is_err() || !self.accepts_connections(Duration::from_secs(30)) {
            panic!("PostgreSQL did not start:\n{}", tail(&self.log(), 30));
        }
    }

    /// Waits until the server accepts sessions, not only TCP connections: a server that is
    /// still starting up (or recovering after `stop`) listens already but refuses clients
    /// with "the database system is starting up" (57P03). `pg_isready` exits 0 once it
    /// accepts them.
    fn accepts_connections(&self, within: Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            let ready = self
                .command("pg_isready")
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Stops the server at once, as a crash or a lost network would look to clients
    /// (`pg_ctl stop -m immediate`: every connection is cut).
    pub fn stop(&mut self) {
        if self.server.is_none() {
            return;
        }
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["stop", "-m", "immediate", "-w", "-t", "20"])
            .output();
        if let Some(mut server) = self.server.take() {
            server.kill();
        }
        wait_for_port_closed(self.port, Duration::from_secs(20));
    }

    /// Runs SQL with `psql` as `st2bot` on database `postgres`; its output.
    pub fn psql(&self, sql: &str) -> String {
        let output = self
            .command("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args([
                "-U",
                "st2bot",
                "-d",
                "postgres",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .output()
            .expect("run psql");
        assert!(
            output.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// The directory of the cluster (data and log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
