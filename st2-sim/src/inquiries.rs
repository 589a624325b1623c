//! Inquiries (`core.ask`), as StackStorm serves them: a workflow that pauses on a question
//! and resumes when someone answers it through `/api/v1/inquiries`.
//!
//! Facts, from StackStorm's source:
//! - An inquiry is an execution of an action whose runner is `inquirer`
//!   (`contrib/runners/inquirer_runner/inquirer_runner.py`): it goes `pending` with result
//!   `{"schema", "roles", "users", "route", "ttl"}` (ttl in minutes, default 1440; the
//!   default schema asks for one required boolean `continue`) and dispatches the trigger
//!   `core.st2.generic.inquiry` with payload `{"id": <execution id>, "route": <route>}`;
//!   its parent workflow pauses.
//! - `GET /api/v1/inquiries` lists the pending inquiries, each as `InquiryResponseAPI`
//!   `{"id", "route", "ttl", "users", "roles", "schema"}` with `X-Total-Count`;
//!   `GET /api/v1/inquiries/<id>` one of them (`st2api/controllers/v1/inquiries.py`).
//! - `PUT /api/v1/inquiries/<id>` with `{"id", "response": {...}}` (`InquiryResponseResult`
//!   in `st2common/openapi.yaml.j2`: both required, `response` an object) answers it: 400
//!   when the inquiry timed out or was already answered, 403 when the requester is not in a
//!   non-empty `users` (roles: with RBAC off, StackStorm's no-op backend says every user has
//!   every role, as here), 400 when the response fails the schema, else `200 {"id",
//!   "response"}`; the inquiry succeeds with `result.response` and the parent resumes
//!   (`st2common/services/inquiry.py`, messages from `st2common/exceptions/inquiry.py`).
//! - The garbage collector marks an inquiry older than its ttl `timeout` and resumes the
//!   parent, which then fails (`st2common/garbage_collection/inquiries.py`); tests run it
//!   with [`crate::Sim::expire_inquiries`].
//!
//! The rule a site installs so the bot hears of new inquiries (docs/inquiries.md) is
//! simulated by [`SimConfig::inquiry_rules`](crate::SimConfig::inquiry_rules): for each
//! route listed, the trigger runs `chatops.post_message` with `channel` = the inquiry's
//! route, `message` = `Inquiry <id> is awaiting a response.` and `extra` =
//! `{"st2bot": {"inquiry": <id>}}`.

// Handlers short-circuit with the HTTP response itself; boxing it would only add noise.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::api::{admit, fault};
use crate::state::{State, StoredExecution};

/// StackStorm's default inquiry schema (`inquirer_runner.DEFAULT_SCHEMA`).
pub fn default_schema() -> Value {
    json!({
        "title": "response_data",
        "type": "object",
        "properties": {
            "continue": {
                "type": "boolean",
                "description": "Would you like to continue the workflow?",
                "required": true,
            }
        },
    })
}

/// The inquiry an execution is, as `InquiryResponseAPI`, when it is one.
fn response_api(doc: &Value) -> Option<Value> {
    if doc["runner"]["name"] != "inquirer" {
        return None;
    }
    let result = &doc["result"];
    Some(json!({
        "id": doc["id"], "route": result["route"], "ttl": result["ttl"],
        "users": result["users"], "roles": result["roles"], "schema": result["schema"],
    }))
}

/// `check_inquiry`: an inquiry that can still be answered, else the 400 StackStorm gives.
fn check_inquiry(id: &str, doc: &Value) -> Result<(), Response> {
    if doc["runner"]["name"] != "inquirer" {
        return Err(fault(
            StatusCode::BAD_REQUEST,
            format!("Action execution \"{id}\" is not an inquiry."),
        ));
    }
    match doc["status"].as_str() {
        Some("pending") => Ok(()),
        Some("timeout") => Err(fault(
            StatusCode::BAD_REQUEST,
            format!("Inquiry \"{id}\" timed out and cannot be responded to."),
        )),
        _ => Err(fault(
            StatusCode::BAD_REQUEST,
            format!("Inquiry \"{id}\" has already been responded to."),
        )),
    }
}

