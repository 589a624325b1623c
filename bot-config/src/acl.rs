//! Access control: the one implementation of rule matching, used by the build-time checks
//! (glob validity, shadowing) and by the runtime (decisions).
//!
//! Read [`AccessControl::decide`] first. Semantics (also in `docs/access.md`):
//! - rules are tried in order; the first whose every given dimension matches decides;
//! - no rule matched: `access.default` (deny unless set);
//! - a dimension that is absent matches everything;
//! - `users` entries are names or globs, or `@group`, which matches a member of the group
//!   (members may be globs too);
//! - `commands` entries are alias refs or globs over them (`st2.*`), or the bot's own
//!   commands `bot:help`, `bot:help-all` (`help --all`), `bot:session`, `bot:inquiry` and
//!   `bot:confirm`;
//! - `rooms` entries match the room a message was said in; a rule with `rooms` never
//!   matches a direct message; `direct: true` matches only direct messages, `false` only rooms.
//!
//! Patterns ([`compile_glob`]) match the whole string, case-sensitively, character by
//! character (Unicode scalar values, no normalisation): `*` any run of characters, `?` one
//! character, `[abc]`/`[a-z]`/`[!abc]` one character of (not of) a set, `{a,b}` either
//! alternative, `\x` the character `x` itself.
//!
//! For speed, each dimension (users, commands, rooms) of all rules is compiled once: literal
//! patterns into a hash map, the others into one multi-pattern regex. A decision is at most
//! three look-ups, each giving a bit set of candidate rules; the first rule in all of them
//! decides. Decisions do not allocate (the bit sets live in a per-thread scratch area).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::panic::{RefUnwindSafe, UnwindSafe};

use regex_automata::nfa::thompson;
use regex_automata::util::pool::Pool;
use regex_automata::{Anchored, Input, MatchKind, PatternSet, hybrid, meta};

use crate::spec::{AccessSpec, Decision, GroupSpec, Str};

/// The command name access rules use for the help command.
pub const HELP_COMMAND: &str = "bot:help";
/// The command name access rules use for the session commands.
pub const SESSION_COMMAND: &str = "bot:session";
/// The command name access rules use for `help --all` (every alias, even those the
/// caller may not run).
pub const HELP_ALL_COMMAND: &str = "bot:help-all";
/// The command name access rules use for the inquiry commands (`inquiry …`, `approve`,
/// `reject`); who may answer a given inquiry is further limited by its `users` and `roles`.
pub const INQUIRY_COMMAND: &str = "bot:inquiry";
/// The command name access rules use for answering confirmations (`confirm CODE`, and
/// `approve ID` / `reject ID` when the id is a pending confirmation's); who may approve a
/// given request is further limited by its `confirm:` rule.
pub const CONFIRM_COMMAND: &str = "bot:confirm";
/// The bot's own command names, for checks and did-you-mean.
pub const BOT_COMMANDS: &[&str] = &[
    HELP_COMMAND,
    HELP_ALL_COMMAND,
    SESSION_COMMAND,
    INQUIRY_COMMAND,
    CONFIRM_COMMAND,
];

/// Why a pattern is not a valid glob.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GlobErrorKind {
    /// The pattern is the empty string.
    #[error("the pattern is empty")]
    Empty,
    /// A `[` has no closing `]`.
    #[error("unclosed character class; missing ']'")]
    UnclosedClass,
    /// A range in a class runs backwards (`[z-a]`).
    #[error("invalid character range {0}-{1}")]
    InvalidRange(char, char),
    /// A `{` has no closing `}`.
    #[error("unclosed alternate group; missing '}}' (escape a literal '{{' as '\\{{')")]
    UnclosedAlternates,
    /// A `}` has no opening `{`.
    #[error("unopened alternate group; missing '{{' (escape a literal '}}' as '\\}}')")]
    UnopenedAlternates,
    /// A `{` inside `{…}`.
    #[error("nested alternate groups are not allowed")]
    NestedAlternates,
    /// The pattern ends with a lone `\`.
    #[error("dangling '\\'; write '\\\\' for a backslash")]
    DanglingEscape,
    /// The pattern is too large to compile.
    #[error("the pattern is too large: {0}")]
    TooLarge(String),
}

/// A pattern that is not a valid glob.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid pattern `{pattern}`: {kind}")]
pub struct GlobError {
    /// The pattern as written.
    pattern: String,
    /// Why it is invalid.
    kind: GlobErrorKind,
}

