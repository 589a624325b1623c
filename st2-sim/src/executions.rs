//! `/api/v1/executions`, as StackStorm's action executions controller serves it.
//!
//! `POST` runs an action the simulator knows: `chatops.post_message` (the announcement runner:
//! publishes `st2.announcement__<route>` with the action's parameters as payload),
//! `chatops.post_result` (the notify rule's action: formats a finished execution and
//! announces it, see `api::post_result`) and the actions its aliases name (scheduled and
//! recorded, nothing announced).
//!
//! `GET /executions/<id>` answers the execution's document (`include_attributes` /
//! `exclude_attributes` as StackStorm takes them), 404 `Unable to identify resource with id
//! "<id>".` otherwise. `GET /executions` lists them newest first (`-start_timestamp`) with
//! the filters StackStorm supports for it that a bot uses — `action` (`action.ref`),
//! `status`, `user` (`context.user`), `limit` (at most 100), `offset` — and
//! `X-Total-Count` (`st2api/controllers/v1/actionexecutions.py`,
//! `execution_views.py` `SUPPORTED_FILTERS`). StackStorm has no filter on
//! `context.source_channel`: a client looks executions up by id.
//!
//! Checked like StackStorm (`st2api/controllers/v1/actionexecutions.py`,
//! `st2common/services/action.py`, `st2common/models/api/action.py`): credentials (401),
//! the body against `LiveActionCreateAPI` (no unknown keys, `action` required), the action
//! exists (`Action "x" cannot be found.`, 400), its parameters against the action's
//! parameter schema (required, types, no unknown parameters) and no immutable override;
//! answers `201` with an `ActionExecutionAPI` document in state `requested`. The
//! `chatops.post_message` metadata is `contrib/chatops/actions/post_message.yaml`; the
//! runner is `contrib/runners/announcement_runner`. Public documentation:
//! <https://docs.stackstorm.com/reference/api.html> (Executions) and
//! <https://docs.stackstorm.com/chatops/notifications.html>.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::api::{admit, fault};
use crate::state::State;

/// Top-level keys `LiveActionCreateAPI` accepts.
const BODY_KEYS: &[&str] = &[
    "id",
    "status",
    "start_timestamp",
    "end_timestamp",
    "action",
    "parameters",
    "result",
    "context",
    "callback",
    "runner_info",
    "notify",
    "delay",
    "user",
];

/// One parameter of an action's schema.
struct Param {
    name: &'static str,
    /// JSON type (`None`: any).
    kind: Option<&'static str>,
    required: bool,
    default: Option<Value>,
    immutable: bool,
}

const fn param(name: &'static str, kind: Option<&'static str>) -> Param {
    Param {
        name,
        kind,
        required: false,
        default: None,
        immutable: false,
    }
}

/// `chatops.post_message` (announcement runner): parameters with runner parameters merged.
fn post_message_schema() -> Vec<Param> {
    vec![
        Param {
            immutable: true,
            default: Some(json!(true)),
            ..param("experimental", Some("boolean"))
        },
        Param {
            default: Some(json!("chatops")),
            ..param("route", Some("string"))
        },
        param("user", Some("string")),
        Param {
            default: Some(json!(false)),
            ..param("whisper", Some("boolean"))
        },
        Param {
            required: true,
            ..param("message", Some("string"))
        },
        Param {
            required: true,
            ..param("channel", Some("string"))
        },
        param("context", Some("object")),
        param("extra", Some("object")),
    ]
}

/// `chatops.post_result` (orquesta workflow `contrib/chatops/actions/post_result.yaml`).
fn post_result_schema() -> Vec<Param> {
    vec![
        param("user", Some("string")),
        Param {
            default: Some(json!(false)),
            ..param("whisper", Some("boolean"))
        },
        Param {
            required: true,
            ..param("execution_id", Some("string"))
        },
        Param {
            required: true,
            ..param("channel", Some("string"))
        },
        Param {
            default: Some(json!("chatops")),
            ..param("route", Some("string"))
        },
        param("context", Some("object")),
    ]
}

