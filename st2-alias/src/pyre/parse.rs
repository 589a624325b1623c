//! A parser for Python's `re` pattern syntax, written to behave like CPython 3.11's
//! `re._parser` (the version StackStorm's vectors were produced with).
//!
//! StackStorm treats an alias format as a Python regular expression, inspects the parse tree
//! (to decide whether to add `^\s*` and `\s*$`), and then compiles it. So this parser has to
//! reproduce more than the accepted syntax: the tree shape (non-capturing groups spliced into
//! their parent, common prefixes factored out of alternations, single-character alternations
//! turned into sets), the error conditions (`nothing to repeat`, `global flags not at the start
//! of the expression`, bad group names, fixed-width look-behinds, ...) and, as far as cheaply
//! possible, the error messages and positions.
//!
//! Positions count Unicode code points, as Python's do.

use std::collections::HashMap;
use std::fmt;

/// `_sre.MAXREPEAT`: the "unbounded" repeat count.
pub(crate) const MAXREPEAT: u64 = 4_294_967_295;
/// `_sre.MAXGROUPS`.
const MAXGROUPS: u128 = 1_073_741_823;
/// `re._parser.MAXWIDTH`: the cap of a computed pattern width.
const MAXWIDTH: u128 = 1 << 64;
/// `_sre.MAXCODE` for 4-byte code units.
const MAXCODE: u128 = (1 << 32) - 1;
/// Deepest group nesting accepted. CPython 3.11 goes to about 495 (then `RecursionError`);
/// 100 keeps a debug build within a 2 MiB thread stack, and `fancy-regex` refuses deeper
/// capturing nests anyway.
const MAX_NESTING: usize = 100;

/// Python's `re` flags, with CPython's bit values.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(crate) struct Flags(u16);

impl Flags {
    pub(crate) const TEMPLATE: Flags = Flags(1);
    pub(crate) const IGNORECASE: Flags = Flags(2);
    pub(crate) const LOCALE: Flags = Flags(4);
    pub(crate) const MULTILINE: Flags = Flags(8);
    pub(crate) const DOTALL: Flags = Flags(16);
    pub(crate) const UNICODE: Flags = Flags(32);
    pub(crate) const VERBOSE: Flags = Flags(64);
    pub(crate) const ASCII: Flags = Flags(256);
    /// `a`, `u` and `L`: the flags that choose a character model.
    pub(crate) const TYPE_FLAGS: Flags = Flags(256 | 32 | 4);
    /// Flags that may only be set for the whole pattern.
    const GLOBAL_FLAGS: Flags = Flags(128 | 1); // DEBUG | TEMPLATE

    pub(crate) const fn empty() -> Flags {
        Flags(0)
    }

    pub(crate) fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    pub(crate) fn intersects(self, other: Flags) -> bool {
        self.0 & other.0 != 0
    }

    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub(crate) fn union(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    pub(crate) fn without(self, other: Flags) -> Flags {
        Flags(self.0 & !other.0)
    }

    /// The flag an inline flag letter stands for (`re._parser.FLAGS`).
    fn from_letter(letter: char) -> Option<Flags> {
        Some(match letter {
            'i' => Flags::IGNORECASE,
            'L' => Flags::LOCALE,
            'm' => Flags::MULTILINE,
            's' => Flags::DOTALL,
            'x' => Flags::VERBOSE,
            'a' => Flags::ASCII,
            't' => Flags::TEMPLATE,
            'u' => Flags::UNICODE,
            _ => return None,
        })
    }

    /// The flags in force inside a scoped `(?add-del:...)` group (`_compiler._combine_flags`).
    pub(crate) fn combine(self, add: Flags, del: Flags) -> Flags {
        let base = if add.intersects(Flags::TYPE_FLAGS) {
            self.without(Flags::TYPE_FLAGS)
        } else {
            self
        };
        base.union(add).without(del)
    }
}

/// Zero-width position assertions (`AT_*` codes). Multi-line variants are chosen when the
/// pattern is translated, as Python's compiler does, so the tree only holds these.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum At {
    /// `^`
    Beginning,
    /// `\A`
    BeginningString,
    /// `\b`
    Boundary,
    /// `\B`
    NonBoundary,
    /// `$`
    End,
    /// `\Z`
    EndString,
}

/// Character categories (`\d`, `\s`, `\w` and their negations).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Category {
    Digit,
    NotDigit,
    Space,
    NotSpace,
    Word,
    NotWord,
}

/// One member of a character set. Code points are `u32` because Python patterns may name
/// lone surrogates, which Rust `char`s cannot hold (they never match a Rust string).
#[derive(Clone, PartialEq, Eq, Debug, Hash)]
pub(crate) enum SetItem {
    Literal(u32),
    Range(u32, u32),
    Category(Category),
}

impl std::hash::Hash for Category {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (*self as u8).hash(state);
    }
}

/// How a repeat behaves when the rest of the pattern fails.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum RepeatKind {
    Greedy,
    Lazy,
    Possessive,
}

/// A node of the parse tree; mirrors the `(opcode, argument)` pairs of `re._parser`.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    Literal(u32),
    NotLiteral(u32),
    Any,
    In {
        negate: bool,
        items: Vec<SetItem>,
    },
    At(At),
    Branch(Vec<Vec<Node>>),
    Group {
        /// Capturing group number (1-based), or `None` for a scoped-flags group.
        index: Option<usize>,
        add: Flags,
        del: Flags,
        body: Vec<Node>,
    },
    Repeat {
        kind: RepeatKind,
        min: u64,
        /// `MAXREPEAT` means unbounded.
        max: u64,
        body: Vec<Node>,
    },
    Atomic(Vec<Node>),
    Assert {
        negate: bool,
        behind: bool,
        body: Vec<Node>,
    },
    GroupRef(usize),
    GroupRefExists {
        group: usize,
        yes: Vec<Node>,
        no: Option<Vec<Node>>,
    },
}

impl Node {
    /// Python compares parse-tree items as tuples; items holding a sub-pattern compare by
    /// identity, so only leaf items can ever be equal. This decides prefix factoring.
    fn same_leaf(&self, other: &Node) -> bool {
        match (self, other) {
            (Node::Literal(a), Node::Literal(b)) | (Node::NotLiteral(a), Node::NotLiteral(b)) => {
                a == b
            }
            (Node::Any, Node::Any) => true,
            (
                Node::In {
                    negate: n1,
                    items: i1,
                },
                Node::In {
                    negate: n2,
                    items: i2,
                },
            ) => n1 == n2 && i1 == i2,
            (Node::At(a), Node::At(b)) => a == b,
            (Node::GroupRef(a), Node::GroupRef(b)) => a == b,
            _ => false,
        }
    }
}

