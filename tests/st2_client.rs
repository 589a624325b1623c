//! The StackStorm client against the simulator: username+password tokens are renewed on a
//! 401 and before they expire (from the lifetime StackStorm granted), the stream reconnects
//! with a fresh token; a chat user's own token is used as is; credentials never follow a
//! redirect to another origin; an alias deleted on StackStorm leaves the bot's copy.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bot_runtime::aliases::AliasCache;
use bot_runtime::backend::{Capabilities, Incoming, Outgoing, Room};
use bot_runtime::dispatch::Dispatcher;

use bot_runtime::secret::Secret;
use bot_runtime::stackstorm::St2Client;
use bot_runtime::stackstorm::stream::{self, StreamEvent, StreamState};
use st2_sim::{Sim, SimConfig};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

fn password_spec(sim: &Sim, dir: &std::path::Path) -> bot_config::StackStormSpec {
    let pw = dir.join("st2-password");
    std::fs::write(&pw, "Ch@ngeMe\n").unwrap();
    let yaml = format!(
        "name: t\nbackend: {{kind: text}}\nstackstorm:\n  url: {}\n  auth: {{username: st2admin, password: \"file:{}\"}}\n",
        sim.url(),
        pw.display()
    );
    bot_config::load(&bot_config::SourceFile::new("t.yaml", yaml))
        .expect("valid")
        .stackstorm
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("st2bot-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test]
async fn a_revoked_token_is_renewed_once_and_the_call_retried() {
    let sim = Sim::start(SimConfig::demo()).await.unwrap();
    let client = St2Client::new(&password_spec(&sim, &temp_dir("renew"))).unwrap();
    assert!(!client.list_aliases().await.unwrap().is_empty());
    assert_eq!(sim.issued_tokens().len(), 1);
    sim.revoke_tokens();
    assert!(!client.list_aliases().await.unwrap().is_empty());
    let tokens = sim.issued_tokens();
    assert_eq!(tokens.len(), 2, "one renewal");
    let last = sim
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path == "/api/v1/actionalias")
        .unwrap();
    assert_eq!(last.credential, Some(("token".into(), tokens[1].clone())));
}

#[tokio::test]
async fn a_user_token_is_not_renewed_and_its_401_is_reported() {
    let sim = Sim::start(SimConfig::demo()).await.unwrap();
    let client = St2Client::new(&password_spec(&sim, &temp_dir("user"))).unwrap();
    let stale = Secret::new("not-a-token");
    let request = bot_runtime::stackstorm::types::ExecuteRequest {
        name: "local",
        format: "local {{cmd}}",
        command: "local date",
        user: "alice",
        source_channel: "ops",
        source_context: &serde_json::Value::Null,
        notification_route: "hubot",
    };
    let err = client.execute(&request, Some(&stale)).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(sim.executions().is_empty());
}

#[tokio::test]
async fn the_stream_reconnects_with_a_renewed_token() {
    let sim = Sim::start(SimConfig::demo()).await.unwrap();
    let client = St2Client::new(&password_spec(&sim, &temp_dir("stream"))).unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    let (state_tx, mut state) = watch::channel(StreamState::Down("start".into()));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(stream::run(client, tx, state_tx, shutdown.clone()));
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap(),
        Some(StreamEvent::Connected)
    );
    assert_eq!(*state.borrow_and_update(), StreamState::Up);
    sim.revoke_tokens();
    sim.drop_stream_clients();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap(),
        Some(StreamEvent::Connected)
    );
    let tokens = sim.issued_tokens();
    assert_eq!(tokens.len(), 2);
    let last_stream = sim
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path == "/stream/v1/stream")
        .unwrap();
    assert_eq!(
        last_stream.credential,
        Some(("token".into(), tokens[1].clone()))
    );
    sim.announce(
        "chatops",
        serde_json::json!({"message": "hello", "channel": "ops"}),
    );
    match tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
    {
        Some(StreamEvent::Announcement(a)) => assert_eq!(a.message.as_deref(), Some("hello")),
        other => panic!("expected an announcement, got {other:?}"),
    }
    shutdown.cancel();
    task.await.unwrap();
}

const WAIT: Duration = Duration::from_secs(15);

