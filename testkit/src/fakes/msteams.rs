//! A fake Microsoft Teams for whole-bot tests: the Microsoft identity platform's token
//! endpoint, the Bot Framework Connector the bot posts to, and the Teams side that delivers
//! activities to the bot's messaging endpoint. Built from Microsoft's Bot Framework REST
//! documentation (learn.microsoft.com/azure/bot-service/rest-api/):
//! - `POST /login/{tenant}/oauth2/v2.0/token` (form `grant_type=client_credentials`,
//!   `client_id`, `client_secret`, `scope`) answers `{"token_type":"Bearer","expires_in",
//!   "access_token"}`, or 401 `{"error":"invalid_client"}` for a wrong secret;
//! - `POST /svc/v3/conversations/{id}/activities[/{replyToId}]` answers 201 with a
//!   `ResourceResponse` `{"id"}`; `PUT /svc/v3/conversations/{id}/activities/{activityId}`
//!   answers 200; `POST /svc/v3/conversations` answers 201 with the new conversation id;
//!   the Connector checks `Authorization: Bearer` against the tokens it issued (401
//!   otherwise, as the real one does for an expired token) and can be told to answer 401 or
//!   429 with `Retry-After` next;
//! - activities are delivered as the Connector does: `POST {endpoint}/api/messages` with the
//!   activity JSON (`channelId: msteams`, `serviceUrl` this fake's `/svc/`); in a channel
//!   only messages that mention the bot are delivered, with `<at>` markup and a `mention`
//!   entity, as Teams does.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::ws::Served;

/// The bot's ids.
pub const APP_ID: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
pub const BOT_ID: &str = "28:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
pub const BOT_NAME: &str = "st2bot";
pub const APP_SECRET: &str = "fake-app-secret";
pub const TENANT: &str = "tenant-0";
/// The channel `#ops` of the team.
pub const OPS: &str = "19:ops@thread.tacv2";

/// One activity the bot posted (or edited).
#[derive(Clone, Debug)]
pub struct Posted {
    pub method: String,
    pub conversation: String,
    /// The activity replied to (path), for replies.
    pub reply_to: Option<String>,
    /// The activity id the fake gave it (or edited).
    pub id: String,
    pub body: Value,
    pub at: Instant,
}

impl Posted {
    /// The text and every Adaptive Card `TextBlock`, joined.
    pub fn all_text(&self) -> String {
        let mut out = self.body["text"].as_str().unwrap_or_default().to_owned();
        for a in self.body["attachments"].as_array().into_iter().flatten() {
            collect_text(&a["content"], &mut out);
        }
        out
    }
}

fn collect_text(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            if m.get("type").and_then(Value::as_str) == Some("TextBlock")
                && let Some(t) = m.get("text").and_then(Value::as_str)
            {
                out.push('\n');
                out.push_str(t);
            }
            m.values().for_each(|x| collect_text(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_text(x, out)),
        _ => {}
    }
}

#[derive(Default)]
struct Inner {
    posted: Vec<Posted>,
    tokens: Vec<String>,
    scripted: VecDeque<(u16, Option<u64>)>,
    next_id: u64,
    refused: Vec<u16>,
}

/// The fake, listening on 127.0.0.1.
pub struct FakeTeams {
    pub base: String,
    inner: Arc<Mutex<Inner>>,
    http: reqwest::Client,
    /// The bot's messaging endpoint.
    endpoint: Mutex<Option<String>>,
    _server: Served,
}

