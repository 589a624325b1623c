//! A real Synapse homeserver for tests: installed by `scripts/setup-test-deps` into
//! `.venv/synapse` (or the venv `$ST2BOT_SYNAPSE_VENV` names), started on a free 127.0.0.1
//! port with a throwaway config, SQLite database and freshly generated signing key in a
//! temporary directory, with rate limits raised and no outbound key-server lookups.
//! [`Synapse`] stops the server (by its pid) and removes the directory when dropped, also
//! when the test fails.
// Shared by several test binaries; each uses a part.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::free_port;

/// Shared secret for `register_new_matrix_user`.
const REGISTRATION_SECRET: &str = "st2bot-test-only-registration-secret";
/// How long Synapse may take to answer after being started.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// A running (or stopped) Synapse and its temporary directory.
pub struct Synapse {
    venv: PathBuf,
    dir: PathBuf,
    config: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Synapse {
    /// The venv holding Synapse, or why there is none.
    pub fn venv() -> Result<PathBuf, String> {
        let venv = std::env::var_os("ST2BOT_SYNAPSE_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| crate::project_root().join(".venv/synapse"));
        if venv.join("bin/register_new_matrix_user").is_file() && venv.join("bin/python").exists() {
            Ok(venv)
        } else {
            Err(format!(
                "Synapse is not installed in {}: run scripts/setup-test-deps \
                 (or point ST2BOT_SYNAPSE_VENV at a venv with matrix-synapse)",
                venv.display()
            ))
        }
    }

    /// [`Synapse::start_named`] with the server name `localhost`.
    pub async fn start() -> Self {
        Self::start_named("localhost").await
    }

    /// Writes a config for a free port and starts the server as `server_name` (users are
    /// `@name:<server_name>`); returns once it answers. Nothing resolves the name: the
    /// server federates with no one.
    pub async fn start_named(server_name: &str) -> Self {
        let venv = Self::venv().unwrap_or_else(|e| panic!("{e}"));
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("st2bot-synapse-{}-{stamp}", std::process::id()));
        fs::create_dir_all(dir.join("data")).expect("create the Synapse directory");
        let port = free_port();
        let config = dir.join("homeserver.yaml");
        fs::write(&config, homeserver_yaml(&dir, port, server_name))
            .expect("write homeserver.yaml");
        fs::write(dir.join("log.yaml"), log_yaml(&dir)).expect("write log.yaml");
        let mut synapse = Self {
            venv,
            dir,
            config,
            port,
            child: None,
        };
        let status = Command::new(synapse.venv.join("bin/python"))
            .args(["-m", "synapse.app.homeserver", "--generate-keys", "-c"])
            .arg(&synapse.config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("run synapse --generate-keys");
        assert!(
            status.status.success(),
            "synapse --generate-keys failed: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        synapse.launch().await;
        synapse
    }

    /// Base URL of the client-server API.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The temporary directory (for secret files and the like).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Registers users (name, password, server admin?) with the shared secret
    /// (`register_new_matrix_user`), in parallel.
    pub fn register(&self, users: &[(&str, &str, bool)]) {
        let children: Vec<_> = users
            .iter()
            .map(|(user, password, admin)| {
                let child = Command::new(self.venv.join("bin/register_new_matrix_user"))
                    .arg("-c")
                    .arg(&self.config)
                    .args(["-u", user, "-p", password])
                    .arg(if *admin { "--admin" } else { "--no-admin" })
                    .arg(self.url())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("run register_new_matrix_user");
                (*user, child)
            })
            .collect();
        for (user, child) in children {
            let output = child
                .wait_with_output()
                .expect("wait for register_new_matrix_user");
            assert!(
                output.status.success(),
                "registering {user} failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }

    /// Stops the server (SIGTERM, then SIGKILL after 15 s) and waits for it to exit.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
            }
        }
    }

    /// Starts the server again on the same port, database and key.
    pub async fn restart(&mut self) {
        self.stop();
        self.launch().await;
    }

    async fn launch(&mut self) {
        let log = fs::File::create(self.dir.join("synapse.out")).expect("create synapse.out");
        let child = Command::new(self.venv.join("bin/python"))
            .args(["-m", "synapse.app.homeserver", "-c"])
            .arg(&self.config)
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect("start synapse");
        self.child = Some(child);
        let http = bot_runtime::http::client(true, None, None).expect("HTTP client");
        let versions = format!("{}/_matrix/client/versions", self.url());
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(r) = http.get(&versions).send().await
                && r.status().is_success()
            {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "synapse exited with {status} while starting:\n{}",
                    self.log_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "synapse did not answer within {START_TIMEOUT:?}:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The end of Synapse's output and log, for failure messages.
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        for name in ["synapse.out", "homeserver.log"] {
            if let Ok(content) = fs::read_to_string(self.dir.join(name)) {
                let lines: Vec<&str> = content.lines().collect();
                let start = lines.len().saturating_sub(30);
                text.push_str(&format!("--- {name}\n{}\n", lines[start..].join("\n")));
            }
        }
        text
    }
}

impl Drop for Synapse {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("synapse logs kept in {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn homeserver_yaml(dir: &Path, port: u16, server_name: &str) -> String {
    let d = dir.display();
    let limit = "{ per_second: 1000, burst_count: 1000 }";
    format!(
        r#"server_name: "{server_name}"
pid_file: {d}/data/homeserver.pid
listeners:
  - port: {port}
    bind_addresses: ["127.0.0.1"]
    type: http
    tls: false
    x_forwarded: false
    resources: [{{ names: [client], compress: false }}]
database:
  name: sqlite3
  args: {{ database: {d}/data/homeserver.db }}
media_store_path: {d}/data/media_store
signing_key_path: {d}/signing.key
log_config: {d}/log.yaml
registration_shared_secret: "{REGISTRATION_SECRET}"
macaroon_secret_key: "st2bot-test-only-macaroon"
form_secret: "st2bot-test-only-form"
report_stats: false
trusted_key_servers: []
suppress_key_server_warning: true
presence: {{ enabled: false }}
rc_message: {limit}
rc_login:
  address: {limit}
  account: {limit}
  failed_attempts: {limit}
rc_registration: {limit}
rc_joins:
  local: {limit}
  remote: {limit}
rc_invites:
  per_room: {limit}
  per_user: {limit}
  per_issuer: {limit}
rc_room_creation: {limit}
"#
    )
}

fn log_yaml(dir: &Path) -> String {
    format!(
        r#"version: 1
formatters:
  precise: {{ format: '%(asctime)s %(levelname)s %(name)s %(message)s' }}
handlers:
  file: {{ class: logging.FileHandler, formatter: precise, filename: {}/homeserver.log }}
root: {{ level: WARNING, handlers: [file] }}
disable_existing_loggers: false
"#,
        dir.display()
    )
}