/// A pattern Python rejects (`re.error`, or the `ValueError`/`OverflowError` that
/// `re.compile` raises for impossible flag combinations and repeat counts), or one this crate
/// cannot run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PatternError {
    /// Python's message, without the position.
    pub(crate) message: String,
    /// Code-point offset into the pattern, when Python reports one.
    pub(crate) position: Option<usize>,
    /// Line and column, which Python adds when the pattern spans several lines.
    line_column: Option<(usize, usize)>,
    /// True when Python accepts the pattern but this crate cannot run it.
    pub(crate) unsupported: bool,
}

impl PatternError {
    fn at(message: impl Into<String>, pattern: &[char], position: usize) -> PatternError {
        let line_column = if pattern.contains(&'\n') {
            let before = &pattern[..position.min(pattern.len())];
            let line = before.iter().filter(|c| **c == '\n').count() + 1;
            let column = match before.iter().rposition(|c| *c == '\n') {
                Some(newline) => position - newline,
                None => position + 1,
            };
            Some((line, column))
        } else {
            None
        };
        PatternError {
            message: message.into(),
            position: Some(position),
            line_column,
            unsupported: false,
        }
    }

    pub(crate) fn plain(message: impl Into<String>) -> PatternError {
        PatternError {
            message: message.into(),
            position: None,
            line_column: None,
            unsupported: false,
        }
    }

    pub(crate) fn unsupported(message: impl Into<String>) -> PatternError {
        PatternError {
            unsupported: true,
            ..PatternError::plain(message)
        }
    }
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(position) = self.position {
            write!(f, " at position {position}")?;
        }
        if let Some((line, column)) = self.line_column {
            write!(f, " (line {line}, column {column})")?;
        }
        Ok(())
    }
}

type Result<T> = std::result::Result<T, PatternError>;

/// A parsed pattern.
#[derive(Clone, Debug)]
pub(crate) struct Parsed {
    pub(crate) nodes: Vec<Node>,
    /// Global flags after `fix_flags` (so `UNICODE` is set unless `ASCII` is).
    pub(crate) flags: Flags,
    /// Name of each capturing group, indexed by group number (index 0 is unused).
    pub(crate) group_names: Vec<Option<String>>,
}

impl Parsed {
    /// Number of capturing groups, not counting group 0.
    pub(crate) fn group_count(&self) -> usize {
        self.group_names.len() - 1
    }
}

/// One token: a character, or a backslash escape (`\` plus the next character).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Token {
    Char(char),
    Escape(char),
}

impl Token {
    fn len(self) -> usize {
        match self {
            Token::Char(_) => 1,
            Token::Escape(_) => 2,
        }
    }

    fn text(self) -> String {
        match self {
            Token::Char(c) => c.to_string(),
            Token::Escape(c) => format!("\\{c}"),
        }
    }

    fn is_char_in(self, set: &str) -> bool {
        matches!(self, Token::Char(c) if set.contains(c))
    }

    fn is_alpha(self) -> bool {
        matches!(self, Token::Char(c) if c.is_alphabetic())
    }
}

/// `re._parser.Tokenizer`.
struct Tokenizer {
    chars: Vec<char>,
    index: usize,
    next: Option<Token>,
}

impl Tokenizer {
    fn new(pattern: &str) -> Result<Tokenizer> {
        let mut tokenizer = Tokenizer {
            chars: pattern.chars().collect(),
            index: 0,
            next: None,
        };
        tokenizer.advance()?;
        Ok(tokenizer)
    }

    fn advance(&mut self) -> Result<()> {
        let index = self.index;
        match self.chars.get(index) {
            None => self.next = None,
            Some('\\') => match self.chars.get(index + 1) {
                None => {
                    return Err(PatternError::at(
                        "bad escape (end of pattern)",
                        &self.chars,
                        self.chars.len() - 1,
                    ));
                }
                Some(c) => {
                    self.index = index + 2;
                    self.next = Some(Token::Escape(*c));
                }
            },
            Some(c) => {
                self.index = index + 1;
                self.next = Some(Token::Char(*c));
            }
        }
        Ok(())
    }

    fn next_is(&self, c: char) -> bool {
        self.next == Some(Token::Char(c))
    }

    fn next_is_in(&self, set: &str) -> bool {
        self.next.is_some_and(|t| t.is_char_in(set))
    }

    fn matches(&mut self, c: char) -> Result<bool> {
        if self.next_is(c) {
            self.advance()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn get(&mut self) -> Result<Option<Token>> {
        let this = self.next;
        self.advance()?;
        Ok(this)
    }

    fn get_while(&mut self, count: usize, set: &str) -> Result<String> {
        let mut result = String::new();
        for _ in 0..count {
            match self.next {
                Some(Token::Char(c)) if set.contains(c) => {
                    result.push(c);
                    self.advance()?;
                }
                _ => break,
            }
        }
        Ok(result)
    }

    fn get_until(&mut self, terminator: char, name: &str) -> Result<String> {
        let mut result = String::new();
        loop {
            let token = self.next;
            self.advance()?;
            match token {
                None => {
                    if result.is_empty() {
                        return Err(self.error(format!("missing {name}"), 0));
                    }
                    return Err(self.error(
                        format!("missing {terminator}, unterminated name"),
                        result.chars().count(),
                    ));
                }
                Some(Token::Char(c)) if c == terminator => {
                    if result.is_empty() {
                        return Err(self.error(format!("missing {name}"), 1));
                    }
                    return Ok(result);
                }
                Some(token) => result.push_str(&token.text()),
            }
        }
    }

    fn tell(&self) -> usize {
        self.index - self.next.map_or(0, Token::len)
    }

    fn seek(&mut self, index: usize) -> Result<()> {
        self.index = index;
        self.advance()
    }

    fn error(&self, message: impl Into<String>, offset: usize) -> PatternError {
        PatternError::at(message, &self.chars, self.tell().saturating_sub(offset))
    }

    fn check_group_name(&self, name: &str, offset: usize) -> Result<()> {
        if is_identifier(name) {
            Ok(())
        } else {
            Err(self.error(
                format!("bad character in group name {}", py_repr(name)),
                name.chars().count() + offset,
            ))
        }
    }
}

/// Python's `str.isidentifier()`.
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) if first == '_' || unicode_ident::is_xid_start(first) => {
            chars.all(unicode_ident::is_xid_continue)
        }
        _ => false,
    }
}