impl FakeTeams {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let server = Served::start(
            Router::new()
                .fallback(handle)
                .with_state(Arc::clone(&inner)),
        )
        .await;
        let base = format!("http://{}", server.addr);
        Self {
            base,
            inner,
            http: bot_runtime::http::client(true, None, Some(std::time::Duration::from_secs(10)))
                .unwrap(),
            endpoint: Mutex::new(None),
            _server: server,
        }
    }

    /// The login base for the definition's `url`.
    pub fn login_url(&self) -> String {
        format!("{}/login", self.base)
    }

    pub fn service_url(&self) -> String {
        format!("{}/svc/", self.base)
    }

    pub fn set_endpoint(&self, endpoint: &str) {
        *self.endpoint.lock().unwrap() = Some(endpoint.to_owned());
    }

    pub fn tokens_issued(&self) -> usize {
        self.inner.lock().unwrap().tokens.len()
    }

    pub fn posted(&self) -> Vec<Posted> {
        self.inner.lock().unwrap().posted.clone()
    }

    /// Statuses the Connector answered instead of accepting (401, 429).
    pub fn refused(&self) -> Vec<u16> {
        self.inner.lock().unwrap().refused.clone()
    }

    /// The next Connector call is answered `status` (with `Retry-After`).
    pub fn script(&self, status: u16, retry_after: Option<u64>) {
        self.inner
            .lock()
            .unwrap()
            .scripted
            .push_back((status, retry_after));
    }

    /// Makes every issued token invalid (as when one expires early): the next call is 401.
    pub fn revoke_tokens(&self) {
        self.inner.lock().unwrap().tokens.clear();
    }

    /// Delivers an activity to the bot; returns the HTTP status it answered.
    pub async fn deliver(&self, activity: Value) -> u16 {
        let endpoint = self.endpoint.lock().unwrap().clone().expect("endpoint set");
        self.http
            .post(format!("{endpoint}/api/messages"))
            .json(&activity)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }

    fn activity(&self, id: &str, from: (&str, &str), conversation: Value, text: &str) -> Value {
        json!({
            "type": "message", "id": id, "channelId": "msteams",
            "serviceUrl": self.service_url(),
            "timestamp": "2026-12-02T12:00:00.000Z",
            "from": { "id": from.0, "name": from.1 },
            "recipient": { "id": BOT_ID, "name": BOT_NAME },
            "conversation": conversation,
            "channelData": { "tenant": { "id": TENANT }, "channel": { "id": OPS, "name": "ops" } },
            "text": text,
            "textFormat": "plain",
        })
    }

    /// A user says `text` in `#ops` mentioning the bot (`thread`: inside that reply chain).
    pub async fn say_in_ops(
        &self,
        id: &str,
        from: (&str, &str),
        text: &str,
        thread: Option<&str>,
    ) -> u16 {
        let conversation_id = match thread {
            Some(root) => format!("{OPS};messageid={root}"),
            None => OPS.to_owned(),
        };
        let mut a = self.activity(
            id,
            from,
            json!({ "id": conversation_id, "conversationType": "channel", "tenantId": TENANT, "isGroup": true }),
            &format!("<at>{BOT_NAME}</at> {text}"),
        );
        a["entities"] = json!([{ "type": "mention", "text": format!("<at>{BOT_NAME}</at>"), "mentioned": { "id": BOT_ID, "name": BOT_NAME } }]);
        self.deliver(a).await
    }

    /// A channel message without a mention: what a bot would get if Teams delivered it.
    pub async fn say_in_ops_unmentioned(&self, id: &str, from: (&str, &str), text: &str) -> u16 {
        let a = self.activity(
            id,
            from,
            json!({ "id": OPS, "conversationType": "channel", "tenantId": TENANT, "isGroup": true }),
            text,
        );
        self.deliver(a).await
    }

    /// A user says `text` in their personal chat with the bot.
    pub async fn say_personal(&self, id: &str, from: (&str, &str), text: &str) -> u16 {
        let a = self.activity(
            id,
            from,
            json!({ "id": personal_chat(from.0), "conversationType": "personal", "tenantId": TENANT }),
            text,
        );
        self.deliver(a).await
    }
}

/// The personal chat id of a user.
pub fn personal_chat(user_id: &str) -> String {
    format!("a:personal-{}", user_id.trim_start_matches("29:"))
}

async fn handle(State(inner): State<Arc<Mutex<Inner>>>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let auth = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    if path.starts_with("/login/") && path.ends_with("/oauth2/v2.0/token") {
        let form: HashMap<String, String> =
            url::form_urlencoded::parse(&body).into_owned().collect();
        let ok = form.get("grant_type").map(String::as_str) == Some("client_credentials")
            && form.get("client_id").map(String::as_str) == Some(APP_ID)
            && form.get("client_secret").map(String::as_str) == Some(APP_SECRET)
            && form.get("scope").map(String::as_str)
                == Some("https://api.botframework.com/.default");
        if !ok {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({ "error": "invalid_client" })),
            )
                .into_response();
        }
        let mut inner = inner.lock().unwrap();
        let token = format!("fake-token-{}", inner.tokens.len() + 1);
        inner.tokens.push(token.clone());
        return axum::Json(
            json!({ "token_type": "Bearer", "expires_in": 3599, "access_token": token }),
        )
        .into_response();
    }
    let Some(rest) = path.strip_prefix("/svc/v3/conversations") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut inner = inner.lock().unwrap();
    let bearer = auth.as_deref().and_then(|a| a.strip_prefix("Bearer "));
    if !bearer.is_some_and(|t| inner.tokens.iter().any(|k| k == t)) {
        inner.refused.push(401);
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if let Some((status, retry_after)) = inner.scripted.pop_front() {
        inner.refused.push(status);
        let mut r = StatusCode::from_u16(status).unwrap().into_response();
        if let Some(s) = retry_after {
            r.headers_mut()
                .insert("retry-after", s.to_string().parse().unwrap());
        }
        if status == 401 {
            inner.tokens.clear();
        }
        return r;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    inner.next_id += 1;
    let new_id = format!("bot-{}", inner.next_id);
    if rest.is_empty() && method == Method::POST {
        let user = body["members"][0]["id"].as_str().unwrap_or_default();
        return (
            StatusCode::CREATED,
            axum::Json(json!({ "id": personal_chat(user) })),
        )
            .into_response();
    }
    let parts: Vec<String> = rest
        .trim_start_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let (conversation, activity) = match parts.as_slice() {
        [c, a] if a == "activities" => (c.clone(), None),
        [c, a, id] if a == "activities" => (c.clone(), Some(id.clone())),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let (status, id, reply_to) = match (&method, activity) {
        (&Method::POST, reply_to) => (StatusCode::CREATED, new_id, reply_to),
        (&Method::PUT, Some(id)) => {
            if !inner
                .posted
                .iter()
                .any(|p| p.id == id && p.method == "POST")
            {
                return StatusCode::NOT_FOUND.into_response();
            }
            (StatusCode::OK, id, None)
        }
        _ => return StatusCode::METHOD_NOT_ALLOWED.into_response(),
    };
    inner.posted.push(Posted {
        method: method.to_string(),
        conversation,
        reply_to,
        id: id.clone(),
        body,
        at: Instant::now(),
    });
    (status, axum::Json(json!({ "id": id }))).into_response()
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}
