//! StackStorm inquiries (`core.ask`) as chat sees them: the inquiry object, its response
//! schema turned into [`Field`]s, the question as posted ([`question`]), a `key=value` answer
//! checked against the schema before StackStorm sees it ([`parse_answer`]), and who may answer
//! ([`may_answer`]). No I/O here: the chat commands that use it are in
//! `dispatch/inquiry.rs`; the HTTP calls in `stackstorm/inquiries.rs`. Read [`Inquiry`]
//! first; docs/inquiries.md is the user's side.
//!
//! StackStorm facts (`st2common/models/api/inquiry.py`, `contrib/runners/inquirer_runner`):
//! an inquiry is `{"id", "route", "ttl" (minutes, 0 or less: never expires), "users",
//! "roles", "schema"}`; its schema is a JSON schema of an object whose properties carry
//! `type`, `enum`, `default`, `description` and `required` (draft 3's per-property
//! `"required": true`, or draft 4's list). StackStorm validates with defaults filled in.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use bot_config::spec::GroupSpec;

/// The chat commands about inquiries (after the prefix), all checked as
/// [`bot_config::acl::INQUIRY_COMMAND`].
pub const COMMAND_WORDS: &[&str] = &["inquiry", "approve", "reject"];
/// At most this many schema properties are read (a schema is StackStorm's answer: bounded).
pub const MAX_FIELDS: usize = 32;
/// At most this many characters of a description or enum value are shown.
const MAX_SHOWN_CHARS: usize = 200;
/// At most this many enum choices are listed.
const MAX_CHOICES: usize = 20;

/// An inquiry as `GET /api/v1/inquiries[/<id>]` answers it (`InquiryResponseAPI`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Inquiry {
    /// The inquiry's id (its execution's id).
    pub id: String,
    /// The route the workflow named (a room, by convention).
    #[serde(default, deserialize_with = "null_as_default")]
    pub route: String,
    /// Minutes it may wait for an answer after it started; 0 or less: for ever.
    #[serde(default = "default_ttl", deserialize_with = "null_as_ttl")]
    pub ttl: i64,
    /// StackStorm users who may answer (empty: anyone the roles allow).
    #[serde(default, deserialize_with = "null_as_default")]
    pub users: Vec<String>,
    /// RBAC roles whose members may answer (empty: any role).
    #[serde(default, deserialize_with = "null_as_default")]
    pub roles: Vec<String>,
    /// The JSON schema of the answer.
    #[serde(default)]
    pub schema: Value,
}

fn default_ttl() -> i64 {
    1440
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn null_as_ttl<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Ok(Option::<i64>::deserialize(d)?.unwrap_or_else(default_ttl))
}

/// Whether `id` can be a StackStorm object id (it goes into a URL path).
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The JSON types a field may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// `true`/`false` (also `yes`/`no`, `on`/`off`, `1`/`0` in chat).
    Boolean,
    /// A whole number.
    Integer,
    /// Any number.
    Number,
    /// Text.
    String,
    /// Comma-separated values.
    Array,
    /// A JSON object.
    Object,
    /// No `type` in the schema: JSON if it parses, else text.
    Any,
}

impl FieldKind {
    fn of(schema: &Value) -> Self {
        match schema.get("type").and_then(Value::as_str) {
            Some("boolean") => Self::Boolean,
            Some("integer") => Self::Integer,
            Some("number") => Self::Number,
            Some("string") => Self::String,
            Some("array") => Self::Array,
            Some("object") => Self::Object,
            _ => Self::Any,
        }
    }

    /// The name users read.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Boolean => "yes/no",
            Self::Integer => "integer",
            Self::Number => "number",
            Self::String => "text",
            Self::Array => "comma-separated list",
            Self::Object => "JSON object",
            Self::Any => "any value",
        }
    }
}

/// One property of an inquiry's response schema.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    /// Property name.
    pub name: String,
    /// Its type.
    pub kind: FieldKind,
    /// Allowed values, when the schema lists them.
    pub choices: Vec<Value>,
    /// Default value.
    pub default: Option<Value>,
    /// Description.
    pub description: Option<String>,
    /// Whether an answer must give it (and it has no default).
    pub required: bool,
}

/// The fields of a response schema, in the schema's order (at most [`MAX_FIELDS`]).
pub fn fields(schema: &Value) -> Vec<Field> {
    let listed: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    properties
        .iter()
        .take(MAX_FIELDS)
        .map(|(name, p)| Field {
            name: name.clone(),
            kind: FieldKind::of(p),
            choices: p
                .get("enum")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            default: p.get("default").filter(|d| !d.is_null()).cloned(),
            description: p
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned),
            required: p.get("required") == Some(&Value::Bool(true))
                || listed.contains(&name.as_str()),
        })
        .collect()
}

