//! `--explain USER ROOM COMMAND` (issue 15 item 3): which alias a command resolves to, which
//! access rule decides for this user in this room (`-`: a direct message) and why, with the
//! rule's line in the definition. The aliases come from StackStorm (or the simulator with
//! `--simulate`) and are matched by the local matcher (which agrees with StackStorm's); the
//! decision is the one access engine's ([`bot_config::acl::AccessControl`]), so the answer
//! is what the running bot would do. Exit status: 0 allowed, 1 denied or no single alias.

use std::fmt::Write as _;

use bot_config::BotSpec;
use bot_config::acl::{AccessControl, HELP_ALL_COMMAND, HELP_COMMAND, Request, SESSION_COMMAND};
use st2_alias::{Alias, AliasIndex, ResolveError};

/// What to explain: who says what where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExplainRequest {
    /// Chat user name.
    pub user: String,
    /// Room name; `None` for a direct message (`-` on the command line).
    pub room: Option<String>,
    /// The command, with or without the bot's prefix.
    pub command: String,
}

/// The answer: the text to print and whether the command would run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// Human-readable lines.
    pub text: String,
    /// Whether the bot would run the command.
    pub allowed: bool,
}

/// Explains `request` against `index` (the site's aliases) and the definition's rules.
pub fn explain(
    spec: &BotSpec,
    acl: &AccessControl,
    index: &AliasIndex,
    request: &ExplainRequest,
) -> Explanation {
    let mut text = String::new();
    let place = match &request.room {
        Some(room) => format!("in {room}"),
        None => "in a direct message".to_owned(),
    };
    let command = request.command.trim();
    let command = command
        .strip_prefix(spec.chat.prefix.as_ref())
        .unwrap_or(command)
        .trim();
    let _ = writeln!(text, "{} says `{command}` {place}", request.user);
    let mut words = command.split_whitespace();
    let first = words.next().unwrap_or("");
    let reference = if first == spec.chat.help_command.as_ref() {
        if words.next() == Some(crate::help_rights::ALL_FLAG) {
            HELP_ALL_COMMAND.to_owned()
        } else {
            HELP_COMMAND.to_owned()
        }
    } else if first == spec.chat.session_command.as_ref() {
        SESSION_COMMAND.to_owned()
    } else if crate::confirm::parse(command).is_some() {
        bot_config::acl::CONFIRM_COMMAND.to_owned()
    } else if crate::inquiry::COMMAND_WORDS.contains(&first) {
        bot_config::acl::INQUIRY_COMMAND.to_owned()
    } else {
        match index.resolve(command) {
            Ok(resolved) => {
                let _ = writeln!(
                    text,
                    "resolves to alias {} (format `{}`)",
                    resolved.alias_ref, resolved.representation
                );
                resolved.alias_ref.clone()
            }
            Err(ResolveError::NoMatch { .. }) => {
                let _ = writeln!(text, "matches no alias: the bot would run nothing");
                return Explanation {
                    text,
                    allowed: false,
                };
            }
            Err(e) => {
                let _ = writeln!(text, "does not resolve to one alias: {e}");
                return Explanation {
                    text,
                    allowed: false,
                };
            }
        }
    };
    if reference.starts_with("bot:") {
        let _ = writeln!(text, "is the bot's own command {reference}");
    }
    let verdict = acl.decide(&Request {
        user: &request.user,
        command: &reference,
        room: request.room.as_deref(),
    });
    let decision = verdict.decision.as_str();
    match verdict.rule {
        Some(i) => {
            let _ = writeln!(
                text,
                "{decision}: rule {} at {}:{} is the first rule that matches{}",
                i + 1,
                spec.source,
                verdict.line,
                spec.access
                    .rules
                    .get(i)
                    .map(|rule| format!(" ({})", describe_rule(rule)))
                    .unwrap_or_default()
            );
        }
        None => {
            let _ = writeln!(
                text,
                "{decision}: no rule matches, so `access.default` ({decision}) decides"
            );
        }
    }
    if verdict.allowed()
        && let Some(rule) = crate::confirm::first_rule(&spec.confirm, &reference)
    {
        let _ = writeln!(
            text,
            "then held until confirmed: `confirm` entry at {}:{} (by {}, within {})",
            spec.source,
            rule.line,
            crate::confirm::by_text(&rule.by),
            humantime::format_duration(rule.within)
        );
    }
    Explanation {
        text,
        allowed: verdict.allowed(),
    }
}

/// A rule as one line: `allow users [@oncall] commands [core.*] rooms [ops] direct true`.
fn describe_rule(rule: &bot_config::spec::RuleSpec) -> String {
    let mut out = rule.decision.as_str().to_owned();
    for (key, list) in [
        ("users", &rule.users),
        ("commands", &rule.commands),
        ("rooms", &rule.rooms),
    ] {
        match list {
            Some(list) => {
                let items: Vec<&str> = list.iter().map(|s| s.as_ref()).collect();
                let _ = write!(out, " {key} [{}]", items.join(", "));
            }
            None => {
                let _ = write!(out, " any {}", key.trim_end_matches('s'));
            }
        }
    }
    if let Some(direct) = rule.direct {
        let _ = write!(out, " direct {direct}");
    }
    out
}

