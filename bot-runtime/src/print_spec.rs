//! `--print-spec`: the compiled definition as YAML (default) or JSON, every default filled
//! in, secrets shown as the references the definition wrote (`${VAR}`, `file:/path`), never
//! resolved. Nothing is looked up: printing works without any secret set.
//!
//! The output is built as an ordered tree (keys in the order of [`BotSpec`]'s fields, the
//! backend's `kind` first) and serialised by serde: YAML with serde-saphyr, JSON with
//! serde_json. Every struct is destructured exhaustively, so a field added to the spec does
//! not compile until it is printed here too.

use std::time::Duration;

use bot_config::BotSpec;
use bot_config::spec::{
    AccessSpec, AuthPageSpec, BackendSpec, ChatSpec, ConfirmBy, ConfirmSpec, Decision, DiscordSpec,
    GroupSpec, HaSpec, IrcAuth, IrcSpec, LogFormat, LogSpec, MatcherKind, MatrixLogin, MatrixSpec,
    MattermostSpec, MsTeamsSpec, RocketChatLogin, RocketChatSpec, RuleSpec, SecretRef, SlackSpec,
    St2AuthSpec, StackStormSpec, TemplatesSpec, TextSpec, XmppSpec,
};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// Output format of `--print-spec`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SpecFormat {
    /// YAML, the definition's own language.
    #[default]
    Yaml,
    /// JSON, for `jq` and other tools.
    Json,
}