/// The field's name when the schema asks one yes/no question (`!approve` / `!reject`).
pub fn single_boolean(fields: &[Field]) -> Option<&str> {
    match fields {
        [only] if only.kind == FieldKind::Boolean => Some(&only.name),
        _ => None,
    }
}

fn shown(text: &str) -> String {
    crate::dispatch::capped(text)
        .chars()
        .take(MAX_SHOWN_CHARS + 1)
        .collect()
}

fn value_shown(v: &Value) -> String {
    match v {
        Value::String(s) => shown(s),
        other => shown(&other.to_string()),
    }
}

/// How long is left, as chat shows it (`2h 5m`, `45s`).
pub fn time_left_text(left: Duration) -> String {
    let secs = left.as_secs();
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// One line per field: name, type, choices, default, description.
pub fn describe_fields(fields: &[Field]) -> String {
    let mut text = String::new();
    for f in fields {
        let mut what = f.kind.as_str().to_owned();
        if !f.choices.is_empty() {
            let mut choices: Vec<String> = f
                .choices
                .iter()
                .take(MAX_CHOICES)
                .map(value_shown)
                .collect();
            if f.choices.len() > MAX_CHOICES {
                choices.push("…".to_owned());
            }
            what = format!("one of {}", choices.join(", "));
        }
        if f.required && f.default.is_none() {
            what.push_str(", required");
        }
        if let Some(d) = &f.default {
            let _ = write!(what, ", default {}", value_shown(d));
        }
        let _ = write!(text, "\n  • {} ({what})", f.name);
        if let Some(d) = &f.description {
            let _ = write!(text, ": {}", shown(d));
        }
    }
    text
}

/// The question as posted: who asks, the fields, the time left, how to answer and who may.
/// `left` is `None` when the inquiry never expires; `prefix` is the bot's command prefix.
pub fn question(inquiry: &Inquiry, left: Option<Duration>, prefix: &str) -> String {
    let fields = fields(&inquiry.schema);
    let id = &inquiry.id;
    let mut text = format!("❓ Inquiry {id} is waiting for an answer");
    match left {
        Some(left) => {
            let _ = write!(text, " ({} left)", time_left_text(left));
        }
        None => text.push_str(" (no time limit)"),
    }
    if let Some(title) = inquiry.schema.get("title").and_then(Value::as_str)
        && title != "response_data"
    {
        let _ = write!(text, ": {}", shown(title));
    }
    text.push_str(&describe_fields(&fields));
    text.push_str("\nAnswer with ");
    if single_boolean(&fields).is_some() {
        let _ = write!(text, "`{prefix}approve {id}` or `{prefix}reject {id}`, or ");
    }
    let example: Vec<String> = fields
        .iter()
        .take(3)
        .map(|f| format!("{}=…", f.name))
        .collect();
    let _ = write!(
        text,
        "`{prefix}inquiry respond {id} {}`.",
        example.join(" ")
    );
    let mut who = Vec::new();
    if !inquiry.users.is_empty() {
        who.push(format!("users {}", inquiry.users.join(", ")));
    }
    if !inquiry.roles.is_empty() {
        who.push(format!("members of {}", inquiry.roles.join(", ")));
    }
    if !who.is_empty() {
        let _ = write!(text, "\nOnly {} may answer.", who.join(" who are also "));
    }
    text
}

/// Why an answer was refused before it was sent. Each names the field at fault.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerError {
    /// A word is not `key=value`.
    #[error("`{word}` is not `key=value`")]
    NotKeyValue {
        /// The word (capped).
        word: String,
    },
    /// The schema has no such field.
    #[error("`{field}` is not a field of this inquiry (its fields: {known})")]
    UnknownField {
        /// The name given.
        field: String,
        /// The schema's fields, comma-separated.
        known: String,
    },
    /// Given twice.
    #[error("`{field}` is given twice")]
    Repeated {
        /// The field.
        field: String,
    },
    /// The value does not have the field's type.
    #[error("`{field}` must be {kind}, not `{value}`")]
    WrongType {
        /// The field.
        field: String,
        /// Its type, as users read it.
        kind: &'static str,
        /// The value given (capped).
        value: String,
    },
    /// The value is not among the field's choices.
    #[error("`{field}` must be one of {choices}, not `{value}`")]
    NotAChoice {
        /// The field.
        field: String,
        /// The allowed values.
        choices: String,
        /// The value given (capped).
        value: String,
    },
    /// A required field without default was not given.
    #[error("`{field}` is required")]
    Missing {
        /// The field.
        field: String,
    },
    /// Nothing was given.
    #[error("no answer given (fields: {known})")]
    Empty {
        /// The schema's fields, comma-separated.
        known: String,
    },
}