/// Loads the aliases from StackStorm, explains, prints; the process's exit status.
pub async fn run(
    spec: &BotSpec,
    client: &crate::stackstorm::St2Client,
    request: &ExplainRequest,
) -> std::process::ExitCode {
    let acl = match AccessControl::new(&spec.access) {
        Ok(acl) => acl,
        Err(e) => {
            eprintln!("{}: {e}", spec.name);
            return std::process::ExitCode::from(2);
        }
    };
    let raw = match client.list_aliases().await {
        Ok(raw) => raw,
        Err(e) => {
            eprintln!(
                "{}: cannot list StackStorm's action aliases: {e}",
                spec.name
            );
            return std::process::ExitCode::from(2);
        }
    };
    let aliases: Vec<Alias> = raw
        .into_iter()
        .filter_map(|value| serde_json::from_value(value).ok())
        .collect();
    let index = AliasIndex::new(aliases);
    let explanation = explain(spec, &acl, &index, request);
    crate::print_out(&explanation.text);
    if explanation.allowed {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use st2_alias::FormatEntry;

    fn spec() -> BotSpec {
        // The api key is only a reference (`file:`); it is never read here.
        let yaml = "name: t\nbackend: {kind: text}\nstackstorm:\n  url: http://127.0.0.1:9\n  \
                    auth: {api_key: \"file:/nonexistent\"}\naccess:\n  default: deny\n  rules:\n    \
                    - allow: { users: [\"@oncall\"] }\n    \
                    - deny: { commands: [\"core.remote*\"] }\n    \
                    - allow: { commands: [\"bot:help\", \"core.*\"], rooms: [ops] }\n\
                    groups:\n  oncall: [alice]\n";
        bot_config::load(&bot_config::SourceFile::new("t.yaml", yaml)).expect("valid")
    }

    fn index() -> AliasIndex {
        let plain = |s: &str| FormatEntry::Plain(s.to_owned());
        AliasIndex::new(vec![
            Alias::new("core", "local", vec![plain("local {{cmd}}")]),
            Alias::new("core", "remote", vec![plain("run {{cmd}} on {{hosts}}")]),
        ])
    }

    fn ask(user: &str, room: Option<&str>, command: &str) -> Explanation {
        let spec = spec();
        let acl = AccessControl::new(&spec.access).expect("rules");
        let request = ExplainRequest {
            user: user.to_owned(),
            room: room.map(str::to_owned),
            command: command.to_owned(),
        };
        explain(&spec, &acl, &index(), &request)
    }

    #[test]
    fn names_the_alias_the_deciding_rule_and_its_line() {
        let e = ask("carol", Some("ops"), "!local date");
        assert!(e.allowed, "{}", e.text);
        assert_eq!(
            e.text,
            "carol says `local date` in ops\n\
             resolves to alias core.local (format `local {{cmd}}`)\n\
             allow: rule 3 at t.yaml:11 is the first rule that matches \
             (allow any user commands [bot:help, core.*] rooms [ops])\n"
        );

        let e = ask("carol", Some("ops"), "run uptime on web1");
        assert!(!e.allowed);
        assert!(
            e.text.contains("resolves to alias core.remote"),
            "{}",
            e.text
        );
        assert!(e.text.contains("deny: rule 2 at t.yaml:10"), "{}", e.text);

        let e = ask("alice", Some("ops"), "run uptime on web1");
        assert!(e.allowed);
        assert!(e.text.contains("allow: rule 1 at t.yaml:9"), "{}", e.text);
    }

    /// A command a `confirm:` entry names is allowed, then held: the explanation says by
    /// whom and for how long; the answer words are `bot:confirm`.
    #[test]
    fn a_command_that_needs_a_confirmation_says_so() {
        let yaml = "name: t\nbackend: {kind: text}\nstackstorm:\n  url: http://127.0.0.1:9\n  \
                    auth: {api_key: \"file:/nonexistent\"}\naccess:\n  default: allow\n\
                    groups:\n  oncall: [alice]\n\
                    confirm:\n  - { commands: [\"core.remote\"], by: \"@oncall\", within: 10m }\n";
        let spec = bot_config::load(&bot_config::SourceFile::new("t.yaml", yaml)).expect("valid");
        let acl = AccessControl::new(&spec.access).expect("rules");
        let ask = |command: &str| {
            let request = ExplainRequest {
                user: "carol".to_owned(),
                room: Some("ops".to_owned()),
                command: command.to_owned(),
            };
            explain(&spec, &acl, &index(), &request)
        };
        let e = ask("run uptime on web1");
        assert!(e.allowed, "{}", e.text);
        assert!(
            e.text.ends_with(
                "then held until confirmed: `confirm` entry at t.yaml:11 (by @oncall, within 10m)\n"
            ),
            "{}",
            e.text
        );
        let e = ask("local date");
        assert!(!e.text.contains("held"), "{}", e.text);
        let e = ask("approve c7f3");
        assert!(
            e.text.contains("the bot's own command bot:confirm"),
            "{}",
            e.text
        );
    }

    #[test]
    fn direct_messages_defaults_bot_commands_and_unknown_commands() {
        let e = ask("carol", None, "local date");
        assert!(!e.allowed);
        assert!(e.text.contains("in a direct message"), "{}", e.text);
        assert!(
            e.text
                .contains("deny: no rule matches, so `access.default` (deny) decides"),
            "{}",
            e.text
        );

        let e = ask("carol", Some("ops"), "help --all");
        assert!(!e.allowed);
        assert!(
            e.text.contains("the bot's own command bot:help-all"),
            "{}",
            e.text
        );
        let e = ask("carol", Some("ops"), "help core");
        assert!(e.allowed, "{}", e.text);

        let e = ask("carol", Some("ops"), "approve 5f0c0ffee0000000000000a1");
        assert!(!e.allowed);
        assert!(
            e.text.contains("the bot's own command bot:inquiry"),
            "{}",
            e.text
        );
        let e = ask(
            "alice",
            Some("ops"),
            "inquiry respond 5f0c0ffee0000000000000a1 ok=yes",
        );
        assert!(e.allowed, "{}", e.text);

        let e = ask("alice", Some("ops"), "frobnicate");
        assert!(!e.allowed);
        assert!(e.text.contains("matches no alias"), "{}", e.text);
    }
}