impl GlobError {
    /// Why the pattern is invalid (without the pattern itself).
    pub fn kind(&self) -> &GlobErrorKind {
        &self.kind
    }

    /// The pattern as written.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }
}

/// A valid pattern: either a literal (matches only itself) or a compiled glob.
#[derive(Clone, Debug)]
pub struct Glob {
    /// The pattern as written.
    pattern: String,
    /// How it matches.
    matcher: GlobMatcher,
}

/// Matches strings against one [`Glob`].
#[derive(Clone, Debug)]
pub struct GlobMatcher(MatcherKind);

#[derive(Clone, Debug)]
enum MatcherKind {
    /// The unescaped text; matches only a string equal to it.
    Literal(String),
    /// Anything with `*`, `?`, `[…]` or `{…}`.
    Regex(meta::Regex),
}

impl Glob {
    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// The one string this pattern matches, when it has no glob syntax (escapes removed).
    pub fn literal(&self) -> Option<&str> {
        match &self.matcher.0 {
            MatcherKind::Literal(text) => Some(text),
            MatcherKind::Regex(_) => None,
        }
    }

    /// A matcher for this pattern (cheap: the compiled form is shared).
    pub fn compile_matcher(&self) -> GlobMatcher {
        self.matcher.clone()
    }

    /// Whether the whole of `text` matches.
    pub fn is_match(&self, text: &str) -> bool {
        self.matcher.is_match(text)
    }
}

impl GlobMatcher {
    /// Whether the whole of `text` matches.
    pub fn is_match(&self, text: &str) -> bool {
        match &self.0 {
            MatcherKind::Literal(literal) => literal == text,
            MatcherKind::Regex(re) => re.is_match(Input::new(text).anchored(Anchored::Yes)),
        }
    }
}

/// Compiles one pattern with the semantics in the module docs (the same function at build
/// and run time).
pub fn compile_glob(pattern: &str) -> Result<Glob, GlobError> {
    let error = |kind| GlobError {
        pattern: pattern.to_owned(),
        kind,
    };
    let translated = translate(pattern).map_err(error)?;
    let matcher = match translated.literal {
        Some(text) => MatcherKind::Literal(text),
        None => MatcherKind::Regex(
            meta::Regex::builder()
                .configure(meta::Regex::config().nfa_size_limit(None))
                .build(&translated.regex)
                .map_err(|e| error(GlobErrorKind::TooLarge(e.to_string())))?,
        ),
    };
    Ok(Glob {
        pattern: pattern.to_owned(),
        matcher: GlobMatcher(matcher),
    })
}

/// Whether `pattern` contains glob syntax (otherwise it matches only itself).
pub fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', '{', '\\'])
}

/// A glob translated to a regex, and its text when it is a plain literal.
struct Translated {
    /// Anchored regex with the same meaning.
    regex: String,
    /// The text, when the pattern has no glob syntax (escapes removed).
    literal: Option<String>,
    /// The text before the stars, when the pattern is a literal followed by `*` only.
    prefix: Option<String>,
}

/// Writes `c` as a regex literal: ASCII letters and digits as is, anything else escaped by
/// code point (valid both inside and outside a class).
fn push_literal(regex: &mut String, c: char) {
    if c.is_ascii_alphanumeric() {
        regex.push(c);
    } else {
        // Writing to a String cannot fail.
        let _ = write!(regex, "\\x{{{:X}}}", u32::from(c));
    }
}