/// Splits `key=value key="a value with spaces"` into pairs (double quotes group words).
fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    words.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            c => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(word);
    }
    words
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "on" | "1" => Some(true),
        "false" | "no" | "n" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// One value read as `kind`.
fn convert(kind: FieldKind, text: &str) -> Option<Value> {
    match kind {
        FieldKind::Boolean => parse_bool(text).map(Value::Bool),
        FieldKind::Integer => text.parse::<i64>().ok().map(Value::from),
        FieldKind::Number => text
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number),
        FieldKind::String => Some(Value::String(text.to_owned())),
        FieldKind::Array => Some(Value::Array(
            text.split(',')
                .map(|s| Value::String(s.trim().to_owned()))
                .filter(|v| v != &Value::String(String::new()))
                .collect(),
        )),
        FieldKind::Object => serde_json::from_str::<Value>(text)
            .ok()
            .filter(Value::is_object),
        FieldKind::Any => Some(
            serde_json::from_str::<Value>(text).unwrap_or_else(|_| Value::String(text.to_owned())),
        ),
    }
}

/// Reads `key=value …` (the text after the inquiry id) as an answer to `schema`: every key a
/// field, every value of its type and among its choices, every required field (without a
/// default) given. Fields not given are left to StackStorm's defaults.
pub fn parse_answer(schema: &Value, text: &str) -> Result<Map<String, Value>, AnswerError> {
    let fields = fields(schema);
    let known = || {
        fields
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let words = split_words(text);
    if words.is_empty() {
        return Err(AnswerError::Empty { known: known() });
    }
    let mut answer = Map::new();
    for word in words {
        let Some((key, value)) = word.split_once('=') else {
            return Err(AnswerError::NotKeyValue { word: shown(&word) });
        };
        let Some(field) = fields.iter().find(|f| f.name == key) else {
            return Err(AnswerError::UnknownField {
                field: shown(key),
                known: known(),
            });
        };
        if answer.contains_key(key) {
            return Err(AnswerError::Repeated {
                field: field.name.clone(),
            });
        }
        let Some(converted) = convert(field.kind, value) else {
            return Err(AnswerError::WrongType {
                field: field.name.clone(),
                kind: field.kind.as_str(),
                value: shown(value),
            });
        };
        if !field.choices.is_empty() && !field.choices.contains(&converted) {
            let choices: Vec<String> = field
                .choices
                .iter()
                .take(MAX_CHOICES)
                .map(value_shown)
                .collect();
            return Err(AnswerError::NotAChoice {
                field: field.name.clone(),
                choices: choices.join(", "),
                value: shown(value),
            });
        }
        answer.insert(field.name.clone(), converted);
    }
    if let Some(missing) = fields
        .iter()
        .find(|f| f.required && f.default.is_none() && !answer.contains_key(&f.name))
    {
        return Err(AnswerError::Missing {
            field: missing.name.clone(),
        });
    }
    Ok(answer)
}

/// Why a user may not answer an inquiry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// `users` is set and does not name them.
    #[error("only {users} may answer it")]
    NotAUser {
        /// The allowed users, comma-separated.
        users: String,
    },
    /// `roles` is set and they are in no group of that name.
    #[error("only members of {roles} may answer it")]
    NotInRole {
        /// The roles, comma-separated.
        roles: String,
    },
}

/// Whether the chat user `chat_user`, who is StackStorm user `st2_user` (their session's
/// user, or their chat name without one), may answer: a non-empty `users` must name
/// `st2_user`, and a non-empty `roles` must name a group of the definition's `groups:` of
/// which `chat_user` is a member (the bot maps StackStorm roles to its own groups by name;
/// StackStorm checks roles itself only with RBAC enabled).
pub fn may_answer(
    inquiry: &Inquiry,
    st2_user: &str,
    chat_user: &str,
    groups: &[GroupSpec],
) -> Result<(), Refusal> {
    if !inquiry.users.is_empty() && !inquiry.users.iter().any(|u| u == st2_user) {
        return Err(Refusal::NotAUser {
            users: inquiry.users.join(", "),
        });
    }
    if inquiry.roles.is_empty() {
        return Ok(());
    }
    let member = |role: &str| {
        groups.iter().filter(|g| g.name.as_ref() == role).any(|g| {
            g.members.iter().any(|m| {
                bot_config::acl::compile_glob(m.as_ref()).is_ok_and(|p| p.is_match(chat_user))
            })
        })
    };
    if inquiry.roles.iter().any(|r| member(r)) {
        Ok(())
    } else {
        Err(Refusal::NotInRole {
            roles: inquiry.roles.join(", "),
        })
    }
}

