//! `access:` and `groups:` — rule syntax, groups, globs, and rules that can never decide.

use crate::acl::{BOT_COMMANDS, compile_glob, is_glob, pattern_covers};
use crate::diagnostic::{Diagnostic, DiagnosticId, Diagnostics};
use crate::raw::{Access, Rule, Scope};
use crate::source::{Span, Spanned};
use crate::spec::{AccessSpec, Decision, GroupSpec, List, RuleSpec, Str};
use crate::suggest::{did_you_mean_help, list_words};

type RawGroups = Spanned<crate::raw::Groups>;

pub(super) fn check(
    d: &mut Diagnostics,
    raw: Option<&Spanned<Access>>,
    groups: Option<&RawGroups>,
) -> AccessSpec {
    let groups = check_groups(d, groups);
    let default = raw
        .and_then(|a| a.value.default.as_ref())
        .map(|v| decision(d, v))
        .unwrap_or(Decision::Deny);
    let mut rules: Vec<(RuleSpec, Span)> = Vec::new();
    if let Some(list) = raw.and_then(|a| a.value.rules.as_ref()) {
        for rule in &list.value {
            if let Some(spec) = check_rule(d, rule, &groups) {
                rules.push((spec, Span::start_of(rule)));
            }
        }
    }
    check_reachability(d, &rules, &groups, default);
    AccessSpec {
        default,
        rules: rules.into_iter().map(|(r, _)| r).collect::<Vec<_>>().into(),
        groups: groups
            .into_iter()
            .map(|(name, members, _)| GroupSpec {
                name: name.into(),
                members: members
                    .into_iter()
                    .map(Str::from)
                    .collect::<Vec<_>>()
                    .into(),
            })
            .collect::<Vec<_>>()
            .into(),
    }
}

/// Rule: `default` is `allow` or `deny`.
fn decision(d: &mut Diagnostics, raw: &Spanned<String>) -> Decision {
    match raw.value.as_str() {
        "allow" => Decision::Allow,
        "deny" => Decision::Deny,
        other => {
            d.push(
                Diagnostic::new(
                    DiagnosticId::InvalidDefault,
                    Span::of(raw),
                    format!("`default` must be `allow` or `deny`, not `{other}`"),
                    "not a decision",
                )
                .maybe_help(did_you_mean_help(other, ["allow", "deny"])),
            );
            Decision::Deny
        }
    }
}

/// Rules for groups: a name is letters, digits, `-`, `_`; a group has members; members are
/// valid patterns and not `@groups` (no nesting).
fn check_groups(d: &mut Diagnostics, raw: Option<&RawGroups>) -> Vec<(String, Vec<String>, Span)> {
    let mut out = Vec::new();
    let Some(raw) = raw else { return out };
    let mut entries: Vec<_> = raw.value.iter().collect();
    entries.sort_by_key(|(k, _)| Span::of(k));
    for (name, members) in entries {
        let n = name.value.strip_prefix('@').unwrap_or(&name.value);
        if n.is_empty()
            || !n
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
        {
            d.push(
                Diagnostic::new(
                    DiagnosticId::InvalidGroupName,
                    Span::of(name),
                    format!("`{}` is not a valid group name", name.value),
                    "letters, digits, `-` and `_` only",
                )
                .help("name groups like `oncall` and refer to them as `@oncall`"),
            );
            continue;
        }
        if members.value.is_empty() {
            d.push(
                Diagnostic::new(
                    DiagnosticId::EmptyGroup,
                    Span::of(name),
                    format!("group `{n}` has no members"),
                    "empty group",
                )
                .help("list its users, or remove the group and the rules that use it"),
            );
        }
        let mut list = Vec::new();
        for m in &members.value {
            if m.value.starts_with('@') {
                d.push(
                    Diagnostic::new(
                        DiagnosticId::NestedGroup,
                        Span::of(m),
                        format!("group `{n}` contains the group `{}`", m.value),
                        "groups cannot contain groups",
                    )
                    .help(if looks_like_matrix_id(&m.value) {
                        matrix_id_help(&m.value)
                    } else {
                        "list the users directly, or write both groups in the rule's `users`"
                            .to_owned()
                    }),
                );
                continue;
            }
            if glob_ok(d, m, "user") {
                list.push(m.value.clone());
            }
        }
        out.push((n.to_owned(), list, Span::of(name)));
    }
    out
}

/// Whether `@…` is a Matrix user id (`@alice:example.org`) rather than a group.
fn looks_like_matrix_id(value: &str) -> bool {
    value.starts_with('@') && value.contains(':')
}

/// How to name a user whose id starts with `@`, which rules otherwise read as a group.
fn matrix_id_help(value: &str) -> String {
    format!(
        "`@` starts a group name; for a user id that starts with `@`, escape it: `'\\{value}'` (single quotes keep the backslash)"
    )
}