/// Translates a glob into an anchored, Unicode, case-sensitive regex.
fn translate(pattern: &str) -> Result<Translated, GlobErrorKind> {
    if pattern.is_empty() {
        return Err(GlobErrorKind::Empty);
    }
    let mut regex = String::from("(?s)\\A(?:");
    let mut literal = Some(String::new());
    let mut prefix = None;
    let mut in_alternates = false;
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let escaped = chars.next().ok_or(GlobErrorKind::DanglingEscape)?;
                push_literal(&mut regex, escaped);
                if let Some(text) = &mut literal {
                    text.push(escaped);
                }
            }
            '*' => {
                // `**` is the same as `*`; one `.*` keeps the regex small.
                while chars.peek() == Some(&'*') {
                    chars.next();
                }
                regex.push_str(".*");
                if chars.peek().is_none() && !in_alternates {
                    prefix = literal.take();
                }
                literal = None;
            }
            '?' => {
                regex.push('.');
                literal = None;
            }
            '[' => {
                translate_class(&mut chars, &mut regex)?;
                literal = None;
            }
            '{' => {
                if in_alternates {
                    return Err(GlobErrorKind::NestedAlternates);
                }
                in_alternates = true;
                regex.push_str("(?:");
                literal = None;
            }
            ',' if in_alternates => regex.push('|'),
            '}' => {
                if !in_alternates {
                    return Err(GlobErrorKind::UnopenedAlternates);
                }
                in_alternates = false;
                regex.push(')');
            }
            c => {
                push_literal(&mut regex, c);
                if let Some(text) = &mut literal {
                    text.push(c);
                }
            }
        }
    }
    if in_alternates {
        return Err(GlobErrorKind::UnclosedAlternates);
    }
    regex.push_str(")\\z");
    Ok(Translated {
        regex,
        literal,
        prefix,
    })
}

/// Translates a class after its `[`: optional `!`/`^` negation, a `]` first is a member,
/// `a-z` ranges, a `-` first or last is a member, `\x` escapes.
fn translate_class(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    regex: &mut String,
) -> Result<(), GlobErrorKind> {
    regex.push('[');
    if matches!(chars.peek(), Some('!' | '^')) {
        chars.next();
        regex.push('^');
    }
    let mut first = true;
    loop {
        let c = chars.next().ok_or(GlobErrorKind::UnclosedClass)?;
        if c == ']' && !first {
            break;
        }
        first = false;
        let start = if c == '\\' {
            chars.next().ok_or(GlobErrorKind::DanglingEscape)?
        } else {
            c
        };
        // A range needs a `-` followed by something other than the closing `]`.
        let mut lookahead = chars.clone();
        if lookahead.next() == Some('-')
            && let Some(after) = lookahead.next()
            && after != ']'
        {
            chars.next();
            chars.next();
            let end = if after == '\\' {
                chars.next().ok_or(GlobErrorKind::DanglingEscape)?
            } else {
                after
            };
            if end < start {
                return Err(GlobErrorKind::InvalidRange(start, end));
            }
            push_literal(regex, start);
            regex.push('-');
            push_literal(regex, end);
        } else {
            push_literal(regex, start);
        }
    }
    regex.push(']');
    Ok(())
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

/// Why access rules could not be compiled (a validated definition never fails).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    /// A pattern of a rule is not a valid glob.
    #[error("rule {rule}: {source}")]
    Invalid {
        /// 1-based rule number.
        rule: usize,
        /// The pattern and why it is invalid.
        #[source]
        source: GlobError,
    },
    /// The patterns of one dimension are too many or too large to compile together.
    #[error("the {dimension} patterns of the access rules could not be compiled: {reason}")]
    TooLarge {
        /// `users`, `commands` or `rooms`.
        dimension: &'static str,
        /// What the regex engine said.
        reason: String,
    },
}

/// Bit set over rule indexes (`words` 64-bit words).
type Bits = Box<[u64]>;

fn set_bit(bits: &mut [u64], i: usize) {
    bits[i / 64] |= 1 << (i % 64);
}

/// The rules one pattern belongs to: a short list, or a bit set when many rules share the
/// pattern (a group, `#ops-*`), so adding them is a few word-wide ORs.
#[derive(Debug)]
enum RuleList {
    Few(Box<[u32]>),
    Many(Bits),
}

impl RuleList {
    /// Lists longer than this become bit sets.
    const FEW: usize = 8;

    fn new(rules: Vec<u32>, words: usize) -> Self {
        if rules.len() <= Self::FEW {
            return Self::Few(rules.into_boxed_slice());
        }
        let mut bits: Bits = vec![0; words].into_boxed_slice();
        for rule in rules {
            set_bit(&mut bits, rule as usize);
        }
        Self::Many(bits)
    }

    /// Adds these rules to `out`.
    fn add_to(&self, out: &mut [u64]) {
        match self {
            Self::Few(rules) => {
                for &rule in rules.iter() {
                    set_bit(out, rule as usize);
                }
            }
            Self::Many(bits) => {
                for (o, b) in out.iter_mut().zip(bits.iter()) {
                    *o |= b;
                }
            }
        }
    }
}