/// A plain reply in the thread of a yes/no question, read as its answer: `yes`/`y`/
/// `approve` (true) or `no`/`n`/`reject` (false), in any case, a trailing `.` or `!`
/// ignored; anything else is not an answer (`None`).
pub fn thread_reply(text: &str) -> Option<bool> {
    let word = text
        .trim()
        .trim_end_matches(['.', '!'])
        .to_ascii_lowercase();
    match word.as_str() {
        "yes" | "y" | "approve" | "approved" => Some(true),
        "no" | "n" | "reject" | "rejected" => Some(false),
        _ => None,
    }
}

/// The yes/no questions posted in a thread, by (room id, thread id): a plain reply there
/// answers the inquiry ([`thread_reply`]). Bounded: the oldest are forgotten first.
#[derive(Debug, Default)]
pub struct QuestionThreads {
    by_thread: std::collections::HashMap<(String, String), String>,
    order: std::collections::VecDeque<(String, String)>,
}

/// At most this many question threads are remembered.
pub const MAX_QUESTION_THREADS: usize = 1024;

impl QuestionThreads {
    /// Inquiry `id` was asked in `thread` of `room`.
    pub fn remember(&mut self, room: &str, thread: &str, id: &str) {
        let key = (room.to_owned(), thread.to_owned());
        if self.by_thread.insert(key.clone(), id.to_owned()).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > MAX_QUESTION_THREADS {
            if let Some(old) = self.order.pop_front() {
                self.by_thread.remove(&old);
            }
        }
    }

    /// The inquiry asked in `thread` of `room`.
    pub fn inquiry(&self, room: &str, thread: &str) -> Option<&str> {
        self.by_thread
            .get(&(room.to_owned(), thread.to_owned()))
            .map(String::as_str)
    }
}