/// The runtime without a chat backend: client, stream, alias cache and dispatcher wired as
/// `app.rs` wires them, for a definition written by the test.
struct InProcessBot {
    dispatcher: Arc<Dispatcher>,
    outgoing: mpsc::Receiver<Outgoing>,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl InProcessBot {
    /// `stackstorm` is the YAML inside `stackstorm:` after `url:` (indented two spaces).
    async fn start(sim: &Sim, stackstorm: &str) -> Self {
        bot_runtime::http::install_crypto_provider();
        let yaml = format!(
            "name: t\nbackend: {{kind: text}}\nstackstorm:\n  url: {}\n{stackstorm}\naccess:\n  default: allow\n",
            sim.url()
        );
        let spec = bot_config::load(&bot_config::SourceFile::new("t.yaml", yaml)).expect("valid");
        let client = St2Client::new(&spec.stackstorm).unwrap();
        let aliases = AliasCache::new();
        let (outgoing_tx, outgoing) = mpsc::channel::<Outgoing>(256);
        let dispatcher = Arc::new(
            Dispatcher::new(
                &spec,
                client.clone(),
                Capabilities {
                    max_message_len: 4000,
                    rich: false,
                    threads: false,
                    edit: false,
                    buttons: false,
                },
                aliases.clone(),
                outgoing_tx,
            )
            .unwrap(),
        );
        let (events_tx, mut events) = mpsc::channel(64);
        let (state_tx, mut state) = watch::channel(StreamState::Down("starting".into()));
        let shutdown = CancellationToken::new();
        let stream_task = tokio::spawn(stream::run(
            client.clone(),
            events_tx,
            state_tx,
            shutdown.clone(),
        ));
        let events_task = {
            let dispatcher = dispatcher.clone();
            let client = client.clone();
            tokio::spawn(async move {
                while let Some(event) = events.recv().await {
                    match event {
                        StreamEvent::Announcement(a) => dispatcher.announce(a).await,
                        StreamEvent::ExecutionUpdate(_) => {}
                        StreamEvent::Connected | StreamEvent::AliasChanged(_) => {
                            let _ = aliases.refresh(&client).await;
                        }
                    }
                }
            })
        };
        tokio::time::timeout(WAIT, state.wait_for(|s| *s == StreamState::Up))
            .await
            .expect("stream up in time")
            .unwrap();
        Self {
            dispatcher,
            outgoing,
            shutdown,
            tasks: vec![stream_task, events_task],
        }
    }

    /// Handles one command from bob in `ops`; returns every reply queued so far.
    async fn say(&mut self, text: &str) -> Vec<String> {
        let message = Incoming {
            user_id: "U-bob".into(),
            user: "bob".into(),
            room: Some(Room {
                id: "ops".into(),
                name: "ops".into(),
            }),
            text: text.into(),
            mentioned: false,
            thread: None,
            message_id: None,
        };
        tokio::time::timeout(WAIT, self.dispatcher.clone().handle(message))
            .await
            .expect("command handled in time");
        let mut replies = Vec::new();
        while let Ok(o) = self.outgoing.try_recv() {
            replies.push(o.text);
        }
        replies
    }

    async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
    }
}

fn password_auth(dir: &std::path::Path) -> String {
    let pw = dir.join("st2-password");
    std::fs::write(&pw, "Ch@ngeMe\n").unwrap();
    format!(
        "  auth: {{username: st2admin, password: \"file:{}\"}}",
        pw.display()
    )
}

fn api_key_auth(dir: &std::path::Path) -> String {
    let key = dir.join("st2-api-key");
    std::fs::write(&key, "sim-api-key\n").unwrap();
    format!("  auth: {{api_key: \"file:{}\"}}", key.display())
}