/// The JSON type name jsonschema uses in its messages.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Validates `given` against `schema` (jsonschema's messages) and fills defaults.
fn validate(schema: &[Param], given: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    let unknown: Vec<String> = given
        .keys()
        .filter(|k| !schema.iter().any(|p| p.name == k.as_str()))
        .map(|k| format!("'{k}'"))
        .collect();
    if !unknown.is_empty() {
        let verb = if unknown.len() == 1 { "was" } else { "were" };
        return Err(format!(
            "Additional properties are not allowed ({} {verb} unexpected)",
            unknown.join(", ")
        ));
    }
    for p in schema {
        match (given.get(p.name), p.kind) {
            (None, _) if p.required => return Err(format!("'{}' is a required property", p.name)),
            (Some(v), Some(kind)) if type_name(v) != kind && !v.is_null() => {
                return Err(format!("{v} is not of type '{kind}'"));
            }
            _ => {}
        }
    }
    let immutable: Vec<String> = schema
        .iter()
        .filter(|p| p.immutable && given.contains_key(p.name))
        .map(|p| format!("'{}'", p.name))
        .collect();
    if !immutable.is_empty() {
        return Err(format!(
            "Override of immutable parameter(s) [{}] is unsupported.",
            immutable.join(", ")
        ));
    }
    let mut out = given.clone();
    for p in schema {
        if let (false, Some(d)) = (out.contains_key(p.name), &p.default) {
            out.insert(p.name.to_owned(), d.clone());
        }
    }
    Ok(out)
}

/// `POST /api/v1/executions`.
pub(crate) async fn create(
    AxState(state): AxState<Arc<State>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed = serde_json::from_slice::<Value>(&body);
    let credential = match admit(
        &state,
        &method,
        &uri,
        &headers,
        &HashMap::new(),
        parsed.as_ref().ok().cloned(),
        true,
    ) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let body = match parsed {
        Ok(Value::Object(o)) => o,
        Ok(other) => {
            return fault(
                StatusCode::BAD_REQUEST,
                format!("{other} is not of type 'object'"),
            );
        }
        Err(e) => {
            return fault(
                StatusCode::BAD_REQUEST,
                format!("Failed to parse request body: {e}"),
            );
        }
    };
    let unknown: Vec<String> = body
        .keys()
        .filter(|k| !BODY_KEYS.contains(&k.as_str()))
        .map(|k| format!("'{k}'"))
        .collect();
    if !unknown.is_empty() {
        let verb = if unknown.len() == 1 { "was" } else { "were" };
        return fault(
            StatusCode::BAD_REQUEST,
            format!(
                "Additional properties are not allowed ({} {verb} unexpected)",
                unknown.join(", ")
            ),
        );
    }
    let Some(action) = body.get("action") else {
        return fault(StatusCode::BAD_REQUEST, "'action' is a required property");
    };
    let Some(action) = action.as_str() else {
        return fault(
            StatusCode::BAD_REQUEST,
            format!("{action} is not of type 'string'"),
        );
    };
    let empty = Map::new();
    let given = match body.get("parameters") {
        None => &empty,
        Some(Value::Object(p)) => p,
        Some(other) => {
            return fault(
                StatusCode::BAD_REQUEST,
                format!("{other} is not of type 'object'"),
            );
        }
    };
    let user = state
        .authenticate(credential.as_ref())
        .unwrap_or_else(|_| "st2admin".into());
    let (pack, name) = action.split_once('.').unwrap_or(("", action));
    let parameters = if action == "chatops.post_message" {
        match validate(&post_message_schema(), given) {
            Ok(p) => p,
            Err(message) => return fault(StatusCode::BAD_REQUEST, message),
        }
    } else if action == "chatops.post_result" {
        match validate(&post_result_schema(), given) {
            Ok(p) => p,
            Err(message) => return fault(StatusCode::BAD_REQUEST, message),
        }
    } else {
        let (aliases, _) = state.aliases();
        let known = aliases
            .iter()
            .any(|a| a.get("action_ref").and_then(Value::as_str) == Some(action));
        if !known {
            return fault(
                StatusCode::BAD_REQUEST,
                format!("Action \"{action}\" cannot be found."),
            );
        }
        given.clone()
    };
    let id = state.next_id();
    let now = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
    let runner = match action {
        "chatops.post_message" => "announcement",
        "chatops.post_result" => "orquesta",
        _ => "local-shell-cmd",
    };
    let mut execution = json!({
        "id": id,
        "action": {"ref": action, "name": name, "pack": pack, "runner_type": runner},
        "runner": {"name": runner},
        "liveaction": {"id": state.next_id(), "action": action, "parameters": parameters, "status": "requested"},
        "status": "requested",
        "start_timestamp": now,
        "parameters": parameters,
        "context": {"user": user, "pack": pack},
        "log": [{"status": "requested", "timestamp": now}],
    });
    if let Some(web) = &state.config.webui_url {
        execution["web_url"] = json!(format!("{web}/#/history/{id}/general"));
    }
    state.store_execution(
        &id,
        crate::state::StoredExecution {
            doc: execution.clone(),
            alias: None,
            output: String::new(),
        },
    );
    if action == "chatops.post_message" {
        announce_later(&state, parameters);
    } else if action == "chatops.post_result" {
        post_result_later(&state, parameters);
    }
    (StatusCode::CREATED, axum::Json(execution)).into_response()
}

