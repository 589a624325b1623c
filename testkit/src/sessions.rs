//! Test harness for `tests/sessions.rs`: a StackStorm simulator, a session manager with its
//! login page on a free 127.0.0.1 port, a throwaway directory for the store and the key, an
//! HTTP client, and a log buffer to scan for secrets. Everything stops on drop.

use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bot_config::{AuthPageSpec, StackStormSpec};
use bot_runtime::session::{SessionError, SessionManager, SessionReply};
use bot_runtime::stackstorm::St2Client;
use st2_sim::{Sim, SimConfig};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The simulator's password for `st2admin`.
pub const PASSWORD: &str = "Ch@ngeMe";
/// The store encryption key the tests use.
pub const KEY: &str = "test-key: 5b0d7c0e8f9a41d2a3c4e5f60718293a";

/// A definition's `stackstorm` and `auth_page` parts for the simulator and a page on `port`.
pub fn specs(sim: &Sim, dir: &Path, port: u16, scheme: &str) -> (StackStormSpec, AuthPageSpec) {
    let key_file = dir.join("session-key");
    if !key_file.exists() {
        std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    }
    let password_file = dir.join("st2-password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let yaml = format!(
        "name: t\nbackend: {{kind: text}}\n\
stackstorm:\n  url: {url}\n  auth: {{username: st2admin, password: \"file:{pw}\"}}\n\
auth_page:\n  listen: 127.0.0.1:{port}\n  public_url: {scheme}://127.0.0.1:{port}/login\n  \
session_ttl: 12h\n  link_ttl: 5m\n  store: {store}\n  encryption_key: \"file:{key}\"\n",
        url = sim.url(),
        pw = password_file.display(),
        store = dir.join("sessions.redb").display(),
        key = key_file.display(),
    );
    let spec = bot_config::load(&bot_config::SourceFile::new("t.yaml", yaml))
        .unwrap_or_else(|d| panic!("test definition invalid: {d:?}"));
    (spec.stackstorm, spec.auth_page.expect("auth_page"))
}