/// Makes a lazy-DFA cache for one thread (the pool calls it when a thread needs one).
type CacheFn = Box<dyn Fn() -> hybrid::dfa::Cache + Send + Sync + UnwindSafe + RefUnwindSafe>;

/// The non-literal patterns of one dimension, compiled together.
struct GlobSet {
    /// Lazy DFA over every pattern; reports each matching pattern without scanning the set.
    dfa: hybrid::dfa::DFA,
    /// Its caches, one per thread using it.
    caches: Pool<hybrid::dfa::Cache, CacheFn>,
    /// The same patterns for the meta engine, used if the lazy DFA gives up (it is
    /// configured never to, but the API allows it).
    fallback: meta::Regex,
    /// For each pattern, the rules that list it.
    rules: Box<[RuleList]>,
}

impl std::fmt::Debug for GlobSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobSet")
            .field("patterns", &self.rules.len())
            .finish_non_exhaustive()
    }
}

impl GlobSet {
    fn new(regexes: &[String], rules: Vec<Vec<u32>>, words: usize) -> Result<Self, String> {
        let dfa = hybrid::dfa::DFA::builder()
            .configure(
                hybrid::dfa::DFA::config()
                    .match_kind(MatchKind::All)
                    .minimum_cache_clear_count(None),
            )
            .thompson(thompson::Config::new().nfa_size_limit(None))
            .build_many(regexes)
            .map_err(|e| e.to_string())?;
        let fallback = meta::Regex::builder()
            .configure(
                meta::Regex::config()
                    .match_kind(MatchKind::All)
                    .nfa_size_limit(None),
            )
            .build_many(regexes)
            .map_err(|e| e.to_string())?;
        let for_pool = dfa.clone();
        let create: CacheFn = Box::new(move || for_pool.create_cache());
        Ok(Self {
            dfa,
            caches: Pool::new(create),
            fallback,
            rules: rules
                .into_iter()
                .map(|list| RuleList::new(list, words))
                .collect(),
        })
    }

    /// Sets in `out` the rules of every pattern that matches the whole of `value`.
    fn add_matches(&self, value: &str, out: &mut [u64]) {
        let input = Input::new(value).anchored(Anchored::Yes);
        let mut cache = self.caches.get();
        let mut state = hybrid::dfa::OverlappingState::start();
        loop {
            if self
                .dfa
                .try_search_overlapping_fwd(&mut cache, &input, &mut state)
                .is_err()
            {
                // Bits already set are right; the fallback sets them all again.
                return self.add_matches_fallback(&input, out);
            }
            let Some(found) = state.get_match() else {
                return;
            };
            self.rules[found.pattern().as_usize()].add_to(out);
        }
    }

    fn add_matches_fallback(&self, input: &Input<'_>, out: &mut [u64]) {
        let mut matches = PatternSet::new(self.rules.len());
        self.fallback.which_overlapping_matches(input, &mut matches);
        for pattern in matches.iter() {
            self.rules[pattern.as_usize()].add_to(out);
        }
    }
}

/// One dimension (users, commands or rooms) of every rule, compiled.
#[derive(Debug)]
struct Dimension {
    /// Literal pattern → rules that list it.
    literals: HashMap<Box<str>, RuleList>,
    /// Every distinct non-literal pattern; `None` when there are none.
    globs: Option<GlobSet>,
    /// Rules that leave this dimension open (absent, or a `*` pattern).
    open: Bits,
}

impl Dimension {
    /// Sets `out` to the rules whose patterns in this dimension match `value`.
    fn candidates(&self, value: &str, out: &mut [u64]) {
        out.copy_from_slice(&self.open);
        if let Some(rules) = self.literals.get(value) {
            rules.add_to(out);
        }
        if let Some(globs) = &self.globs {
            globs.add_matches(value, out);
        }
    }
}

struct DimensionBuilder {
    name: &'static str,
    literals: HashMap<Box<str>, Vec<u32>>,
    /// Regex of each distinct glob → its index in `glob_rules`.
    glob_index: HashMap<String, usize>,
    glob_rules: Vec<Vec<u32>>,
    open: Bits,
}

impl DimensionBuilder {
    fn new(name: &'static str, words: usize) -> Self {
        Self {
            name,
            literals: HashMap::new(),
            glob_index: HashMap::new(),
            glob_rules: Vec::new(),
            open: vec![0; words].into_boxed_slice(),
        }
    }