/// Python's `repr()` of a string, as used in error messages.
pub(crate) fn py_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// The result of an escape: what `_escape`/`_class_escape` return.
enum Escape {
    Literal(u32),
    Category(Category),
    At(At),
    GroupRef(usize),
}

/// `re._parser.State`.
struct State {
    flags: Flags,
    group_dict: HashMap<String, usize>,
    group_names: Vec<Option<String>>,
    /// Width of each closed group; `None` while the group is open. Index 0 is group 0.
    group_widths: Vec<Option<(u128, u128)>>,
    lookbehind_groups: Option<usize>,
    /// Conditional group references by number, with where they were written.
    groupref_positions: Vec<(u128, usize)>,
}

impl State {
    fn groups(&self) -> usize {
        self.group_widths.len()
    }

    fn check_group(&self, gid: usize) -> bool {
        gid < self.groups() && self.group_widths[gid].is_some()
    }

    fn check_lookbehind_group(&self, gid: usize, source: &Tokenizer) -> Result<()> {
        if let Some(lookbehind_groups) = self.lookbehind_groups {
            if !self.check_group(gid) {
                return Err(source.error("cannot refer to an open group", 0));
            }
            if gid >= lookbehind_groups {
                return Err(source.error(
                    "cannot refer to group defined in the same lookbehind subpattern",
                    0,
                ));
            }
        }
        Ok(())
    }

    /// `SubPattern.getwidth()`: the minimum and maximum width of a sequence.
    fn width(&self, nodes: &[Node]) -> (u128, u128) {
        let mut lo: u128 = 0;
        let mut hi: u128 = 0;
        for node in nodes {
            let (l, h) = match node {
                Node::Branch(items) => {
                    let mut i = MAXWIDTH;
                    let mut j = 0;
                    for item in items {
                        let (l, h) = self.width(item);
                        i = i.min(l);
                        j = j.max(h);
                    }
                    (i, j)
                }
                Node::Atomic(body) | Node::Group { body, .. } => self.width(body),
                Node::Repeat { min, max, body, .. } => {
                    let (i, j) = self.width(body);
                    let l = i.saturating_mul(u128::from(*min));
                    let h = if *max == MAXREPEAT && j > 0 {
                        MAXWIDTH
                    } else {
                        j.saturating_mul(u128::from(*max))
                    };
                    (l, h)
                }
                Node::Literal(_) | Node::NotLiteral(_) | Node::Any | Node::In { .. } => (1, 1),
                Node::GroupRef(gid) => self
                    .group_widths
                    .get(*gid)
                    .copied()
                    .flatten()
                    .unwrap_or((0, 0)),
                Node::GroupRefExists { yes, no, .. } => {
                    let (i, j) = self.width(yes);
                    match no {
                        Some(no) => {
                            let (l, h) = self.width(no);
                            (i.min(l), j.max(h))
                        }
                        None => (0, j),
                    }
                }
                Node::At(_) | Node::Assert { .. } => (0, 0),
            };
            lo = lo.saturating_add(l);
            hi = hi.saturating_add(h);
        }
        (lo.min(MAXWIDTH), hi.min(MAXWIDTH))
    }
}

const SPECIAL_CHARS: &str = ".\\[{()*+?^$|";
const REPEAT_CHARS: &str = "*+?{";
const OCTDIGITS: &str = "01234567";
const HEXDIGITS: &str = "0123456789abcdefABCDEF";
const VERBOSE_WHITESPACE: &str = " \t\n\r\x0b\x0c";

struct Parser {
    source: Tokenizer,
    state: State,
}

/// Parses `pattern` as `re.compile(pattern, flags)` does: `re._parser.parse`, then the
/// checks the compiler adds (fixed-width look-behinds, template flag).
pub(crate) fn parse(pattern: &str, flags: Flags) -> Result<Parsed> {
    parse_with(pattern, flags, true)
}

/// Only `re._parser.parse(pattern, flags)`, as StackStorm calls it to look for anchors.
pub(crate) fn parse_only(pattern: &str, flags: Flags) -> Result<Parsed> {
    parse_with(pattern, flags, false)
}

fn parse_with(pattern: &str, flags: Flags, compile_checks: bool) -> Result<Parsed> {
    let mut parser = Parser {
        source: Tokenizer::new(pattern)?,
        state: State {
            flags,
            group_dict: HashMap::new(),
            group_names: vec![None],
            group_widths: vec![None],
            lookbehind_groups: None,
            groupref_positions: Vec::new(),
        },
    };
    let nodes = parser.parse_sub(flags.contains(Flags::VERBOSE), 0)?;

    let mut flags = parser.state.flags;
    if flags.contains(Flags::LOCALE) {
        return Err(PatternError::plain(
            "cannot use LOCALE flag with a str pattern",
        ));
    }
    if !flags.contains(Flags::ASCII) {
        flags = flags.union(Flags::UNICODE);
    } else if flags.contains(Flags::UNICODE) {
        return Err(PatternError::plain(
            "ASCII and UNICODE flags are incompatible",
        ));
    }

    if parser.source.next.is_some() {
        return Err(parser.source.error("unbalanced parenthesis", 0));
    }
    for (group, position) in &parser.state.groupref_positions {
        if *group >= parser.state.groups() as u128 {
            return Err(PatternError::at(
                format!("invalid group reference {group}"),
                &parser.source.chars,
                *position,
            ));
        }
    }

    if compile_checks {
        check_compilable(&nodes, flags, &parser.state)?;
    }

    Ok(Parsed {
        nodes,
        flags,
        group_names: parser.state.group_names,
    })
}