/// The `chatops.post_result` workflow, shortly after the request.
fn post_result_later(state: &Arc<State>, mut parameters: Map<String, Value>) {
    let route = parameters
        .remove("route")
        .and_then(|r| r.as_str().map(str::to_owned))
        .unwrap_or_else(|| "chatops".into());
    let id = parameters
        .remove("execution_id")
        .and_then(|r| r.as_str().map(str::to_owned))
        .unwrap_or_default();
    let state = state.clone();
    let delay = state.config.result_delay.min(Duration::from_millis(50));
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        crate::api::post_result(&state, &route, &id, Value::Object(parameters));
    });
}

/// Keeps only the top-level attributes named (`include_attributes`) or drops those named
/// (`exclude_attributes`), comma lists as StackStorm takes them.
fn project(mut doc: Value, query: &HashMap<String, String>) -> Value {
    let names = |k: &str| -> Option<Vec<String>> {
        query
            .get(k)
            .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect())
    };
    if let (Some(keep), Value::Object(o)) = (names("include_attributes"), &mut doc) {
        o.retain(|k, _| keep.iter().any(|n| n == k));
    }
    if let (Some(drop), Value::Object(o)) = (names("exclude_attributes"), &mut doc) {
        o.retain(|k, _| !drop.iter().any(|n| n == k));
    }
    doc
}

/// `GET /api/v1/executions/<id>`.
pub(crate) async fn get_one(
    AxState(state): AxState<Arc<State>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = admit(&state, &method, &uri, &headers, &query, None, true) {
        return r;
    }
    match state.execution(&id) {
        Some(e) => axum::Json(project(e.doc, &query)).into_response(),
        None => fault(
            StatusCode::NOT_FOUND,
            format!("Unable to identify resource with id \"{id}\"."),
        ),
    }
}

/// `GET /api/v1/executions?action=…&status=…&user=…&limit=…&offset=…`.
pub(crate) async fn list(
    AxState(state): AxState<Arc<State>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = admit(&state, &method, &uri, &headers, &query, None, true) {
        return r;
    }
    let field = |k: &str, doc: &Value, path: &[&str]| {
        query.get(k).is_none_or(|want| {
            path.iter()
                .try_fold(doc, |v, p| v.get(p))
                .and_then(Value::as_str)
                == Some(want)
        })
    };
    let mut matching: Vec<Value> = state
        .execution_documents()
        .into_iter()
        .filter(|d| {
            field("action", d, &["action", "ref"])
                && field("status", d, &["status"])
                && field("user", d, &["context", "user"])
        })
        .collect();
    // `-start_timestamp`: newest first (documents are kept oldest first).
    matching.reverse();
    let offset = match query.get("offset").map(|o| o.parse::<usize>()) {
        None => 0,
        Some(Ok(o)) => o,
        Some(Err(_)) => return fault(StatusCode::BAD_REQUEST, "Invalid offset"),
    };
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
    let total = matching.len();
    let page: Vec<Value> = matching
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|d| project(d, &query))
        .collect();
    let mut response = axum::Json(page).into_response();
    if let Ok(v) = total.to_string().parse() {
        response.headers_mut().insert("X-Total-Count", v);
    }
    response
}

/// The announcement runner: publishes the action parameters (runner parameters removed) on
/// `route`, shortly after the request, as the action runner picks the execution up.
fn announce_later(state: &Arc<State>, mut parameters: Map<String, Value>) {
    let route = parameters
        .remove("route")
        .and_then(|r| r.as_str().map(str::to_owned))
        .unwrap_or_else(|| "chatops".into());
    parameters.remove("experimental");
    let state = state.clone();
    let delay = state.config.result_delay.min(Duration::from_millis(50));
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        state.announce(&route, Value::Object(parameters));
    });
}
