//! HTTP handlers: auth, API and stream routes, each answering as StackStorm's controllers do.

// Handlers short-circuit with the HTTP response itself; boxing it would only add noise.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State as AxState};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::state::{HeldExecution, RecordedExecution, RecordedRequest, State};

type Shared = Arc<State>;

pub(crate) fn router(state: Shared) -> Router {
    Router::new()
        .route("/auth/tokens", post(create_token))
        .route("/auth/v1/tokens", post(create_token))
        .route("/api/v1/actionalias", get(list_aliases))
        .route("/api/v1/actionalias/help", get(help))
        .route("/api/v1/actionalias/match", post(match_alias))
        .route("/api/v1/aliasexecution", post(execute))
        .route(
            "/api/v1/aliasexecution/match_and_execute",
            post(match_and_execute),
        )
        .route("/api/v1/rules", get(crate::rules::list_rules))
        .route(
            "/api/v1/executions",
            post(crate::executions::create).get(crate::executions::list),
        )
        .route("/api/v1/executions/{id}", get(crate::executions::get_one))
        .route("/api/v1/inquiries", get(crate::inquiries::list))
        .route("/api/v1/inquiries/", get(crate::inquiries::list))
        .route(
            "/api/v1/inquiries/{id}",
            get(crate::inquiries::get_one).put(crate::inquiries::respond),
        )
        .route("/stream/v1/stream", get(crate::stream::stream))
        .fallback(not_found)
        .with_state(state)
}

/// StackStorm's error body.
pub(crate) fn fault(status: StatusCode, message: impl Into<String>) -> Response {
    let request_id = format!("{:x}", std::process::id() as u64 ^ 0x5eed);
    let mut response =
        (status, axum::Json(json!({ "faultstring": message.into() }))).into_response();
    if let Ok(v) = request_id.parse() {
        response.headers_mut().insert("X-Request-ID", v);
    }
    response
}

/// What nginx answers when st2api is down.
pub(crate) fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [("Content-Type", "text/html")],
        "<html><head><title>503 Service Temporarily Unavailable</title></head><body><center><h1>503 Service Temporarily Unavailable</h1></center><hr><center>nginx</center></body></html>\n",
    )
        .into_response()
}

async fn not_found(uri: Uri) -> Response {
    fault(
        StatusCode::NOT_FOUND,
        format!("The resource could not be found. ({})", uri.path()),
    )
}

/// The credential of a request: headers first, then the query parameters browsers use.
pub(crate) fn credential(
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Option<(String, String)> {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if let Some(k) = header("St2-Api-Key") {
        return Some(("api-key".into(), k));
    }
    if let Some(t) = header("X-Auth-Token") {
        return Some(("token".into(), t));
    }
    if let Some(k) = query.get("st2-api-key") {
        return Some(("api-key".into(), k.clone()));
    }
    query
        .get("x-auth-token")
        .map(|t| ("token".into(), t.clone()))
}

/// Records the request and checks availability and credentials.
pub(crate) fn admit(
    state: &State,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    body: Option<Value>,
    needs_auth: bool,
) -> Result<Option<(String, String)>, Response> {
    let cred = credential(headers, query);
    state.record(RecordedRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or("").to_owned(),
        credential: cred.clone(),
        body,
    });
    if !state.available() {
        return Err(unavailable());
    }
    if needs_auth {
        state
            .authenticate(cred.as_ref())
            .map_err(|m| fault(StatusCode::UNAUTHORIZED, m))?;
    }
    Ok(cred)
}

fn parse_body(body: &Bytes) -> Result<Value, Response> {
    if body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body).map_err(|e| {
        fault(
            StatusCode::BAD_REQUEST,
            format!("Failed to parse request body: {e}"),
        )
    })
}