/// The errors `re._compiler` raises on a parsed tree.
fn check_compilable(nodes: &[Node], flags: Flags, state: &State) -> Result<()> {
    for node in nodes {
        match node {
            Node::Repeat { body, .. } => {
                if flags.contains(Flags::TEMPLATE) {
                    return Err(PatternError::plain(
                        "internal: unsupported template operator MAX_REPEAT",
                    ));
                }
                check_compilable(body, flags, state)?;
            }
            Node::Assert { behind, body, .. } => {
                if *behind {
                    let (lo, hi) = state.width(body);
                    if lo > MAXCODE {
                        return Err(PatternError::plain("looks too much behind"));
                    }
                    if lo != hi {
                        return Err(PatternError::plain(
                            "look-behind requires fixed-width pattern",
                        ));
                    }
                }
                check_compilable(body, flags, state)?;
            }
            Node::Group { add, del, body, .. } => {
                check_compilable(body, flags.combine(*add, *del), state)?
            }
            Node::Atomic(body) => check_compilable(body, flags, state)?,
            Node::Branch(items) => {
                for item in items {
                    check_compilable(item, flags, state)?;
                }
            }
            Node::GroupRefExists { yes, no, .. } => {
                check_compilable(yes, flags, state)?;
                if let Some(no) = no {
                    check_compilable(no, flags, state)?;
                }
            }
            Node::Literal(_)
            | Node::NotLiteral(_)
            | Node::Any
            | Node::In { .. }
            | Node::At(_)
            | Node::GroupRef(_) => {}
        }
    }
    Ok(())
}

/// Parses a decimal repeat count; Python raises `OverflowError` at `MAXREPEAT` and above.
fn repeat_count(digits: &str) -> Result<u64> {
    match digits.parse::<u64>() {
        Ok(value) if value < MAXREPEAT => Ok(value),
        _ => Err(PatternError::plain("the repetition number is too large")),
    }
}

/// Python's `int()` for a conditional group reference (ASCII digits only).
fn py_int(text: &str) -> Option<i128> {
    let trimmed = text.trim_matches(crate::unicode::is_py_space);
    let (negative, digits) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.chars().all(|c| c.is_ascii_digit() || c == '_')
    {
        return None;
    }
    let mut value: i128 = 0;
    for c in digits.chars().filter(char::is_ascii_digit) {
        value = value
            .saturating_mul(10)
            .saturating_add(i128::from(c as u8 - b'0'));
    }
    Some(if negative { -value } else { value })
}

fn parse_hex(digits: &str) -> u32 {
    u32::from_str_radix(digits, 16).unwrap_or(u32::MAX)
}

fn parse_octal(digits: &str) -> u32 {
    u32::from_str_radix(digits, 8).unwrap_or(u32::MAX)
}

fn uniq(items: Vec<SetItem>) -> Vec<SetItem> {
    let mut seen = std::collections::HashSet::new();
    items
        .into_iter()
        .filter(|item| seen.insert(item.clone()))
        .collect()
}

impl Parser {
    fn error(&self, message: impl Into<String>, offset: usize) -> PatternError {
        self.source.error(message, offset)
    }

