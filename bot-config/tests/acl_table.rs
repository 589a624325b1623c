//! Table-driven tests of access decisions: each case is an `access:`/`groups:` snippet loaded
//! through `bot_config::load` (inside a minimal valid bot) and requests with the expected
//! decision and deciding rule. The `errbot_*` cases are err-stackstorm's Errbot ACL
//! configurations (shared/peers/err-stackstorm.md §5.2) translated to our rules; a row marked
//! `ERRBOT:` says what Errbot decided where we deliberately differ.
//!
//! Request rows read `user place command -> decision by`, where `place` is `DM` or a room
//! and `by` is the 1-based rule number (as logged) or `default`.

use bot_config::acl::{AccessControl, Request};
use bot_config::{Decision, SourceFile};

/// A bot that passes every check, to put the snippets in.
const BOT: &str = "name: acl-table
backend:
  kind: text
stackstorm:
  url: http://127.0.0.1:9101
  auth:
    api_key: ${ST2_API_KEY}
";

struct Case {
    name: &'static str,
    yaml: &'static str,
    requests: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "no access section: everything is denied by the default",
        yaml: "",
        requests: &[
            "alice #ops packs.list -> deny default",
            "alice DM bot:help -> deny default",
        ],
    },
    Case {
        name: "default allow and no rules",
        yaml: "
access:
  default: allow
",
        requests: &[
            "alice #ops core.remote -> allow default",
            "mallory DM bot:session -> allow default",
        ],
    },
    Case {
        name: "explicit default deny with an empty rule list",
        yaml: "
access:
  default: deny
  rules: []
",
        requests: &["alice #ops packs.list -> deny default"],
    },
    Case {
        name: "a literal user matches exactly that user, case-sensitively",
        yaml: "
access:
  rules:
    - allow: { users: [alice] }
",
        requests: &[
            "alice #ops packs.list -> allow 1",
            "alice DM bot:help -> allow 1",
            "alicia #ops packs.list -> deny default",
            "Alice #ops packs.list -> deny default",
            "alice2 #ops packs.list -> deny default",
        ],
    },
    Case {
        name: "user globs: *, ?, classes, negated classes, alternatives",
        yaml: r##"
access:
  rules:
    - deny: { users: ["contractor-*"] }
    - allow: { users: ["ops?"] }
    - allow: { users: ["[ab]ob", "{carol,dave}"] }
    - allow: { users: ["[!x-z]ed"] }
"##,
        requests: &[
            "contractor-joe #ops packs.list -> deny 1",
            "contractor- #ops packs.list -> deny 1",
            "ops1 #ops packs.list -> allow 2",
            "ops12 #ops packs.list -> deny default",
            "ops #ops packs.list -> deny default",
            "bob #ops packs.list -> allow 3",
            "cob #ops packs.list -> deny default",
            "dave DM packs.list -> allow 3",
            "ted DM packs.list -> allow 4",
            "zed DM packs.list -> deny default",
        ],
    },
    Case {
        name: "? and classes match one Unicode character, not one byte",
        yaml: r##"
access:
  rules:
    - allow: { users: ["jos?"] }
    - allow: { users: ["[éè]lodie"] }
    - deny: { rooms: ["#[!a-z]*"] }
"##,
        requests: &[
            "josé DM bot:help -> allow 1",
            "jose DM bot:help -> allow 1",
            "josée DM bot:help -> deny default",
            "élodie DM bot:help -> allow 2",
            "elodie DM bot:help -> deny default",
            "mallory #été packs.list -> deny 3",
        ],
    },
    Case {
        name: "a backslash escapes glob characters and the group sign",
        yaml: r##"
access:
  rules:
    - allow: { users: ["\\@alice", "star\\*"] }
"##,
        requests: &[
            "@alice DM bot:help -> allow 1",
            "alice DM bot:help -> deny default",
            "star* DM bot:help -> allow 1",
            "starry DM bot:help -> deny default",
        ],
    },
    Case {
        name: "groups: literal and glob members, mixed with plain users",
        yaml: r##"
access:
  rules:
    - allow: { users: ["@oncall"], commands: ["st2.*"] }
    - allow: { users: ["@admins", root] }
groups:
  oncall: [alice, "sre-*"]
  admins: [bob]
"##,
        requests: &[
            "alice #ops st2.run -> allow 1",
            "sre-kim #ops st2.run -> allow 1",
            "alice #ops core.local -> deny default",
            "bob #ops core.local -> allow 2",
            "root DM core.local -> allow 2",
            "oncall #ops st2.run -> deny default",
            "@oncall #ops st2.run -> deny default",
        ],
    },
    Case {
        name: "a user in two groups gets the first rule that matches",
        yaml: r##"
access:
  default: allow
  rules:
    - deny: { users: ["@contractors"], commands: ["core.remote*"] }
    - allow: { users: ["@oncall"], commands: ["core.*"] }
    - deny: { commands: ["core.*"] }
groups:
  contractors: [joe, kim]
  oncall: [kim, alice]
"##,
        requests: &[
            "kim #ops core.remote_sudo -> deny 1",
            "kim #ops core.local -> allow 2",
            "alice #ops core.remote -> allow 2",
            "bob #ops core.local -> deny 3",
            "bob #ops packs.list -> allow default",
        ],
    },
    Case {
        name: "commands: alias refs and globs over them",
        yaml: r##"
access:
  rules:
    - deny: { commands: ["core.remote*"] }
    - allow: { commands: ["core.*", packs.list] }
"##,
        requests: &[
            "alice #ops core.remote -> deny 1",
            "alice #ops core.remote_sudo -> deny 1",
            "alice #ops core.local -> allow 2",
            "alice #ops packs.list -> allow 2",
            "alice #ops packs.install -> deny default",
            "alice #ops core -> deny default",
            "alice #ops Core.local -> deny default",
            "alice #ops xcore.local -> deny default",
        ],
    },
    Case {
        name: "the bot's own commands",
        yaml: r##"
access:
  rules:
    - allow: { commands: ["bot:help"] }
    - allow: { users: [admin], commands: ["bot:session"] }
"##,
        requests: &[
            "alice DM bot:help -> allow 1",
            "alice #ops bot:help -> allow 1",
            "alice DM bot:session -> deny default",
            "admin DM bot:session -> allow 2",
            "admin DM packs.list -> deny default",
        ],
    },
    Case {
        name: "`*.*` matches alias refs only; `*` and `bot:*` match bot commands too",
        yaml: r##"
access:
  rules:
    - allow: { users: [alice], commands: ["*.*"] }
    - allow: { users: [bob], commands: ["*"] }
    - allow: { users: [carol], commands: ["bot:*"] }
"##,
        requests: &[
            "alice #ops packs.list -> allow 1",
            "alice #ops bot:help -> deny default",
            "bob #ops bot:help -> allow 2",
            "bob #ops packs.list -> allow 2",
            "carol DM bot:session -> allow 3",
            "carol DM packs.list -> deny default",
        ],
    },
    Case {
        name: "rooms: literal and globs; a rule with rooms never matches a DM",
        yaml: r##"
access:
  rules:
    - allow: { rooms: ["#ops", "#ops-[0-9]", "#team-?"] }
"##,
        requests: &[
            "alice #ops packs.list -> allow 1",
            "alice #ops-1 packs.list -> allow 1",
            "alice #ops-12 packs.list -> deny default",
            "alice #team-a packs.list -> allow 1",
            "alice #team- packs.list -> deny default",
            "alice #Ops packs.list -> deny default",
            "alice DM packs.list -> deny default",
        ],
    },
    Case {
        name: "direct: true matches only DMs, direct: false only rooms",
        yaml: r##"
access:
  rules:
    - deny: { commands: ["bot:session"], direct: false }
    - allow: { direct: true }
    - allow: { users: [alice], direct: false }
"##,
        requests: &[
            "alice #ops bot:session -> deny 1",
            "alice DM bot:session -> allow 2",
            "bob DM packs.list -> allow 2",
            "bob #ops packs.list -> deny default",
            "alice #ops packs.list -> allow 3",
        ],
    },
    Case {
        name: "every given dimension must match",
        yaml: r##"
access:
  rules:
    - allow: { users: [alice], commands: ["st2.*"], rooms: ["#ops"] }
"##,
        requests: &[
            "alice #ops st2.run -> allow 1",
            "bob #ops st2.run -> deny default",
            "alice #dev st2.run -> deny default",
            "alice #ops core.local -> deny default",
            "alice DM st2.run -> deny default",
        ],
    },
    Case {
        name: "first match wins: a deny before a wider allow",
        yaml: r##"
access:
  rules:
    - deny: { users: [mallory] }
    - allow: { commands: ["packs.*"] }
"##,
        requests: &[
            "mallory #ops packs.list -> deny 1",
            "alice #ops packs.list -> allow 2",
        ],
    },
    Case {
        name: "first match wins: a narrow allow before a wider deny, under default allow",
        yaml: r##"
access:
  default: allow
  rules:
    - allow: { users: [alice], commands: [core.remote] }
    - deny: { commands: ["core.remote*"] }
"##,
        requests: &[
            "alice #ops core.remote -> allow 1",
            "alice #ops core.remote_sudo -> deny 2",
            "bob #ops core.remote -> deny 2",
            "bob #ops core.local -> allow default",
        ],
    },
    // ---- err-stackstorm's Errbot configurations (peers/err-stackstorm.md §5.2) ----
    // Errbot command `st2` (every alias) becomes `*.*`; `st2help` becomes `bot:help`; the
    // `st2session_*` commands become `bot:session`; Errbot's other plugins do not exist here.
    Case {
        name: "errbot 01: no ACL (Errbot allows all but admin-only session commands in rooms)",
        yaml: r##"
access:
  default: allow
  rules:
    - deny: { commands: ["bot:session"], direct: false }
"##,
        requests: &[
            "alice #ops packs.list -> allow default",
            "alice DM bot:help -> allow default",
            "admin DM bot:session -> allow default",
            "admin #ops bot:session -> deny 1",
            // ERRBOT: deny (st2session_list is admin-only); our rules see one `bot:session`.
            "alice DM bot:session -> allow default",
        ],
    },
    Case {
        name: "errbot 02: err-stackstorm's documented per-alias example now works",
        yaml: r##"
access:
  rules:
    - allow: { users: [admin1, user1], commands: ["apu.status*"], rooms: ["#channel"] }
    - allow: { users: [admin1], commands: ["apu.*"], rooms: ["#channel"] }
"##,
        requests: &[
            "user1 #channel apu.status_web -> allow 1",
            // ERRBOT: allow (its keys matched no command, so nothing was restricted).
            "user1 #channel apu.start_web -> deny default",
            "admin1 #channel apu.start_web -> allow 2",
            // ERRBOT: allow.
            "mallory #random apu.start_web -> deny default",
        ],
    },
    Case {
        name: "errbot 03: st2 {allowusers: [alice, admin]}",
        yaml: r##"
access:
  default: allow
  rules:
    - allow: { users: [alice, admin], commands: ["*.*"] }
    - deny: { commands: ["*.*"] }
"##,
        requests: &[
            "alice #ops packs.list -> allow 1",
            "bob #ops packs.list -> deny 2",
            "bob DM bot:help -> allow default",
            "bob DM bot:session -> allow default",
        ],
    },
    Case {
        name: "errbot 04: St2:* {allowusers: [alice, admin], allowrooms: [#ops]}",
        yaml: r##"
access:
  rules:
    - allow: { users: [alice, admin], rooms: ["#ops"] }
    - allow: { users: [alice, admin], direct: true }
"##,
        requests: &[
            "alice #ops packs.list -> allow 1",
            "alice #general bot:help -> deny default",
            "alice DM bot:help -> allow 2",
            "bob DM bot:session -> deny default",
        ],
    },
    Case {
        name: "errbot 05: allowargs on one alias becomes a command glob",
        yaml: r##"
access:
  rules:
    - allow: { commands: ["apu.status*"] }
"##,
        requests: &[
            "alice #ops apu.status_web -> allow 1",
            "alice #ops apu.start_web -> deny default",
        ],
    },
    Case {
        name: "errbot 06: denyargs become deny rules on commands",
        yaml: r##"
access:
  default: allow
  rules:
    - deny: { commands: [packs.install, "*.*delete*"] }
"##,
        requests: &[
            "admin #ops packs.install -> deny 1",
            "alice #ops vsphere.vm_delete -> deny 1",
            "alice #ops packs.list -> allow default",
        ],
    },
    Case {
        name: "errbot 07: allowrooms [#ops] does not open DMs here",
        yaml: r##"
access:
  rules:
    - allow: { rooms: ["#ops"] }
"##,
        requests: &[
            "alice #ops packs.list -> allow 1",
            "alice #general packs.list -> deny default",
            // ERRBOT: allow (room rules are not checked for DMs).
            "alice DM packs.list -> deny default",
        ],
    },
    Case {
        name: "errbot 07b: Errbot's behaviour needs an explicit DM rule",
        yaml: r##"
access:
  rules:
    - allow: { rooms: ["#ops"] }
    - allow: { direct: true }
"##,
        requests: &[
            "alice DM packs.list -> allow 2",
            "alice #general packs.list -> deny default",
        ],
    },
    Case {
        name: "errbot 08: allowprivate false",
        yaml: "
access:
  default: allow
  rules:
    - deny: { direct: true }
",
        requests: &[
            "alice DM packs.list -> deny 1",
            "alice #general packs.list -> allow default",
        ],
    },
    Case {
        name: "errbot 09: allowmuc false",
        yaml: "
access:
  default: allow
  rules:
    - deny: { direct: false }
",
        requests: &[
            "alice DM packs.list -> allow default",
            "alice #ops packs.list -> deny 1",
        ],
    },
    Case {
        name: "errbot 10: allowusers [*] with denyusers [contractor-*]",
        yaml: r##"
access:
  rules:
    - deny: { users: ["contractor-*"] }
    - allow: { users: ["*"] }
"##,
        requests: &[
            "contractor-joe #ops packs.list -> deny 1",
            "alice #ops packs.list -> allow 2",
        ],
    },
    Case {
        name: "errbot 11: later rules are consulted (Errbot stops at the first key)",
        yaml: r##"
access:
  rules:
    - deny: { users: [bob] }
    - allow: { users: [alice], commands: ["*.*"] }
"##,
        requests: &[
            "bob #ops packs.list -> deny 1",
            // ERRBOT: allow (the second key was never consulted).
            "carol #ops packs.list -> deny default",
            "bob DM bot:help -> deny 1",
            "alice #ops packs.list -> allow 2",
        ],
    },
    Case {
        name: "errbot 12: DEFAULT {allowusers: [admin], allowmuc: false}, st2help for all",
        yaml: r##"
access:
  rules:
    - allow: { commands: ["bot:help"], direct: true }
    - allow: { users: [admin], direct: true }
"##,
        requests: &[
            "alice DM bot:help -> allow 1",
            "alice #ops bot:help -> deny default",
            "alice DM packs.list -> deny default",
            "admin #ops packs.list -> deny default",
            "admin DM packs.list -> allow 2",
        ],
    },
    Case {
        name: "errbot 13: users and rooms are case-sensitive (commands too, unlike Errbot keys)",
        yaml: r##"
access:
  rules:
    - allow: { users: [Alice], commands: ["bot:help"] }
    - allow: { commands: ["*.*"], rooms: ["#Ops"] }
"##,
        requests: &[
            "Alice DM bot:help -> allow 1",
            "alice DM bot:help -> deny default",
            "alice #ops packs.list -> deny default",
            "alice #Ops packs.list -> allow 2",
        ],
    },
    Case {
        name: "errbot 14: session commands for admins anywhere, others in DMs",
        yaml: r##"
access:
  rules:
    - allow: { users: [admin], commands: ["bot:session"] }
    - allow: { commands: ["bot:session"], direct: true }
"##,
        requests: &[
            "admin #ops bot:session -> allow 1",
            // ERRBOT: deny for st2session_list (admin-only); one `bot:session` here.
            "alice DM bot:session -> allow 2",
            // ERRBOT: allowed by the ACL, then refused by the plugin.
            "alice #ops bot:session -> deny default",
        ],
    },
    Case {
        name: "errbot 15: room globs; `allowusers: []` becomes a deny rule",
        yaml: r##"
access:
  rules:
    - allow: { commands: ["*.*"], rooms: ["#ops-[0-9]", "#team-?"] }
    - deny: { commands: ["bot:help"] }
"##,
        requests: &[
            "alice #ops-1 packs.list -> allow 1",
            "alice #ops-12 packs.list -> deny default",
            "alice #team-a packs.list -> allow 1",
            "alice #ops packs.list -> deny default",
            "admin DM bot:help -> deny 2",
        ],
    },
    Case {
        name: "errbot 16: *:st2session_start {allowprivate: true, allowmuc: false}",
        yaml: r##"
access:
  default: allow
  rules:
    - deny: { commands: ["bot:session"], direct: false }
"##,
        requests: &[
            "alice #ops bot:session -> deny 1",
            "alice DM bot:session -> allow default",
            "alice #ops packs.list -> allow default",
        ],
    },
];