/// StackStorm caps tokens at 10 s (`auth.token_ttl`), below the bot's `token_ttl` (one day by
/// default): the first request is refused with StackStorm's 400 and the bot asks for the
/// maximum, then renews each 10 s token 2 s before it expires. A command every 2 s for 30 s
/// through dispatcher, client and stream: every one acknowledged, at most 4 tokens issued
/// and 5 token requests made (the old client renewed on every call: 16+ tokens).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_tokens_are_renewed_from_their_expiry_not_on_every_call() {
    let sim = Sim::start(SimConfig {
        token_ttl: Duration::from_secs(10),
        max_token_ttl: Duration::from_secs(10),
        ..SimConfig::demo()
    })
    .await
    .unwrap();
    let dir = temp_dir("short-tokens");
    let mut bot = InProcessBot::start(&sim, &password_auth(&dir)).await;
    let started = Instant::now();
    let commands = 15;
    for i in 0..commands {
        let replies = bot.say("!local date").await;
        let executions = sim.executions();
        assert_eq!(executions.len(), i + 1, "command {i} executed: {replies:?}");
        let id = &executions[i].id;
        assert!(
            replies.iter().any(|r| r.contains(id.as_str())),
            "command {i} acknowledged with execution {id}: {replies:?}"
        );
        let next = started + Duration::from_secs(2) * (i as u32 + 1);
        tokio::time::sleep_until(next.into()).await;
    }
    assert!(started.elapsed() >= Duration::from_secs(30));
    let requests = sim.token_requests();
    let issued = sim.issued_tokens().len();
    eprintln!(
        "token requests: {requests} ({issued} tokens issued) for {commands} commands over 30 s"
    );
    assert!(issued <= 4, "{issued} tokens issued");
    assert!(requests <= 5, "{requests} token requests");
    bot.stop().await;
}

/// Many callers at once while no token is held: one token request, shared by all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_one_token_request() {
    let sim = Sim::start(SimConfig::demo()).await.unwrap();
    let client = St2Client::new(&password_spec(&sim, &temp_dir("single-flight"))).unwrap();
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.list_aliases().await.map(|a| a.len()) })
        })
        .collect();
    for call in calls {
        assert!(call.await.unwrap().unwrap() > 0);
    }
    assert_eq!(sim.token_requests(), 1);
    // Ten calls refused with the same (revoked) token renew it once, not ten times.
    sim.revoke_tokens();
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.list_aliases().await.map(|a| a.len()) })
        })
        .collect();
    for call in calls {
        assert!(call.await.unwrap().unwrap() > 0);
    }
    assert_eq!(sim.token_requests(), 2);
}

/// What a loopback server saw: the path and the credential headers of each request.
type Seen = Arc<Mutex<Vec<(String, Vec<(String, String)>)>>>;

/// Serves `app` on a free 127.0.0.1 port; returns its base URL.
async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// A server that records every request's credential headers and answers `[]`.
async fn recorder(seen: Seen) -> String {
    serve(axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: axum::http::HeaderMap| {
            let seen = seen.clone();
            async move {
                let creds = ["st2-api-key", "x-auth-token", "authorization"]
                    .iter()
                    .filter_map(|h| {
                        headers
                            .get(*h)
                            .map(|v| ((*h).to_owned(), v.to_str().unwrap_or("").to_owned()))
                    })
                    .collect();
                seen.lock().unwrap().push((uri.path().to_owned(), creds));
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    "[]",
                )
            }
        },
    ))
    .await
}

/// A server that answers every request with `307` to `target` + the same path, except
/// paths under `/here/`, which it records and answers itself.
async fn redirector(target: Option<String>, seen: Seen) -> String {
    let own = Arc::new(Mutex::new(String::new()));
    let base = {
        let own = own.clone();
        serve(axum::Router::new().fallback(
            move |uri: axum::http::Uri, headers: axum::http::HeaderMap| {
                let (own, target, seen) = (own.clone(), target.clone(), seen.clone());
                async move {
                    use axum::response::IntoResponse;
                    let path = uri.path().to_owned();
                    if path.starts_with("/here/") {
                        let key = headers
                            .get("st2-api-key")
                            .map(|v| v.to_str().unwrap_or("").to_owned());
                        seen.lock().unwrap().push((
                            path,
                            key.map(|k| vec![("st2-api-key".to_owned(), k)])
                                .unwrap_or_default(),
                        ));
                        return (
                            [(axum::http::header::CONTENT_TYPE, "application/json")],
                            "[]",
                        )
                            .into_response();
                    }
                    let to = match &target {
                        Some(t) => format!("{t}{path}"),
                        None => format!("{}/here{path}", own.lock().unwrap()),
                    };
                    (
                        axum::http::StatusCode::TEMPORARY_REDIRECT,
                        [(axum::http::header::LOCATION, to)],
                    )
                        .into_response()
                }
            },
        ))
        .await
    };
    *own.lock().unwrap() = base.clone();
    base
}