/// The inquiry id an announcement carries when it is the rule of docs/inquiries.md telling
/// of a new inquiry (`extra.st2bot.inquiry`); such announcements are not posted as is.
pub fn announced(extra: Option<&Value>) -> Option<String> {
    let id = extra?.get("st2bot")?.get("inquiry")?.as_str()?;
    is_valid_id(id).then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy() -> Inquiry {
        serde_json::from_value(json!({
            "id": "5f0c0ffee0000000000000a1", "route": "#ops", "ttl": 60,
            "users": [], "roles": ["oncall"],
            "schema": {"type": "object", "properties": {
                "approve": {"type": "boolean", "description": "Deploy to production?", "required": true},
                "env": {"type": "string", "enum": ["prod", "staging"], "default": "staging"},
                "replicas": {"type": "integer"},
            }},
        }))
        .unwrap()
    }

    #[test]
    fn the_question_shows_fields_types_choices_defaults_and_time_left() {
        let text = question(&deploy(), Some(Duration::from_secs(3540)), "!");
        assert_eq!(
            text,
            "❓ Inquiry 5f0c0ffee0000000000000a1 is waiting for an answer (59m left)\n  \
             • approve (yes/no, required): Deploy to production?\n  \
             • env (one of prod, staging, default staging)\n  \
             • replicas (integer)\n\
             Answer with `!inquiry respond 5f0c0ffee0000000000000a1 approve=… env=… replicas=…`.\n\
             Only members of oncall may answer."
        );
    }

    #[test]
    fn a_single_boolean_question_offers_approve_and_reject() {
        let mut i = deploy();
        i.schema = json!({"properties": {"continue": {"type": "boolean", "required": true}}});
        i.roles.clear();
        let text = question(&i, None, "!");
        assert!(text.contains("(no time limit)"), "{text}");
        assert!(
            text.contains(
                "`!approve 5f0c0ffee0000000000000a1` or `!reject 5f0c0ffee0000000000000a1`"
            ),
            "{text}"
        );
        assert!(!text.contains("may answer"), "{text}");
    }

    #[test]
    fn answers_are_converted_to_the_schema_types() {
        let answer = parse_answer(&deploy().schema, "approve=yes env=prod replicas=3").unwrap();
        assert_eq!(
            Value::Object(answer),
            json!({"approve": true, "env": "prod", "replicas": 3})
        );
        let quoted = parse_answer(
            &json!({"properties": {"why": {"type": "string"}}}),
            "why=\"out of hours fix\"",
        )
        .unwrap();
        assert_eq!(quoted["why"], "out of hours fix");
    }

    #[test]
    fn a_wrong_answer_names_the_field() {
        let schema = deploy().schema;
        let err = |text| parse_answer(&schema, text).unwrap_err().to_string();
        assert_eq!(
            err("approve=maybe"),
            "`approve` must be yes/no, not `maybe`"
        );
        assert_eq!(
            err("approve=yes env=dev"),
            "`env` must be one of prod, staging, not `dev`"
        );
        assert_eq!(err("env=prod"), "`approve` is required");
        assert_eq!(
            err("approve=yes replicas=two"),
            "`replicas` must be integer, not `two`"
        );
        assert_eq!(
            err("aprove=yes"),
            "`aprove` is not a field of this inquiry (its fields: approve, env, replicas)"
        );
        assert_eq!(err("approve"), "`approve` is not `key=value`");
        assert_eq!(err("approve=1 approve=0"), "`approve` is given twice");
        assert_eq!(err(""), "no answer given (fields: approve, env, replicas)");
    }

    fn groups() -> Vec<GroupSpec> {
        vec![GroupSpec {
            name: "oncall".into(),
            members: vec!["alice".into(), "ops-*".into()].into(),
        }]
    }

    #[test]
    fn roles_are_the_definitions_groups_and_users_are_stackstorm_users() {
        let mut i = deploy();
        assert_eq!(may_answer(&i, "alice", "alice", &groups()), Ok(()));
        assert_eq!(may_answer(&i, "x", "ops-eve", &groups()), Ok(()));
        assert_eq!(
            may_answer(&i, "carol", "carol", &groups())
                .unwrap_err()
                .to_string(),
            "only members of oncall may answer it"
        );
        i.roles.clear();
        i.users = vec!["alice.smith".into()];
        assert_eq!(may_answer(&i, "alice.smith", "alice", &groups()), Ok(()));
        assert_eq!(
            may_answer(&i, "alice", "alice", &groups())
                .unwrap_err()
                .to_string(),
            "only alice.smith may answer it"
        );
    }

    #[test]
    fn thread_replies_are_yes_or_no_and_question_threads_are_bounded() {
        assert_eq!(thread_reply("yes"), Some(true));
        assert_eq!(thread_reply(" Y! "), Some(true));
        assert_eq!(thread_reply("Approve."), Some(true));
        assert_eq!(thread_reply("no"), Some(false));
        assert_eq!(thread_reply("REJECT"), Some(false));
        assert_eq!(thread_reply("yes please"), None);
        assert_eq!(thread_reply("maybe"), None);
        assert_eq!(thread_reply(""), None);
        let mut threads = QuestionThreads::default();
        threads.remember("C1", "t0", "a0");
        assert_eq!(threads.inquiry("C1", "t0"), Some("a0"));
        assert_eq!(threads.inquiry("C2", "t0"), None);
        for i in 1..=MAX_QUESTION_THREADS {
            threads.remember("C1", &format!("t{i}"), &format!("a{i}"));
        }
        assert_eq!(threads.inquiry("C1", "t0"), None, "the oldest is forgotten");
        assert_eq!(threads.inquiry("C1", "t1"), Some("a1"));
        assert_eq!(threads.by_thread.len(), MAX_QUESTION_THREADS);
    }

    #[test]
    fn only_well_formed_ids_are_taken_from_announcements() {
        let extra = json!({"st2bot": {"inquiry": "5f0c0ffee0000000000000a1"}});
        assert_eq!(
            announced(Some(&extra)).as_deref(),
            Some("5f0c0ffee0000000000000a1")
        );
        let bad = json!({"st2bot": {"inquiry": "../executions"}});
        assert_eq!(announced(Some(&bad)), None);
        assert_eq!(announced(Some(&json!({"slack": {}}))), None);
        assert_eq!(announced(None), None);
    }

    #[test]
    fn the_default_schema_and_null_fields_are_read() {
        let i: Inquiry = serde_json::from_value(json!({
            "id": "a1", "route": null, "ttl": null, "users": null, "roles": null,
            "schema": {"title": "response_data", "type": "object", "properties": {
                "continue": {"type": "boolean", "description": "Would you like to continue the workflow?", "required": true}}},
        }))
        .unwrap();
        assert_eq!(i.ttl, 1440);
        assert_eq!(single_boolean(&fields(&i.schema)), Some("continue"));
    }
}
