//! The JSON Schema of a bot definition, for editors (`schema/bot.schema.json`, used through
//! the `# yaml-language-server: $schema=…` line at the top of every `bots/*.yaml`).
//!
//! Read [`json_schema`] first. The schema is derived with `schemars` from the same
//! [`crate::raw`] types the parser uses, so keys, nesting, types and doc comments cannot
//! drift; the few value rules that live in `check/` (the backend kinds, secret references,
//! durations, fixed word lists) are added here so editors flag them while typing. The build
//! checks stay the authority: the schema only helps earlier.

use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

/// Pattern of a secret reference: `${NAME}` or `file:/path`.
const SECRET_PATTERN: &str = r"^\s*(\$\{[A-Za-z_][A-Za-z0-9_]*\}|file:.+)\s*$";

/// Pattern of a duration as the checks accept it (`90s`, `5m`, `1h30m`, `2 days`).
const DURATION_PATTERN: &str = r"^\s*([0-9]+(\.[0-9]+)?\s*(ns|us|µs|ms|msec|s|sec|secs|second|seconds|m|min|mins|minute|minutes|h|hr|hrs|hour|hours|d|day|days|w|week|weeks|M|month|months|y|year|years)\s*)+$";

/// Keys that hold secret references: (definition, property).
const SECRETS: &[(&str, &str)] = &[
    ("Backend", "password"),
    ("Backend", "token"),
    ("Backend", "app_token"),
    ("Backend", "bot_token"),
    ("StackStormAuth", "api_key"),
    ("StackStormAuth", "token"),
    ("StackStormAuth", "password"),
    ("AuthPage", "encryption_key"),
    ("Ha", "database_url"),
];

/// Keys that hold durations: (definition, property).
const DURATIONS: &[(&str, &str)] = &[
    ("StackStorm", "timeout"),
    ("StackStorm", "token_ttl"),
    ("StackStorm", "alias_refresh"),
    ("StackStorm", "result_timeout"),
    ("AuthPage", "session_ttl"),
    ("AuthPage", "link_ttl"),
    ("Ha", "lease"),
];

/// The schema as a JSON value (JSON Schema draft-07, which every YAML editor plugin reads).
pub fn json_schema() -> Value {
    let generator = SchemaSettings::draft07().into_generator();
    let mut schema = generator
        .into_root_schema_for::<crate::raw::BotFile>()
        .to_value();
    drop_null_defaults(&mut schema);
    if let Some(root) = schema.as_object_mut() {
        root.insert("title".into(), json!("st2bot bot definition"));
    }
    let words: [(&str, &str, Vec<&str>); 6] = [
        ("Backend", "kind", crate::backend_kinds()),
        (
            "Backend",
            "auth",
            vec!["none", "sasl", "nickserv", "server"],
        ),
        ("Access", "default", vec!["allow", "deny"]),
        ("Log", "format", vec!["text", "json"]),
        ("StackStorm", "matcher", vec!["stackstorm", "local"]),
        ("Ha", "tls", crate::spec::PgTls::WORDS.to_vec()),
    ];
    for (definition, key, values) in words {
        if let Some(p) = property(&mut schema, definition, key) {
            let mut values: Vec<Value> = values.into_iter().map(Value::from).collect();
            if accepts_null(p) {
                values.push(Value::Null);
            }
            p.insert("enum".into(), Value::Array(values));
        }
    }
    for (definition, key) in SECRETS {
        if let Some(p) = property(&mut schema, definition, key) {
            p.insert("pattern".into(), json!(SECRET_PATTERN));
        }
    }
    for (definition, key) in DURATIONS {
        if let Some(p) = property(&mut schema, definition, key) {
            p.insert("pattern".into(), json!(DURATION_PATTERN));
        }
    }
    schema
}

/// The schema as checked in: pretty JSON with a final newline.
pub fn json_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&json_schema()).unwrap_or_default();
    text.push('\n');
    text
}

/// The schema object of `definitions.<definition>.properties.<key>` (the root for
/// `BotFile`).
fn property<'a>(
    schema: &'a mut Value,
    definition: &str,
    key: &str,
) -> Option<&'a mut serde_json::Map<String, Value>> {
    let holder = if definition == "BotFile" {
        schema
    } else {
        schema.get_mut("definitions")?.get_mut(definition)?
    };
    holder.get_mut("properties")?.get_mut(key)?.as_object_mut()
}

/// Whether a property schema allows `null` (an optional key).
fn accepts_null(p: &serde_json::Map<String, Value>) -> bool {
    match p.get("type") {
        Some(Value::Array(types)) => types.iter().any(|t| t == "null"),
        Some(t) => t == "null",
        None => false,
    }
}

/// Removes `"default": null`, which schemars writes for every optional key: the real
/// defaults are in each key's description (and in `bots/reference.yaml`), and an editor
/// offering `null` as the default would mislead.
fn drop_null_defaults(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("default") == Some(&Value::Null) {
                map.remove("default");
            }
            map.values_mut().for_each(drop_null_defaults);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_null_defaults),
        _ => {}
    }
}
