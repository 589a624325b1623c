//! Help filtered by the caller's rights (issue 15 item 4): `help` lists only the aliases the
//! asking user may run where they asked (a room, or a direct message), decided by the one
//! access engine ([`bot_config::acl::AccessControl`]) exactly as the dispatcher decides a
//! command. `help --all` lists everything, for users whom the access rules allow the bot
//! command `bot:help-all` ([`HELP_ALL_COMMAND`]) there.
//!
//! StackStorm's help answer names no alias, only each format's pack and display text, so
//! a help line is kept when an alias of that pack which the user may run shows that text.

use std::collections::{HashMap, HashSet};

use bot_config::acl::{AccessControl, Request};
use st2_alias::{Alias, AliasIndex};

pub use bot_config::acl::HELP_ALL_COMMAND;

/// The argument of the help command that asks for every alias, allowed or not.
pub const ALL_FLAG: &str = "--all";

/// The help lines (pack, display) that one user may run in one place, borrowed from the
/// alias index (nothing is copied per request).
#[derive(Debug, Default)]
pub struct AllowedHelp<'a> {
    /// Per pack, the allowed displays.
    lines: HashMap<&'a str, HashSet<&'a str>>,
}

impl<'a> AllowedHelp<'a> {
    /// Decides every enabled alias of `index` for `user` in `room` (`None`: a direct
    /// message) and keeps the help texts of those allowed.
    pub fn new(
        index: &'a AliasIndex,
        acl: &AccessControl,
        user: &str,
        room: Option<&str>,
    ) -> AllowedHelp<'a> {
        let mut lines: HashMap<&'a str, HashSet<&'a str>> = HashMap::new();
        for alias in index.aliases().iter().filter(|a| a.enabled) {
            let request = Request {
                user,
                command: alias.reference(),
                room,
            };
            if !acl.decide(&request).allowed() {
                continue;
            }
            let pack = lines.entry(alias.pack.as_str()).or_default();
            pack.extend(help_displays(alias));
        }
        AllowedHelp { lines }
    }

    /// Whether the help line `display` of `pack` belongs to an alias the user may run.
    pub fn permits(&self, pack: &str, display: &str) -> bool {
        self.lines
            .get(pack)
            .is_some_and(|displays| displays.contains(display))
    }

    /// How many distinct help lines are allowed.
    pub fn len(&self) -> usize {
        self.lines.values().map(HashSet::len).sum()
    }

    /// Whether the user may run nothing listed in help.
    pub fn is_empty(&self) -> bool {
        self.lines.values().all(HashSet::is_empty)
    }
}

/// The texts a help listing shows for an alias: per format, its `display`, else its
/// representations, else the format string itself (what StackStorm and the simulator show).
fn help_displays(alias: &Alias) -> Vec<&str> {
    let mut out = Vec::new();
    for entry in &alias.formats {
        match entry.display().filter(|d| !d.is_empty()) {
            Some(display) => out.push(display),
            None => out.extend(
                entry
                    .representations()
                    .into_iter()
                    .filter(|r| !r.is_empty()),
            ),
        }
    }
    out
}

/// Whether the help arguments ask for every alias (`help --all …`); returns the remaining
/// arguments.
pub fn split_all_flag<'a, 'b>(args: &'b [&'a str]) -> (bool, &'b [&'a str]) {
    match args.split_first() {
        Some((first, rest)) if *first == ALL_FLAG => (true, rest),
        _ => (false, args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bot_config::spec::{AccessSpec, Decision, List, RuleSpec, Str};
    use st2_alias::FormatEntry;

    fn index() -> AliasIndex {
        let plain = |s: &str| FormatEntry::Plain(s.to_owned());
        let mut disabled = Alias::new("core", "off", vec![plain("off {{x}}")]);
        disabled.enabled = false;
        AliasIndex::new(vec![
            Alias::new("core", "local", vec![plain("local {{cmd}}")]),
            Alias::new("core", "remote", vec![plain("run {{cmd}} on {{hosts}}")]),
            Alias::new(
                "linux",
                "rm",
                vec![plain("rm {{path}}"), plain("delete {{path}}")],
            ),
            disabled,
        ])
    }

    /// A rule: decision, users, commands, rooms (one pattern each, `None`: any).
    type Rule<'a> = (Decision, Option<&'a str>, Option<&'a str>, Option<&'a str>);

    fn acl(rules: &[Rule<'_>]) -> AccessControl {
        let list = |p: Option<&str>| p.map(|p| List::from(vec![Str::from(p.to_owned())]));
        let spec = AccessSpec {
            default: Decision::Deny,
            rules: rules
                .iter()
                .enumerate()
                .map(|(i, (decision, users, commands, rooms))| RuleSpec {
                    decision: *decision,
                    users: list(*users),
                    commands: list(*commands),
                    rooms: list(*rooms),
                    direct: None,
                    line: i as u32 + 1,
                })
                .collect::<Vec<_>>()
                .into(),
            groups: Vec::new().into(),
        };
        AccessControl::new(&spec).expect("rules compile")
    }

    #[test]
    fn a_user_sees_only_the_aliases_the_rules_let_them_run_there() {
        let allow = Decision::Allow;
        let acl = acl(&[
            (allow, Some("root"), None, None),
            (allow, Some("carol"), Some("core.local"), None),
            (allow, Some("carol"), Some("linux.*"), Some("ops")),
        ]);
        let index = index();

        let carol_dm = AllowedHelp::new(&index, &acl, "carol", None);
        assert!(carol_dm.permits("core", "local {{cmd}}"));
        assert!(!carol_dm.permits("core", "run {{cmd}} on {{hosts}}"));
        assert!(
            !carol_dm.permits("linux", "rm {{path}}"),
            "linux only in ops"
        );
        assert_eq!(carol_dm.len(), 1);

        let carol_ops = AllowedHelp::new(&index, &acl, "carol", Some("ops"));
        assert!(carol_ops.permits("linux", "rm {{path}}"));
        assert!(carol_ops.permits("linux", "delete {{path}}"));
        assert!(!carol_ops.permits("core", "rm {{path}}"), "pack must agree");
        assert_eq!(carol_ops.len(), 3);

        let root = AllowedHelp::new(&index, &acl, "root", Some("ops"));
        assert_eq!(root.len(), 4, "disabled aliases are never listed");
        assert!(AllowedHelp::new(&index, &acl, "mallory", None).is_empty());
    }

    #[test]
    fn only_a_leading_all_flag_asks_for_everything() {
        assert_eq!(split_all_flag(&["--all", "core"]), (true, &["core"][..]));
        assert_eq!(
            split_all_flag(&["core", "--all"]),
            (false, &["core", "--all"][..])
        );
        assert_eq!(split_all_flag(&[]), (false, &[][..]));
    }
}