/// Rule: a pattern compiles as a glob (`*`, `?`, `[abc]`, `{a,b}`, `\` escapes).
pub(super) fn glob_ok(d: &mut Diagnostics, p: &Spanned<String>, what: &str) -> bool {
    if p.value.is_empty() {
        d.push(
            Diagnostic::new(
                DiagnosticId::InvalidGlob,
                Span::of(p),
                format!("empty {what} pattern"),
                "empty",
            )
            .help("write a name, or `*` for any"),
        );
        return false;
    }
    match compile_glob(&p.value) {
        Ok(_) => true,
        Err(e) => {
            d.push(
                Diagnostic::new(
                    DiagnosticId::InvalidGlob,
                    Span::of(p),
                    format!("invalid {what} pattern `{}`: {}", p.value, e.kind()),
                    "not a valid glob",
                )
                .help("globs use `*` (anything), `?` (one character), `[abc]` (one of) and `{a,b}`; escape a literal with `\\`"),
            );
            false
        }
    }
}

/// Rules for a list of users (access rules' `users`, `auth_page.admins`): each entry is a
/// valid pattern, or `@group` naming a group defined under `groups:` (`groups`: their
/// names). Whether every entry is valid.
pub(super) fn user_entries(
    d: &mut Diagnostics,
    users: &[Spanned<String>],
    groups: &[&str],
) -> bool {
    let mut ok = true;
    for u in users {
        if let Some(g) = u.value.strip_prefix('@') {
            if !groups.contains(&g) {
                ok = false;
                d.push(
                    Diagnostic::new(
                        DiagnosticId::UndefinedGroup,
                        Span::of(u),
                        format!("group `{g}` is not defined"),
                        "no such group",
                    )
                    .maybe_help(if looks_like_matrix_id(&u.value) {
                        Some(matrix_id_help(&u.value))
                    } else {
                        crate::suggest::did_you_mean(g, groups.iter().copied())
                            .map(|c| format!("did you mean `@{c}`?"))
                    })
                    .note(if groups.is_empty() {
                        "no groups are defined; add them under `groups:`".to_owned()
                    } else {
                        format!("defined groups are {}", list_words(groups.iter().copied()))
                    }),
                );
            }
        } else {
            ok &= glob_ok(d, u, "user");
        }
    }
    ok
}

fn check_rule(
    d: &mut Diagnostics,
    rule: &Spanned<Rule>,
    groups: &[(String, Vec<String>, Span)],
) -> Option<RuleSpec> {
    let (decision, scope) = match &rule.value {
        Rule::Allow(s) => (Decision::Allow, s),
        Rule::Deny(s) => (Decision::Deny, s),
    };
    let Scope {
        users,
        commands,
        rooms,
        direct,
    } = &scope.value;
    // Rule: a rule names at least one dimension (a catch-all belongs in `default`).
    if users.is_none() && commands.is_none() && rooms.is_none() && direct.is_none() {
        d.push(
            Diagnostic::new(
                DiagnosticId::EmptyRule,
                Span::start_of(scope),
                format!("this `{}` rule matches everything", decision.as_str()),
                "no users, commands, rooms or direct",
            )
            .help(format!(
                "say what it matches, or write `default: {}` under `access:` instead",
                decision.as_str()
            )),
        );
        return None;
    }
    let mut ok = true;
    // Rule: a dimension that is given is not an empty list.
    for (key, list) in [("users", users), ("commands", commands), ("rooms", rooms)] {
        if let Some(l) = list
            && l.value.is_empty()
        {
            ok = false;
            d.push(
                Diagnostic::new(
                    DiagnosticId::EmptyList,
                    Span::start_of(l),
                    format!("`{key}` is an empty list, so this rule can never match"),
                    "empty",
                )
                .help(format!(
                    "list at least one pattern, or remove `{key}` to match any"
                )),
            );
        }
    }
    if let Some(users) = users {
        let names: Vec<&str> = groups.iter().map(|(n, _, _)| n.as_str()).collect();
        ok &= user_entries(d, &users.value, &names);
    }
    if let Some(commands) = commands {
        for c in &commands.value {
            ok &= glob_ok(d, c, "command");
            // Rule: a `bot:` command is one of the bot's own commands.
            if let Some(rest) = c.value.strip_prefix("bot:")
                && !is_glob(rest)
                && !BOT_COMMANDS.contains(&c.value.as_str())
            {
                ok = false;
                d.push(
                    Diagnostic::new(
                        DiagnosticId::UnknownBotCommand,
                        Span::of(c),
                        format!("`{}` is not one of the bot's commands", c.value),
                        "unknown bot command",
                    )
                    .maybe_help(did_you_mean_help(&c.value, BOT_COMMANDS.iter().copied()))
                    .note(format!(
                        "the bot's own commands are {}",
                        list_words(BOT_COMMANDS.iter().copied())
                    )),
                );
            }
        }
    }
    if let Some(rooms) = rooms {
        for r in &rooms.value {
            ok &= glob_ok(d, r, "room");
        }
    }
    // Rule: `rooms` with `direct: true` can never match (a DM is in no room).
    if let (Some(r), Some(dir)) = (rooms, direct)
        && dir.value
    {
        ok = false;
        d.push(
            Diagnostic::new(
                DiagnosticId::UnreachableRule,
                Span::of(dir),
                "`direct: true` with `rooms` can never match",
                "a direct message is in no room",
            )
            .help("remove `rooms` to match direct messages, or remove `direct: true`")
            .maybe_note(
                (Span::start_of(r).line != Span::of(dir).line)
                    .then(|| format!("`rooms` is given at line {}", Span::start_of(r).line)),
            ),
        );
    }
    if !ok {
        return None;
    }
    let list = |v: &Option<Spanned<Vec<Spanned<String>>>>| -> Option<List<Str>> {
        v.as_ref().map(|l| {
            l.value
                .iter()
                .map(|s| Str::from(s.value.clone()))
                .collect::<Vec<_>>()
                .into()
        })
    };
    Some(RuleSpec {
        decision,
        users: list(users),
        commands: list(commands),
        rooms: list(rooms),
        direct: direct.as_ref().map(|b| b.value),
        line: Span::start_of(rule).line,
    })
}