/// Runs the inquirer for workflow `parent` (which has just started and asks `parameters`:
/// the runner parameters `schema`, `users`, `roles`, `route`, `ttl`): stores the pending
/// inquiry, pauses the parent and fires the trigger through the configured rules.
pub(crate) fn ask(state: &Arc<State>, parent: &str, parameters: &Value) -> String {
    let id = state.next_id();
    let now = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
    let get = |k: &str| parameters.get(k).cloned();
    let route = get("route").unwrap_or(json!(""));
    let user = state
        .execution(parent)
        .and_then(|p| p.doc["context"]["user"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "st2admin".into());
    let doc = json!({
        "id": id, "status": "pending", "action": {"ref": "core.ask"},
        "runner": {"name": "inquirer", "runner_module": "inquirer_runner"},
        "start_timestamp": now, "parent": parent,
        "context": {"user": user, "parent": {"execution_id": parent}},
        "result": {
            "schema": get("schema").unwrap_or_else(default_schema),
            "roles": get("roles").unwrap_or(json!([])),
            "users": get("users").unwrap_or(json!([])),
            "route": route,
            "ttl": get("ttl").unwrap_or(json!(1440)),
        },
    });
    state.store_execution(
        &id,
        StoredExecution {
            doc: doc.clone(),
            alias: None,
            output: String::new(),
        },
    );
    state.publish("st2.execution__create", doc.to_string());
    state.update_execution(parent, |d| d["status"] = json!("paused"));
    for announce_route in &state.config.inquiry_rules {
        state.announce(
            announce_route,
            json!({
                "channel": route.as_str().unwrap_or(""),
                "message": format!("Inquiry {id} is awaiting a response."),
                "user": null, "whisper": false, "context": null,
                "extra": {"st2bot": {"inquiry": id}},
            }),
        );
    }
    id
}

/// `GET /api/v1/inquiries`: the pending inquiries.
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
    let pending: Vec<Value> = state
        .execution_documents()
        .iter()
        .rev()
        .filter(|d| d["status"] == "pending")
        .filter_map(response_api)
        .collect();
    let total = pending.len();
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(usize::MAX);
    let page: Vec<Value> = pending.into_iter().take(limit).collect();
    let mut response = axum::Json(page).into_response();
    if let Ok(v) = total.to_string().parse() {
        response.headers_mut().insert("X-Total-Count", v);
    }
    response
}

/// `GET /api/v1/inquiries/<id>`.
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
    // StackStorm raises `StackStormDBObjectNotFoundError()` without a message here.
    let Some(execution) = state.execution(&id) else {
        return fault(StatusCode::NOT_FOUND, "");
    };
    if let Err(r) = check_inquiry(&id, &execution.doc) {
        return r;
    }
    match response_api(&execution.doc) {
        Some(inquiry) => axum::Json(inquiry).into_response(),
        None => fault(StatusCode::NOT_FOUND, ""),
    }
}

