//! Access control: the one implementation of rule matching, used by the build-time checks
//! (glob validity, shadowing) and by the runtime (decisions).
//!
//! Read [`AccessControl::decide`] first. Semantics, also in the README:
//! - rules are tried in order; the first whose every given dimension matches decides;
//! - no rule matched: `access.default` (deny unless set);
//! - a dimension that is absent matches everything;
//! - `users` entries are names or globs (`*`, `?`, `[abc]`), or `@group`, which matches a
//!   member of the group (members may be globs too);
//! - `commands` entries are alias refs or globs over them (`st2.*`), or the bot's own
//!   commands `bot:help` and `bot:session`;
//! - `rooms` entries match the room a message was said in; a rule with `rooms` never
//!   matches a direct message; `direct: true` matches only direct messages, `false` only rooms.
//!
//! Matching is case-sensitive, like Errbot's `fnmatch` on Linux. For speed, every pattern
//! of every rule is compiled into one [`globset::GlobSet`] per dimension; a decision is three
//! set look-ups that give bit sets of candidate rules, then the first rule in all three.

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

use crate::spec::{AccessSpec, Decision};

/// The command name access rules use for the help command.
pub const HELP_COMMAND: &str = "bot:help";
/// The command name access rules use for the session commands.
pub const SESSION_COMMAND: &str = "bot:session";
/// The bot's own command names, for checks and did-you-mean.
pub const BOT_COMMANDS: &[&str] = &[HELP_COMMAND, SESSION_COMMAND];

/// Compiles one pattern with the semantics above (the same function at build and run time).
pub fn compile_glob(pattern: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(pattern)
        .literal_separator(false)
        .backslash_escape(true)
        .empty_alternates(false)
        .build()
}

/// Whether `pattern` contains glob syntax (otherwise it matches only itself).
pub fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', '{', '\\'])
}

/// Who asks, for what, and where.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// Chat user name (as the backend identifies it).
    pub user: &'a str,
    /// Resolved command: an alias ref (`pack.name`) or a bot command (`bot:help`).
    pub command: &'a str,
    /// The room, or `None` for a direct message.
    pub room: Option<&'a str>,
}

/// What the rules said, and which rule said it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Allow or deny.
    pub decision: Decision,
    /// Index of the deciding rule (0-based), or `None` when the default applied.
    pub rule: Option<usize>,
    /// Line of the deciding rule in the definition (0 for the default).
    pub line: u32,
}

impl Verdict {
    /// Whether the command may run.
    pub fn allowed(&self) -> bool {
        self.decision == Decision::Allow
    }

    /// "rule 2 (line 14)" or "the default", for logs and replies.
    pub fn describe(&self) -> String {
        match self.rule {
            Some(i) => format!("rule {} (line {})", i + 1, self.line),
            None => "the default".to_owned(),
        }
    }
}

/// A pattern that did not compile, with the rule and dimension it came from.
#[derive(Debug, thiserror::Error)]
#[error("rule {rule}: invalid pattern `{pattern}`: {source}")]
pub struct PatternError {
    /// 1-based rule number.
    pub rule: usize,
    /// The pattern.
    pub pattern: String,
    /// Why.
    #[source]
    pub source: globset::Error,
}

/// Bit set over rule indexes.
#[derive(Clone, Debug)]
struct RuleSet(Vec<u64>);