/// Definitions that must not load, with the diagnostic they must produce.
const REJECTED: &[(&str, &str, &str)] = &[
    (
        "errbot 15's `allowusers: []` is an empty list, not 'nobody'",
        "empty-list",
        "
access:
  rules:
    - allow: { users: [] }
",
    ),
    (
        "an exception after the wider deny can never apply",
        "shadowed-rule",
        r##"
access:
  rules:
    - deny: { commands: ["core.remote*"] }
    - allow: { users: [alice], commands: [core.remote] }
"##,
    ),
    (
        "an allow after an identical-scope deny",
        "conflicting-rule",
        r##"
access:
  rules:
    - deny: { users: [bob], commands: ["st2.*"] }
    - allow: { commands: ["st2.*"], users: [bob] }
"##,
    ),
    (
        "the same rule twice (once through a group)",
        "duplicate-rule",
        r##"
access:
  rules:
    - allow: { users: [alice, bob] }
    - allow: { users: ["@pair"] }
groups:
  pair: [bob, alice]
"##,
    ),
    (
        "rooms with direct: true",
        "unreachable-rule",
        r##"
access:
  rules:
    - allow: { rooms: ["#ops"], direct: true }
"##,
    ),
    (
        "an undefined group",
        "undefined-group",
        r##"
access:
  rules:
    - allow: { users: ["@oncal"] }
groups:
  oncall: [alice]
"##,
    ),
    (
        "an unclosed class",
        "invalid-glob",
        r##"
access:
  rules:
    - allow: { rooms: ["#ops-[0-9"] }
"##,
    ),
    (
        "a misspelt bot command",
        "unknown-bot-command",
        r##"
access:
  rules:
    - allow: { commands: ["bot:hepl"] }
"##,
    ),
];