/// `PUT /api/v1/inquiries/<id>`.
pub(crate) async fn respond(
    AxState(state): AxState<Arc<State>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let parsed: Result<Value, _> = serde_json::from_slice(&body);
    let credential = match admit(
        &state,
        &method,
        &uri,
        &headers,
        &query,
        parsed.as_ref().ok().cloned(),
        true,
    ) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let requester = state
        .authenticate(credential.as_ref())
        .unwrap_or_else(|_| "st2admin".into());
    let body = match parsed {
        Ok(b) => b,
        Err(e) => {
            return fault(
                StatusCode::BAD_REQUEST,
                format!("Failed to parse request body: {e}"),
            );
        }
    };
    for key in ["id", "response"] {
        if body.get(key).is_none() {
            return fault(
                StatusCode::BAD_REQUEST,
                format!("'{key}' is a required property"),
            );
        }
    }
    let Some(response) = body["response"].as_object().cloned() else {
        return fault(
            StatusCode::BAD_REQUEST,
            format!("{} is not of type 'object'", body["response"]),
        );
    };
    let Some(execution) = state.execution(&id) else {
        return fault(StatusCode::NOT_FOUND, "");
    };
    if let Err(r) = check_inquiry(&id, &execution.doc) {
        return r;
    }
    let users: Vec<&str> = execution.doc["result"]["users"]
        .as_array()
        .map(|u| u.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !users.is_empty() && !users.contains(&requester.as_str()) {
        return fault(
            StatusCode::FORBIDDEN,
            format!(
                "User \"{requester}\" does not have permission to respond to inquiry \"{id}\"."
            ),
        );
    }
    let response = match validate(&execution.doc["result"]["schema"], response) {
        Ok(r) => r,
        Err(e) => {
            return fault(
                StatusCode::BAD_REQUEST,
                format!("Response for inquiry \"{id}\" did not pass schema validation. {e}"),
            );
        }
    };
    let now = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
    let answered = Value::Object(response.clone());
    state.update_execution(&id, |d| {
        d["status"] = json!("succeeded");
        d["end_timestamp"] = json!(now);
        d["result"]["response"] = answered.clone();
    });
    if let Some(parent) = execution.doc["parent"].as_str() {
        crate::api::resume(&state, parent, &format!("response: {answered}"), true);
    }
    axum::Json(json!({"id": id, "response": answered})).into_response()
}

/// Marks every pending inquiry `timeout` and fails its parent, as the garbage collector
/// does once an inquiry is older than its ttl. How many it expired.
pub(crate) fn expire_all(state: &Arc<State>) -> usize {
    let pending: Vec<Value> = state
        .execution_documents()
        .into_iter()
        .filter(|d| d["runner"]["name"] == "inquirer" && d["status"] == "pending")
        .collect();
    for doc in &pending {
        let id = doc["id"].as_str().unwrap_or_default();
        state.update_execution(id, |d| d["status"] = json!("timeout"));
        if let Some(parent) = doc["parent"].as_str() {
            crate::api::resume(state, parent, &format!("inquiry {id} timed out"), false);
        }
    }
    pending.len()
}

fn type_matches(kind: &str, v: &Value) -> bool {
    match kind {
        "boolean" => v.is_boolean(),
        "string" => v.is_string(),
        "integer" => v.as_i64().is_some() || v.as_u64().is_some(),
        "number" => v.is_number(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "null" => v.is_null(),
        _ => true,
    }
}

/// The part of StackStorm's schema validation (`util/schema.validate` with `use_default`)
/// inquiry schemas use: defaults filled in, required properties (draft 3's
/// `"required": true` on a property and draft 4's list), `type`, `enum` and
/// `additionalProperties: false`. Messages in `jsonschema`'s wording (values shown as JSON).
fn validate(
    schema: &Value,
    mut response: Map<String, Value>,
) -> Result<Map<String, Value>, String> {
    let empty = Map::new();
    let properties = schema["properties"].as_object().unwrap_or(&empty);
    for (name, property) in properties {
        if !response.contains_key(name)
            && let Some(default) = property.get("default").filter(|d| !d.is_null())
        {
            response.insert(name.clone(), default.clone());
        }
    }
    let mut required: Vec<&str> = properties
        .iter()
        .filter(|(_, p)| p.get("required") == Some(&Value::Bool(true)))
        .map(|(n, _)| n.as_str())
        .collect();
    if let Some(list) = schema["required"].as_array() {
        required.extend(list.iter().filter_map(Value::as_str));
    }
    for name in required {
        if !response.contains_key(name) {
            return Err(format!("'{name}' is a required property"));
        }
    }
    for (name, value) in &response {
        let Some(property) = properties.get(name) else {
            if schema["additionalProperties"] == Value::Bool(false) {
                return Err(format!(
                    "Additional properties are not allowed ('{name}' was unexpected)"
                ));
            }
            continue;
        };
        if let Some(kind) = property["type"].as_str()
            && !type_matches(kind, value)
        {
            return Err(format!("{value} is not of type '{kind}'"));
        }
        if let Some(choices) = property["enum"].as_array()
            && !choices.contains(value)
        {
            let list = choices
                .iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            return Err(format!("{value} is not one of [{list}]"));
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_fills_defaults_and_names_the_wrong_property() {
        let schema = json!({"type": "object", "properties": {
            "approve": {"type": "boolean", "required": true},
            "env": {"type": "string", "enum": ["prod", "staging"], "default": "staging"},
        }});
        let ok = validate(
            &schema,
            json!({"approve": true}).as_object().cloned().unwrap(),
        );
        assert_eq!(ok.unwrap()["env"], "staging");
        let missing = validate(&schema, Map::new()).unwrap_err();
        assert_eq!(missing, "'approve' is a required property");
        let wrong = validate(
            &schema,
            json!({"approve": "yes"}).as_object().cloned().unwrap(),
        );
        assert_eq!(wrong.unwrap_err(), "\"yes\" is not of type 'boolean'");
        let choice = json!({"approve": true, "env": "dev"});
        let wrong = validate(&schema, choice.as_object().cloned().unwrap());
        assert_eq!(
            wrong.unwrap_err(),
            "\"dev\" is not one of [\"prod\", \"staging\"]"
        );
    }
}