impl RuleSet {
    fn empty(rules: usize) -> Self {
        Self(vec![0; rules.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
}

/// One dimension (users, commands or rooms) of every rule, compiled.
#[derive(Debug)]
struct Dimension {
    set: GlobSet,
    /// For each pattern in `set`, the rule it belongs to.
    owner: Vec<usize>,
    /// Rules that leave this dimension open (match everything).
    open: RuleSet,
}

impl Dimension {
    fn matches(&self, value: &str, out: &mut RuleSet, scratch: &mut Vec<usize>) {
        out.0.copy_from_slice(&self.open.0);
        scratch.clear();
        self.set.matches_into(value, scratch);
        for &p in scratch.iter() {
            out.set(self.owner[p]);
        }
    }
}

/// Compiled access rules: build once, decide many times.
#[derive(Debug)]
pub struct AccessControl {
    default: Decision,
    decisions: Vec<(Decision, u32)>,
    users: Dimension,
    commands: Dimension,
    rooms: Dimension,
    /// Per rule: `Some(true)` DM only, `Some(false)` rooms only.
    direct: Vec<Option<bool>>,
    /// Rules that match a direct message (no `rooms`, `direct` not false).
    dm_ok: RuleSet,
    /// Rules that match a room message (`direct` not true).
    room_ok: RuleSet,
}

struct DimensionBuilder {
    builder: GlobSetBuilder,
    owner: Vec<usize>,
    open: RuleSet,
}

impl DimensionBuilder {
    fn new(rules: usize) -> Self {
        Self {
            builder: GlobSetBuilder::new(),
            owner: Vec::new(),
            open: RuleSet::empty(rules),
        }
    }
    fn add(&mut self, rule: usize, pattern: &str) -> Result<(), PatternError> {
        let glob = compile_glob(pattern).map_err(|source| PatternError {
            rule: rule + 1,
            pattern: pattern.to_owned(),
            source,
        })?;
        self.builder.add(glob);
        self.owner.push(rule);
        Ok(())
    }
    fn build(self) -> Result<Dimension, PatternError> {
        let set = self.builder.build().map_err(|source| PatternError {
            rule: 0,
            pattern: String::new(),
            source,
        })?;
        Ok(Dimension {
            set,
            owner: self.owner,
            open: self.open,
        })
    }
}

impl AccessControl {
    /// Compiles the rules of a validated spec.
    pub fn new(spec: &AccessSpec) -> Result<Self, PatternError> {
        let n = spec.rules.len();
        let mut users = DimensionBuilder::new(n);
        let mut commands = DimensionBuilder::new(n);
        let mut rooms = DimensionBuilder::new(n);
        let mut dm_ok = RuleSet::empty(n);
        let mut room_ok = RuleSet::empty(n);
        for (i, rule) in spec.rules.iter().enumerate() {
            match &rule.users {
                None => users.open.set(i),
                Some(list) => {
                    for pattern in list.iter() {
                        if let Some(group) = pattern.strip_prefix('@') {
                            let members = spec
                                .groups
                                .iter()
                                .find(|g| g.name == group)
                                .map(|g| &g.members[..])
                                .unwrap_or(&[]);
                            for member in members {
                                users.add(i, member)?;
                            }
                        } else {
                            users.add(i, pattern)?;
                        }
                    }
                }
            }
            match &rule.commands {
                None => commands.open.set(i),
                Some(list) => {
                    for pattern in list.iter() {
                        commands.add(i, pattern)?;
                    }
                }
            }
            match &rule.rooms {
                None => rooms.open.set(i),
                Some(list) => {
                    for pattern in list.iter() {
                        rooms.add(i, pattern)?;
                    }
                }
            }
            if rule.rooms.is_none() && rule.direct != Some(false) {
                dm_ok.set(i);
            }
            if rule.direct != Some(true) {
                room_ok.set(i);
            }
        }
        Ok(Self {
            default: spec.default,
            decisions: spec.rules.iter().map(|r| (r.decision, r.line)).collect(),
            users: users.build()?,
            commands: commands.build()?,
            rooms: rooms.build()?,
            direct: spec.rules.iter().map(|r| r.direct).collect(),
            dm_ok,
            room_ok,
        })
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.decisions.len()
    }

    /// Whether there are no rules (the default decides everything).
    pub fn is_empty(&self) -> bool {
        self.decisions.is_empty()
    }

    /// Decides a request: the first matching rule, else the default.
    pub fn decide(&self, request: &Request<'_>) -> Verdict {
        let n = self.decisions.len();
        if n == 0 {
            return self.default_verdict();
        }
        let words = n.div_ceil(64);
        let mut scratch = Vec::new();
        let mut users = RuleSet::empty(n);
        let mut commands = RuleSet::empty(n);
        self.users.matches(request.user, &mut users, &mut scratch);
        self.commands
            .matches(request.command, &mut commands, &mut scratch);
        let mut rooms = RuleSet::empty(n);
        let place = match request.room {
            None => &self.dm_ok,
            Some(room) => {
                self.rooms.matches(room, &mut rooms, &mut scratch);
                &self.room_ok
            }
        };
        for w in 0..words {
            let mut bits = users.0[w] & commands.0[w] & place.0[w];
            if request.room.is_some() {
                bits &= rooms.0[w];
            }
            if bits != 0 {
                let i = w * 64 + bits.trailing_zeros() as usize;
                debug_assert!(request.room.is_some() || self.direct[i] != Some(false));
                let (decision, line) = self.decisions[i];
                return Verdict {
                    decision,
                    rule: Some(i),
                    line,
                };
            }
        }
        self.default_verdict()
    }

    fn default_verdict(&self) -> Verdict {
        Verdict {
            decision: self.default,
            rule: None,
            line: 0,
        }
    }
}

/// Whether every string `inner` matches is also matched by `outer` (conservative: `false`
/// when unsure). Used by the shadowed-rule check.
pub fn pattern_covers(outer: &str, inner: &str) -> bool {
    if outer == inner || outer == "*" {
        return true;
    }
    if !is_glob(inner) {
        return compile_glob(outer)
            .map(|g| g.compile_matcher().is_match(inner))
            .unwrap_or(false);
    }
    // `abc*` covers any pattern that starts with the literal `abc`.
    if let Some(prefix) = outer.strip_suffix('*')
        && !is_glob(prefix)
    {
        return inner.starts_with(prefix) && !is_glob(&inner[..prefix.len().min(inner.len())]);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers() {
        assert!(pattern_covers("*", "anything"));
        assert!(pattern_covers("st2.*", "st2.run"));
        assert!(pattern_covers("st2.*", "st2.r*"));
        assert!(!pattern_covers("st2.r*", "st2.*"));
        assert!(!pattern_covers("alice", "bob"));
        assert!(pattern_covers("a?c", "abc"));
        assert!(!pattern_covers("a?c", "a*c"));
    }
}