    fn add(&mut self, rule: usize, pattern: &str) -> Result<(), PatternError> {
        let translated = translate(pattern).map_err(|kind| PatternError::Invalid {
            rule: rule + 1,
            source: GlobError {
                pattern: pattern.to_owned(),
                kind,
            },
        })?;
        // Rule indexes fit in u32: a definition with 4 billion rules is not a chat bot.
        let owner = u32::try_from(rule).unwrap_or(u32::MAX);
        match translated.literal {
            Some(text) => self.literals.entry(text.into()).or_default().push(owner),
            // `*` (or `**`…) matches everything, like an absent dimension.
            None if translated.prefix.as_deref() == Some("") => set_bit(&mut self.open, rule),
            None => {
                let next = self.glob_rules.len();
                let index = *self.glob_index.entry(translated.regex).or_insert(next);
                if index == next {
                    self.glob_rules.push(Vec::new());
                }
                self.glob_rules[index].push(owner);
            }
        }
        Ok(())
    }

    fn build(self) -> Result<Dimension, PatternError> {
        let globs = if self.glob_rules.is_empty() {
            None
        } else {
            let mut regexes: Vec<(String, usize)> = self.glob_index.into_iter().collect();
            regexes.sort_unstable_by_key(|(_, index)| *index);
            let regexes: Vec<String> = regexes.into_iter().map(|(r, _)| r).collect();
            let set =
                GlobSet::new(&regexes, self.glob_rules, self.open.len()).map_err(|reason| {
                    PatternError::TooLarge {
                        dimension: self.name,
                        reason,
                    }
                })?;
            Some(set)
        };
        let words = self.open.len();
        Ok(Dimension {
            literals: self
                .literals
                .into_iter()
                .map(|(k, v)| (k, RuleList::new(v, words)))
                .collect(),
            globs,
            open: self.open,
        })
    }
}

/// Per-thread buffers for [`AccessControl::decide`], so a decision does not allocate.
struct Scratch {
    /// Rules still possible (the running intersection).
    alive: Vec<u64>,
    /// Rules one dimension allows.
    dimension: Vec<u64>,
}

impl Scratch {
    fn new() -> Self {
        Self {
            alive: Vec::new(),
            dimension: Vec::new(),
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::new());
}

/// A list of users as access rules write it (names, globs, `@group`), compiled: who is in
/// it. Used where the definition names people outside a rule (`auth_page.admins`).
#[derive(Debug, Default)]
pub struct UserSet {
    patterns: Vec<GlobMatcher>,
}

impl UserSet {
    /// Compiles `entries`, with `@name` standing for the members of group `name` in
    /// `groups` (an undefined group has no members; the build-time check reports it).
    pub fn new(entries: &[Str], groups: &[GroupSpec]) -> Result<Self, GlobError> {
        let mut patterns = Vec::new();
        for entry in entries {
            match entry.strip_prefix('@') {
                Some(group) => {
                    for g in groups.iter().filter(|g| g.name == group) {
                        for member in g.members.iter() {
                            patterns.push(compile_glob(member)?.compile_matcher());
                        }
                    }
                }
                None => patterns.push(compile_glob(entry)?.compile_matcher()),
            }
        }
        Ok(Self { patterns })
    }