    /// `\x`, `\u`, `\U`, `\N`: the escapes shared by both escape contexts.
    fn numeric_escape(&mut self, c: char) -> Result<Option<u32>> {
        let escape = format!("\\{c}");
        match c {
            'x' | 'u' | 'U' => {
                let width = match c {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let digits = self.source.get_while(width, HEXDIGITS)?;
                let text = format!("{escape}{digits}");
                if digits.len() != width {
                    return Err(
                        self.error(format!("incomplete escape {text}"), text.chars().count())
                    );
                }
                let value = parse_hex(&digits);
                if c == 'U' && value > 0x10_FFFF {
                    return Err(self.error(format!("bad escape {text}"), text.chars().count()));
                }
                Ok(Some(value))
            }
            'N' => {
                if !self.source.matches('{')? {
                    return Err(self.error("missing {", 0));
                }
                let name = self.source.get_until('}', "character name")?;
                match crate::unicode::lookup_name(&name) {
                    Some(c) => Ok(Some(u32::from(c))),
                    None => Err(self.error(
                        format!("undefined character name {}", py_repr(&name)),
                        name.chars().count() + 4,
                    )),
                }
            }
            _ => Ok(None),
        }
    }

    /// `_class_escape`: an escape inside `[...]`.
    fn class_escape(&mut self, c: char) -> Result<Escape> {
        if let Some(value) = simple_escape(c, true) {
            return Ok(Escape::Literal(value));
        }
        if let Some(category) = category_escape(c) {
            return Ok(Escape::Category(category));
        }
        if let Some(value) = self.numeric_escape(c)? {
            return Ok(Escape::Literal(value));
        }
        if OCTDIGITS.contains(c) {
            let more = self.source.get_while(2, OCTDIGITS)?;
            let text = format!("{c}{more}");
            let value = parse_octal(&text);
            if value > 0o377 {
                return Err(self.error(
                    format!("octal escape value \\{text} outside of range 0-0o377"),
                    text.chars().count() + 1,
                ));
            }
            return Ok(Escape::Literal(value));
        }
        if c.is_ascii_alphanumeric() {
            return Err(self.error(format!("bad escape \\{c}"), 2));
        }
        Ok(Escape::Literal(c as u32))
    }

    /// `_escape`: an escape outside `[...]`.
    fn escape(&mut self, c: char) -> Result<Escape> {
        match c {
            'A' => return Ok(Escape::At(At::BeginningString)),
            'b' => return Ok(Escape::At(At::Boundary)),
            'B' => return Ok(Escape::At(At::NonBoundary)),
            'Z' => return Ok(Escape::At(At::EndString)),
            _ => {}
        }
        if let Some(category) = category_escape(c) {
            return Ok(Escape::Category(category));
        }
        if let Some(value) = simple_escape(c, false) {
            return Ok(Escape::Literal(value));
        }
        if let Some(value) = self.numeric_escape(c)? {
            return Ok(Escape::Literal(value));
        }
        if c == '0' {
            let more = self.source.get_while(2, OCTDIGITS)?;
            return Ok(Escape::Literal(parse_octal(&format!("0{more}"))));
        }
        if c.is_ascii_digit() {
            let mut text = c.to_string();
            if let Some(Token::Char(d)) = self.source.next
                && d.is_ascii_digit()
            {
                self.source.get()?;
                text.push(d);
                if OCTDIGITS.contains(c)
                    && OCTDIGITS.contains(d)
                    && self.source.next_is_in(OCTDIGITS)
                {
                    if let Some(Token::Char(e)) = self.source.get()? {
                        text.push(e);
                    }
                    let value = parse_octal(&text);
                    if value > 0o377 {
                        return Err(self.error(
                            format!("octal escape value \\{text} outside of range 0-0o377"),
                            text.len() + 1,
                        ));
                    }
                    return Ok(Escape::Literal(value));
                }
            }
            let group: usize = text.parse().unwrap_or(usize::MAX);
            if group < self.state.groups() {
                if !self.state.check_group(group) {
                    return Err(self.error("cannot refer to an open group", text.len() + 1));
                }
                self.state.check_lookbehind_group(group, &self.source)?;
                return Ok(Escape::GroupRef(group));
            }
            return Err(self.error(format!("invalid group reference {group}"), text.len()));
        }
        if c.is_ascii_alphabetic() {
            return Err(self.error(format!("bad escape \\{c}"), 2));
        }
        Ok(Escape::Literal(c as u32))
    }

    /// `_parse_sub`: an alternation.
    fn parse_sub(&mut self, verbose: bool, nested: usize) -> Result<Vec<Node>> {
        // Every walk of the tree (and the engine's own parser) is recursive: bound the
        // depth so that no pattern can overflow a thread's stack.
        if nested > 2 * MAX_NESTING {
            return Err(PatternError::unsupported(format!(
                "more than {MAX_NESTING} nested groups"
            )));
        }
        let mut verbose = verbose;
        let mut items: Vec<Vec<Node>> = Vec::new();
        loop {
            let first = nested == 0 && items.is_empty();
            items.push(self.parse_sequence(verbose, nested + 1, first)?);
            if !self.source.matches('|')? {
                break;
            }
            if nested == 0 {
                verbose = self.state.flags.contains(Flags::VERBOSE);
            }
        }
        if items.len() == 1 {
            return Ok(items.pop().unwrap_or_default());
        }

        let mut sequence = Vec::new();
        // Move a prefix shared by every branch out of the branch.
        while let Some(prefix) = items[0].first().cloned() {
            let shared = items
                .iter()
                .all(|item| item.first().is_some_and(|head| head.same_leaf(&prefix)));
            if !shared {
                break;
            }
            for item in &mut items {
                item.remove(0);
            }
            sequence.push(prefix);
        }

        // Single characters and sets on every branch: use one set instead.
        let mut set = Vec::new();
        let all_single = items.iter().all(|item| {
            if item.len() != 1 {
                return false;
            }
            match &item[0] {
                Node::Literal(c) => {
                    set.push(SetItem::Literal(*c));
                    true
                }
                Node::In {
                    negate: false,
                    items,
                } => {
                    set.extend(items.iter().cloned());
                    true
                }
                _ => false,
            }
        });
        if all_single {
            sequence.push(Node::In {
                negate: false,
                items: uniq(set),
            });
            return Ok(sequence);
        }

        sequence.push(Node::Branch(items));
        Ok(sequence)
    }

    /// `_parse`: a sequence of items up to `|`, `)` or the end.
    fn parse_sequence(&mut self, verbose: bool, nested: usize, first: bool) -> Result<Vec<Node>> {
        let mut verbose = verbose;
        let mut sequence: Vec<Node> = Vec::new();
        while let Some(this) = self.source.next {
            if this.is_char_in("|)") {
                break;
            }
            self.source.get()?;

            if verbose {
                if this.is_char_in(VERBOSE_WHITESPACE) {
                    continue;
                }
                if this == Token::Char('#') {
                    loop {
                        match self.source.get()? {
                            None | Some(Token::Char('\n')) => break,
                            Some(_) => {}
                        }
                    }
                    continue;
                }
            }

            let c = match this {
                Token::Escape(c) => {
                    sequence.push(match self.escape(c)? {
                        Escape::Literal(value) => Node::Literal(value),
                        Escape::Category(category) => Node::In {
                            negate: false,
                            items: vec![SetItem::Category(category)],
                        },
                        Escape::At(at) => Node::At(at),
                        Escape::GroupRef(group) => Node::GroupRef(group),
                    });
                    continue;
                }
                Token::Char(c) if !SPECIAL_CHARS.contains(c) => {
                    sequence.push(Node::Literal(c as u32));
                    continue;
                }
                Token::Char(c) => c,
            };

            match c {
                '[' => {
                    let node = self.parse_set()?;
                    sequence.push(node);
                }
                c if REPEAT_CHARS.contains(c) => self.parse_repeat(c, &mut sequence)?,
                '.' => sequence.push(Node::Any),
                '(' => {
                    if let Some(node) = self.parse_group(&mut verbose, nested, first, &sequence)? {
                        sequence.push(node);
                    }
                }
                '^' => sequence.push(Node::At(At::Beginning)),
                '$' => sequence.push(Node::At(At::End)),
                other => sequence.push(Node::Literal(other as u32)),
            }
        }

        // Splice non-capturing groups without flags into this sequence.
        let plain_group = |node: &Node| matches!(node, Node::Group { index: None, add, del, .. } if add.is_empty() && del.is_empty());
        if !sequence.iter().any(plain_group) {
            return Ok(sequence);
        }
        let mut out = Vec::with_capacity(sequence.len());
        for node in sequence {
            match node {
                Node::Group {
                    index: None,
                    add,
                    del,
                    body,
                } if add.is_empty() && del.is_empty() => out.extend(body),
                node => out.push(node),
            }
        }
        Ok(out)
    }

    /// A `[...]` set; the opening bracket has been read.
    fn parse_set(&mut self) -> Result<Node> {
        let here = self.source.tell() - 1;
        let negate = self.source.matches('^')?;
        let mut set: Vec<SetItem> = Vec::new();
        loop {
            let Some(this) = self.source.get()? else {
                return Err(self.error("unterminated character set", self.source.tell() - here));
            };
            if this == Token::Char(']') && !set.is_empty() {
                break;
            }
            let code1 = match this {
                Token::Escape(c) => self.class_escape(c)?,
                Token::Char(c) => Escape::Literal(c as u32),
            };
            if self.source.matches('-')? {
                let Some(that) = self.source.get()? else {
                    return Err(self.error("unterminated character set", self.source.tell() - here));
                };
                if that == Token::Char(']') {
                    set.push(escape_to_set_item(code1));
                    set.push(SetItem::Literal('-' as u32));
                    break;
                }
                let code2 = match that {
                    Token::Escape(c) => self.class_escape(c)?,
                    Token::Char(c) => Escape::Literal(c as u32),
                };
                let bad_range = || {
                    self.error(
                        format!("bad character range {}-{}", this.text(), that.text()),
                        this.len() + 1 + that.len(),
                    )
                };
                match (code1, code2) {
                    (Escape::Literal(lo), Escape::Literal(hi)) => {
                        if hi < lo {
                            return Err(bad_range());
                        }
                        set.push(SetItem::Range(lo, hi));
                    }
                    _ => return Err(bad_range()),
                }
            } else {
                set.push(escape_to_set_item(code1));
            }
        }
        let set = uniq(set);
        if let [SetItem::Literal(c)] = set.as_slice() {
            return Ok(if negate {
                Node::NotLiteral(*c)
            } else {
                Node::Literal(*c)
            });
        }
        Ok(Node::In { negate, items: set })
    }

    /// A repeat (`*`, `+`, `?`, `{m,n}`) applied to the last item of `sequence`.
    fn parse_repeat(&mut self, c: char, sequence: &mut Vec<Node>) -> Result<()> {
        let here = self.source.tell();
        let (min, max) = match c {
            '?' => (0, 1),
            '*' => (0, MAXREPEAT),
            '+' => (1, MAXREPEAT),
            _ => {
                if self.source.next_is('}') {
                    sequence.push(Node::Literal('{' as u32));
                    return Ok(());
                }
                let mut lo = String::new();
                let mut hi = String::new();
                while let Some(Token::Char(d)) = self.source.next
                    && d.is_ascii_digit()
                {
                    lo.push(d);
                    self.source.get()?;
                }
                if self.source.matches(',')? {
                    while let Some(Token::Char(d)) = self.source.next
                        && d.is_ascii_digit()
                    {
                        hi.push(d);
                        self.source.get()?;
                    }
                } else {
                    hi.clone_from(&lo);
                }
                if !self.source.matches('}')? {
                    sequence.push(Node::Literal('{' as u32));
                    self.source.seek(here)?;
                    return Ok(());
                }
                let mut min = 0;
                let mut max = MAXREPEAT;
                if !lo.is_empty() {
                    min = repeat_count(&lo)?;
                }
                if !hi.is_empty() {
                    max = repeat_count(&hi)?;
                    if max < min {
                        return Err(self.error(
                            "min repeat greater than max repeat",
                            self.source.tell() - here,
                        ));
                    }
                }
                (min, max)
            }
        };
        let offset = self.source.tell() - here + 1;
        match sequence.last() {
            None | Some(Node::At(_)) => return Err(self.error("nothing to repeat", offset)),
            Some(Node::Repeat { .. }) => return Err(self.error("multiple repeat", offset)),
            Some(_) => {}
        }
        let body = match sequence.pop() {
            Some(Node::Group {
                index: None,
                add,
                del,
                body,
            }) if add.is_empty() && del.is_empty() => body,
            Some(node) => vec![node],
            None => Vec::new(),
        };
        let kind = if self.source.matches('?')? {
            RepeatKind::Lazy
        } else if self.source.matches('+')? {
            RepeatKind::Possessive
        } else {
            RepeatKind::Greedy
        };
        sequence.push(Node::Repeat {
            kind,
            min,
            max,
            body,
        });
        Ok(())
    }

    /// A group; the `(` has been read. Returns `None` for constructs that add no node
    /// (comments, global flags).
    fn parse_group(
        &mut self,
        verbose: &mut bool,
        nested: usize,
        first: bool,
        sequence: &[Node],
    ) -> Result<Option<Node>> {
        let start = self.source.tell() - 1;
        let mut capture = true;
        let mut atomic = false;
        let mut name: Option<String> = None;
        let mut add = Flags::empty();
        let mut del = Flags::empty();

        if self.source.matches('?')? {
            let Some(token) = self.source.get()? else {
                return Err(self.error("unexpected end of pattern", 0));
            };
            match token {
                Token::Char('P') => {
                    if self.source.matches('<')? {
                        let group_name = self.source.get_until('>', "group name")?;
                        self.source.check_group_name(&group_name, 1)?;
                        name = Some(group_name);
                    } else if self.source.matches('=')? {
                        let group_name = self.source.get_until(')', "group name")?;
                        self.source.check_group_name(&group_name, 1)?;
                        let offset = group_name.chars().count() + 1;
                        let Some(&gid) = self.state.group_dict.get(&group_name) else {
                            return Err(self.error(
                                format!("unknown group name {}", py_repr(&group_name)),
                                offset,
                            ));
                        };
                        if !self.state.check_group(gid) {
                            return Err(self.error("cannot refer to an open group", offset));
                        }
                        self.state.check_lookbehind_group(gid, &self.source)?;
                        return Ok(Some(Node::GroupRef(gid)));
                    } else {
                        let Some(next) = self.source.get()? else {
                            return Err(self.error("unexpected end of pattern", 0));
                        };
                        return Err(self.error(
                            format!("unknown extension ?P{}", next.text()),
                            next.len() + 2,
                        ));
                    }
                }
                Token::Char(':') => capture = false,
                Token::Char('#') => {
                    loop {
                        if self.source.next.is_none() {
                            return Err(self.error(
                                "missing ), unterminated comment",
                                self.source.tell() - start,
                            ));
                        }
                        if self.source.get()? == Some(Token::Char(')')) {
                            break;
                        }
                    }
                    return Ok(None);
                }
                Token::Char(c @ ('=' | '!' | '<')) => {
                    let mut kind = c;
                    let mut behind = false;
                    let mut outer_lookbehind = None;
                    if c == '<' {
                        let Some(next) = self.source.get()? else {
                            return Err(self.error("unexpected end of pattern", 0));
                        };
                        match next {
                            Token::Char(k @ ('=' | '!')) => kind = k,
                            other => {
                                return Err(self.error(
                                    format!("unknown extension ?<{}", other.text()),
                                    other.len() + 2,
                                ));
                            }
                        }
                        behind = true;
                        outer_lookbehind = Some(self.state.lookbehind_groups);
                        if self.state.lookbehind_groups.is_none() {
                            self.state.lookbehind_groups = Some(self.state.groups());
                        }
                    }
                    let body = self.parse_sub(*verbose, nested + 1)?;
                    if let Some(None) = outer_lookbehind {
                        self.state.lookbehind_groups = None;
                    }
                    if !self.source.matches(')')? {
                        return Err(self.error(
                            "missing ), unterminated subpattern",
                            self.source.tell() - start,
                        ));
                    }
                    return Ok(Some(Node::Assert {
                        negate: kind == '!',
                        behind,
                        body,
                    }));
                }
                Token::Char('(') => {
                    return self.parse_conditional(*verbose, nested, start).map(Some);
                }
                Token::Char('>') => {
                    capture = false;
                    atomic = true;
                }
                Token::Char(c) if c == '-' || Flags::from_letter(c).is_some() => {
                    match self.parse_flags(c)? {
                        None => {
                            if !first || !sequence.is_empty() {
                                return Err(self.error(
                                    "global flags not at the start of the expression",
                                    self.source.tell() - start,
                                ));
                            }
                            *verbose = self.state.flags.contains(Flags::VERBOSE);
                            return Ok(None);
                        }
                        Some((scoped_add, scoped_del)) => {
                            add = scoped_add;
                            del = scoped_del;
                            capture = false;
                        }
                    }
                }
                other => {
                    return Err(self.error(
                        format!("unknown extension ?{}", other.text()),
                        other.len() + 1,
                    ));
                }
            }
        }

        let group = if capture {
            let gid = self.state.groups();
            self.state.group_widths.push(None);
            if gid as u128 >= MAXGROUPS {
                return Err(self.error("too many groups", 0));
            }
            if let Some(group_name) = &name {
                if let Some(&old) = self.state.group_dict.get(group_name) {
                    return Err(self.error(
                        format!(
                            "redefinition of group name {} as group {gid}; was group {old}",
                            py_repr(group_name)
                        ),
                        group_name.chars().count() + 1,
                    ));
                }
                self.state.group_dict.insert(group_name.clone(), gid);
            }
            self.state.group_names.push(name);
            Some(gid)
        } else {
            None
        };
        let sub_verbose =
            (*verbose || add.contains(Flags::VERBOSE)) && !del.contains(Flags::VERBOSE);
        let body = self.parse_sub(sub_verbose, nested + 1)?;
        if !self.source.matches(')')? {
            return Err(self.error(
                "missing ), unterminated subpattern",
                self.source.tell() - start,
            ));
        }
        if let Some(gid) = group {
            let width = self.state.width(&body);
            self.state.group_widths[gid] = Some(width);
        }
        Ok(Some(if atomic {
            Node::Atomic(body)
        } else {
            Node::Group {
                index: group,
                add,
                del,
                body,
            }
        }))
    }

    /// `(?(group)yes|no)`; `(?(` has been read.
    fn parse_conditional(&mut self, verbose: bool, nested: usize, start: usize) -> Result<Node> {
        let condition = self.source.get_until(')', "group name")?;
        let offset = condition.chars().count() + 1;
        let group = if is_identifier(&condition) {
            match self.state.group_dict.get(&condition) {
                Some(&gid) => gid,
                None => {
                    return Err(self.error(
                        format!("unknown group name {}", py_repr(&condition)),
                        offset,
                    ));
                }
            }
        } else {
            let number = match py_int(&condition) {
                Some(number) if number >= 0 => number as u128,
                _ => {
                    return Err(self.error(
                        format!("bad character in group name {}", py_repr(&condition)),
                        offset,
                    ));
                }
            };
            if number == 0 {
                return Err(self.error("bad group number", offset));
            }
            if number >= MAXGROUPS {
                return Err(self.error(format!("invalid group reference {number}"), offset));
            }
            if !self
                .state
                .groupref_positions
                .iter()
                .any(|(group, _)| *group == number)
            {
                let position = self.source.tell() - offset;
                self.state.groupref_positions.push((number, position));
            }
            number as usize
        };
        self.state.check_lookbehind_group(group, &self.source)?;
        let yes = self.parse_sequence(verbose, nested + 1, false)?;
        let no = if self.source.matches('|')? {
            let no = self.parse_sequence(verbose, nested + 1, false)?;
            if self.source.next_is('|') {
                return Err(self.error("conditional backref with more than two branches", 0));
            }
            Some(no)
        } else {
            None
        };
        if !self.source.matches(')')? {
            return Err(self.error(
                "missing ), unterminated subpattern",
                self.source.tell() - start,
            ));
        }
        Ok(Node::GroupRefExists { group, yes, no })
    }

    /// `_parse_flags`: `None` for global flags `(?aiLmsux)`, else the scoped (add, del) pair.
    fn parse_flags(&mut self, first: char) -> Result<Option<(Flags, Flags)>> {
        let mut add = Flags::empty();
        let mut del = Flags::empty();
        let mut token = Token::Char(first);
        if first != '-' {
            while let Token::Char(letter) = token {
                let Some(flag) = Flags::from_letter(letter) else {
                    break;
                };
                if letter == 'L' {
                    return Err(self.error(
                        "bad inline flags: cannot use 'L' flag with a str pattern",
                        0,
                    ));
                }
                add = add.union(flag);
                if flag.intersects(Flags::TYPE_FLAGS) && Flags(add.0 & Flags::TYPE_FLAGS.0) != flag
                {
                    return Err(self.error(
                        "bad inline flags: flags 'a', 'u' and 'L' are incompatible",
                        0,
                    ));
                }
                let Some(next) = self.source.get()? else {
                    return Err(self.error("missing -, : or )", 0));
                };
                token = next;
                if token.is_char_in(")-:") {
                    break;
                }
                if !matches!(token, Token::Char(c) if Flags::from_letter(c).is_some()) {
                    let message = if token.is_alpha() {
                        "unknown flag"
                    } else {
                        "missing -, : or )"
                    };
                    return Err(self.error(message, token.len()));
                }
            }
        }
        if token == Token::Char(')') {
            self.state.flags = self.state.flags.union(add);
            return Ok(None);
        }
        if add.intersects(Flags::GLOBAL_FLAGS) {
            return Err(self.error("bad inline flags: cannot turn on global flag", 1));
        }
        if token == Token::Char('-') {
            let Some(next) = self.source.get()? else {
                return Err(self.error("missing flag", 0));
            };
            token = next;
            loop {
                let flag = match token {
                    Token::Char(c) => Flags::from_letter(c),
                    Token::Escape(_) => None,
                };
                let Some(flag) = flag else {
                    let message = if token.is_alpha() {
                        "unknown flag"
                    } else if del.is_empty() {
                        "missing flag"
                    } else {
                        "missing :"
                    };
                    return Err(self.error(message, token.len()));
                };
                if flag.intersects(Flags::TYPE_FLAGS) {
                    return Err(self.error(
                        "bad inline flags: cannot turn off flags 'a', 'u' and 'L'",
                        0,
                    ));
                }
                del = del.union(flag);
                let Some(next) = self.source.get()? else {
                    return Err(self.error("missing :", 0));
                };
                token = next;
                if token == Token::Char(':') {
                    break;
                }
            }
        }
        if del.intersects(Flags::GLOBAL_FLAGS) {
            return Err(self.error("bad inline flags: cannot turn off global flag", 1));
        }
        if add.intersects(del) {
            return Err(self.error("bad inline flags: flag turned on and off", 1));
        }
        Ok(Some((add, del)))
    }
}

fn escape_to_set_item(escape: Escape) -> SetItem {
    match escape {
        Escape::Literal(value) => SetItem::Literal(value),
        Escape::Category(category) => SetItem::Category(category),
        // Class escapes never produce anchors or group references.
        Escape::At(_) | Escape::GroupRef(_) => SetItem::Literal(0),
    }
}

/// `ESCAPES`: `\a \b \f \n \r \t \v \\`; `\b` is a backspace only inside a set.
fn simple_escape(c: char, in_set: bool) -> Option<u32> {
    Some(match c {
        'a' => 7,
        'b' if in_set => 8,
        'f' => 12,
        'n' => 10,
        'r' => 13,
        't' => 9,
        'v' => 11,
        '\\' => '\\' as u32,
        _ => return None,
    })
}

fn category_escape(c: char) -> Option<Category> {
    Some(match c {
        'd' => Category::Digit,
        'D' => Category::NotDigit,
        's' => Category::Space,
        'S' => Category::NotSpace,
        'w' => Category::Word,
        'W' => Category::NotWord,
        _ => return None,
    })
}

/// Search for anchors the way StackStorm's `search_regex_tokens` does: recurse into groups,
/// look only at the **second** branch of an alternation, and ignore repeats, look-arounds,
/// atomic groups and conditionals.
pub(crate) fn has_anchor(nodes: &[Node], wanted: &[At]) -> bool {
    nodes.iter().any(|node| match node {
        Node::Group { body, .. } => has_anchor(body, wanted),
        Node::Branch(items) => items.get(1).is_some_and(|item| has_anchor(item, wanted)),
        Node::At(at) => wanted.contains(at),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(pattern: &str) -> String {
        match parse(pattern, Flags::DOTALL) {
            Ok(parsed) => panic!("{pattern:?} parsed: {parsed:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn reproduces_python_error_messages() {
        assert_eq!(error_of("*x"), "nothing to repeat at position 0");
        assert_eq!(
            error_of("run (test"),
            "missing ), unterminated subpattern at position 4"
        );
        assert_eq!(
            error_of("^(?i)x"),
            "global flags not at the start of the expression at position 1"
        );
        assert_eq!(
            error_of("(?P<a-b>x)"),
            "bad character in group name 'a-b' at position 4"
        );
        assert_eq!(error_of("a??+"), "multiple repeat at position 3");
        assert_eq!(
            error_of("(?<=a+)b"),
            "look-behind requires fixed-width pattern"
        );
        assert_eq!(error_of("a)"), "unbalanced parenthesis at position 1");
        assert_eq!(error_of("\\q"), "bad escape \\q at position 0");
        assert_eq!(error_of("a\\"), "bad escape (end of pattern) at position 1");
        assert_eq!(
            error_of("(?P<a>x)(?P<a>y)"),
            "redefinition of group name 'a' as group 2; was group 1 at position 12"
        );
        assert_eq!(
            error_of("x{3,2}"),
            "min repeat greater than max repeat at position 2"
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let worker = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(|| {
                let deep = format!(
                    "{}x{}",
                    "(".repeat(MAX_NESTING - 10),
                    ")".repeat(MAX_NESTING - 10)
                );
                let shallow_enough = parse(&deep, Flags::DOTALL).is_ok();
                let absurd = format!("{}x{}", "(?:".repeat(100_000), ")".repeat(100_000));
                let refused = parse(&absurd, Flags::DOTALL)
                    .map(|_| ())
                    .map_err(|e| e.to_string());
                (shallow_enough, refused)
            })
            .expect("thread");
        let (shallow_enough, refused) = worker.join().expect("no stack overflow");
        assert!(shallow_enough);
        assert_eq!(
            refused,
            Err(format!("more than {MAX_NESTING} nested groups"))
        );
    }

    #[test]
    fn factors_alternations_like_python() {
        let parsed = parse("^a|^b", Flags::DOTALL).expect("valid");
        assert!(matches!(
            parsed.nodes.as_slice(),
            [Node::At(At::Beginning), Node::In { .. }]
        ));
        let parsed = parse("deploy x|release y", Flags::DOTALL).expect("valid");
        assert!(matches!(parsed.nodes.as_slice(), [Node::Branch(_)]));
        let parsed = parse("(?:ab)", Flags::DOTALL).expect("valid");
        assert!(matches!(
            parsed.nodes.as_slice(),
            [Node::Literal(_), Node::Literal(_)]
        ));
    }

    #[test]
    fn anchor_search_only_sees_the_second_branch() {
        let wanted = [At::Beginning, At::BeginningString];
        let nodes = parse("(?:\\b|^)fixes", Flags::DOTALL).expect("valid").nodes;
        assert!(has_anchor(&nodes, &wanted));
        let nodes = parse("(?:^|\\b)fixes", Flags::DOTALL).expect("valid").nodes;
        assert!(!has_anchor(&nodes, &wanted));
        let nodes = parse("(?:^)?x", Flags::DOTALL).expect("valid").nodes;
        assert!(!has_anchor(&nodes, &wanted));
    }

    #[test]
    fn braces_that_are_not_repeats_are_literals() {
        let parsed = parse("a{x} {,} {}", Flags::DOTALL).expect("valid");
        assert!(
            parsed
                .nodes
                .iter()
                .all(|n| matches!(n, Node::Literal(_) | Node::Repeat { .. }))
        );
        assert_eq!(parse("a{,3}", Flags::DOTALL).expect("valid").nodes.len(), 1);
    }
}
