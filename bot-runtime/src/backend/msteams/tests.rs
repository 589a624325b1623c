//! The endpoint and the sender against a fake Bot Framework Connector and token endpoint on
//! 127.0.0.1, built from Microsoft's REST reference (the routes and status codes cited in
//! [`super::connector`]): `POST /{tenant}/oauth2/v2.0/token` answers
//! `{"token_type":"Bearer","expires_in":…,"access_token":…}`; `POST
//! /v3/conversations/{id}/activities[/{replyTo}]` answers 201 `{"id":…}` (a
//! `ResourceResponse`); `PUT …/activities/{id}` answers 200; `POST /v3/conversations`
//! answers 201 with the new conversation's `id`. Failures (401, 429 with `Retry-After`) are
//! scripted per test.

use std::collections::VecDeque;
use std::sync::Mutex as StdMutex;
use std::time::Instant;

use axum::body::Bytes as AxumBytes;
use axum::extract::Request;
use axum::http::Method as HttpMethod;
use axum::response::{IntoResponse, Response};

use super::*;
use crate::backend::Room;
use crate::backend::supervisor::send_one;

/// One call the fake received.
#[derive(Clone, Debug)]
struct Call {
    method: String,
    path: String,
    authorization: Option<String>,
    body: Value,
    at: Instant,
}

#[derive(Default)]
struct FakeState {
    calls: StdMutex<Vec<Call>>,
    /// Answers to give before the normal ones: (status, Retry-After seconds).
    scripted: StdMutex<VecDeque<(u16, Option<u64>)>>,
    tokens_issued: StdMutex<u32>,
    token_lifetime: StdMutex<u64>,
    activity_ids: StdMutex<u32>,
}

struct Fake {
    base: String,
    state: Arc<FakeState>,
}

impl Fake {
    async fn start() -> Self {
        let state = Arc::new(FakeState::default());
        *state.token_lifetime.lock().unwrap() = 3599;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new()
            .fallback(fake_handler)
            .with_state(Arc::clone(&state));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base, state }
    }

    fn service_url(&self) -> String {
        format!("{}/svc/", self.base)
    }

    fn calls(&self) -> Vec<Call> {
        self.state.calls.lock().unwrap().clone()
    }

    fn connector_calls(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.path.starts_with("/svc/"))
            .collect()
    }

    fn script(&self, status: u16, retry_after: Option<u64>) {
        self.state
            .scripted
            .lock()
            .unwrap()
            .push_back((status, retry_after));
    }

    fn tokens_issued(&self) -> u32 {
        *self.state.tokens_issued.lock().unwrap()
    }
}