    /// Whether nobody is in the set.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `user` (a chat name or id) is in the set.
    pub fn contains(&self, user: &str) -> bool {
        self.patterns.iter().any(|p| p.is_match(user))
    }
}

/// Compiled access rules: build once, decide many times.
#[derive(Debug)]
pub struct AccessControl {
    default: Decision,
    /// Per rule: its decision and line.
    decisions: Vec<(Decision, u32)>,
    /// Bit-set length in words.
    words: usize,
    users: Dimension,
    commands: Dimension,
    rooms: Dimension,
    /// Rules that match a direct message (no `rooms`, `direct` not false).
    direct_ok: Bits,
    /// Rules that match a room message (`direct` not true).
    room_ok: Bits,
}

impl AccessControl {
    /// Compiles the rules of a validated spec.
    pub fn new(spec: &AccessSpec) -> Result<Self, PatternError> {
        let n = spec.rules.len();
        let words = n.div_ceil(64);
        let mut users = DimensionBuilder::new("users", words);
        let mut commands = DimensionBuilder::new("commands", words);
        let mut rooms = DimensionBuilder::new("rooms", words);
        let mut direct_ok: Bits = vec![0; words].into_boxed_slice();
        let mut room_ok: Bits = vec![0; words].into_boxed_slice();
        for (i, rule) in spec.rules.iter().enumerate() {
            match &rule.users {
                None => set_bit(&mut users.open, i),
                Some(list) => {
                    for pattern in list.iter() {
                        match pattern.strip_prefix('@') {
                            // An undefined group has no members: the rule matches nobody
                            // (the build-time check reports it).
                            Some(group) => {
                                let members = spec
                                    .groups
                                    .iter()
                                    .find(|g| g.name == group)
                                    .map(|g| &g.members[..])
                                    .unwrap_or(&[]);
                                for member in members {
                                    users.add(i, member)?;
                                }
                            }
                            None => users.add(i, pattern)?,
                        }
                    }
                }
            }
            for (list, dimension) in [(&rule.commands, &mut commands), (&rule.rooms, &mut rooms)] {
                match list {
                    None => set_bit(&mut dimension.open, i),
                    Some(list) => {
                        for pattern in list.iter() {
                            dimension.add(i, pattern)?;
                        }
                    }
                }
            }
            if rule.rooms.is_none() && rule.direct != Some(false) {
                set_bit(&mut direct_ok, i);
            }
            if rule.direct != Some(true) {
                set_bit(&mut room_ok, i);
            }
        }
        let (users, commands, rooms) = (users.build()?, commands.build()?, rooms.build()?);
        Ok(Self {
            default: spec.default,
            decisions: spec.rules.iter().map(|r| (r.decision, r.line)).collect(),
            words,
            users,
            commands,
            rooms,
            direct_ok,
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

    /// The decision when no rule matches.
    pub fn default_decision(&self) -> Decision {
        self.default
    }

    /// Decides a request: the first matching rule, else the default.
    pub fn decide(&self, request: &Request<'_>) -> Verdict {
        if self.decisions.is_empty() {
            return self.default_verdict();
        }
        let first = SCRATCH
            .try_with(|cell| match cell.try_borrow_mut() {
                Ok(mut scratch) => self.first_match(request, &mut scratch),
                // Only reachable if a decision ran inside another on this thread.
                Err(_) => self.first_match(request, &mut Scratch::new()),
            })
            // The thread is shutting down and its scratch area is gone.
            .unwrap_or_else(|_| self.first_match(request, &mut Scratch::new()));
        match first {
            Some(i) => {
                let (decision, line) = self.decisions[i];
                Verdict {
                    decision,
                    rule: Some(i),
                    line,
                }
            }
            None => self.default_verdict(),
        }
    }

    /// The index of the first rule that matches `request`.
    fn first_match(&self, request: &Request<'_>, scratch: &mut Scratch) -> Option<usize> {
        let Scratch { alive, dimension } = scratch;
        alive.clear();
        alive.extend_from_slice(match request.room {
            None => &self.direct_ok,
            Some(_) => &self.room_ok,
        });
        dimension.resize(self.words, 0);
        let checks = [
            (&self.users, Some(request.user)),
            (&self.commands, Some(request.command)),
            (&self.rooms, request.room),
        ];
        for (rules, value) in checks {
            let Some(value) = value else { continue };
            rules.candidates(value, dimension);
            let mut any = 0;
            for (a, d) in alive.iter_mut().zip(dimension.iter()) {
                *a &= d;
                any |= *a;
            }
            if any == 0 {
                return None;
            }
        }
        alive
            .iter()
            .enumerate()
            .find(|(_, w)| **w != 0)
            .map(|(i, w)| i * 64 + w.trailing_zeros() as usize)
    }

    fn default_verdict(&self) -> Verdict {
        Verdict {
            decision: self.default,
            rule: None,
            line: 0,
        }
    }
}

/// The literal text a glob's every match starts with (up to its first wildcard).
fn literal_prefix(pattern: &str) -> String {
    let mut prefix = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' | '?' | '[' | '{' => break,
            '\\' => match chars.next() {
                Some(escaped) => prefix.push(escaped),
                None => break,
            },
            c => prefix.push(c),
        }
    }
    prefix
}

/// Whether the glob translated to `regex` matches `text`. The shadowing check asks this
/// for every pair of rules, so compiled regexes are kept per thread (at build time only).
fn glob_matches_cached(regex: &str, text: &str) -> bool {
    /// Compiled regexes kept before the cache is emptied.
    const CACHE_LIMIT: usize = 4096;
    thread_local! {
        static COMPILED: RefCell<HashMap<String, Option<meta::Regex>>> =
            RefCell::new(HashMap::new());
    }
    let compile = || {
        meta::Regex::builder()
            .configure(meta::Regex::config().nfa_size_limit(None))
            .build(regex)
            .ok()
    };
    let is_match = |re: &Option<meta::Regex>| {
        re.as_ref()
            .is_some_and(|re| re.is_match(Input::new(text).anchored(Anchored::Yes)))
    };
    COMPILED
        .try_with(|cell| {
            let mut cache = cell.try_borrow_mut().ok()?;
            if !cache.contains_key(regex) {
                if cache.len() >= CACHE_LIMIT {
                    cache.clear();
                }
                cache.insert(regex.to_owned(), compile());
            }
            cache.get(regex).map(is_match)
        })
        .ok()
        .flatten()
        .unwrap_or_else(|| is_match(&compile()))
}

/// Whether every string `inner` matches is also matched by `outer` (conservative: `false`
/// when unsure or when either is invalid). Used by the shadowed-rule check.
pub fn pattern_covers(outer: &str, inner: &str) -> bool {
    if !outer.is_empty() && outer.chars().all(|c| c == '*') {
        return true;
    }
    let (Ok(outer_glob), Ok(inner_glob)) = (translate(outer), translate(inner)) else {
        return false;
    };
    if outer == inner {
        return true;
    }
    if let Some(text) = &inner_glob.literal {
        if let Some(outer_text) = &outer_glob.literal {
            return outer_text == text;
        }
        // Every match of `outer` starts with its literal prefix: a cheap refusal first.
        if !text.starts_with(&literal_prefix(outer)) {
            return false;
        }
        if outer_glob.prefix.is_some() {
            return true;
        }
        return glob_matches_cached(&outer_glob.regex, text);
    }
    // `abc*` covers any pattern whose matches all start with the literal `abc`.
    if let Some(prefix) = &outer_glob.prefix {
        return literal_prefix(inner).starts_with(prefix.as_str());
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_sets_take_names_globs_and_groups() {
        let groups = [GroupSpec {
            name: "oncall".into(),
            members: vec![Str::from("bob"), Str::from("sre-*")].into(),
        }];
        let set = UserSet::new(
            &["alice".into(), "@oncall".into(), "@nobody".into()],
            &groups,
        )
        .unwrap();
        for (user, inside) in [
            ("alice", true),
            ("bob", true),
            ("sre-carol", true),
            ("oncall", false),
            ("@oncall", false),
            ("mallory", false),
        ] {
            assert_eq!(set.contains(user), inside, "{user}");
        }
        assert!(UserSet::new(&[], &groups).unwrap().is_empty());
        assert!(UserSet::new(&["[".into()], &[]).is_err());
    }

    fn matches(pattern: &str, text: &str) -> bool {
        compile_glob(pattern).unwrap().is_match(text)
    }

    #[test]
    fn glob_semantics() {
        let cases: &[(&str, &str, bool)] = &[
            ("alice", "alice", true),
            ("alice", "Alice", false),
            ("alice", "alice2", false),
            ("al*", "al", true),
            ("al*", "alice", true),
            ("*", "", true),
            ("*", "a\nb", true),
            ("a?c", "abc", true),
            ("a?c", "aéc", true),
            ("a?c", "ac", false),
            ("a?c", "abbc", false),
            ("[é]", "é", true),
            ("[!a]", "é", true),
            ("[!a]", "a", false),
            ("[^a]", "b", true),
            ("[a-c]x", "bx", true),
            ("[a-c]x", "dx", false),
            ("[]a]", "]", true),
            ("[a-]", "-", true),
            ("[\\]]", "]", true),
            ("{a,b}c", "bc", true),
            ("{a,b}c", "c", false),
            ("x{a,}", "x", true),
            ("a\\*", "a*", true),
            ("a\\*", "ab", false),
            ("core.remote*", "core.remote_sudo", true),
            ("core.remote*", "core_remote", false),
            ("st2.*", "st2.", true),
            ("a,b", "a,b", true),
            ("#ops-[0-9]", "#ops-12", false),
            ("(a)+", "(a)+", true),
            ("(a)+", "aa", false),
            ("**", "x/y", true),
        ];
        for &(pattern, text, expected) in cases {
            assert_eq!(matches(pattern, text), expected, "{pattern:?} on {text:?}");
        }
    }

    #[test]
    fn invalid_globs() {
        let cases: &[(&str, GlobErrorKind)] = &[
            ("", GlobErrorKind::Empty),
            ("[ab", GlobErrorKind::UnclosedClass),
            ("[]", GlobErrorKind::UnclosedClass),
            ("[z-a]", GlobErrorKind::InvalidRange('z', 'a')),
            ("{a,b", GlobErrorKind::UnclosedAlternates),
            ("a}", GlobErrorKind::UnopenedAlternates),
            ("{a,{b}}", GlobErrorKind::NestedAlternates),
            ("a\\", GlobErrorKind::DanglingEscape),
        ];
        for (pattern, kind) in cases {
            assert_eq!(
                compile_glob(pattern).unwrap_err().kind(),
                kind,
                "{pattern:?}"
            );
        }
    }

    #[test]
    fn literals_are_unescaped() {
        assert_eq!(compile_glob("alice").unwrap().literal(), Some("alice"));
        assert_eq!(compile_glob("\\@ops").unwrap().literal(), Some("@ops"));
        assert_eq!(compile_glob("a*").unwrap().literal(), None);
    }

    #[test]
    fn covers() {
        assert!(pattern_covers("*", "anything"));
        assert!(pattern_covers("**", "a*"));
        assert!(pattern_covers("st2.*", "st2.run"));
        assert!(pattern_covers("st2.*", "st2.r*"));
        assert!(!pattern_covers("st2.r*", "st2.*"));
        assert!(!pattern_covers("alice", "bob"));
        assert!(pattern_covers("a?c", "abc"));
        assert!(!pattern_covers("a?c", "a*c"));
        assert!(pattern_covers("a\\*", "a\\*"));
        assert!(pattern_covers("a*", "a\\*"));
        assert!(!pattern_covers("a\\*", "a*"));
        assert!(!pattern_covers("ab*", "a{b,c}"));
        assert!(!pattern_covers("[", "["));
    }

    #[test]
    fn decide_without_allocation_state_leaks() {
        // Two controls of different sizes on one thread share the scratch area.
        let small = AccessControl::new(&spec(&[("deny", Some("a*"), None)])).unwrap();
        let big_rules: Vec<_> = (0..200)
            .map(|i| ("allow", Some(if i % 2 == 0 { "b*" } else { "x?" }), None))
            .collect();
        let big = AccessControl::new(&spec(&big_rules)).unwrap();
        let req = |user| Request {
            user,
            command: "p.a",
            room: None,
        };
        assert_eq!(big.decide(&req("bob")).rule, Some(0));
        assert_eq!(big.decide(&req("xy")).rule, Some(1));
        assert_eq!(small.decide(&req("bob")).rule, None);
        assert_eq!(small.decide(&req("al")).rule, Some(0));
        assert_eq!(big.decide(&req("al")).rule, None);
    }

    #[test]
    fn threads_share_one_control() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<AccessControl>();
        let rules: Vec<_> = (0..100)
            .map(|i| ("allow", Some(if i % 2 == 0 { "u?" } else { "v*" }), None))
            .collect();
        let acl = AccessControl::new(&spec(&rules)).unwrap();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..200 {
                        let decide = |user| {
                            acl.decide(&Request {
                                user,
                                command: "p.a",
                                room: Some("r"),
                            })
                            .rule
                        };
                        assert_eq!(decide("u1"), Some(0));
                        assert_eq!(decide("vvv"), Some(1));
                        assert_eq!(decide("w"), None);
                    }
                });
            }
        });
    }

    fn spec(rules: &[(&str, Option<&str>, Option<&str>)]) -> AccessSpec {
        use crate::spec::{List, RuleSpec, Str};
        let list = |p: Option<&str>| p.map(|p| List::from(vec![Str::from(p.to_owned())]));
        AccessSpec {
            default: Decision::Deny,
            rules: rules
                .iter()
                .enumerate()
                .map(|(i, (d, users, commands))| RuleSpec {
                    decision: if *d == "allow" {
                        Decision::Allow
                    } else {
                        Decision::Deny
                    },
                    users: list(*users),
                    commands: list(*commands),
                    rooms: None,
                    direct: None,
                    line: i as u32 + 1,
                })
                .collect::<Vec<_>>()
                .into(),
            groups: Vec::new().into(),
        }
    }
}
