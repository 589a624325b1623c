//! A lean Matrix client-server API (v3) client over reqwest: the handful of endpoints a bot
//! needs (login, whoami, profile, join, sync, send, createRoom, directory, account data),
//! typed responses for what the bot reads. Calls fail with the backends' shared
//! [`ApiError`]: a homeserver's error answer is [`ApiError::Status`] (its `errcode` and
//! `retry_after_ms`), and [`MatrixError`] tells transient failures (network, 5xx, 429) from
//! permanent ones.
//!
//! Reference: <https://spec.matrix.org/v1.11/client-server-api/> (login §5.5, sync §8.6,
//! joining rooms §10.4, sending events §9.6, direct messaging §13.23, rate limiting §2.4).
//! The access token travels in the `Authorization` header only, never in a URL, so request
//! URLs are safe to log.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use url::Url;

use crate::backend::error::ApiError;
use crate::secret::Secret;

/// Time allowed for an ordinary request (not the sync long-poll).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Extra time a sync request gets beyond its long-poll timeout.
const SYNC_GRACE: Duration = Duration::from_secs(30);

/// What the Matrix backend asks of a failed call: the homeserver's error code, whether the
/// token is gone, whether to wait and retry.
pub(crate) trait MatrixError {
    /// The Matrix error code, if the homeserver gave one.
    fn errcode(&self) -> Option<&str>;

    /// The access token is no longer valid (`M_UNKNOWN_TOKEN`, or a 401 without a code).
    fn is_unknown_token(&self) -> bool;

    /// How long to wait before retrying, for a rate-limited (`429 M_LIMIT_EXCEEDED`) call.
    fn rate_limited(&self) -> Option<Duration>;

    /// Worth retrying later unchanged: network trouble, server errors, rate limits.
    fn is_transient(&self) -> bool;
}

impl MatrixError for ApiError {
    fn errcode(&self) -> Option<&str> {
        match self {
            ApiError::Status { code, .. } if !code.is_empty() => Some(code),
            _ => None,
        }
    }

    fn is_unknown_token(&self) -> bool {
        match self {
            ApiError::Status { status, code, .. } => {
                code == "M_UNKNOWN_TOKEN" || (*status == 401 && code.is_empty())
            }
            _ => false,
        }
    }

    fn rate_limited(&self) -> Option<Duration> {
        match self {
            ApiError::Status {
                status,
                code,
                retry_after,
                ..
            } if *status == 429 || code == "M_LIMIT_EXCEEDED" => {
                Some(retry_after.unwrap_or(Duration::from_secs(1)))
            }
            _ => None,
        }
    }

    fn is_transient(&self) -> bool {
        match self {
            ApiError::Transport(_) => true,
            ApiError::Status { status, .. } => *status >= 500 || self.rate_limited().is_some(),
            _ => false,
        }
    }
}

/// A response body that is not what the specification describes.
fn unexpected(endpoint: &str, reason: impl std::fmt::Display) -> ApiError {
    ApiError::refused(200, format!("{endpoint}: unexpected response: {reason}"))
}

/// The client: homeserver base URL, HTTP client, and the access token once logged in.
#[derive(Clone)]
pub(crate) struct Api {
    http: reqwest::Client,
    base: Url,
    token: Option<Secret>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("base", &self.base.as_str())
            .field("logged_in", &self.token.is_some())
            .finish()
    }
}

/// `POST /login` and `GET /account/whoami` answers (the fields the bot uses). `Debug`
/// never shows the access token.
#[derive(Deserialize)]
pub(crate) struct LoginResponse {
    /// Full user id (`@st2bot:example.org`).
    pub(crate) user_id: String,
    /// Access token (absent in `whoami`).
    #[serde(default)]
    pub(crate) access_token: Option<String>,
    /// Device id.
    #[serde(default)]
    pub(crate) device_id: Option<String>,
}