async fn fake_handler(State(state): State<Arc<FakeState>>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let authorization = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: AxumBytes = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap();
    let json: Value = if path.ends_with("/token") {
        let form: HashMap<String, String> =
            url::form_urlencoded::parse(&body).into_owned().collect();
        serde_json::to_value(form).unwrap()
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    };
    state.calls.lock().unwrap().push(Call {
        method: method.to_string(),
        path: path.clone(),
        authorization,
        body: json.clone(),
        at: Instant::now(),
    });
    if path.ends_with("/oauth2/v2.0/token") {
        if json["client_secret"] != "app-secret" {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({ "error": "invalid_client" })),
            )
                .into_response();
        }
        let mut n = state.tokens_issued.lock().unwrap();
        *n += 1;
        let lifetime = *state.token_lifetime.lock().unwrap();
        return axum::Json(json!({
            "token_type": "Bearer",
            "expires_in": lifetime,
            "access_token": format!("token-{}", *n),
        }))
        .into_response();
    }
    if let Some((status, retry_after)) = state.scripted.lock().unwrap().pop_front() {
        let mut response = StatusCode::from_u16(status).unwrap().into_response();
        if let Some(s) = retry_after {
            response
                .headers_mut()
                .insert("retry-after", s.to_string().parse().unwrap());
        }
        return response;
    }
    let mut ids = state.activity_ids.lock().unwrap();
    *ids += 1;
    match (method, path.as_str()) {
        (HttpMethod::POST, "/svc/v3/conversations") => (
            StatusCode::CREATED,
            axum::Json(json!({ "id": format!("a:created-{}", *ids) })),
        )
            .into_response(),
        (HttpMethod::POST, _) => (
            StatusCode::CREATED,
            axum::Json(json!({ "id": format!("act-{}", *ids) })),
        )
            .into_response(),
        (HttpMethod::PUT, _) => {
            (StatusCode::OK, axum::Json(json!({ "id": json["id"] }))).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

struct Bot {
    shared: Arc<Shared>,
    incoming: mpsc::Receiver<Incoming>,
}

fn bot(fake: &Fake, password: &str, state_file: Option<&str>) -> Bot {
    let (tx, rx) = mpsc::channel(16);
    let http = crate::http::client(true, None, Some(Duration::from_secs(5))).unwrap();
    let shutdown = CancellationToken::new();
    let shared = Arc::new(Shared {
        connector: Connector::new(
            http,
            &format!("{}/login", fake.base),
            "botframework.com",
            "11111111-2222-3333-4444-555555555555",
            crate::secret::Secret::new(password),
            shutdown.clone(),
        ),
        references: References::load(state_file),
        validator: None,
        incoming: tx,
        names: Mutex::default(),
        seen: Mutex::new(Seen::new(SEEN_CAPACITY)),
        remembered: crate::backend::RememberedMessages::default(),
        shutdown,
    });
    Bot {
        shared,
        incoming: rx,
    }
}

fn channel_message(fake: &Fake, id: &str, text: &str) -> Vec<u8> {
    json!({
        "type": "message", "id": id, "channelId": "msteams", "serviceUrl": fake.service_url(),
        "from": {"id": "29:alice", "name": "Alice"},
        "recipient": {"id": "28:bot", "name": "st2bot"},
        "conversation": {"id": "19:ops@thread.tacv2", "conversationType": "channel", "tenantId": "tenant-1"},
        "channelData": {"channel": {"id": "19:ops@thread.tacv2", "name": "ops"}},
        "text": format!("<at>st2bot</at> {text}"),
        "entities": [{"type": "mention", "text": "<at>st2bot</at>", "mentioned": {"id": "28:bot", "name": "st2bot"}}]
    })
    .to_string()
    .into_bytes()
}

fn personal_message(fake: &Fake, id: &str, text: &str) -> Vec<u8> {
    json!({
        "type": "message", "id": id, "channelId": "msteams", "serviceUrl": fake.service_url(),
        "from": {"id": "29:bob", "name": "Bob"},
        "recipient": {"id": "28:bot", "name": "st2bot"},
        "conversation": {"id": "a:bob-personal", "conversationType": "personal", "tenantId": "tenant-1"},
        "text": text
    })
    .to_string()
    .into_bytes()
}

fn reply(to: &Incoming, text: &str) -> Outgoing {
    Outgoing::text(
        Target::Room {
            id: to.room.as_ref().unwrap().id.clone(),
            thread: to.thread.clone(),
        },
        text,
    )
}

#[tokio::test]
async fn a_channel_command_is_answered_in_its_thread_and_the_ack_edited_in_place() {
    let fake = Fake::start().await;
    let mut bot = bot(&fake, "app-secret", None);
    let status = bot
        .shared
        .receive(None, &channel_message(&fake, "1001", "run pack.deploy"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let message = bot.incoming.recv().await.unwrap();
    assert_eq!(message.text, "run pack.deploy");
    assert!(message.mentioned);
    assert_eq!(
        message.room,
        Some(Room {
            id: "19:ops@thread.tacv2".into(),
            name: "#ops".into()
        })
    );
    assert_eq!(message.thread.as_deref(), Some("1001"));

    let mut ack = reply(&message, "on it");
    ack.mention = Some("Alice".into());
    ack.remember_as = Some("ack:e1".into());
    send_one(&*bot.shared, &ack).await.unwrap();
    let mut edit = reply(&message, "succeeded in 2s");
    edit.replaces = Some("ack:e1".into());
    send_one(&*bot.shared, &edit).await.unwrap();

    let calls = fake.connector_calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0].method, "POST");
    assert_eq!(
        calls[0].path,
        "/svc/v3/conversations/19:ops@thread.tacv2;messageid=1001/activities/1001"
    );
    assert_eq!(calls[0].body["replyToId"], "1001");
    assert_eq!(calls[0].body["text"], "<at>Alice</at> on it");
    assert_eq!(calls[0].body["entities"][0]["mentioned"]["id"], "29:alice");
    assert_eq!(calls[0].authorization.as_deref(), Some("Bearer token-1"));
    let posted_id = "act-1";
    assert_eq!(calls[1].method, "PUT");
    assert_eq!(
        calls[1].path,
        format!("/svc/v3/conversations/19:ops@thread.tacv2;messageid=1001/activities/{posted_id}")
    );
    assert_eq!(calls[1].body["text"], "succeeded in 2s");
    assert_eq!(fake.tokens_issued(), 1, "the token is cached");
    let token_call = &fake.calls()[0];
    assert_eq!(token_call.path, "/login/botframework.com/oauth2/v2.0/token");
    assert_eq!(token_call.body["grant_type"], "client_credentials");
    assert_eq!(token_call.body["scope"], connector::CONNECTOR_SCOPE);
    assert_eq!(
        token_call.body["client_id"],
        "11111111-2222-3333-4444-555555555555"
    );
}

#[tokio::test]
async fn a_redelivered_activity_is_handed_on_once() {
    let fake = Fake::start().await;
    let mut bot = bot(&fake, "app-secret", None);
    let body = channel_message(&fake, "7", "help");
    assert_eq!(bot.shared.receive(None, &body).await, StatusCode::OK);
    assert_eq!(bot.shared.receive(None, &body).await, StatusCode::OK);
    bot.incoming.recv().await.unwrap();
    assert!(bot.incoming.try_recv().is_err());
}

#[tokio::test]
async fn a_401_from_the_connector_fetches_a_new_token_once() {
    let fake = Fake::start().await;
    let mut bot = bot(&fake, "app-secret", None);
    bot.shared
        .receive(None, &personal_message(&fake, "1", "help"))
        .await;
    bot.incoming.recv().await.unwrap();
    fake.script(401, None);
    let out = Outgoing::text(
        Target::Direct {
            user: "29:bob".into(),
        },
        "hello",
    );
    send_one(&*bot.shared, &out).await.unwrap();
    let calls = fake.connector_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].authorization.as_deref(), Some("Bearer token-1"));
    assert_eq!(calls[1].authorization.as_deref(), Some("Bearer token-2"));
    assert_eq!(
        calls[1].path,
        "/svc/v3/conversations/a:bob-personal/activities"
    );
    assert_eq!(fake.tokens_issued(), 2);

    // A second 401 right after a fresh token is the credentials' fault: reported, not
    // looped on.
    fake.script(401, None);
    fake.script(401, None);
    let err = bot.shared.try_post(&out).await.unwrap_err();
    assert!(matches!(err, ApiError::Auth(_)), "{err}");
}