impl SpecFormat {
    /// `yaml` or `json`; `None` for anything else.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "yaml" | "yml" => Some(Self::Yaml),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// Serialising the tree failed (not expected: it holds only strings, numbers and booleans).
#[derive(Debug, thiserror::Error)]
pub enum PrintSpecError {
    /// serde-saphyr refused the tree.
    #[error("cannot write the definition as YAML: {0}")]
    Yaml(#[from] serde_saphyr::ser::Error),
    /// serde_json refused the tree.
    #[error("cannot write the definition as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The compiled definition as text in `format`, ending with a newline.
pub fn render(spec: &BotSpec, format: SpecFormat) -> Result<String, PrintSpecError> {
    let tree = bot(spec);
    let mut text = match format {
        SpecFormat::Yaml => serde_saphyr::to_string(&tree)?,
        SpecFormat::Json => serde_json::to_string_pretty(&tree)?,
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// A value to print: scalars, lists, and maps that keep their keys in insertion order.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Null,
    Bool(bool),
    Int(u64),
    Str(String),
    List(Vec<Node>),
    Map(Vec<(&'static str, Node)>),
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Null => serializer.serialize_none(),
            Node::Bool(b) => serializer.serialize_bool(*b),
            Node::Int(n) => serializer.serialize_u64(*n),
            Node::Str(s) => serializer.serialize_str(s),
            Node::List(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Node::Map(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

fn s(text: &str) -> Node {
    Node::Str(text.to_owned())
}

fn opt_s(text: Option<&str>) -> Node {
    text.map_or(Node::Null, s)
}

fn list(items: &[impl AsRef<str>]) -> Node {
    Node::List(items.iter().map(|i| s(i.as_ref())).collect())
}

fn opt_list(items: Option<&[impl AsRef<str>]>) -> Node {
    items.map_or(Node::Null, list)
}

/// A secret as written in the definition: `${VAR}` or `file:/path`, never its value.
fn secret(reference: &SecretRef) -> Node {
    Node::Str(reference.to_string())
}

/// A duration as the definition accepts it (`90s` → `1m 30s`).
fn duration(d: Duration) -> Node {
    Node::Str(humantime::format_duration(d).to_string())
}

fn bot(spec: &BotSpec) -> Node {
    let BotSpec {
        name,
        description,
        source,
        backend: backend_spec,
        stackstorm: stackstorm_spec,
        chat: chat_spec,
        access: access_spec,
        confirm: confirm_spec,
        templates: templates_spec,
        auth_page: auth_page_spec,
        ha: ha_spec,
        health_listen,
        log: log_spec,
    } = spec;
    Node::Map(vec![
        ("name", s(name)),
        ("description", s(description)),
        ("source", s(source)),
        ("backend", backend(backend_spec)),
        ("stackstorm", stackstorm(stackstorm_spec)),
        ("chat", chat(chat_spec)),
        ("access", access(access_spec)),
        (
            "confirm",
            Node::List(confirm_spec.iter().map(confirm).collect()),
        ),
        ("templates", templates(templates_spec)),
        (
            "auth_page",
            auth_page_spec.as_ref().map_or(Node::Null, auth_page),
        ),
        ("ha", ha_spec.as_ref().map_or(Node::Null, ha)),
        ("health_listen", opt_s(health_listen.as_deref())),
        ("log", log(log_spec)),
    ])
}

fn backend(spec: &BackendSpec) -> Node {
    let mut entries = vec![("kind", s(spec.kind()))];
    match spec {
        BackendSpec::Text(TextSpec {
            user,
            room,
            simulator,
        }) => {
            entries.extend([
                ("user", s(user)),
                ("room", s(room)),
                ("simulator", Node::Bool(*simulator)),
            ]);
        }
        BackendSpec::Xmpp(XmppSpec {
            jid,
            password,
            server,
            port,
            tls,
            ca_file,
            nickname,
            rooms,
        }) => entries.extend([
            ("jid", s(jid)),
            ("password", secret(password)),
            ("server", s(server)),
            ("port", Node::Int(u64::from(*port))),
            ("tls", Node::Bool(*tls)),
            ("ca_file", opt_s(ca_file.as_deref())),
            ("nickname", s(nickname)),
            ("rooms", list(rooms)),
        ]),
        BackendSpec::Irc(IrcSpec {
            server,
            port,
            tls,
            ca_file,
            nickname,
            username,
            password,
            auth,
            rooms,
        }) => entries.extend([
            ("server", s(server)),
            ("port", Node::Int(u64::from(*port))),
            ("tls", Node::Bool(*tls)),
            ("ca_file", opt_s(ca_file.as_deref())),
            ("nickname", s(nickname)),
            ("username", s(username)),
            ("password", password.as_ref().map_or(Node::Null, secret)),
            (
                "auth",
                s(match auth {
                    IrcAuth::None => "none",
                    IrcAuth::Sasl => "sasl",
                    IrcAuth::NickServ => "nickserv",
                    IrcAuth::Server => "server",
                }),
            ),
            ("rooms", list(rooms)),
        ]),
        BackendSpec::Matrix(MatrixSpec { url, login, rooms }) => {
            entries.push(("url", s(url)));
            match login {
                MatrixLogin::Password { username, password } => {
                    entries.extend([("username", s(username)), ("password", secret(password))])
                }
                MatrixLogin::Token(token) => entries.push(("token", secret(token))),
            }
            entries.push(("rooms", list(rooms)));
        }
        BackendSpec::Slack(SlackSpec {
            app_token,
            bot_token,
            url,
        }) => entries.extend([
            ("app_token", secret(app_token)),
            ("bot_token", secret(bot_token)),
            ("url", s(url)),
        ]),
        BackendSpec::Mattermost(MattermostSpec {
            url,
            token,
            team,
            listen,
            actions_url,
        }) => {
            entries.extend([("url", s(url)), ("token", secret(token)), ("team", s(team))]);
            if let (Some(listen), Some(actions_url)) = (listen, actions_url) {
                entries.extend([("listen", s(listen)), ("actions_url", s(actions_url))]);
            }
        }
        BackendSpec::Discord(DiscordSpec { token, url }) => {
            entries.extend([("token", secret(token)), ("url", s(url))]);
        }
        BackendSpec::RocketChat(RocketChatSpec { url, login }) => {
            entries.push(("url", s(url)));
            match login {
                RocketChatLogin::Password { username, password } => {
                    entries.extend([("username", s(username)), ("password", secret(password))])
                }
                RocketChatLogin::Token { user_id, token } => {
                    entries.extend([("user_id", s(user_id)), ("token", secret(token))]);
                }
            }
        }
        BackendSpec::MsTeams(MsTeamsSpec {
            app_id,
            app_password,
            tenant,
            listen,
            state_file,
            url,
        }) => {
            entries.extend([
                ("app_id", s(app_id)),
                ("app_password", secret(app_password)),
                ("tenant", s(tenant)),
                ("listen", s(listen)),
            ]);
            if let Some(f) = state_file {
                entries.push(("state_file", s(f)));
            }
            entries.push(("url", s(url)));
        }
    }
    Node::Map(entries)
}

fn stackstorm(spec: &StackStormSpec) -> Node {
    let StackStormSpec {
        api_url,
        auth_url,
        stream_url,
        auth,
        verify_tls,
        ca_file,
        notification_route,
        announcement_route,
        webui_url,
        timeout,
        token_ttl,
        matcher,
        max_in_flight,
        alias_refresh,
        result_timeout,
        results_store,
    } = spec;
    let auth = match auth {
        St2AuthSpec::ApiKey(key) => Node::Map(vec![("api_key", secret(key))]),
        St2AuthSpec::Token(token) => Node::Map(vec![("token", secret(token))]),
        St2AuthSpec::Password { username, password } => Node::Map(vec![
            ("username", s(username)),
            ("password", secret(password)),
        ]),
    };
    Node::Map(vec![
        ("api_url", s(api_url)),
        ("auth_url", s(auth_url)),
        ("stream_url", s(stream_url)),
        ("auth", auth),
        ("verify_tls", Node::Bool(*verify_tls)),
        ("ca_file", opt_s(ca_file.as_deref())),
        ("notification_route", s(notification_route)),
        ("announcement_route", s(announcement_route)),
        ("webui_url", opt_s(webui_url.as_deref())),
        ("timeout", duration(*timeout)),
        ("token_ttl", duration(*token_ttl)),
        (
            "matcher",
            s(match matcher {
                MatcherKind::StackStorm => "stackstorm",
                MatcherKind::Local => "local",
            }),
        ),
        ("max_in_flight", Node::Int(u64::from(*max_in_flight))),
        ("alias_refresh", duration(*alias_refresh)),
        ("result_timeout", duration(*result_timeout)),
        ("results_store", opt_s(results_store.as_deref())),
    ])
}

fn chat(spec: &ChatSpec) -> Node {
    let ChatSpec {
        prefix,
        mention,
        help_command,
        session_command,
        ack,
        live_ack,
        replace_ack,
        max_message_len,
    } = spec;
    Node::Map(vec![
        ("prefix", s(prefix)),
        ("mention", Node::Bool(*mention)),
        ("help_command", s(help_command)),
        ("session_command", s(session_command)),
        ("ack", Node::Bool(*ack)),
        ("live_ack", Node::Bool(*live_ack)),
        ("replace_ack", Node::Bool(*replace_ack)),
        ("max_message_len", Node::Int(u64::from(*max_message_len))),
    ])
}

fn confirm(spec: &ConfirmSpec) -> Node {
    let ConfirmSpec {
        commands,
        by,
        within,
        line,
    } = spec;
    Node::Map(vec![
        ("commands", list(commands)),
        (
            "by",
            match by {
                ConfirmBy::Requester => s("self"),
                ConfirmBy::Group(g) => s(&format!("@{g}")),
            },
        ),
        ("within", duration(*within)),
        ("line", Node::Int(u64::from(*line))),
    ])
}

fn access(spec: &AccessSpec) -> Node {
    let AccessSpec {
        default,
        rules,
        groups,
    } = spec;
    let rules = rules
        .iter()
        .map(|rule| {
            let RuleSpec {
                decision,
                users,
                commands,
                rooms,
                direct,
                line,
            } = rule;
            Node::Map(vec![
                ("decision", s(decision.as_str())),
                ("users", opt_list(users.as_deref())),
                ("commands", opt_list(commands.as_deref())),
                ("rooms", opt_list(rooms.as_deref())),
                ("direct", direct.map_or(Node::Null, Node::Bool)),
                ("line", Node::Int(u64::from(*line))),
            ])
        })
        .collect();
    let groups = groups
        .iter()
        .map(|group| {
            let GroupSpec { name, members } = group;
            Node::Map(vec![("name", s(name)), ("members", list(members))])
        })
        .collect();
    Node::Map(vec![
        (
            "default",
            s(match default {
                Decision::Allow => "allow",
                Decision::Deny => "deny",
            }),
        ),
        ("rules", Node::List(rules)),
        ("groups", Node::List(groups)),
    ])
}

fn templates(spec: &TemplatesSpec) -> Node {
    let TemplatesSpec {
        ack,
        result,
        error,
        help,
        denied,
        no_match,
        ambiguous,
    } = spec;
    Node::Map(vec![
        ("ack", s(ack)),
        ("result", s(result)),
        ("error", s(error)),
        ("help", s(help)),
        ("denied", s(denied)),
        ("no_match", s(no_match)),
        ("ambiguous", s(ambiguous)),
    ])
}

fn ha(spec: &HaSpec) -> Node {
    let HaSpec {
        database_url,
        tls,
        ca_file,
        lease,
        instance_env,
    } = spec;
    Node::Map(vec![
        ("database_url", secret(database_url)),
        ("tls", s(tls.word())),
        ("ca_file", opt_s(ca_file.as_deref())),
        ("lease", duration(*lease)),
        ("instance_env", s(instance_env)),
    ])
}

fn auth_page(spec: &AuthPageSpec) -> Node {
    let AuthPageSpec {
        listen,
        public_url,
        session_ttl,
        link_ttl,
        required,
        store,
        encryption_key,
        tls,
        allow_plain_http,
        trusted_proxies,
        admins,
    } = spec;
    Node::Map(vec![
        ("listen", s(listen)),
        ("public_url", s(public_url)),
        ("session_ttl", duration(*session_ttl)),
        ("link_ttl", duration(*link_ttl)),
        ("required", Node::Bool(*required)),
        ("store", s(store)),
        ("encryption_key", secret(encryption_key)),
        (
            "tls",
            tls.as_ref().map_or(Node::Null, |(cert, key)| {
                Node::Map(vec![("cert", s(cert)), ("key", s(key))])
            }),
        ),
        ("allow_plain_http", Node::Bool(*allow_plain_http)),
        ("trusted_proxies", list(trusted_proxies)),
        ("admins", list(admins)),
    ])
}

fn log(spec: &LogSpec) -> Node {
    let LogSpec {
        format,
        level,
        audit_file,
        audit_stdout,
    } = spec;
    Node::Map(vec![
        (
            "format",
            s(match format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            }),
        ),
        ("level", s(level)),
        ("audit_file", opt_s(audit_file.as_deref())),
        ("audit_stdout", Node::Bool(*audit_stdout)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFINITION: &str = "\
name: acme
description: \"the acme bot: it says \\\"hi\\\"\"
backend:
  kind: slack
  app_token: ${SLACK_APP_TOKEN}
  bot_token: file:/run/secrets/slack-bot
stackstorm:
  url: https://st2.example.com
  auth:
    username: chatops
    password: ${ST2_PASSWORD}
access:
  default: deny
  rules:
    - allow: { users: [\"@oncall\"], commands: [\"packs.*\"] }
groups:
  oncall: [alice, bob]
confirm:
  - { commands: [\"packs.uninstall\"], by: \"@oncall\", within: 10m }
";

    fn spec() -> BotSpec {
        let file = bot_config::SourceFile::new("bots/acme.yaml", DEFINITION);
        bot_config::load(&file).unwrap_or_else(|d| panic!("{d:?}"))
    }

    #[test]
    fn json_has_the_compiled_values_and_secret_references_only() {
        let text = render(&spec(), SpecFormat::Json).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["name"], "acme");
        assert_eq!(value["description"], "the acme bot: it says \"hi\"");
        assert_eq!(value["backend"]["kind"], "slack");
        assert_eq!(value["backend"]["app_token"], "${SLACK_APP_TOKEN}");
        assert_eq!(value["backend"]["bot_token"], "file:/run/secrets/slack-bot");
        assert_eq!(
            value["stackstorm"]["api_url"],
            "https://st2.example.com/api"
        );
        assert_eq!(
            value["stackstorm"]["auth"],
            serde_json::json!({"username": "chatops", "password": "${ST2_PASSWORD}"})
        );
        assert_eq!(value["access"]["default"], "deny");
        assert_eq!(value["access"]["rules"][0]["decision"], "allow");
        assert_eq!(
            value["access"]["rules"][0]["commands"],
            serde_json::json!(["packs.*"])
        );
        assert_eq!(
            value["access"]["groups"][0],
            serde_json::json!({"name": "oncall", "members": ["alice", "bob"]})
        );
        assert_eq!(
            value["confirm"],
            serde_json::json!([{"commands": ["packs.uninstall"], "by": "@oncall", "within": "10m", "line": 19}])
        );
        assert!(value["auth_page"].is_null());
        // Keys come in the spec's order, `name` first and `log` last.
        assert!(
            text.trim_start().starts_with("{\n  \"name\": \"acme\""),
            "{text}"
        );
        assert!(text.find("\"log\"").unwrap() > text.find("\"templates\"").unwrap());
    }

    #[test]
    fn yaml_is_valid_yaml_with_the_same_content_as_json() {
        let yaml = render(&spec(), SpecFormat::Yaml).unwrap();
        let json = render(&spec(), SpecFormat::Json).unwrap();
        let from_yaml: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
        let from_json: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(from_yaml, from_json);
        assert!(yaml.starts_with("name: acme\n"), "{yaml}");
        assert!(yaml.contains("${ST2_PASSWORD}"), "{yaml}");
    }

    #[test]
    fn durations_read_as_the_definition_writes_them() {
        assert_eq!(duration(Duration::from_secs(90)), s("1m 30s"));
        let text = render(&spec(), SpecFormat::Json).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let timeout = value["stackstorm"]["timeout"].as_str().unwrap();
        assert_eq!(
            humantime::parse_duration(timeout).unwrap(),
            spec().stackstorm.timeout
        );
    }

    #[test]
    fn format_names() {
        assert_eq!(SpecFormat::parse("json"), Some(SpecFormat::Json));
        assert_eq!(SpecFormat::parse("yaml"), Some(SpecFormat::Yaml));
        assert_eq!(SpecFormat::parse("toml"), None);
    }
}