impl std::fmt::Debug for LoginResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginResponse")
            .field("user_id", &self.user_id)
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "<redacted>"),
            )
            .field("device_id", &self.device_id)
            .finish()
    }
}

/// `GET /sync` answer.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct SyncResponse {
    /// Token for the next sync.
    pub(crate) next_batch: String,
    /// Room updates.
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) rooms: SyncRooms,
    /// Global account data (`m.direct`).
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) account_data: EventList,
}

/// Room updates by membership.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct SyncRooms {
    /// Rooms the bot is in.
    #[serde(default, deserialize_with = "lenient_map")]
    pub(crate) join: HashMap<String, JoinedRoom>,
    /// Rooms the bot is invited to.
    #[serde(default, deserialize_with = "lenient_map")]
    pub(crate) invite: HashMap<String, InvitedRoom>,
    /// Rooms the bot left or was removed from.
    #[serde(default, deserialize_with = "lenient_map")]
    pub(crate) leave: HashMap<String, Value>,
}

/// A joined room's update.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct JoinedRoom {
    /// State between the previous sync and the start of the timeline.
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) state: EventList,
    /// New events, in order.
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) timeline: Timeline,
    /// Member counts and heroes (sent when they changed; needs lazy-loading).
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) summary: RoomSummary,
}

/// `summary` of a joined room.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RoomSummary {
    /// Users used to name the room (the other member of a direct chat).
    #[serde(rename = "m.heroes", default)]
    pub(crate) heroes: Option<Vec<String>>,
    /// Joined members.
    #[serde(rename = "m.joined_member_count", default)]
    pub(crate) joined_member_count: Option<u64>,
    /// Invited members.
    #[serde(rename = "m.invited_member_count", default)]
    pub(crate) invited_member_count: Option<u64>,
}

/// A room's timeline slice.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Timeline {
    /// Events, oldest first.
    #[serde(default, deserialize_with = "lenient_events")]
    pub(crate) events: Vec<Event>,
}

/// An invited room's stripped state.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct InvitedRoom {
    /// Stripped state events, including the invite itself.
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) invite_state: EventList,
}

/// A list of events.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct EventList {
    /// The events.
    #[serde(default, deserialize_with = "lenient_events")]
    pub(crate) events: Vec<Event>,
}

/// One event; unknown or malformed parts are tolerated (fields default).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Event {
    /// Event type (`m.room.message`, `m.room.member`…).
    #[serde(rename = "type", default)]
    pub(crate) kind: String,
    /// Sender user id.
    #[serde(default)]
    pub(crate) sender: String,
    /// Present on state events.
    #[serde(default)]
    pub(crate) state_key: Option<String>,
    /// Event id (absent on stripped state).
    #[serde(default)]
    pub(crate) event_id: Option<String>,
    /// Content, read field by field.
    #[serde(default)]
    pub(crate) content: Value,
}

/// Any value; one that does not have the expected shape becomes the default (a malformed
/// part of a sync answer must not stop the bot from reading the rest).
fn lenient<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    let value = Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).unwrap_or_else(|e| {
        tracing::debug!(error = %e, "matrix: ignoring a malformed part of a sync answer");
        T::default()
    }))
}

/// A map whose malformed entries are dropped.
fn lenient_map<'de, D, T>(deserializer: D) -> Result<HashMap<String, T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: DeserializeOwned,
{
    let map: HashMap<String, Value> = lenient(deserializer)?;
    Ok(map
        .into_iter()
        .filter_map(|(k, v)| serde_json::from_value(v).ok().map(|v| (k, v)))
        .collect())
}

/// Events, malformed ones dropped.
fn lenient_events<'de, D>(deserializer: D) -> Result<Vec<Event>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let events: Vec<Value> = lenient(deserializer)?;
    Ok(events
        .into_iter()
        .filter_map(|e| match serde_json::from_value(e) {
            Ok(event) => Some(event),
            Err(error) => {
                tracing::debug!(%error, "matrix: ignoring a malformed event");
                None
            }
        })
        .collect())
}