/// JSON-schema-like check: an object with only `allowed` keys and every `required` one.
fn check_schema(body: &Value, allowed: &[&str], required: &[&str]) -> Result<(), Response> {
    let Some(obj) = body.as_object() else {
        return Err(fault(
            StatusCode::BAD_REQUEST,
            format!("{body} is not of type 'object'"),
        ));
    };
    let extra: Vec<&String> = obj
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .collect();
    if !extra.is_empty() {
        let list = extra
            .iter()
            .map(|k| format!("'{k}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let verb = if extra.len() == 1 { "was" } else { "were" };
        return Err(fault(
            StatusCode::BAD_REQUEST,
            format!("Additional properties are not allowed ({list} {verb} unexpected)"),
        ));
    }
    for r in required {
        if !obj.contains_key(*r) {
            return Err(fault(
                StatusCode::BAD_REQUEST,
                format!("'{r}' is a required property"),
            ));
        }
    }
    Ok(())
}

async fn create_token(
    AxState(state): AxState<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body_json = serde_json::from_slice::<Value>(&body).ok();
    if let Err(r) = admit(
        &state,
        &method,
        &uri,
        &headers,
        &HashMap::new(),
        body_json.clone(),
        false,
    ) {
        return r;
    }
    let basic = headers
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let Some((user, password)) = basic.as_deref().and_then(|b| b.split_once(':')) else {
        return fault(StatusCode::UNAUTHORIZED, "Invalid or missing credentials");
    };
    if !state
        .config
        .users
        .iter()
        .any(|(u, p)| u == user && p == password)
    {
        return fault(StatusCode::UNAUTHORIZED, "Invalid or missing credentials");
    }
    let ttl = match body_json
        .as_ref()
        .and_then(|b| b.get("ttl"))
        .and_then(Value::as_u64)
    {
        Some(t) if Duration::from_secs(t) > state.config.max_token_ttl => {
            return fault(
                StatusCode::BAD_REQUEST,
                format!(
                    "TTL specified {t} is greater than max allowed {}.",
                    state.config.max_token_ttl.as_secs()
                ),
            );
        }
        Some(t) => Duration::from_secs(t.max(1)),
        None => state.config.token_ttl,
    };
    let (token, expiry) = state.issue_token(user, ttl);
    let expiry = humantime::format_rfc3339_micros(expiry).to_string();
    (
        StatusCode::CREATED,
        axum::Json(json!({
            "id": state.next_id(), "user": user, "token": token, "expiry": expiry, "metadata": {},
        })),
    )
        .into_response()
}

async fn list_aliases(
    AxState(state): AxState<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = admit(&state, &method, &uri, &headers, &query, None, true) {
        return r;
    }
    let _answering = state.alias_list_started();
    if !state.config.list_delay.is_zero() {
        tokio::time::sleep(state.config.list_delay).await;
    }
    let (aliases, _) = state.aliases();
    let offset = query
        .get("offset")
        .and_then(|o| o.parse::<usize>().ok())
        .unwrap_or(0);
    let limit = match query.get("limit").map(|l| l.parse::<i64>()) {
        None => 50,
        Some(Ok(l)) if l > 100 => {
            return fault(
                StatusCode::BAD_REQUEST,
                format!("Limit \"{l}\" specified, maximum value is \"100\""),
            );
        }
        Some(Ok(l)) if l < 0 => usize::MAX,
        Some(Ok(l)) => l as usize,
        Some(Err(_)) => return fault(StatusCode::BAD_REQUEST, "Invalid limit"),
    };
    let page: Vec<Value> = aliases.iter().skip(offset).take(limit).cloned().collect();
    let mut response = axum::Json(page).into_response();
    if let Ok(v) = aliases.len().to_string().parse() {
        response.headers_mut().insert("X-Total-Count", v);
    }
    response
}

async fn help(
    AxState(state): AxState<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = admit(&state, &method, &uri, &headers, &query, None, true) {
        return r;
    }
    let (_, index) = state.aliases();
    let int = |k: &str| query.get(k).map(|v| v.parse::<usize>()).unwrap_or(Ok(0));
    let (Ok(limit), Ok(offset)) = (int("limit"), int("offset")) else {
        return fault(
            StatusCode::BAD_REQUEST,
            "limit or offset argument is not an integer",
        );
    };
    let entries = match index.help_entries(
        query
            .get("pack")
            .map(String::as_str)
            .filter(|p| !p.is_empty()),
        query
            .get("filter")
            .map(String::as_str)
            .filter(|f| !f.is_empty()),
    ) {
        Ok(e) => e,
        Err(e) => return fault(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let available = entries.len();
    let end = if limit == 0 {
        available
    } else {
        (offset + limit).min(available)
    };
    let helpstrings: Vec<Value> = entries[offset.min(available)..end]
        .iter()
        .map(|h| json!({"pack": h.pack, "display": h.display, "description": h.description}))
        .collect();
    axum::Json(json!({"available": available, "helpstrings": helpstrings})).into_response()
}

async fn match_alias(
    AxState(state): AxState<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Err(r) = admit(
        &state,
        &method,
        &uri,
        &headers,
        &HashMap::new(),
        Some(body.clone()),
        true,
    ) {
        return r;
    }
    if let Err(r) = check_schema(&body, &["command"], &["command"]) {
        return r;
    }
    let command = body["command"].as_str().unwrap_or_default();
    let (aliases, index) = state.aliases();
    match index.resolve(command) {
        Ok(r) => {
            let doc = aliases
                .iter()
                .find(|a| a.get("ref").and_then(Value::as_str) == Some(r.alias_ref.as_str()))
                .cloned()
                .unwrap_or(Value::Null);
            axum::Json(json!({"actionalias": doc, "display": r.display, "representation": r.representation}))
                .into_response()
        }
        Err(e) => fault(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// The format strings of an alias document, as `ActionAliasDB.get_format_strings`.
fn format_strings(alias: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for f in alias
        .get("formats")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match f {
            Value::String(s) => out.push(s.clone()),
            Value::Object(o) => match o.get("representation") {
                Some(Value::Array(r)) => {
                    out.extend(r.iter().filter_map(Value::as_str).map(str::to_owned))
                }
                Some(Value::String(s)) => out.extend(s.chars().map(String::from)),
                _ => {}
            },
            _ => {}
        }
    }
    out
}

struct ExecutionInput<'a> {
    alias: &'a Value,
    format: &'a str,
    command: &'a str,
    user: &'a str,
    source_channel: &'a str,
    source_context: Value,
    notification_route: Option<&'a str>,
    match_multiple: bool,
    credential: Option<(String, String)>,
}

/// `_post` of StackStorm's alias execution controller: checks, extracts, schedules.
fn schedule(state: &Shared, input: ExecutionInput<'_>) -> Result<Vec<Value>, Response> {
    let alias = input.alias;
    let name = alias
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if alias.get("enabled").and_then(Value::as_bool) == Some(false) {
        return Err(fault(
            StatusCode::BAD_REQUEST,
            format!("Action alias with name \"{name}\" is disabled."),
        ));
    }
    if !format_strings(alias).iter().any(|f| f == input.format) {
        return Err(fault(
            StatusCode::BAD_REQUEST,
            format!(
                "Format string \"{}\" is not available on the alias \"{name}\"",
                input.format
            ),
        ));
    }
    let params = st2_alias::extract_parameters(input.format, input.command, input.match_multiple)
        .map_err(|e| fault(StatusCode::BAD_REQUEST, e.to_string()))?;
    let action = alias
        .get("action_ref")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let reference = alias
        .get("ref")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut results = Vec::new();
    for p in params {
        let parameters: Value = p
            .iter()
            .map(|(k, v)| {
                (
                    k.to_owned(),
                    v.map_or(Value::Null, |v| Value::String(v.to_owned())),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into();
        let id = state.next_id();
        let now = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
        let user = input
            .credential
            .as_ref()
            .and_then(|c| state.authenticate(Some(c)).ok())
            .unwrap_or_else(|| "st2admin".into());
        let mut execution = json!({
            "id": id, "status": "requested", "action": {"ref": action},
            "runner": {"name": "local-shell-cmd"},
            "start_timestamp": now,
            "parameters": parameters,
            "context": {
                "user": user,
                "action_alias_ref": {"id": alias.get("id"), "name": name},
                "api_user": input.user,
                "source_channel": input.source_channel,
                "source_context": input.source_context,
            },
        });
        if let Some(web) = &state.config.webui_url {
            execution["web_url"] = json!(format!("{web}/#/history/{id}/general"));
        }
        state.store_execution(
            &id,
            crate::state::StoredExecution {
                doc: execution.clone(),
                alias: Some(alias.clone()),
                output: simulated_output(&action, &parameters),
            },
        );
        state.record_execution(RecordedExecution {
            id: id.clone(),
            alias: reference.clone(),
            action: action.clone(),
            parameters: parameters.clone(),
            user: input.user.to_owned(),
            source_channel: input.source_channel.to_owned(),
            source_context: input.source_context.clone(),
            notification_route: input.notification_route.map(str::to_owned),
            credential: input.credential.clone(),
        });
        let mut result = json!({"execution": execution, "actionalias": alias});
        if let Some(ack) = alias.get("ack").filter(|a| a.is_object()) {
            if let Some(format) = ack.get("format").and_then(Value::as_str) {
                result["message"] = json!(render_jinja(format, &result));
            }
            if let Some(extra) = ack.get("extra") {
                result["extra"] = extra.clone();
            }
        }
        complete_later(state, input.notification_route, &id, &input);
        results.push(result);
    }
    Ok(results)
}

/// Replaces `{{ a.b.c }}` with values from `data` (enough of Jinja for ack formats).
fn render_jinja(format: &str, data: &Value) -> String {
    let mut out = String::new();
    let mut rest = format;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let path = rest[start + 2..start + end].trim();
        let value = path.split('.').try_fold(data, |v, k| v.get(k));
        match value {
            Some(Value::String(s)) => out.push_str(s),
            Some(v) => out.push_str(&v.to_string()),
            None => {}
        }
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}

/// Simulated completion: after the delay the execution succeeds (an
/// `st2.execution__update` on the stream), then the notify rule for the route posts the
/// result. While the simulator holds results ([`crate::Sim::hold_results`]) it stays
/// `running` until [`release`].
fn complete_later(state: &Shared, route: Option<&str>, id: &str, input: &ExecutionInput<'_>) {
    let announce_route = route.and_then(|r| {
        state
            .config
            .routes
            .iter()
            .find(|(n, _)| n == r && !state.config.disabled_rules.contains(n))
            .map(|(_, a)| a.clone())
    });
    let held = state.holding();
    let finishing = HeldExecution {
        id: id.to_owned(),
        announce_route,
        notify: json!({
            "channel": input.source_channel,
            "user": input.user,
            "whisper": false,
            "context": input.source_context,
        }),
    };
    let asks = state
        .config
        .workflows
        .iter()
        .find(|(action, _)| {
            state
                .execution(id)
                .is_some_and(|e| e.doc["action"]["ref"] == action.as_str())
        })
        .map(|(_, parameters)| parameters.clone());
    let state = state.clone();
    let delay = state.config.result_delay;
    tokio::spawn(async move {
        tokio::time::sleep(delay / 2).await;
        state.update_execution(&finishing.id, |doc| doc["status"] = json!("running"));
        if held {
            state.hold(finishing);
            return;
        }
        if let Some(parameters) = asks {
            let id = finishing.id.clone();
            state.pause(&id, finishing.announce_route, finishing.notify);
            crate::inquiries::ask(&state, &id, &parameters);
            return;
        }
        tokio::time::sleep(delay - delay / 2).await;
        finish(&state, finishing, delay);
    });
}

/// Finishes every execution held so far ([`crate::Sim::release_results`]).
pub(crate) fn release(state: &Shared) {
    let started = std::time::SystemTime::now();
    for held in state.release() {
        let elapsed = state
            .execution(&held.id)
            .and_then(|e| {
                let start = e.doc["start_timestamp"].as_str()?.to_owned();
                humantime::parse_rfc3339(&start).ok()
            })
            .and_then(|start| started.duration_since(start).ok())
            .unwrap_or_default();
        finish(state, held, elapsed);
    }
}

/// The execution succeeds after `elapsed`, and its notify rule (if any) announces it.
fn finish(state: &State, execution: HeldExecution, elapsed: std::time::Duration) {
    let now = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
    let output = state
        .execution(&execution.id)
        .map(|e| e.output)
        .unwrap_or_default();
    state.update_execution(&execution.id, |doc| {
        doc["status"] = json!("succeeded");
        doc["end_timestamp"] = json!(now);
        doc["elapsed_seconds"] = json!(elapsed.as_secs_f64());
        doc["result"] = json!({"stdout": output, "stderr": "", "return_code": 0, "succeeded": true, "failed": false});
    });
    if let Some(route) = &execution.announce_route {
        post_result(state, route, &execution.id, execution.notify);
    }
}

/// Resumes workflow `id` paused on an inquiry: `running` at once, then after half the
/// result delay `succeeded` (or `failed` when `succeeded` is false: the inquiry timed out)
/// with `note` as its output, and its result announced as any other.
pub(crate) fn resume(state: &Shared, id: &str, note: &str, succeeded: bool) {
    state.update_execution(id, |doc| doc["status"] = json!("running"));
    let Some((route, notify)) = state.unpause(id) else {
        return;
    };
    let state = state.clone();
    let id = id.to_owned();
    let note = note.to_owned();
    tokio::spawn(async move {
        let delay = state.config.result_delay;
        tokio::time::sleep(delay / 2).await;
        let now = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
        let status = if succeeded { "succeeded" } else { "failed" };
        let mut output = state.execution(&id).map(|e| e.output).unwrap_or_default();
        if !output.is_empty() {
            output.push('\n');
        }
        output.push_str(&note);
        state.set_output(&id, &output);
        state.update_execution(&id, |doc| {
            doc["status"] = json!(status);
            doc["end_timestamp"] = json!(now);
            doc["result"] = json!({"stdout": output, "stderr": "", "return_code": i32::from(!succeeded), "succeeded": succeeded, "failed": !succeeded});
        });
        if let Some(route) = route {
            post_result(&state, &route, &id, notify);
        }
    });
}

/// `chatops.post_result` for execution `id`: formats it (`chatops.format_execution_result`:
/// here `Execution <id> <status>:` and the output in a code block, with the alias's
/// `result.extra`) and announces it on `route` to `target`'s `channel`, `user`, `whisper`
/// and `context`. Nothing is announced for an unknown or unfinished execution (the real
/// workflow fails in `format_execution_result`) or when the alias's result is disabled.
pub(crate) fn post_result(state: &State, route: &str, id: &str, target: Value) {
    let Some(execution) = state.execution(id) else {
        return;
    };
    let status = execution.doc["status"].as_str().unwrap_or("").to_owned();
    if matches!(status.as_str(), "requested" | "scheduled" | "running") {
        return;
    }
    let result = execution.alias.as_ref().and_then(|a| a.get("result"));
    if result.and_then(|r| r.get("enabled")) == Some(&Value::Bool(false)) {
        return;
    }
    let message = format!("Execution {id} {status}:\n```\n{}\n```", execution.output);
    let extra = result.and_then(|r| r.get("extra")).cloned();
    let mut payload = target;
    payload["message"] = json!(message);
    payload["extra"] = extra.unwrap_or(Value::Null);
    state.announce(route, payload);
}

/// What a simulated action prints.
fn simulated_output(action: &str, parameters: &Value) -> String {
    let p = |k: &str| {
        parameters
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    match action {
        "core.local" => match p("cmd").as_str() {
            "date" => humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            "uptime" => {
                " 12:00:00 up 42 days,  3:14,  1 user,  load average: 0.08, 0.03, 0.01".into()
            }
            "hostname" => "st2-simulator".into(),
            cmd => format!("(simulated) ran `{cmd}` on the StackStorm host"),
        },
        "core.remote" => p("hosts")
            .split(',')
            .map(|h| format!("{}: (simulated) ran `{}`", h.trim(), p("cmd")))
            .collect::<Vec<_>>()
            .join("\n"),
        "examples.deploy" => format!("deployed {} to {}", p("app"), p("env")),
        _ => format!("{action} finished with parameters {parameters}"),
    }
}

async fn execute(
    AxState(state): AxState<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let credential = match admit(
        &state,
        &method,
        &uri,
        &headers,
        &HashMap::new(),
        Some(body.clone()),
        true,
    ) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let allowed = [
        "name",
        "format",
        "command",
        "user",
        "source_channel",
        "source_context",
        "notification_channel",
        "notification_route",
    ];
    if let Err(r) = check_schema(&body, &allowed, &[]) {
        return r;
    }
    let s = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("");
    let name = s("name");
    if name.is_empty() {
        return fault(
            StatusCode::BAD_REQUEST,
            "Alias execution \"name\" is required",
        );
    }
    let (aliases, _) = state.aliases();
    let Some(alias) = aliases
        .iter()
        .find(|a| a.get("name").and_then(Value::as_str) == Some(name))
    else {
        return fault(
            StatusCode::NOT_FOUND,
            format!("Unable to identify action alias with name \"{name}\"."),
        );
    };
    let route = body
        .get("notification_route")
        .or(body.get("notification_channel"))
        .and_then(Value::as_str);
    match schedule(
        &state,
        ExecutionInput {
            alias,
            format: s("format"),
            command: s("command"),
            user: s("user"),
            source_channel: s("source_channel"),
            source_context: body.get("source_context").cloned().unwrap_or(Value::Null),
            notification_route: route,
            match_multiple: false,
            credential,
        },
    ) {
        Ok(mut results) => (StatusCode::CREATED, axum::Json(results.remove(0))).into_response(),
        Err(r) => r,
    }
}

async fn match_and_execute(
    AxState(state): AxState<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let credential = match admit(
        &state,
        &method,
        &uri,
        &headers,
        &HashMap::new(),
        Some(body.clone()),
        true,
    ) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let allowed = [
        "command",
        "user",
        "source_channel",
        "notification_channel",
        "notification_route",
    ];
    if let Err(r) = check_schema(&body, &allowed, &["command", "source_channel"]) {
        return r;
    }
    let s = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("");
    let command = s("command");
    let (aliases, index) = state.aliases();
    let resolved = match index.resolve(command) {
        Ok(r) => r,
        Err(e) => return fault(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let Some(alias) = aliases
        .iter()
        .find(|a| a.get("ref").and_then(Value::as_str) == Some(resolved.alias_ref.as_str()))
    else {
        return fault(StatusCode::INTERNAL_SERVER_ERROR, "alias vanished");
    };
    let route = body
        .get("notification_route")
        .or(body.get("notification_channel"))
        .and_then(Value::as_str);
    match schedule(
        &state,
        ExecutionInput {
            alias,
            format: &resolved.representation,
            command,
            user: s("user"),
            source_channel: s("source_channel"),
            source_context: Value::Null,
            notification_route: route,
            match_multiple: resolved.match_multiple.unwrap_or(false),
            credential,
        },
    ) {
        Ok(results) => {
            (StatusCode::CREATED, axum::Json(json!({"results": results}))).into_response()
        }
        Err(r) => r,
    }
}