fn spec_for(url: &str, auth: &str) -> bot_config::StackStormSpec {
    let yaml = format!("name: t\nbackend: {{kind: text}}\nstackstorm:\n  url: {url}\n{auth}\n");
    bot_config::load(&bot_config::SourceFile::new("t.yaml", yaml))
        .expect("valid")
        .stackstorm
}

/// StackStorm (or a proxy in front of it) redirects to another origin (another port on
/// 127.0.0.1): neither the API key, nor the bot's password or token, nor a chat user's token
/// is sent there; the call fails saying why. A redirect within the origin is followed.
#[tokio::test]
async fn credentials_never_follow_a_redirect_to_another_origin() {
    bot_runtime::http::install_crypto_provider();
    let dir = temp_dir("redirects");
    let key = dir.join("api-key");
    std::fs::write(&key, "the-api-key\n").unwrap();
    let elsewhere_seen = Seen::default();
    let elsewhere = recorder(elsewhere_seen.clone()).await;
    let front = redirector(Some(elsewhere.clone()), Seen::default()).await;

    // The service identity: an API key.
    let client = St2Client::new(&spec_for(
        &front,
        &format!("  auth: {{api_key: \"file:{}\"}}", key.display()),
    ))
    .unwrap();
    let err = client.list_aliases().await.unwrap_err();
    assert!(err.to_string().contains("another origin"), "{err}");
    assert!(err.to_string().contains(&elsewhere), "{err}");
    // A chat user's own token.
    let user_token = Secret::new("users-own-token");
    let request = bot_runtime::stackstorm::types::ExecuteRequest {
        name: "local",
        format: "local {{cmd}}",
        command: "local date",
        user: "alice",
        source_channel: "ops",
        source_context: &serde_json::Value::Null,
        notification_route: "hubot",
    };
    let err = client
        .execute(&request, Some(&user_token))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("another origin"), "{err}");
    // Username and password for the bot's own tokens (the stream asks for one).
    let client = St2Client::new(&spec_for(&front, &password_auth(&dir))).unwrap();
    let err = client.open_stream("x").await.unwrap_err();
    assert!(err.to_string().contains("another origin"), "{err}");
    // And a chat user's password on the login page's behalf.
    let err = client
        .create_token(
            "alice",
            &Secret::new("alices-password"),
            Duration::from_secs(60),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("another origin"), "{err}");
    assert!(
        elsewhere_seen.lock().unwrap().is_empty(),
        "the other origin was called: {:?}",
        elsewhere_seen.lock().unwrap()
    );

    // Within one origin, redirects are followed with the credential.
    let same_seen = Seen::default();
    let same = redirector(None, same_seen.clone()).await;
    let client = St2Client::new(&spec_for(
        &same,
        &format!("  auth: {{api_key: \"file:{}\"}}", key.display()),
    ))
    .unwrap();
    assert!(client.list_aliases().await.unwrap().is_empty());
    let seen = same_seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0, "/here/api/v1/actionalias");
    assert_eq!(
        seen[0].1,
        vec![("st2-api-key".to_owned(), "the-api-key".to_owned())]
    );
}