/// `{"room_id": …}` answers (join, createRoom, directory).
#[derive(Debug, Deserialize)]
struct RoomIdResponse {
    room_id: String,
}

/// `{"event_id": …}` answer of a send.
#[derive(Debug, Deserialize)]
struct EventIdResponse {
    event_id: String,
}

/// `GET /profile/{userId}/displayname` answer.
#[derive(Debug, Deserialize)]
struct DisplayNameResponse {
    #[serde(default)]
    displayname: Option<String>,
}

impl Api {
    /// A client for the homeserver at `base` (checked by the caller to be an http(s) URL).
    pub(crate) fn new(http: reqwest::Client, base: Url) -> Self {
        Self {
            http,
            base,
            token: None,
        }
    }

    /// Uses `token` for every following call.
    pub(crate) fn set_token(&mut self, token: Secret) {
        self.token = Some(token);
    }

    /// `{base}/_matrix/client/v3/{segments…}`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty()
                .extend(["_matrix", "client", "v3"])
                .extend(segments);
        }
        url
    }

    fn request(&self, method: Method, segments: &[&str]) -> RequestBuilder {
        let mut builder = self
            .http
            .request(method, self.url(segments))
            .timeout(REQUEST_TIMEOUT);
        if let Some(token) = &self.token {
            builder = builder.bearer_auth(token.expose());
        }
        builder
    }

    /// `POST /login` with `m.login.password`; reuses `device_id` when given.
    pub(crate) async fn login_password(
        &self,
        user: &str,
        password: &Secret,
        device_id: Option<&str>,
    ) -> Result<LoginResponse, ApiError> {
        let mut body = json!({
            "type": "m.login.password",
            "identifier": { "type": "m.id.user", "user": user },
            "password": password.expose(),
            "initial_device_display_name": "st2bot",
        });
        if let Some(device) = device_id {
            body["device_id"] = json!(device);
        }
        let response: LoginResponse =
            execute(self.request(Method::POST, &["login"]).json(&body), "login").await?;
        if response.access_token.is_none() {
            return Err(unexpected("login", "no access_token in the answer"));
        }
        Ok(response)
    }

    /// `GET /account/whoami`: who the access token belongs to.
    pub(crate) async fn whoami(&self) -> Result<LoginResponse, ApiError> {
        execute(
            self.request(Method::GET, &["account", "whoami"]),
            "account/whoami",
        )
        .await
    }

    /// `GET /profile/{userId}/displayname`; `None` when the user has none.
    pub(crate) async fn display_name(&self, user_id: &str) -> Result<Option<String>, ApiError> {
        match execute::<DisplayNameResponse>(
            self.request(Method::GET, &["profile", user_id, "displayname"]),
            "profile/displayname",
        )
        .await
        {
            Ok(r) => Ok(r.displayname.filter(|n| !n.is_empty())),
            Err(ApiError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /join/{roomIdOrAlias}`: joins (or accepts an invite); returns the room id.
    pub(crate) async fn join(&self, room: &str) -> Result<String, ApiError> {
        let response: RoomIdResponse = execute(
            self.request(Method::POST, &["join", room]).json(&json!({})),
            "join",
        )
        .await?;
        Ok(response.room_id)
    }

    /// `GET /directory/room/{alias}`: the room id an alias points to.
    pub(crate) async fn resolve_alias(&self, alias: &str) -> Result<String, ApiError> {
        let response: RoomIdResponse = execute(
            self.request(Method::GET, &["directory", "room", alias]),
            "directory/room",
        )
        .await?;
        Ok(response.room_id)
    }

    /// `GET /sync`, as a future that owns everything it needs (so it can stay pending while
    /// the bot sends replies). `filter` is an inline JSON filter.
    pub(crate) fn sync(
        &self,
        since: Option<&str>,
        filter: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<SyncResponse, ApiError>> + Send + 'static + use<> {
        let mut url = self.url(&["sync"]);
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("filter", filter)
                .append_pair("timeout", &timeout.as_millis().to_string());
            if let Some(since) = since {
                query.append_pair("since", since);
            }
        }
        let mut builder = self.http.get(url).timeout(timeout + SYNC_GRACE);
        if let Some(token) = &self.token {
            builder = builder.bearer_auth(token.expose());
        }
        execute(builder, "sync")
    }

    /// `PUT /rooms/{roomId}/send/m.room.message/{txnId}`; returns the event id. Retrying with
    /// the same `txn_id` is safe: the homeserver de-duplicates it.
    pub(crate) async fn send_message(
        &self,
        room_id: &str,
        txn_id: &str,
        content: &Value,
    ) -> Result<String, ApiError> {
        let response: EventIdResponse = execute(
            self.request(
                Method::PUT,
                &["rooms", room_id, "send", "m.room.message", txn_id],
            )
            .json(content),
            "rooms/send",
        )
        .await?;
        Ok(response.event_id)
    }

    /// `POST /createRoom` for a direct chat with `user_id`; returns the new room id.
    pub(crate) async fn create_direct_room(&self, user_id: &str) -> Result<String, ApiError> {
        let body = json!({
            "is_direct": true,
            "invite": [user_id],
            "preset": "trusted_private_chat",
        });
        let response: RoomIdResponse = execute(
            self.request(Method::POST, &["createRoom"]).json(&body),
            "createRoom",
        )
        .await?;
        Ok(response.room_id)
    }

    /// `PUT /user/{userId}/account_data/{type}`.
    pub(crate) async fn set_account_data(
        &self,
        user_id: &str,
        kind: &str,
        content: &Value,
    ) -> Result<(), ApiError> {
        let _: Value = execute(
            self.request(Method::PUT, &["user", user_id, "account_data", kind])
                .json(content),
            "account_data",
        )
        .await?;
        Ok(())
    }
}

/// Sends a request and decodes a JSON answer or a Matrix error.
async fn execute<T: DeserializeOwned>(
    builder: RequestBuilder,
    endpoint: &'static str,
) -> Result<T, ApiError> {
    let transport = |source: reqwest::Error| {
        ApiError::Transport(format!(
            "cannot reach the homeserver ({endpoint}): {}",
            error_chain(&source.without_url())
        ))
    };
    let response = builder.send().await.map_err(transport)?;
    let status = response.status();
    let retry_header = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let bytes = response.bytes().await.map_err(transport)?;
    if status.is_success() {
        return serde_json::from_slice(&bytes).map_err(|e| unexpected(endpoint, e));
    }
    Err(matrix_error(endpoint, status, &bytes, retry_header))
}

/// An error and its causes, `: `-separated ("error sending request: … Connection refused").
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Builds [`ApiError::Status`] from an error answer (tolerating a non-JSON body).
fn matrix_error(
    endpoint: &str,
    status: StatusCode,
    body: &[u8],
    retry_header: Option<Duration>,
) -> ApiError {
    #[derive(Deserialize, Default)]
    struct ErrorBody {
        #[serde(default)]
        errcode: String,
        #[serde(default)]
        error: String,
        #[serde(default)]
        retry_after_ms: Option<u64>,
    }
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let message = if parsed.error.is_empty() {
        String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()
    } else {
        parsed.error
    };
    ApiError::Status {
        endpoint: endpoint.to_owned(),
        status: status.as_u16(),
        code: parsed.errcode,
        message,
        retry_after: parsed
            .retry_after_ms
            .map(Duration::from_millis)
            .or(retry_header),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(base: &str) -> Api {
        let http = crate::http::client(true, None, None).unwrap();
        Api::new(http, Url::parse(base).unwrap())
    }

    #[test]
    fn a_login_response_never_shows_its_token() {
        let response: LoginResponse = serde_json::from_str(
            r#"{"user_id": "@bot:example.org", "access_token": "syt_very_secret", "device_id": "D1"}"#,
        )
        .unwrap();
        let shown = format!("{response:?}");
        assert!(!shown.contains("syt_very_secret"), "{shown}");
        assert!(
            shown.contains("@bot:example.org") && shown.contains("D1"),
            "{shown}"
        );
    }

    #[test]
    fn encodes_path_segments() {
        let a = api("https://matrix.example.org/");
        assert_eq!(
            a.url(&["join", "#ops:example.org"]).as_str(),
            "https://matrix.example.org/_matrix/client/v3/join/%23ops:example.org"
        );
        let a = api("https://example.org/matrix");
        assert_eq!(
            a.url(&["rooms", "!a/b:x", "send"]).as_str(),
            "https://example.org/matrix/_matrix/client/v3/rooms/!a%2Fb:x/send"
        );
    }

    #[test]
    fn malformed_parts_of_a_sync_are_skipped() {
        let body = json!({
            "next_batch": "s2",
            "account_data": { "events": "not a list" },
            "rooms": {
                "join": {
                    "!good:x": {
                        "summary": { "m.heroes": [1, 2], "m.joined_member_count": 3 },
                        "timeline": { "events": [
                            { "type": "m.room.message", "sender": "@a:x", "content": { "body": "hi" } },
                            { "type": "m.room.message", "sender": ["bad"] },
                            { "type": "m.room.member", "state_key": 7 }
                        ] }
                    },
                    "!bad:x": "not a room"
                },
                "invite": [],
                "leave": { "!gone:x": {} }
            }
        });
        let sync: SyncResponse = serde_json::from_value(body).unwrap();
        assert_eq!(sync.next_batch, "s2");
        assert!(sync.account_data.events.is_empty());
        assert_eq!(sync.rooms.join.len(), 1);
        let room = &sync.rooms.join["!good:x"];
        assert_eq!(room.timeline.events.len(), 1);
        assert_eq!(room.timeline.events[0].content["body"], "hi");
        assert_eq!(
            room.summary.joined_member_count, None,
            "a bad summary is dropped whole"
        );
        assert!(sync.rooms.invite.is_empty());
        assert!(sync.rooms.leave.contains_key("!gone:x"));
    }

    #[test]
    fn classifies_errors() {
        let limited = matrix_error(
            "send",
            StatusCode::TOO_MANY_REQUESTS,
            br#"{"errcode":"M_LIMIT_EXCEEDED","error":"slow down","retry_after_ms":1500}"#,
            None,
        );
        assert_eq!(limited.rate_limited(), Some(Duration::from_millis(1500)));
        assert!(limited.is_transient());
        let token = matrix_error(
            "sync",
            StatusCode::UNAUTHORIZED,
            br#"{"errcode":"M_UNKNOWN_TOKEN","error":"Invalid access token passed.","soft_logout":true}"#,
            None,
        );
        assert!(token.is_unknown_token() && !token.is_transient());
        let forbidden = matrix_error("join", StatusCode::FORBIDDEN, b"<html>nope</html>", None);
        assert_eq!(forbidden.errcode(), None);
        assert!(!forbidden.is_transient() && !forbidden.is_unknown_token());
        assert!(forbidden.to_string().contains("<html>nope</html>"));
        let header_only = matrix_error(
            "send",
            StatusCode::TOO_MANY_REQUESTS,
            b"{}",
            Some(Duration::from_secs(3)),
        );
        assert_eq!(header_only.rate_limited(), Some(Duration::from_secs(3)));
    }

    #[test]
    fn an_unexpected_answer_is_a_permanent_refusal_that_names_the_endpoint() {
        let e = unexpected("login", "no access_token in the answer");
        assert_eq!(
            e.to_string(),
            "login: unexpected response: no access_token in the answer"
        );
        assert!(!e.is_transient() && !e.is_unknown_token() && e.errcode().is_none());
        assert!(
            ApiError::Transport("cannot reach the homeserver (sync): refused".into())
                .is_transient()
        );
    }
}
