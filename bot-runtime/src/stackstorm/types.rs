//! Shapes of StackStorm requests, responses and stream events (as in
//! `shared/STACKSTORM.md` §2–3). Unknown fields are ignored so newer servers keep working.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /v1/tokens` answer. Its `Debug` hides the token.
#[derive(Clone, Deserialize)]
pub struct TokenResponse {
    /// StackStorm user.
    pub user: String,
    /// The token.
    pub token: String,
    /// ISO 8601 expiry (UTC).
    pub expiry: String,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("user", &self.user)
            .field("token", &"***")
            .field("expiry", &self.expiry)
            .finish()
    }
}

/// `GET /v1/actionalias/help` answer.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct HelpResponse {
    /// How many help strings match in all.
    pub available: u64,
    /// This page of them.
    pub helpstrings: Vec<HelpString>,
}

/// One help string.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct HelpString {
    /// Pack.
    pub pack: String,
    /// Display format.
    pub display: String,
    /// Alias description.
    #[serde(default)]
    pub description: Option<String>,
}

/// The ack settings of an alias.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct AliasAck {
    /// Post an ack (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Append the execution URL (default true).
    #[serde(default)]
    pub append_url: Option<bool>,
    /// Server-side Jinja format (rendered by StackStorm into `message`).
    #[serde(default)]
    pub format: Option<String>,
}

/// The result settings of an alias (what the notify chain's `format_execution_result`
/// reads).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct AliasResult {
    /// Announce the result (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Server-side Jinja format of the result (default: the chatops pack's `default.j2`).
    #[serde(default)]
    pub format: Option<String>,
}

/// The parts of an action alias the bot reads.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct AliasSummary {
    /// Alias name (what `aliasexecution` wants).
    pub name: String,
    /// Pack.
    pub pack: String,
    /// `pack.name`.
    #[serde(rename = "ref", default)]
    pub reference: Option<String>,
    /// Enabled?
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Ack settings.
    #[serde(default)]
    pub ack: Option<AliasAck>,
    /// Result settings.
    #[serde(default)]
    pub result: Option<AliasResult>,
}

fn yes() -> bool {
    true
}

impl AliasSummary {
    /// Whether the announcement of an execution of this alias names the execution id in
    /// its text: the result is announced (`result.enabled` is not false) and formatted by
    /// the chatops pack's `default.j2` (which prints `execution: <id>`) or by a
    /// `result.format` that prints `execution.id`. Executions started without a
    /// `source_context` (`match_and_execute`) can be told apart only so.
    pub fn result_names_execution(&self) -> bool {
        match &self.result {
            None => true,
            Some(r) if r.enabled == Some(false) => false,
            Some(r) => r
                .format
                .as_deref()
                .is_none_or(|f| f.contains("execution.id")),
        }
    }

    /// `pack.name`.
    pub fn reference(&self) -> String {
        self.reference
            .clone()
            .unwrap_or_else(|| format!("{}.{}", self.pack, self.name))
    }
}

/// `POST /v1/actionalias/match` answer.
#[derive(Clone, Debug, Deserialize)]
pub struct MatchResponse {
    /// The alias.
    pub actionalias: AliasSummary,
    /// Its display format (may be null).
    #[serde(default)]
    pub display: Option<String>,
    /// The format that matched.
    pub representation: String,
}

/// `POST /v1/aliasexecution` body.
#[derive(Clone, Debug, Serialize)]
pub struct ExecuteRequest<'a> {
    /// Alias name.
    pub name: &'a str,
    /// The matching format (representation).
    pub format: &'a str,
    /// The command as typed (without prefix).
    pub command: &'a str,
    /// Chat user.
    pub user: &'a str,
    /// Where the command came from.
    pub source_channel: &'a str,
    /// Echoed back in the announcement's `context`.
    pub source_context: &'a Value,
    /// Selects the notify rule.
    pub notification_route: &'a str,
}

/// `POST /v1/aliasexecution/match_and_execute` body (no `source_context`: the schema
/// rejects it).
#[derive(Clone, Debug, Serialize)]
pub struct MatchAndExecuteRequest<'a> {
    /// The command.
    pub command: &'a str,
    /// Chat user.
    pub user: &'a str,
    /// Where the command came from.
    pub source_channel: &'a str,
    /// Selects the notify rule.
    pub notification_route: &'a str,
}

/// The execution inside an execute answer.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Execution {
    /// Execution id.
    pub id: String,
    /// Status (`requested`, `scheduled`, `running`, `succeeded`, …).
    #[serde(default)]
    pub status: Option<String>,
    /// Web UI link, when StackStorm sets one.
    #[serde(default)]
    pub web_url: Option<String>,
}

/// `POST /v1/aliasexecution` answer (also each element of match_and_execute's `results`).
#[derive(Clone, Debug, Deserialize)]
pub struct ExecuteResponse {
    /// The execution.
    pub execution: Execution,
    /// The alias.
    pub actionalias: AliasSummary,
    /// Ack text StackStorm rendered from the alias's `ack.format`.
    #[serde(default)]
    pub message: Option<String>,
    /// Ack `extra` StackStorm rendered.
    #[serde(default)]
    pub extra: Option<Value>,
}

/// `POST /v1/aliasexecution/match_and_execute` answer.
#[derive(Clone, Debug, Deserialize)]
pub struct MatchAndExecuteResponse {
    /// One result per execution.
    pub results: Vec<ExecuteResponse>,
}

/// An announcement's payload (`st2.announcement__<route>` data's `payload`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Announcement {
    /// The text.
    #[serde(default)]
    pub message: Option<String>,
    /// Where to post it.
    #[serde(default)]
    pub channel: Option<String>,
    /// Who it is for.
    #[serde(default)]
    pub user: Option<String>,
    /// Post privately to `user`.
    #[serde(default)]
    pub whisper: Option<bool>,
    /// The `source_context` the execution was started with.
    #[serde(default)]
    pub context: Option<Value>,
    /// Rich content per provider.
    #[serde(default)]
    pub extra: Option<Value>,
}

/// The data of an announcement event.
#[derive(Clone, Debug, Deserialize)]
pub struct AnnouncementEvent {
    /// The payload.
    pub payload: Announcement,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_names_its_execution_with_the_default_format_or_one_that_prints_the_id() {
        let alias = |result: Value| -> AliasSummary {
            serde_json::from_value(serde_json::json!({"name": "a", "pack": "p", "result": result}))
                .unwrap()
        };
        assert!(alias(Value::Null).result_names_execution());
        assert!(alias(serde_json::json!({"extra": {}})).result_names_execution());
        assert!(
            alias(serde_json::json!({"format": "{{ execution.id }}: {{ execution.status }}"}))
                .result_names_execution()
        );
        assert!(
            !alias(serde_json::json!({"format": "done: {{ execution.result.stdout }}"}))
                .result_names_execution()
        );
        assert!(!alias(serde_json::json!({"enabled": false})).result_names_execution());
    }
}