/// One parsed request row.
struct Row<'a> {
    user: &'a str,
    room: Option<&'a str>,
    command: &'a str,
    decision: Decision,
    rule: Option<usize>,
}

fn parse_row(row: &str) -> Row<'_> {
    let words: Vec<&str> = row.split_whitespace().collect();
    let [user, place, command, "->", decision, by] = words[..] else {
        panic!("malformed row {row:?}: want `user place command -> decision by`");
    };
    Row {
        user,
        room: (place != "DM").then_some(place),
        command,
        decision: match decision {
            "allow" => Decision::Allow,
            "deny" => Decision::Deny,
            other => panic!("row {row:?}: decision {other:?}"),
        },
        rule: match by {
            "default" => None,
            n => Some(
                n.parse::<usize>()
                    .unwrap_or_else(|_| panic!("row {row:?}: rule {n:?}"))
                    - 1,
            ),
        },
    }
}

/// The line of each rule in `text` (rules are written one per line in these snippets).
fn rule_lines(text: &str) -> Vec<u32> {
    text.lines()
        .zip(1..)
        .filter(|(line, _)| {
            let line = line.trim_start();
            line.starts_with("- allow") || line.starts_with("- deny")
        })
        .map(|(_, n)| n)
        .collect()
}

#[test]
fn decisions_match_the_table() {
    let mut rows = 0;
    for case in CASES {
        let text = format!("{BOT}{}", case.yaml);
        let spec = bot_config::load(&SourceFile::new("bots/acl-table.yaml", text.as_str()))
            .unwrap_or_else(|d| panic!("{}: definition rejected: {d:#?}", case.name));
        let acl = AccessControl::new(&spec.access)
            .unwrap_or_else(|e| panic!("{}: rules do not compile: {e}", case.name));
        let lines = rule_lines(&text);
        assert_eq!(lines.len(), acl.len(), "{}: rule count", case.name);
        for row in case.requests {
            let want = parse_row(row);
            let got = acl.decide(&Request {
                user: want.user,
                command: want.command,
                room: want.room,
            });
            assert_eq!(
                (got.decision, got.rule),
                (want.decision, want.rule),
                "{}: {row} (got {})",
                case.name,
                got.describe()
            );
            let line = want.rule.map_or(0, |i| lines[i]);
            assert_eq!(got.line, line, "{}: {row}: line of the rule", case.name);
            rows += 1;
        }
    }
    assert!(rows >= 80, "the table has {rows} requests");
}

#[test]
fn definitions_the_checks_reject() {
    for (name, id, yaml) in REJECTED {
        let text = format!("{BOT}{yaml}");
        let diagnostics = match bot_config::load(&SourceFile::new("bots/acl-table.yaml", text)) {
            Ok(_) => panic!("{name}: loaded, expected `{id}`"),
            Err(d) => d,
        };
        assert!(
            diagnostics.iter().any(|d| d.id.as_str() == *id),
            "{name}: expected `{id}`, got {:?}",
            diagnostics.iter().map(|d| d.id).collect::<Vec<_>>()
        );
    }
}