/// An alias deleted on StackStorm while the bot missed the stream event: the local matcher
/// still matches it, StackStorm answers 404 `Unable to identify action alias with name
/// "deploy".`, the bot reloads its aliases, and the next try is a "no match" that no longer
/// suggests the deleted alias.
#[tokio::test]
async fn a_deleted_alias_is_dropped_after_stackstorm_no_longer_knows_it_local_matcher() {
    let sim = Sim::start(SimConfig::demo()).await.unwrap();
    let auth = api_key_auth(&temp_dir("deleted-local"));
    let mut bot = InProcessBot::start(&sim, &format!("{auth}\n  matcher: local")).await;
    let before = bot.say("!deploy").await;
    assert!(
        before.iter().any(|r| r.contains("deploy <app>")),
        "suggested while it exists: {before:?}"
    );
    assert!(sim.remove_alias_quietly("examples.deploy"));
    let refused = bot.say("!deploy web to prod").await;
    assert!(
        refused
            .iter()
            .any(|r| r.contains("Unable to identify action alias")),
        "{refused:?}"
    );
    let after = bot.say("!deploy web to prod").await;
    assert!(
        after.iter().any(|r| r.contains("no command matches")),
        "{after:?}"
    );
    assert!(
        !after.iter().any(|r| r.contains("deploy <app>")),
        "the deleted alias is still suggested: {after:?}"
    );
    assert_eq!(
        sim.executions().len(),
        0,
        "nothing ran: {:?}",
        sim.executions()
    );
    bot.stop().await;
}

/// The same with StackStorm's matcher: it no longer matches the command, and the bot's copy,
/// which still does, is reloaded before it suggests the deleted alias as the closest command.
#[tokio::test]
async fn a_deleted_alias_is_dropped_after_stackstorm_no_longer_knows_it_server_matcher() {
    let sim = Sim::start(SimConfig::demo()).await.unwrap();
    let mut bot = InProcessBot::start(&sim, &api_key_auth(&temp_dir("deleted-server"))).await;
    assert!(sim.remove_alias_quietly("examples.deploy"));
    let after = bot.say("!deploy web to prod").await;
    assert!(
        after.iter().any(|r| r.contains("no command matches")),
        "{after:?}"
    );
    assert!(
        !after.iter().any(|r| r.contains("deploy <app>")),
        "the deleted alias is still suggested: {after:?}"
    );
    bot.stop().await;
}

/// 1,050 aliases are 11 pages of StackStorm's largest page, 100: each asked for once (the
/// pages after the first several at a time), and the aliases come back whole and in
/// StackStorm's order.
#[tokio::test]
async fn a_catalogue_of_many_pages_is_read_whole_once_and_in_order() {
    let catalogue = st2_sim::generated_aliases(1_050);
    let mut config = SimConfig::demo();
    config.aliases = catalogue.clone();
    let sim = Sim::start(config).await.unwrap();
    let client = St2Client::new(&password_spec(&sim, &temp_dir("pages"))).unwrap();

    let read = client.list_aliases().await.unwrap();

    let refs = |docs: &[serde_json::Value]| -> Vec<String> {
        docs.iter()
            .map(|d| d["ref"].as_str().expect("ref").to_owned())
            .collect()
    };
    assert_eq!(refs(&read), refs(&catalogue));
    let mut offsets: Vec<String> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v1/actionalias")
        .map(|r| r.query)
        .collect();
    offsets.sort();
    let mut expected: Vec<String> = (0..11)
        .map(|page| format!("limit=100&offset={}", page * 100))
        .collect();
    expected.sort();
    assert_eq!(offsets, expected);
}

/// A catalogue that fits one page is one request.
#[tokio::test]
async fn a_catalogue_of_one_page_is_one_request() {
    let mut config = SimConfig::demo();
    config.aliases = st2_sim::generated_aliases(100);
    let sim = Sim::start(config).await.unwrap();
    let client = St2Client::new(&password_spec(&sim, &temp_dir("one-page"))).unwrap();
    assert_eq!(client.list_aliases().await.unwrap().len(), 100);
    let asked = sim
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v1/actionalias")
        .count();
    assert_eq!(asked, 1);
}

/// Against a StackStorm whose pages take a while, the pages after the first are asked for
/// several at a time, and never more than four at once.
#[tokio::test]
async fn a_slow_catalogue_is_read_several_pages_at_a_time() {
    let mut config = SimConfig::demo();
    config.aliases = st2_sim::generated_aliases(1_050);
    config.list_delay = Duration::from_millis(50);
    let sim = Sim::start(config).await.unwrap();
    let client = St2Client::new(&password_spec(&sim, &temp_dir("slow-pages"))).unwrap();
    assert_eq!(client.list_aliases().await.unwrap().len(), 1_050);
    let most = sim.most_alias_lists_at_once();
    assert!(
        (2..=4).contains(&most),
        "{most} alias-list requests at once"
    );
}