#[tokio::test]
async fn a_429_waits_for_retry_after() {
    let fake = Fake::start().await;
    let mut bot = bot(&fake, "app-secret", None);
    bot.shared
        .receive(None, &channel_message(&fake, "5", "help"))
        .await;
    let message = bot.incoming.recv().await.unwrap();
    fake.script(429, Some(1));
    send_one(&*bot.shared, &reply(&message, "answer"))
        .await
        .unwrap();
    let calls = fake.connector_calls();
    assert_eq!(calls.len(), 2);
    let waited = calls[1].at.duration_since(calls[0].at);
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?}"
    );
    assert_eq!(calls[1].body["text"], "answer");
}

#[tokio::test]
async fn an_expired_token_is_renewed_before_use() {
    let fake = Fake::start().await;
    // Tokens that live 1 s are renewed at once (half their life, under the 5 min margin).
    *fake.state.token_lifetime.lock().unwrap() = 1;
    let mut bot = bot(&fake, "app-secret", None);
    bot.shared
        .receive(None, &personal_message(&fake, "1", "help"))
        .await;
    bot.incoming.recv().await.unwrap();
    let out = Outgoing::text(Target::Direct { user: "Bob".into() }, "one");
    send_one(&*bot.shared, &out).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    send_one(&*bot.shared, &out).await.unwrap();
    assert_eq!(fake.tokens_issued(), 2);
    let calls = fake.connector_calls();
    assert_eq!(calls[1].authorization.as_deref(), Some("Bearer token-2"));
}

