//! What the simulator knows: credentials, aliases, timings and notify rules; and the demo
//! data set.

use std::time::Duration;

use serde_json::{Value, json};

/// Simulator settings.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Valid API keys.
    pub api_keys: Vec<String>,
    /// Users that may obtain tokens: (name, password).
    pub users: Vec<(String, String)>,
    /// Lifetime of issued tokens when the request names none.
    pub token_ttl: Duration,
    /// Longest lifetime a token request may ask for (`auth.token_ttl`... max).
    pub max_token_ttl: Duration,
    /// Action alias documents, in database order.
    pub aliases: Vec<Value>,
    /// Time from execution request to completion.
    pub result_delay: Duration,
    /// Time each page of `GET /api/v1/actionalias` takes to answer (st2api reads the page
    /// from MongoDB and serialises it; zero by default). For measuring start-up against a
    /// StackStorm slower than the in-process simulator.
    pub list_delay: Duration,
    /// Notify rules: (notification route, announcement route).
    pub routes: Vec<(String, String)>,
    /// Notification routes whose notify rule exists but is disabled: listed by
    /// `GET /api/v1/rules` with `enabled: false`, and their results are never announced.
    pub disabled_rules: Vec<String>,
    /// Web UI base for `execution.web_url` (absent: no `web_url`, like StackStorm without
    /// `webui.webui_base_url`).
    pub webui_url: Option<String>,
    /// Stream heartbeat interval (StackStorm: 25 s).
    pub heartbeat: Duration,
    /// Workflows that pause on an inquiry: (action ref, the inquirer's runner parameters
    /// `schema`, `users`, `roles`, `route`, `ttl`). Executing one makes it ask once started,
    /// and finish when the inquiry is answered (see `inquiries.rs`).
    pub workflows: Vec<(String, Value)>,
    /// Announcement routes on which the rule from docs/inquiries.md is installed: each new
    /// inquiry is announced there with `extra.st2bot.inquiry` set to its id.
    pub inquiry_rules: Vec<String>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            api_keys: vec!["sim-api-key".into()],
            users: vec![("st2admin".into(), "Ch@ngeMe".into())],
            token_ttl: Duration::from_secs(86_400),
            max_token_ttl: Duration::from_secs(86_400),
            aliases: demo_aliases(),
            result_delay: Duration::from_millis(200),
            list_delay: Duration::ZERO,
            routes: vec![
                ("hubot".into(), "chatops".into()),
                ("errbot".into(), "errbot".into()),
            ],
            disabled_rules: Vec::new(),
            webui_url: None,
            heartbeat: Duration::from_secs(25),
            workflows: Vec::new(),
            inquiry_rules: Vec::new(),
        }
    }
}

impl SimConfig {
    /// The demo data set with the default credentials.
    pub fn demo() -> Self {
        Self::default()
    }
}

fn alias(pack: &str, name: &str, action: &str, description: &str, formats: Value) -> Value {
    json!({
        "id": format!("{:024x}", fxhash(&format!("{pack}.{name}"))),
        "uid": format!("action:{pack}:{name}"),
        "ref": format!("{pack}.{name}"),
        "name": name,
        "pack": pack,
        "description": description,
        "enabled": true,
        "action_ref": action,
        "formats": formats,
        "ack": {"enabled": true, "append_url": true},
        "result": {"enabled": true},
    })
}

