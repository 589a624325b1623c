//! The access matrix (issue 15 item 3): who may run which alias where, so that reviewers of
//! a definition change see what it changes. Rows are the catalogue's aliases (then the
//! bot's own commands), columns every user and `@group` the rules name (each group decided
//! for a member not named elsewhere, or its first member) crossed with every room the rules
//! name literally and the direct message. Each cell is the one access engine's decision
//! ([`crate::acl::AccessControl::decide`]) with the deciding rule. Written as Markdown at
//! build time (`OUT_DIR/bots/<name>.access.md`) and printed by `--access-matrix`.

use std::fmt::Write as _;

use crate::acl::{AccessControl, BOT_COMMANDS, PatternError, Request, is_glob};
use crate::spec::BotSpec;

/// One column subject: how it is shown and the user name decided for it.
struct Subject {
    label: String,
    user: String,
}

/// The Markdown access matrix of `spec` over the alias refs `aliases` (the catalogue's).
pub fn access_matrix(spec: &BotSpec, aliases: &[String]) -> Result<String, PatternError> {
    let acl = AccessControl::new(&spec.access)?;
    let access = &spec.access;
    let mut subjects: Vec<Subject> = Vec::new();
    let mut push = |label: String, user: String| {
        if !subjects.iter().any(|s| s.label == label) {
            subjects.push(Subject { label, user });
        }
    };
    let literal_users: Vec<&str> = access
        .rules
        .iter()
        .flat_map(|r| r.users.iter().flat_map(|u| u.iter()))
        .map(|u| u.as_ref())
        .filter(|u| !u.starts_with('@') && !is_glob(u))
        .collect();
    for rule in access.rules.iter() {
        for user in rule.users.iter().flat_map(|u| u.iter()) {
            let user: &str = user.as_ref();
            if let Some(group) = user.strip_prefix('@') {
                let members = access
                    .groups
                    .iter()
                    .find(|g| g.name == group)
                    .map(|g| &g.members[..])
                    .unwrap_or(&[]);
                let literal = members.iter().filter(|m| !is_glob(m));
                let member = literal
                    .clone()
                    .find(|m| !literal_users.contains(&m.as_ref()))
                    .or_else(|| literal.clone().next());
                if let Some(member) = member {
                    push(format!("@{group} ({member})"), member.to_string());
                }
            } else if !is_glob(user) {
                push(user.to_owned(), user.to_owned());
            }
        }
    }
    // Someone no rule names: what everybody else gets.
    push("anyone else".to_owned(), "\u{2205}anyone-else".to_owned());

    let mut rooms: Vec<Option<&str>> = Vec::new();
    for rule in access.rules.iter() {
        for room in rule.rooms.iter().flat_map(|r| r.iter()) {
            let room: &str = room.as_ref();
            if !is_glob(room) && !rooms.contains(&Some(room)) {
                rooms.push(Some(room));
            }
        }
    }
    if let crate::spec::BackendSpec::Text(text) = &spec.backend
        && !rooms.contains(&Some(text.room.as_ref()))
    {
        rooms.insert(0, Some(text.room.as_ref()));
    }
    rooms.push(None);

    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Access matrix of `{}` ({})\n\n\
         Who may run which command where: `allow`/`deny` and the deciding rule (`rN`, rule N \
         of `access.rules`; `default` when none matches). A group is decided for one of its \
         members, named in parentheses. Generated at build time.\n",
        spec.name, spec.source
    );
    out.push_str("| command |");
    let mut columns = Vec::new();
    for subject in &subjects {
        for room in &rooms {
            let place = room.unwrap_or("DM");
            columns.push((subject, *room));
            let _ = write!(out, " {} in {} |", subject.label, place);
        }
    }
    out.push('\n');
    out.push_str("| --- |");
    for _ in &columns {
        out.push_str(" --- |");
    }
    out.push('\n');
    let commands = aliases
        .iter()
        .map(String::as_str)
        .chain(BOT_COMMANDS.iter().copied());
    for command in commands {
        let _ = write!(out, "| `{command}` |");
        for (subject, room) in &columns {
            let verdict = acl.decide(&Request {
                user: &subject.user,
                command,
                room: *room,
            });
            let why = match verdict.rule {
                Some(i) => format!("r{}", i + 1),
                None => "default".to_owned(),
            };
            let _ = write!(out, " {} ({why}) |", verdict.decision.as_str());
        }
        out.push('\n');
    }
    Ok(out)
}
