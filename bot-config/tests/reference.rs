//! `bots/reference.yaml` documents every key of a bot definition with its default.
//!
//! Three promises are tested: it loads without diagnostics and sets the values it shows;
//! the values it writes for defaulted keys are the defaults the checks really apply; and
//! every key of the schema appears in it (active, or as a `#key:` alternative).

use std::collections::BTreeSet;
use std::time::Duration;

use bot_config::{
    BackendSpec, ConfirmBy, Decision, LogFormat, MatcherKind, PgTls, SecretRef, SourceFile,
    St2AuthSpec, load,
};
use serde_json::Value;

const REFERENCE: &str = include_str!("../../bots/reference.yaml");

fn reference() -> bot_config::BotSpec {
    let file = SourceFile::new("bots/reference.yaml", REFERENCE);
    match load(&file) {
        Ok(spec) => spec,
        Err(diagnostics) => panic!(
            "bots/reference.yaml must load:\n{}",
            diagnostics
                .iter()
                .map(|d| d.render_long(&file))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

#[test]
fn reference_sets_the_values_it_shows() {
    let spec = reference();
    assert_eq!(spec.name, "reference");
    let BackendSpec::Text(text) = &spec.backend else {
        panic!("reference.yaml uses the text backend")
    };
    assert_eq!(text.room, "terminal");
    let st2 = &spec.stackstorm;
    assert_eq!(st2.api_url, "https://st2.example.com/api");
    assert_eq!(st2.auth_url, "https://st2.example.com/auth");
    assert_eq!(st2.stream_url, "https://st2.example.com/stream");
    assert_eq!(
        st2.auth,
        St2AuthSpec::ApiKey(SecretRef::Env("ST2_API_KEY".into()))
    );
    assert!(st2.verify_tls);
    assert_eq!(st2.notification_route, "hubot");
    assert_eq!(st2.announcement_route, "chatops");
    assert_eq!(st2.webui_url.as_deref(), Some("https://st2.example.com"));
    assert_eq!(st2.timeout, Duration::from_secs(30));
    assert_eq!(st2.token_ttl, Duration::from_secs(24 * 3600));
    assert_eq!(st2.matcher, MatcherKind::StackStorm);
    assert_eq!(st2.max_in_flight, 16);
    assert_eq!(st2.alias_refresh, Duration::from_secs(300));
    assert_eq!(st2.result_timeout, Duration::from_secs(86_400));
    assert_eq!(st2.results_store, None);
    assert_eq!(spec.chat.prefix, "!");
    assert!(spec.chat.mention);
    assert_eq!(spec.chat.help_command, "help");
    assert_eq!(spec.chat.session_command, "session");
    assert!(spec.chat.ack);
    assert!(spec.chat.live_ack);
    assert_eq!(spec.access.default, Decision::Deny);
    assert_eq!(spec.access.rules.len(), 4);
    assert_eq!(spec.access.rules[0].decision, Decision::Deny);
    assert_eq!(spec.access.rules[0].direct, Some(false));
    assert_eq!(spec.access.groups[0].name, "oncall");
    assert_eq!(spec.access.groups[0].members.as_ref(), ["alice", "bob"]);
    let page = spec.auth_page.as_ref().expect("auth_page is set");
    assert_eq!(page.listen, "127.0.0.1:8765");
    assert_eq!(page.public_url, "https://bot.example.com/login");
    assert_eq!(page.session_ttl, Duration::from_secs(12 * 3600));
    assert_eq!(page.link_ttl, Duration::from_secs(300));
    assert!(!page.required);
    assert_eq!(page.store, "st2bot-reference-sessions.redb");
    assert_eq!(
        page.encryption_key,
        SecretRef::Env("ST2BOT_SESSION_KEY".into())
    );
    assert!(!page.allow_plain_http);
    let ha = spec.ha.as_ref().expect("ha is set");
    assert_eq!(
        ha.database_url,
        SecretRef::Env("ST2BOT_DATABASE_URL".into())
    );
    assert_eq!(ha.tls, PgTls::VerifyFull);
    assert_eq!(ha.ca_file, None);
    assert_eq!(ha.lease, Duration::from_secs(10));
    assert_eq!(ha.instance_env, "ST2BOT_INSTANCE");
    assert_eq!(spec.confirm.len(), 2);
    assert_eq!(spec.confirm[0].commands.as_ref(), ["core.remote*"]);
    assert_eq!(spec.confirm[0].by, ConfirmBy::Requester);
    assert_eq!(spec.confirm[0].within, Duration::from_secs(60));
    assert_eq!(spec.confirm[1].by, ConfirmBy::Group("oncall".into()));
    assert_eq!(spec.confirm[1].within, Duration::from_secs(300));
    assert_eq!(spec.health_listen, None);
    assert_eq!(spec.log.format, LogFormat::Text);
    assert_eq!(spec.log.level, "info");
}

/// A definition with only the required keys (and the required keys of `auth_page`): what
/// the checks fill in must equal what reference.yaml writes.
#[test]
fn reference_values_are_the_real_defaults() {
    let minimal = "name: reference\nbackend: { kind: text }\nstackstorm:\n  url: https://st2.example.com\n  auth: { api_key: \"${ST2_API_KEY}\" }\nauth_page:\n  public_url: https://bot.example.com/login\n  encryption_key: ${ST2BOT_SESSION_KEY}\nha:\n  database_url: ${ST2BOT_DATABASE_URL}\n";
    let minimal = load(&SourceFile::new("minimal.yaml", minimal)).expect("minimal loads");
    let reference = reference();
    let BackendSpec::Text(text) = &reference.backend else {
        panic!("text backend")
    };
    assert_eq!(
        BackendSpec::Text(text.clone()),
        minimal.backend,
        "backend.room"
    );
    let mut st2 = reference.stackstorm.clone();
    st2.webui_url = None; // an example: it has no default
    assert_eq!(st2, minimal.stackstorm, "stackstorm defaults");
    assert_eq!(reference.chat, minimal.chat, "chat defaults");
    assert_eq!(reference.templates, minimal.templates, "template defaults");
    let mut auth_page = reference.auth_page.clone();
    if let Some(page) = auth_page.as_mut() {
        page.trusted_proxies = Default::default(); // an example: the default is none
        page.admins = Default::default(); // an example: the default is nobody
    }
    assert_eq!(auth_page, minimal.auth_page, "auth_page defaults");
    assert_eq!(reference.ha, minimal.ha, "ha defaults");
    assert_eq!(reference.log, minimal.log, "log defaults");
    assert_eq!(reference.access.default, minimal.access.default);
    assert!(minimal.confirm.is_empty(), "no confirmations by default");
    let without_within = "name: reference\nbackend: { kind: text }\nstackstorm:\n  url: https://st2.example.com\n  auth: { api_key: \"${ST2_API_KEY}\" }\nconfirm:\n  - { commands: [\"packs.uninstall\"], by: self }\n";
    let without_within = load(&SourceFile::new("minimal.yaml", without_within))
        .expect("confirm without within loads");
    assert_eq!(
        without_within.confirm[0].within, reference.confirm[1].within,
        "confirm[].within default"
    );
}

/// Every key path of the schema (`stackstorm.auth.api_key`, `access.rules[].<scope>.users`)
/// with both rule kinds folded into `<scope>`.
fn schema_keys() -> BTreeSet<String> {
    fn walk(schema: &Value, node: &Value, prefix: &str, out: &mut BTreeSet<String>) {
        let node = match node.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.rsplit('/').next().unwrap_or(r);
                &schema["definitions"][name]
            }
            None => node,
        };
        if let Some(props) = node.get("properties").and_then(Value::as_object) {
            for (key, child) in props {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                out.insert(path.clone());
                walk(schema, child, &path, out);
            }
        }
        if let Some(items) = node.get("items") {
            walk(schema, items, &format!("{prefix}[]"), out);
        }
        for alternative in ["oneOf", "anyOf", "allOf"]
            .iter()
            .filter_map(|k| node.get(*k).and_then(Value::as_array))
            .flatten()
        {
            walk(schema, alternative, prefix, out);
        }
    }
    let schema = bot_config::schema::json_schema();
    let mut out = BTreeSet::new();
    walk(&schema, &schema, "", &mut out);
    fold_rule_kinds(out)
}

/// The key paths written in reference.yaml once every `#key:` alternative is uncommented.
fn reference_keys() -> BTreeSet<String> {
    fn walk(value: &Value, prefix: &str, out: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let path = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    out.insert(path.clone());
                    // `groups` maps free names to members: its keys are not schema keys.
                    if path != "groups" {
                        walk(child, &path, out);
                    }
                }
            }
            Value::Array(items) => {
                for item in items {
                    walk(item, &format!("{prefix}[]"), out);
                }
            }
            _ => {}
        }
    }
    let uncommented: String = REFERENCE
        .lines()
        .map(|line| {
            let body = line.trim_start();
            let indent = &line[..line.len() - body.len()];
            match body.strip_prefix('#') {
                Some(rest)
                    if rest.starts_with(|c: char| c.is_ascii_lowercase())
                        && rest.split(':').next().is_some_and(|k| {
                            k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                        }) =>
                {
                    format!("{indent}{rest}\n")
                }
                _ => format!("{line}\n"),
            }
        })
        .collect();
    let value: Value = serde_saphyr::from_str(&uncommented)
        .expect("reference.yaml with its alternatives uncommented is still YAML");
    let mut out = BTreeSet::new();
    walk(&value, "", &mut out);
    fold_rule_kinds(out)
}

fn fold_rule_kinds(keys: BTreeSet<String>) -> BTreeSet<String> {
    keys.into_iter()
        .map(|k| {
            k.replace("rules[].allow.", "rules[].<scope>.")
                .replace("rules[].deny.", "rules[].<scope>.")
        })
        .collect()
}

#[test]
fn reference_shows_every_key_of_the_schema() {
    let schema = schema_keys();
    let reference = reference_keys();
    assert!(
        schema.len() > 60,
        "the schema walk found {} keys",
        schema.len()
    );
    let missing: Vec<_> = schema.difference(&reference).collect();
    assert!(
        missing.is_empty(),
        "keys in the schema but not in bots/reference.yaml (add each with a comment and its default): {missing:?}"
    );
    let unknown: Vec<_> = reference.difference(&schema).collect();
    assert!(
        unknown.is_empty(),
        "keys in bots/reference.yaml that the schema does not have: {unknown:?}"
    );
}