fn fxhash(s: &str) -> u128 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u128, |h, b| {
        (h ^ u128::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A few realistic packs: core, packs, examples (with an object format), linux (for access
/// rules), jira (a `match_multiple` format) and a disabled alias.
pub fn demo_aliases() -> Vec<Value> {
    let mut out = vec![
        alias(
            "core",
            "local",
            "core.local",
            "Run a command on the StackStorm host",
            json!(["local {{cmd}}"]),
        ),
        alias(
            "core",
            "remote",
            "core.remote",
            "Run a command on remote hosts over SSH",
            json!(["run {{cmd}} on {{hosts}}"]),
        ),
        alias(
            "packs",
            "pack_install",
            "packs.install",
            "Install packs from the exchange",
            json!(["pack install {{packs}}"]),
        ),
        alias(
            "packs",
            "pack_get",
            "packs.get",
            "Show an installed pack",
            json!(["pack get {{pack}}"]),
        ),
        alias(
            "examples",
            "deploy",
            "examples.deploy",
            "Deploy an application",
            json!([{"display": "deploy <app> [to <env>]", "representation": ["deploy {{app}} to {{env=staging}}"]}]),
        ),
        alias(
            "examples",
            "service_status",
            "examples.service_status",
            "Check a service",
            json!(["status {{service}}", "status of {{service}}"]),
        ),
        alias(
            "linux",
            "rm",
            "linux.rm",
            "Remove files on hosts",
            json!(["rm {{path}} on {{hosts}}"]),
        ),
        alias(
            "jira",
            "link_fixes",
            "jira.link",
            "Link mentioned issues",
            json!([{"display": "fixes <ISSUE-KEY> …", "representation": ["(?:\\b|^)fixes (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+)(?:\\b|$)"], "match_multiple": true}]),
        ),
        alias(
            "examples",
            "reboot",
            "core.remote",
            "Reboot a host (disabled)",
            json!(["reboot {{host}}"]),
        ),
    ];
    // The deploy alias acks with its own format and asks for a thread reply on Slack.
    out[4]["ack"] = json!({"enabled": true, "append_url": true, "format": "deploying {{ actionalias.name }} (execution {{ execution.id }})"});
    out[4]["result"] =
        json!({"enabled": true, "extra": {"slack": {"thread_response": true, "color": "#2eb886"}}});
    out[8]["enabled"] = json!(false);
    out
}

/// Verbs and nouns of the generated catalogue (see [`generated_aliases`]).
const VERBS: [&str; 10] = [
    "deploy", "restart", "scale", "backup", "rotate", "purge", "tail", "check", "sync", "drain",
];
const NOUNS: [&str; 10] = [
    "app", "service", "queue", "db", "cache", "cert", "log", "node", "job", "volume",
];
/// Aliases per pack in the generated catalogue.
const PER_PACK: usize = 50;

/// The verb and numbered noun of alias `i` of a generated catalogue (`deploy`, `app0`);
/// the noun is unique per alias.
fn generated_words(i: usize) -> (&'static str, String) {
    (
        VERBS[i % VERBS.len()],
        format!("{}{i}", NOUNS[(i / VERBS.len()) % NOUNS.len()]),
    )
}

/// A command that matches exactly one format of alias `i` of [`generated_aliases`] (its
/// first), e.g. `deploy app0 web0`.
pub fn generated_command(i: usize) -> String {
    let (verb, noun) = generated_words(i);
    format!("{verb} {noun} web{}", i % 7)
}

/// A catalogue of `n` enabled aliases shaped like real packs, for benchmarks: packs of 50
/// (`pack0`, `pack1`, …), each alias with a description and three formats — a plain
/// `{{param}}` format, one with a `{{param=default}}` default, and an object format with a
/// `display` and two representations that need a literal in the middle of the command —
/// plus an ack format of its own on every seventh alias. No two formats can match one
/// command, so [`generated_command`]`(i)` matches alias `i` only.
pub fn generated_aliases(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let pack = format!("pack{}", i / PER_PACK);
            let (verb, noun) = generated_words(i);
            let name = format!("{verb}_{noun}");
            let mut doc = alias(
                &pack,
                &name,
                &format!("{pack}.{name}"),
                &format!("{verb} {noun}: generated alias {i} of {n}, for measuring the bot"),
                json!([
                    format!("{verb} {noun} {{{{target}}}}"),
                    format!("{noun} {verb} status {{{{level=info}}}}"),
                    {
                        "display": format!("{verb} <target> on {noun} [with <options>]"),
                        "representation": [
                            format!("{verb} {{{{target}}}} on {noun}"),
                            format!("{verb} {{{{target}}}} on {noun} with {{{{options}}}}"),
                        ],
                    },
                ]),
            );
            if i % 7 == 0 {
                doc["ack"] = json!({
                    "enabled": true,
                    "append_url": false,
                    "format": format!("working on {verb} {noun} (execution {{{{ execution.id }}}})"),
                });
            }
            doc
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_generated_command_matches_its_alias_only() {
        let docs = generated_aliases(230);
        let index = crate::state::index_of(&docs);
        assert_eq!(index.len(), 230);
        assert!(index.invalid_formats().is_empty());
        for i in [0, 1, 9, 10, 11, 99, 100, 101, 229] {
            let resolved = index
                .resolve(&generated_command(i))
                .unwrap_or_else(|e| panic!("command {i}: {e}"));
            assert_eq!(
                Some(resolved.alias_ref.as_str()),
                docs[i]["ref"].as_str(),
                "command {i}"
            );
            let (verb, noun) = generated_words(i);
            for (command, representation) in [
                (
                    format!("{noun} {verb} status"),
                    format!("{noun} {verb} status {{{{level=info}}}}"),
                ),
                (
                    format!("{verb} web1 on {noun}"),
                    format!("{verb} {{{{target}}}} on {noun}"),
                ),
                (
                    format!("{verb} web1 on {noun} with fast"),
                    format!("{verb} {{{{target}}}} on {noun} with {{{{options}}}}"),
                ),
            ] {
                let resolved = index
                    .resolve(&command)
                    .unwrap_or_else(|e| panic!("{command}: {e}"));
                assert_eq!(resolved.representation, representation);
                assert_eq!(Some(resolved.alias_ref.as_str()), docs[i]["ref"].as_str());
            }
        }
    }
}
