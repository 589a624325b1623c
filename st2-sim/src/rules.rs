//! `GET /api/v1/rules`: the notify rules of the stock `chatops` pack, one per configured
//! notification route, as StackStorm's rules controller lists them.
//!
//! Shapes from StackStorm's sources: `RuleAPI` (`st2common/models/api/rule.py`: `id`, `ref`,
//! `uid`, `name`, `pack`, `description`, `type`, `trigger {type, parameters, ref}`,
//! `criteria`, `action {ref, parameters}`, `enabled`, `context`, `tags`, `metadata_file`),
//! the filters of `RuleController.supported_filters` (`name`, `pack`, `action`, `enabled`,
//! …), sorting by pack then name, and the stock rules `contrib/chatops/rules/notify_hubot.yaml`
//! (`chatops.notify`, route `hubot`, `chatops.post_result` with its default announcement route
//! `chatops`) and `notify_errbot.yaml` (`chatops.notify-errbot`, passing `{{ trigger.route }}`
//! on as the announcement route). Public documentation:
//! <https://docs.stackstorm.com/reference/api.html> (Rules) and
//! <https://docs.stackstorm.com/chatops/notifications.html>.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State as AxState};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::api::{admit, fault};
use crate::state::State;

/// The rule document StackStorm holds for a `(notification route, announcement route)` pair.
pub(crate) fn notify_rule(notification: &str, announcement: &str, enabled: bool) -> Value {
    let name = if notification == "hubot" {
        "notify".to_owned()
    } else {
        format!("notify-{notification}")
    };
    let mut parameters = json!({
        "channel": "{{trigger.data.source_channel}}",
        "user": "{{trigger.data.user}}",
        "execution_id": "{{trigger.execution_id}}",
        "context": "{{trigger.data.source_context}}",
    });
    // `chatops.post_result` announces on `chatops` unless told otherwise.
    if announcement == notification {
        parameters["route"] = json!("{{ trigger.route }}");
    } else if announcement != "chatops" {
        parameters["route"] = json!(announcement);
    }
    json!({
        "id": format!("{:024x}", stable_hash(&name)),
        "ref": format!("chatops.{name}"),
        "uid": format!("rule:chatops:{name}"),
        "name": name,
        "pack": "chatops",
        "description": format!("Notification rule to send results of action executions to stream for {notification}"),
        "type": {"ref": "standard", "parameters": {}},
        "trigger": {
            "type": "core.st2.generic.notifytrigger",
            "parameters": {},
            "ref": "core.st2.generic.notifytrigger",
        },
        "criteria": {"trigger.route": {"pattern": notification, "type": "equals"}},
        "action": {"ref": "chatops.post_result", "parameters": parameters},
        "enabled": enabled,
        "context": {},
        "tags": [],
        "metadata_file": format!("rules/notify_{notification}.yaml"),
    })
}

/// Every rule the simulator has, sorted like StackStorm (`pack`, then `name`).
pub(crate) fn all_rules(state: &State) -> Vec<Value> {
    let mut rules: Vec<Value> = state
        .config
        .routes
        .iter()
        .map(|(notification, announcement)| {
            let enabled = !state.config.disabled_rules.contains(notification);
            notify_rule(notification, announcement, enabled)
        })
        .collect();
    rules.sort_by(|a, b| {
        let key = |r: &Value| (r["pack"].to_string(), r["name"].to_string());
        key(a).cmp(&key(b))
    });
    rules
}

/// `GET /api/v1/rules?pack=…&name=…&enabled=…&limit=…&offset=…`.
pub(crate) async fn list_rules(
    AxState(state): AxState<Arc<State>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = admit(&state, &method, &uri, &headers, &query, None, true) {
        return r;
    }
    let enabled = match query.get("enabled").map(String::as_str) {
        None => None,
        // StackStorm's `transform_to_bool`.
        Some("1" | "true" | "True") => Some(true),
        Some("0" | "false" | "False") => Some(false),
        Some(other) => {
            return fault(
                StatusCode::BAD_REQUEST,
                format!("Invalid bool representation \"{other}\" provided."),
            );
        }
    };
    let field = |k: &str, rule: &Value, path: &[&str]| {
        query.get(k).is_none_or(|want| {
            path.iter()
                .try_fold(rule, |v, p| v.get(p))
                .and_then(Value::as_str)
                == Some(want)
        })
    };
    let matching: Vec<Value> = all_rules(&state)
        .into_iter()
        .filter(|r| {
            field("pack", r, &["pack"])
                && field("name", r, &["name"])
                && field("action", r, &["action", "ref"])
                && field("trigger", r, &["trigger", "ref"])
                && enabled.is_none_or(|e| r["enabled"].as_bool() == Some(e))
        })
        .collect();
    let offset = match query.get("offset").map(|o| o.parse::<usize>()) {
        None => 0,
        Some(Ok(o)) => o,
        Some(Err(_)) => return fault(StatusCode::BAD_REQUEST, "Invalid offset"),
    };
    let limit = match query.get("limit").map(|l| l.parse::<i64>()) {
        None => 100,
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
    let page: Vec<Value> = matching.into_iter().skip(offset).take(limit).collect();
    let mut response = axum::Json(page).into_response();
    if let Ok(v) = total.to_string().parse() {
        response.headers_mut().insert("X-Total-Count", v);
    }
    response
}

/// A stable id for a rule name (FNV-1a).
fn stable_hash(s: &str) -> u128 {
    s.bytes()
        .fold(0x6c62_272e_07bb_0142_62b8_2175_6295_c58d, |h, b| {
            (h ^ u128::from(b)).wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b)
        })
}