/// A log buffer for a `tracing` subscriber.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Installs a subscriber writing every event of every crate but the simulator (whose
    /// logs are not the bot's) at TRACE level into this buffer, for the current thread.
    pub fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let buffer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace,st2_sim=off"))
            .with_ansi(false)
            .with_writer(move || buffer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A running login page.
pub struct Page {
    pub manager: Arc<SessionManager>,
    pub notifications: mpsc::Receiver<(String, String)>,
    pub shutdown: CancellationToken,
    pub server: Option<JoinHandle<Result<(), SessionError>>>,
    pub http: reqwest::Client,
}

impl Page {
    /// Starts the page for `auth` and waits until it answers.
    pub async fn start(auth: &AuthPageSpec, st2: St2Client, ca_file: Option<&str>) -> Page {
        let manager = SessionManager::open(auth, "testbot", st2).expect("open");
        let (notify, notifications) = mpsc::channel(8);
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(Arc::clone(&manager).serve(notify, shutdown.clone()));
        let http = bot_runtime::http::client(true, ca_file, Some(Duration::from_secs(10)))
            .expect("client");
        let page = Page {
            manager,
            notifications,
            shutdown,
            server: Some(server),
            http,
        };
        let probe = format!("{}?id=00", auth.public_url);
        for _ in 0..100 {
            if page.http.get(&probe).send().await.is_ok() {
                return page;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the login page did not start on {}", auth.listen);
    }

    /// Stops the server and waits for it (the manager is dropped with `self`).
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server.await.expect("join").expect("serve");
        }
    }

    /// `login` from a room: returns the link (from the private reply) after checking that the
    /// room reply does not contain it.
    pub async fn request_link(&self, user_id: &str, user_name: &str) -> String {
        let reply: SessionReply = self
            .manager
            .command(user_id, user_name, false, &["login"])
            .await;
        let public = reply.public.expect("a note in the room");
        assert!(!public.contains("id="), "link posted in the room: {public}");
        let private = reply.private.expect("the link, privately");
        let start = private.find("http").expect("a URL in the DM");
        private[start..]
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    }

    /// GET the link; returns status, body and the form's hidden `id` and `csrf` values.
    pub async fn open_link(&self, link: &str) -> (u16, String, Option<(String, String)>) {
        let response = self.http.get(link).send().await.expect("GET");
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        let hidden = |name: &str| {
            let marker = format!("name=\"{name}\" value=\"");
            let start = body.find(&marker)? + marker.len();
            Some(body[start..start + body[start..].find('"')?].to_owned())
        };
        let fields = hidden("id").zip(hidden("csrf"));
        (status, body, fields)
    }

    /// POST form fields to `link`'s page; returns status, headers and body.
    pub async fn post(
        &self,
        link: &str,
        fields: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let response = self
            .http
            .post(link)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Sec-Fetch-Site", "same-origin")
            .body(body)
            .send()
            .await
            .expect("POST");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.text().await.unwrap())
    }

    /// Opens `link` and logs in with username and password; returns the POST's status and
    /// body.
    pub async fn log_in(&self, link: &str, username: &str, password: &str) -> (u16, String) {
        let (status, _, fields) = self.open_link(link).await;
        assert_eq!(status, 200);
        let (id, csrf) = fields.expect("form fields");
        let (status, _, body) = self
            .post(
                link,
                &[
                    ("id", &id),
                    ("csrf", &csrf),
                    ("kind", "password"),
                    ("username", username),
                    ("password", password),
                ],
            )
            .await;
        (status, body)
    }

    /// The next login confirmation sent to the chat side.
    pub async fn next_notification(&mut self) -> (String, String) {
        tokio::time::timeout(Duration::from_secs(5), self.notifications.recv())
            .await
            .expect("a confirmation in time")
            .expect("channel open")
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The simulator with its demo data.
pub async fn sim() -> Sim {
    Sim::start(SimConfig::demo()).await.expect("simulator")
}

/// Overwrites a file (the key, between restarts).
pub fn rewrite(path: &Path, text: &str) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// A definition's `stackstorm` and `auth_page` parts for StackStorm at `url`.
pub fn specs_for(url: &str, dir: &Path, port: u16) -> (StackStormSpec, AuthPageSpec) {
    let key_file = dir.join("session-key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let yaml = format!(
        "name: t\nbackend: {{kind: text}}\n\
stackstorm:\n  url: {url}\n  auth: {{api_key: \"file:{key}\"}}\n\
auth_page:\n  listen: 127.0.0.1:{port}\n  public_url: http://127.0.0.1:{port}/login\n  \
store: {store}\n  encryption_key: \"file:{key}\"\n",
        store = dir.join("sessions.redb").display(),
        key = key_file.display(),
    );
    let spec = bot_config::load(&bot_config::SourceFile::new("t.yaml", yaml))
        .unwrap_or_else(|d| panic!("test definition invalid: {d:?}"));
    (spec.stackstorm, spec.auth_page.expect("auth_page"))
}

/// A fake of StackStorm's `GET /api/v1/user` (st2api `UserController.get`, StackStorm's
/// OpenAPI `/api/v1/user`): with a valid `X-Auth-Token` it answers the authenticated user's
/// name and how they authenticated, including `token_expire` (`%Y-%m-%dT%H:%M:%SZ`);
/// without one, 401 with a `faultstring`, as StackStorm's auth middleware does.
pub struct UserEndpoint {
    addr: std::net::SocketAddr,
    calls: Arc<Mutex<Vec<String>>>,
    server: JoinHandle<()>,
}

impl UserEndpoint {
    pub async fn start(token: &str, user: &str, expires_in_secs: u64) -> UserEndpoint {
        use axum::http::{HeaderMap, StatusCode};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let expire = humantime::format_rfc3339_seconds(
            std::time::SystemTime::now() + Duration::from_secs(expires_in_secs),
        )
        .to_string();
        let (token, user, seen) = (token.to_owned(), user.to_owned(), Arc::clone(&calls));
        let app = axum::Router::new().route(
            "/api/v1/user",
            axum::routing::get(move |headers: HeaderMap| {
                let presented = headers
                    .get("X-Auth-Token")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                seen.lock().unwrap().push(presented.clone());
                let ok = presented == token;
                let body = if ok {
                    serde_json::json!({
                        "username": user,
                        "authentication": {"method": "authentication token", "location": "header", "token_expire": expire},
                        "rbac": {"enabled": false, "roles": [], "is_admin": false},
                    })
                } else {
                    serde_json::json!({"faultstring": "Unauthorized - Token not found"})
                };
                async move {
                    let status = if ok { StatusCode::OK } else { StatusCode::UNAUTHORIZED };
                    (status, axum::Json(body))
                }
            }),
        );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        UserEndpoint {
            addr,
            calls,
            server,
        }
    }

    /// Base URL (`stackstorm.url`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `X-Auth-Token` of every call so far.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl Drop for UserEndpoint {
    fn drop(&mut self) {
        self.server.abort();
    }
}