/// Every user a `users` list can stand for, groups expanded (for the coverage check).
fn expand_users(list: &[Str], groups: &[(String, Vec<String>, Span)]) -> Vec<String> {
    let mut out = Vec::new();
    for u in list {
        match u.strip_prefix('@') {
            Some(g) => {
                if let Some((_, members, _)) = groups.iter().find(|(n, _, _)| n == g) {
                    out.extend(members.iter().cloned());
                }
            }
            None => out.push(u.to_string()),
        }
    }
    out
}

/// Whether everything list `inner` matches is matched by list `outer` (`None` = any).
fn list_covers(outer: Option<&[String]>, inner: Option<&[String]>) -> bool {
    match (outer, inner) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(o), Some(i)) => i.iter().all(|p| o.iter().any(|q| pattern_covers(q, p))),
    }
}

/// Whether every message rule `b` matches is matched by rule `a`.
fn rule_covers(a: &RuleSpec, b: &RuleSpec, groups: &[(String, Vec<String>, Span)]) -> bool {
    let users = |r: &RuleSpec| r.users.as_ref().map(|u| expand_users(u, groups));
    let strings = |v: &Option<List<Str>>| {
        v.as_ref()
            .map(|l| l.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    };
    let (au, bu) = (users(a), users(b));
    let (ac, bc) = (strings(&a.commands), strings(&b.commands));
    let (ar, br) = (strings(&a.rooms), strings(&b.rooms));
    if !list_covers(au.as_deref(), bu.as_deref()) || !list_covers(ac.as_deref(), bc.as_deref()) {
        return false;
    }
    // Places: b's messages are DMs, rooms, or both; a must take all of them.
    let b_dm = br.is_none() && b.direct != Some(false);
    let b_rooms = b.direct != Some(true);
    let a_dm = ar.is_none() && a.direct != Some(false);
    let a_rooms_ok = a.direct != Some(true) && list_covers(ar.as_deref(), br.as_deref());
    (!b_dm || a_dm) && (!b_rooms || a_rooms_ok)
}

/// Rules: a rule whose every message an earlier rule already decides is dead: a duplicate
/// (same scope, same decision), a conflicting rule (same scope, opposite decision: it would
/// never apply), or shadowed (wider earlier rule). An allow rule under `default: allow` with
/// nothing denied before it is only noise and is allowed (it documents intent).
fn check_reachability(
    d: &mut Diagnostics,
    rules: &[(RuleSpec, Span)],
    groups: &[(String, Vec<String>, Span)],
    _default: Decision,
) {
    for (j, (b, span)) in rules.iter().enumerate() {
        for (a, a_span) in rules[..j].iter() {
            if !rule_covers(a, b, groups) {
                continue;
            }
            let same_scope = rule_covers(b, a, groups);
            let (id, message, help) = match (same_scope, a.decision == b.decision) {
                (true, true) => (
                    DiagnosticId::DuplicateRule,
                    format!("this rule repeats the rule at line {}", a_span.line),
                    "remove one of the two".to_owned(),
                ),
                (true, false) => (
                    DiagnosticId::ConflictingRule,
                    format!(
                        "this `{}` rule has the same scope as the `{}` rule at line {}, which always wins",
                        b.decision.as_str(),
                        a.decision.as_str(),
                        a_span.line
                    ),
                    "remove the one you do not mean; the first matching rule decides".to_owned(),
                ),
                (false, _) => (
                    DiagnosticId::ShadowedRule,
                    format!(
                        "this rule can never apply: the `{}` rule at line {} matches everything it matches",
                        a.decision.as_str(),
                        a_span.line
                    ),
                    "move it above the wider rule, or remove it".to_owned(),
                ),
            };
            let span = Span {
                len: b.decision.as_str().len() as u32,
                ..*span
            };
            d.push(
                Diagnostic::new(id, span, message, "unreachable rule")
                    .help(help)
                    .note("rules are tried in order and the first match decides"),
            );
            break;
        }
    }
}