#[tokio::test]
async fn refused_app_credentials_stop_the_backend() {
    let fake = Fake::start().await;
    let bot = bot(&fake, "wrong-secret", None);
    let (state, _rx) = watch::channel(ConnState::Connecting);
    let err = first_token(&bot.shared, &state).await.unwrap_err();
    assert!(matches!(err, BackendError::Auth { .. }), "{err}");
    assert!(matches!(&*state.borrow(), ConnState::Failed(_)));
    assert!(!format!("{err}").contains("wrong-secret"));
}

#[tokio::test]
async fn announcements_and_direct_messages_work_after_a_restart() {
    let fake = Fake::start().await;
    let dir = std::env::temp_dir().join(format!(
        "st2bot-msteams-restart-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("refs.json");
    {
        let mut first = bot(&fake, "app-secret", file.to_str());
        first
            .shared
            .receive(None, &channel_message(&fake, "1", "help"))
            .await;
        first
            .shared
            .receive(None, &personal_message(&fake, "2", "help"))
            .await;
        first.incoming.recv().await.unwrap();
        first.incoming.recv().await.unwrap();
    }
    let second = bot(&fake, "app-secret", file.to_str());
    let announcement = Outgoing::text(
        Target::Room {
            id: "#ops".into(),
            thread: None,
        },
        "deploy finished",
    );
    send_one(&*second.shared, &announcement).await.unwrap();
    let whisper = Outgoing::text(Target::Direct { user: "Bob".into() }, "your result");
    send_one(&*second.shared, &whisper).await.unwrap();
    let calls = fake.connector_calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(
        calls[0].path,
        "/svc/v3/conversations/19:ops@thread.tacv2/activities"
    );
    assert!(calls[0].body.get("replyToId").is_none());
    assert_eq!(
        calls[1].path,
        "/svc/v3/conversations/a:bob-personal/activities"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_direct_message_to_someone_without_a_chat_creates_one() {
    let fake = Fake::start().await;
    let mut bot = bot(&fake, "app-secret", None);
    bot.shared
        .receive(None, &channel_message(&fake, "1", "help"))
        .await;
    bot.incoming.recv().await.unwrap();
    let out = Outgoing::text(
        Target::Direct {
            user: "29:alice".into(),
        },
        "private",
    );
    send_one(&*bot.shared, &out).await.unwrap();
    let calls = fake.connector_calls();
    assert_eq!(calls[0].path, "/svc/v3/conversations");
    assert_eq!(calls[0].body["members"][0]["id"], "29:alice");
    assert_eq!(calls[0].body["bot"]["id"], "28:bot");
    assert_eq!(calls[0].body["tenantId"], "tenant-1");
    assert_eq!(
        calls[1].path,
        "/svc/v3/conversations/a:created-1/activities"
    );
    // The created chat is known from now on.
    send_one(&*bot.shared, &out).await.unwrap();
    assert_eq!(
        fake.connector_calls()[2].path,
        "/svc/v3/conversations/a:created-1/activities"
    );
}

#[tokio::test]
async fn a_room_never_seen_is_reported_not_guessed() {
    let fake = Fake::start().await;
    let bot = bot(&fake, "app-secret", None);
    let out = Outgoing::text(
        Target::Room {
            id: "#nowhere".into(),
            thread: None,
        },
        "x",
    );
    let err = bot.shared.try_post(&out).await.unwrap_err();
    assert!(matches!(err, ApiError::Unresolvable(_)), "{err}");
    assert!(fake.connector_calls().is_empty());
}

#[tokio::test]
async fn unsigned_mode_refuses_a_service_url_off_this_machine_and_bad_bodies() {
    let fake = Fake::start().await;
    let bot = bot(&fake, "app-secret", None);
    let body = json!({
        "type": "message", "id": "1", "channelId": "msteams",
        "serviceUrl": "https://attacker.example/",
        "from": {"id": "29:alice"}, "recipient": {"id": "28:bot"},
        "conversation": {"id": "a:1", "conversationType": "personal"}, "text": "help"
    })
    .to_string();
    assert_eq!(
        bot.shared.receive(None, body.as_bytes()).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(bot.shared.references.is_empty(), "nothing recorded");
    assert_eq!(
        bot.shared.receive(None, b"{not json").await,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn signed_mode_refuses_an_activity_without_a_token() {
    let fake = Fake::start().await;
    let mut bot = bot(&fake, "app-secret", None);
    let http = crate::http::client(true, None, Some(Duration::from_secs(5))).unwrap();
    Arc::get_mut(&mut bot.shared).unwrap().validator = Some(TokenValidator::new(
        http,
        format!("{}/openid", fake.base),
        BOT_FRAMEWORK_ISSUER,
        "11111111-2222-3333-4444-555555555555",
    ));
    let status = bot
        .shared
        .receive(None, &channel_message(&fake, "1", "help"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(bot.incoming.try_recv().is_err());
    assert!(bot.shared.references.is_empty());
}

fn spec(listen: &str) -> MsTeamsSpec {
    MsTeamsSpec {
        app_id: "11111111-2222-3333-4444-555555555555".into(),
        app_password: bot_config::SecretRef::Env("MSTEAMS_APP_PASSWORD".into()),
        tenant: "botframework.com".into(),
        listen: listen.to_owned().into(),
        state_file: None,
        url: "https://login.microsoftonline.com".into(),
    }
}

#[test]
fn the_unsigned_switch_is_refused_off_loopback() {
    let on = Some("1".to_owned());
    let err = MsTeamsBackend::new(&spec("0.0.0.0:3978"), on.clone()).unwrap_err();
    assert!(err.to_string().contains("not a loopback address"), "{err}");
    assert!(MsTeamsBackend::new(&spec("[::]:3978"), on.clone()).is_err());
    assert!(
        MsTeamsBackend::new(&spec("127.0.0.1:3978"), on.clone())
            .unwrap()
            .unsigned
    );
    assert!(
        MsTeamsBackend::new(&spec("[::1]:3978"), on)
            .unwrap()
            .unsigned
    );
    let off = MsTeamsBackend::new(&spec("0.0.0.0:3978"), None).unwrap();
    assert!(!off.unsigned);
    assert!(
        !MsTeamsBackend::new(&spec("0.0.0.0:3978"), Some("0".into()))
            .unwrap()
            .unsigned
    );
    let typo = MsTeamsBackend::new(&spec("127.0.0.1:3978"), Some("yes".into()));
    assert!(typo.is_err(), "only 1 or 0");
}

#[test]
fn unsigned_activities_must_come_from_this_machine() {
    assert!(is_loopback_url("http://localhost:56150/_connector"));
    assert!(is_loopback_url("http://127.0.0.1:1/"));
    assert!(is_loopback_url("http://[::1]:1/"));
    assert!(!is_loopback_url("https://smba.trafficmanager.net/emea/"));
    assert!(!is_loopback_url("http://localhost.attacker.example/"));
    assert!(!is_loopback_url("not a url"));
}

#[test]
fn echoed_mention_markup_is_broken() {
    let z = crate::backend::ZWJ;
    assert_eq!(
        defuse_mass_mentions("<at>Team</at> <AT >x</AT> <attr>"),
        format!("<{z}at>Team<{z}/at> <{z}AT >x<{z}/AT> <attr>")
    );
}
