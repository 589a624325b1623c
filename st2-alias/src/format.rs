//! StackStorm's alias format parser (`ActionAliasFormatParser` and `extract_parameters` in
//! `st2common/models/utils/action_alias_utils.py`), reproduced step by step:
//!
//! 1. trailing `key=value` extras are found with StackStorm's own regex, cut out of the
//!    command with a plain replace of every occurrence, and the rest is padded with one space
//!    on each side ([`PreparedCommand`]);
//! 2. `{{name=default}}` and `{{name}}` in the format are rewritten into named groups with
//!    StackStorm's substitution regexes, and `^\s*` / `\s*$` are added unless the parse tree
//!    already has such anchors where StackStorm looks for them ([`CompiledFormat`]);
//! 3. the result is searched in the padded command; named groups, defaults and extras are
//!    combined into [`Params`] with StackStorm's precedence and error messages.
//!
//! The fixed regexes StackStorm uses for steps 1 and 2 run on the same Python-`re` engine as
//! the formats, so their corner cases (non-greedy keys, `$` before a final newline, `.`
//! without `DOTALL` in the substitutions) come out the same.

use std::sync::OnceLock;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::pyre::parse::{self, At, Node};
use crate::pyre::translate::DollarMode;
use crate::pyre::{Flags, PatternError, PyRegex, SearchError, Spans, TemplatePiece};
use crate::unicode;

/// Why parameters could not be extracted. Each variant's `Display` is the text StackStorm
/// puts in its exception (and so in the API's `faultstring`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    /// StackStorm's `ParseException`: `Command "…" doesn't match format string "…"`, or
    /// `No value supplied and no default value found.`. The message is StackStorm's exactly.
    /// In alias matching this only means "no match".
    #[error("{0}")]
    Parse(String),
    /// The format cannot be used: after StackStorm's rewriting it is not a valid Python
    /// regular expression (Python's `re.error`; the text mimics Python's but positions may
    /// differ), it needs something this crate's regex engine lacks, or it trips a StackStorm
    /// defect (a `KeyError` for a default-valued parameter written across lines). StackStorm
    /// fails the whole call in all these cases.
    #[error("{0}")]
    InvalidFormat(String),
    /// The regex engine stopped at its backtracking limit (pathological format and command).
    /// Python has no such limit and would eventually answer.
    #[error("matching the command gave up: {0}")]
    MatchLimit(String),
    /// `match_and_execute` refused the chosen representation (Python `ValueError`, HTTP 500):
    /// it is not among the alias's format strings, which happens when `representation` is a
    /// plain string instead of a list.
    #[error("Format string \"{format}\" is not available on the alias \"{alias}\"")]
    FormatNotAvailable {
        /// The representation that was chosen.
        format: String,
        /// The alias's `name`.
        alias: String,
    },
    /// `match_and_execute` failed with `KeyError: 'match_multiple'` (HTTP 500): the chosen
    /// pattern came from a display-only format object.
    #[error("'match_multiple'")]
    MissingMatchMultiple,
    /// `match_and_execute` looked the alias up by name, found a disabled alias of that name
    /// first, and refused (HTTP 400).
    #[error("Action alias with name \"{0}\" is disabled.")]
    AliasDisabled(String),
}

impl From<SearchError> for ExtractError {
    fn from(error: SearchError) -> Self {
        match error {
            SearchError::Limit(message) => ExtractError::MatchLimit(message),
            SearchError::Engine(message) => ExtractError::InvalidFormat(message),
        }
    }
}

/// Extracted parameters: StackStorm's result dict, in Python's key order (the format's named
/// groups in group order, then extras). A value of `None` is Python's `None`: a named group
/// that did not take part in the match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, Option<String>)>);

impl Params {
    /// Creates parameters from ordered pairs (later duplicates overwrite earlier ones in place,
    /// as assigning into a Python dict does).
    pub fn from_pairs<K: Into<String>, V: Into<Option<String>>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Params {
        let mut params = Params::default();
        for (key, value) in pairs {
            params.set(key.into(), value.into());
        }
        params
    }

    /// Python's `d[key] = value`: replaces in place, or appends.
    fn set(&mut self, key: String, value: Option<String>) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// The value of `key`: `None` if absent, `Some(None)` if present but null.
    pub fn get(&self, key: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_deref())
    }

    /// The parameters in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_deref()))
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The ordered pairs.
    pub fn into_vec(self) -> Vec<(String, Option<String>)> {
        self.0
    }
}

impl Serialize for Params {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// Deserializes a JSON object keeping its key order.
impl<'de> Deserialize<'de> for Params {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ParamsVisitor;
        impl<'de> Visitor<'de> for ParamsVisitor {
            type Value = Params;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of string or null values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Params, A::Error> {
                let mut params = Params::default();
                while let Some((key, value)) = map.next_entry::<String, Option<String>>()? {
                    params.set(key, value);
                }
                Ok(params)
            }
        }
        deserializer.deserialize_map(ParamsVisitor)
    }
}

/// StackStorm's fixed regexes, compiled once.
struct Snippets {
    /// `.*?(({pairs}\s*)*)$`, applied with `re.match`.
    ending: PyRegex,
    /// `(?:^|\s+)\s*(\S+?)\s*=(value)`.
    pairs: PyRegex,
    /// `{{key = default}}`, applied with `re.findall(..., re.DOTALL)`.
    optional: PyRegex,
    /// `(\s*){{key = default}}`, applied with `re.sub` (no flags).
    optional_sub: PyRegex,
    /// `(\s*){{key}}`, applied with `re.sub` (no flags).
    required_sub: PyRegex,
}

const KEY: &str = r"\s*(\S+?)\s*";
const VALUE: &str = r#"""|''|"(.+?)"|'(.+?)'|({.+?})|(\S+)"#;
const EXT_VALUE: &str = r#"""|''|"(.+?)"|'(.+?)'|({.+?})|(.+?)"#;
/// What a parameter becomes (the text after `\1` in StackStorm's replacement).
const PARAM_MATCH_HEAD: &str = r#"["\']?(?P<"#;
const PARAM_MATCH_TAIL: &str = r#">(?:(?<=\').+?(?=\')|(?<=").+?(?=")|{.+?}|.+?))["\']?"#;
/// [`PARAM_MATCH_TAIL`] with the parameter's body reduced to `.+?`, for
/// [`CompiledFormat::verdict`]. The real body is a fixed, valid pattern that refers to no
/// group and has the same widths (1 to unbounded) and no top-level literal, and the text
/// around it is the same, so a pattern built with this tail has the same groups, anchors,
/// widths and top-level literals as the real one and is rejected exactly when the real one
/// is; it is about half as long to parse. Not inside a comment group: see [`verdict_tail`].
const PARAM_MATCH_TAIL_FOR_VERDICT: &str = r#">.+?)["\']?"#;

/// The parameter tail [`CompiledFormat::verdict`] may build `format` with. A comment group
/// `(?#…)` ends at the first `)`, so one left open before a parameter ends inside the tail,
/// and the rest of the two tails differs (the real one is left unbalanced): such a format
/// takes the real tail (found by the `alias_format` fuzz target).
fn verdict_tail(format: &str) -> &'static str {
    if format.contains("(?#") {
        PARAM_MATCH_TAIL
    } else {
        PARAM_MATCH_TAIL_FOR_VERDICT
    }
}

fn snippets() -> &'static Result<Snippets, PatternError> {
    static SNIPPETS: OnceLock<Result<Snippets, PatternError>> = OnceLock::new();
    SNIPPETS.get_or_init(|| {
        let pairs = format!(r"(?:^|\s+){KEY}=({VALUE})");
        let ending = format!(r"\A(?:.*?(({pairs}\s*)*)$)");
        let default = format!(r"\s*=\s*(?:{EXT_VALUE})\s*");
        let optional = format!("{{{{{KEY}{default}}}}}");
        let required = format!("{{{{{KEY}}}}}");
        Ok(Snippets {
            ending: PyRegex::compile(&ending, Flags::DOTALL, DollarMode::ConsumeFinalNewlineAtEnd)?,
            pairs: PyRegex::compile(&pairs, Flags::DOTALL, DollarMode::BeforeFinalNewline)?,
            optional: PyRegex::compile(&optional, Flags::DOTALL, DollarMode::BeforeFinalNewline)?,
            optional_sub: PyRegex::compile(
                &format!(r"(\s*){optional}"),
                Flags::empty(),
                DollarMode::BeforeFinalNewline,
            )?,
            required_sub: PyRegex::compile(
                &format!(r"(\s*){required}"),
                Flags::empty(),
                DollarMode::BeforeFinalNewline,
            )?,
        })
    })
}

fn snippets_or_error() -> Result<&'static Snippets, ExtractError> {
    snippets()
        .as_ref()
        .map_err(|error| ExtractError::InvalidFormat(format!("internal pattern error: {error}")))
}

/// Concatenation of the groups `from..=to` of a match, unmatched ones as `""` (what
/// `"".join(tuple[from:])` gives on a `re.findall` tuple).
fn joined(spans: &Spans, subject: &str, groups: std::ops::RangeInclusive<usize>) -> String {
    groups
        .filter_map(|group| spans.text(subject, group))
        .collect()
}

/// A command after StackStorm's preprocessing: the extras and the padded stream the format
/// regex is searched in. It depends only on the command, so one preparation serves every
/// format tried.
#[derive(Clone, Debug)]
pub struct PreparedCommand {
    original: String,
    extras: Vec<(String, String)>,
    stream: String,
}

impl PreparedCommand {
    /// Runs StackStorm's `match_kv_pairs_at_end` on `command`.
    pub fn new(command: &str) -> Result<PreparedCommand, ExtractError> {
        let snippets = snippets_or_error()?;
        let mut extras = Vec::new();
        let mut stream = command.to_owned();
        if let Some(spans) = snippets.ending.search(command, 0)?
            && let Some(suffix) = spans.text(command, 1)
            && !suffix.is_empty()
        {
            for pair in snippets.pairs.finditer(suffix)? {
                let key = pair.text(suffix, 1).unwrap_or("").to_owned();
                extras.push((key, joined(&pair, suffix, 3..=6)));
            }
            stream = command.replace(suffix, "");
        }
        Ok(PreparedCommand {
            original: command.to_owned(),
            extras,
            stream: format!(" {stream} "),
        })
    }

    /// The command as given.
    pub fn command(&self) -> &str {
        &self.original
    }

    /// The trailing `key=value` extras, in order (duplicates kept; the last one wins).
    pub fn extras(&self) -> &[(String, String)] {
        &self.extras
    }

    /// The text the format regex is searched in: the command without its extras, padded
    /// with one space on each side.
    pub fn stream(&self) -> &str {
        &self.stream
    }
}

/// Whether `rewritten` (a format with its parameters substituted) certainly parses to no
/// anchor (`^`, `$`, `\A`, `\Z`), and is valid exactly when `^\s*rewritten\s*$` is: it does
/// not start with a repeat (after `\s*`, a leading `?` would become a lazy quantifier) nor
/// end with a backslash (which would escape the appended `\s`). Any other invalid pattern
/// stays invalid with text around it.
fn anchors_cannot_matter(rewritten: &str) -> bool {
    !rewritten.contains(['^', '$'])
        && !rewritten.contains("\\A")
        && !rewritten.contains("\\Z")
        && !rewritten.starts_with(['*', '+', '?', '{'])
        && !rewritten.ends_with('\\')
}

/// One alias format compiled the way StackStorm compiles it.
#[derive(Debug)]
pub struct CompiledFormat {
    format: String,
    /// `(name, default)` for each `{{name=default}}`, in order.
    optional: Vec<(String, String)>,
    compiled: Result<PyRegex, String>,
}

impl CompiledFormat {
    /// Compiles `format`. Never fails: a format StackStorm would reject is remembered and
    /// reported by [`CompiledFormat::extract`].
    pub fn new(format: &str) -> CompiledFormat {
        let (optional, compiled) = match Self::build(format) {
            Ok((optional, regex)) => (optional, Ok(regex)),
            Err(reason) => (Vec::new(), Err(reason)),
        };
        CompiledFormat {
            format: format.to_owned(),
            optional,
            compiled,
        }
    }

    fn build(format: &str) -> Result<(Vec<(String, String)>, PyRegex), String> {
        Self::build_with(format, true, PARAM_MATCH_TAIL)
    }

    /// What an index keeps of a format it has not compiled: the prefilter condition and
    /// the reason StackStorm would reject it, if it would. The same as
    /// `CompiledFormat::new(format)`'s [`requirement`](Self::requirement) and
    /// [`invalid_reason`](Self::invalid_reason) (the tests compare them), found from a
    /// format's text when it is plain (see [`plain_verdict`]), otherwise from a pattern with
    /// the parameters' bodies simplified (see [`PARAM_MATCH_TAIL_FOR_VERDICT`]): parsing the
    /// real bodies was most of the time a 10,000-alias catalogue took to load.
    /// A rejected format is built again the real way, for the error message StackStorm
    /// gives (it names positions).
    pub(crate) fn verdict(format: &str) -> (Requirement, Option<Box<str>>) {
        if let Some(requirement) = plain_verdict(format) {
            return (requirement, None);
        }
        match Self::build_with(format, true, verdict_tail(format)) {
            Ok((_, regex)) => (requirement_of(&regex), None),
            Err(_) => (
                Requirement::None,
                CompiledFormat::new(format).invalid_reason().map(Box::from),
            ),
        }
    }

    /// StackStorm's rewriting of a format into its regex text: the `(name, default)` of
    /// each optional parameter, and the format with each `{{name=default}}` and `{{name}}`
    /// replaced by its sub-pattern (ending in `param_tail`). Both optional-parameter
    /// patterns need a literal `=` and the required one a literal `{{`, so a text without
    /// them comes out of that scan unchanged and the scan is skipped (unless `scan_always`,
    /// for the tests): most formats have no default.
    fn rewrite(
        format: &str,
        param_tail: &str,
        scan_always: bool,
    ) -> Result<(Vec<(String, String)>, String), String> {
        let snippets = snippets().as_ref().map_err(|e| e.to_string())?;
        let aborted = |error: SearchError| error.to_string();
        let has_defaults = scan_always || format.contains('=');

        let mut optional = Vec::new();
        if has_defaults {
            for spans in snippets.optional.finditer(format).map_err(aborted)? {
                optional.push((
                    spans.text(format, 1).unwrap_or("").to_owned(),
                    joined(&spans, format, 2..=5),
                ));
            }
        }

        let optional_template = [
            TemplatePiece::Text("(?:"),
            TemplatePiece::Group(1),
            TemplatePiece::Text(PARAM_MATCH_HEAD),
            TemplatePiece::Group(2),
            TemplatePiece::Text(param_tail),
            TemplatePiece::Text(")?"),
        ];
        let required_template = [
            TemplatePiece::Group(1),
            TemplatePiece::Text(PARAM_MATCH_HEAD),
            TemplatePiece::Group(2),
            TemplatePiece::Text(param_tail),
        ];
        let rewritten = if has_defaults {
            snippets
                .optional_sub
                .sub(format, &optional_template)
                .map_err(aborted)?
        } else {
            format.to_owned()
        };
        let rewritten = if scan_always || rewritten.contains("{{") {
            snippets
                .required_sub
                .sub(&rewritten, &required_template)
                .map_err(aborted)?
        } else {
            rewritten
        };
        Ok((optional, rewritten))
    }

    /// [`CompiledFormat::build`]; `skip_anchor_parse` allows the shortcut of
    /// [`anchors_cannot_matter`] (the tests compare both ways); `param_tail` is
    /// [`PARAM_MATCH_TAIL`] except for [`CompiledFormat::verdict`].
    fn build_with(
        format: &str,
        skip_anchor_parse: bool,
        param_tail: &str,
    ) -> Result<(Vec<(String, String)>, PyRegex), String> {
        let (optional, rewritten) = Self::rewrite(format, param_tail, false)?;

        // `rewritten` is parsed on its own only to find its anchors, and for the error Python
        // reports when it is invalid. When it can hold no anchor and the anchored pattern
        // parses, that parse would succeed and find none, so it is skipped: it was half the
        // cost of loading a catalogue.
        if skip_anchor_parse
            && anchors_cannot_matter(&rewritten)
            && let Ok(regex) = PyRegex::parse(
                &format!(r"^\s*{rewritten}\s*$"),
                Flags::DOTALL,
                DollarMode::EndOfText,
            )
        {
            return Ok((optional, regex));
        }
        let tokens = parse::parse_only(&rewritten, Flags::DOTALL).map_err(|e| e.to_string())?;
        let has_begin = parse::has_anchor(&tokens.nodes, &[At::Beginning, At::BeginningString]);
        let has_end = parse::has_anchor(&tokens.nodes, &[At::End, At::EndString]);
        let full = format!(
            "{}{rewritten}{}",
            if has_begin { "" } else { r"^\s*" },
            if has_end { "" } else { r"\s*$" }
        );
        // The stream always ends with a space, so Python's `$` is the end of the text.
        let regex = PyRegex::parse(&full, Flags::DOTALL, DollarMode::EndOfText)
            .map_err(|e| e.to_string())?;
        Ok((optional, regex))
    }

    /// The format as written.
    pub fn format(&self) -> &str {
        &self.format
    }

    /// The reason StackStorm would reject this format, if it would.
    pub fn invalid_reason(&self) -> Option<&str> {
        self.compiled.as_ref().err().map(String::as_str)
    }

    /// The parse tree of the final regex (the tests compare prefilters through it).
    #[cfg(test)]
    pub(crate) fn regex(&self) -> Option<&PyRegex> {
        self.compiled.as_ref().ok()
    }

    /// `extract_parameters(format, command, match_multiple)` on a prepared command: one dict,
    /// or (`match_multiple`) one per non-overlapping match, possibly none.
    pub fn extract(
        &self,
        command: &PreparedCommand,
        match_multiple: bool,
    ) -> Result<Vec<Params>, ExtractError> {
        let regex = self
            .compiled
            .as_ref()
            .map_err(|reason| ExtractError::InvalidFormat(reason.clone()))?;
        if match_multiple {
            regex
                .finditer(&command.stream)?
                .iter()
                .map(|spans| self.params_from_match(regex, Some(spans), command))
                .collect()
        } else {
            let spans = regex.search(&command.stream, 0)?;
            Ok(vec![self.params_from_match(
                regex,
                spans.as_ref(),
                command,
            )?])
        }
    }

    /// Whether the command matches (an extraction that raises no `ParseException`).
    pub(crate) fn extract_one(&self, command: &PreparedCommand) -> Result<Params, ExtractError> {
        let mut all = self.extract(command, false)?;
        Ok(all.pop().unwrap_or_default())
    }

    /// `match_params_in_stream`.
    fn params_from_match(
        &self,
        regex: &PyRegex,
        spans: Option<&Spans>,
        command: &PreparedCommand,
    ) -> Result<Params, ExtractError> {
        let Some(spans) = spans else {
            return Err(ExtractError::Parse(format!(
                "Command \"{}\" doesn't match format string \"{}\"",
                command.original, self.format
            )));
        };
        let mut result = Params(
            regex
                .named_groups()
                .map(|(name, group)| {
                    (
                        name.to_owned(),
                        spans.text(&command.stream, group).map(str::to_owned),
                    )
                })
                .collect(),
        );
        for (name, default) in &self.optional {
            let Some(matched) = result.get(name) else {
                return Err(ExtractError::InvalidFormat(format!(
                    "KeyError: {} (StackStorm finds this default-valued parameter but does not \
                     turn it into a group)",
                    parse::py_repr(name)
                )));
            };
            let value = match matched {
                Some(value) if !value.is_empty() => value.to_owned(),
                _ => default.clone(),
            };
            result.set(name.clone(), Some(value));
        }
        for (key, value) in &command.extras {
            result.set(key.clone(), Some(value.clone()));
        }
        let any_value = result
            .0
            .iter()
            .any(|(_, v)| v.as_deref().is_some_and(|v| !v.is_empty()));
        if !self.format.is_empty() && unicode::py_strip(&command.stream).is_empty() && !any_value {
            return Err(ExtractError::Parse(
                "No value supplied and no default value found.".to_owned(),
            ));
        }
        Ok(result)
    }
}

/// StackStorm's `extract_parameters(format_str, param_stream, match_multiple)`.
///
/// Returns one parameter set, or with `match_multiple` one per non-overlapping match of the
/// format in the command (an empty list when nothing matches). Errors carry StackStorm's
/// messages; see [`ExtractError`].
///
/// ```
/// use st2_alias::extract_parameters;
///
/// let params = extract_parameters("run {{cmd}} on {{hosts}}", "run date on web1 timeout=60", false)
///     .unwrap();
/// let pairs: Vec<_> = params[0].iter().collect();
/// assert_eq!(
///     pairs,
///     [("cmd", Some("date")), ("hosts", Some("web1")), ("timeout", Some("60"))]
/// );
/// ```
pub fn extract_parameters(
    format: &str,
    command: &str,
    match_multiple: bool,
) -> Result<Vec<Params>, ExtractError> {
    let prepared = PreparedCommand::new(command)?;
    CompiledFormat::new(format).extract(&prepared, match_multiple)
}

/// What a compiled format guarantees about where a match can start, for prefiltering. Every
/// variant is a necessary condition for a match, derived from the final regex's parse tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Requirement {
    /// The stream, after skipping leading Python whitespace if `skip_space`, starts with
    /// `prefix`.
    Prefix { skip_space: bool, prefix: String },
    /// The stream contains `text` somewhere.
    Contains(String),
    /// Nothing cheap is known.
    None,
}

/// Longest prefix taken from a format's literal text (longer ones add little selectivity).
const MAX_PREFIX_CHARS: usize = 24;

#[cfg(test)]
impl CompiledFormat {
    /// The cheapest necessary condition this format puts on a stream (the index gets it
    /// from [`CompiledFormat::verdict`]; the tests compare both).
    pub(crate) fn requirement(&self) -> Requirement {
        self.regex().map_or(Requirement::None, requirement_of)
    }
}

/// The prefilter condition of a valid format's final regex (see [`Requirement`]).
fn requirement_of(regex: &PyRegex) -> Requirement {
    let parsed = regex.parsed();
    let flags = parsed.flags;
    if flags.contains(Flags::IGNORECASE) {
        return Requirement::None;
    }
    // `\A`, or `^` when not multi-line, first; only Unicode patterns (Python's `\s` is
    // Unicode's there, which is what the index skips).
    let anchor_usable = flags.contains(Flags::UNICODE);
    let items = parsed.nodes.iter().enumerate().map(|(i, node)| match node {
        Node::Literal(c) => char::from_u32(*c).map_or(TopItem::Other, TopItem::Literal),
        Node::At(At::BeginningString) if i == 0 && anchor_usable => TopItem::StartAnchor,
        Node::At(At::Beginning) if i == 0 && anchor_usable && !flags.contains(Flags::MULTILINE) => {
            TopItem::StartAnchor
        }
        node if is_space_repeat(node) => TopItem::SpaceRepeat,
        _ => TopItem::Other,
    });
    requirement_from(items)
}

/// A top-level item of a final regex, as far as [`Requirement`] looks at it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TopItem {
    /// The first item, `\A` or a `^` that only matches at the start (see [`requirement_of`]).
    StartAnchor,
    /// A literal character.
    Literal(char),
    /// A repeat of exactly Python's Unicode `\s`.
    SpaceRepeat,
    /// Anything else.
    Other,
}

/// The prefilter condition of a regex whose top level is `items`: the one rule shared by
/// [`requirement_of`] (from a parse tree) and [`plain_verdict`] (from a format's text).
fn requirement_from<I>(items: I) -> Requirement
where
    I: Iterator<Item = TopItem> + Clone,
{
    // The longest run of top-level literals must appear somewhere.
    let mut best = String::new();
    let mut current = String::new();
    for item in items.clone() {
        match item {
            TopItem::Literal(c) => current.push(c),
            _ => {
                if current.len() > best.len() {
                    best = std::mem::take(&mut current);
                }
                current.clear();
            }
        }
    }
    if current.len() > best.len() {
        best = current;
    }

    // The start anchor, then any `\s` repeats, then literals: used unless a longer literal
    // is required elsewhere (`deploy {{app}} on web1` shares `deploy ` with every deploy
    // format, but few formats need ` on web1`).
    let mut rest = items.peekable();
    if rest.next_if_eq(&TopItem::StartAnchor).is_some() {
        let mut spaces = 0;
        while rest.next_if_eq(&TopItem::SpaceRepeat).is_some() {
            spaces += 1;
        }
        let prefix: String = rest
            .map_while(|item| match item {
                TopItem::Literal(c) => Some(c),
                _ => None,
            })
            .take(MAX_PREFIX_CHARS)
            .collect();
        let skip_space = spaces > 0;
        let usable = match prefix.chars().next() {
            Some(first) => !skip_space || !unicode::is_py_space(first),
            None => false,
        };
        if usable && prefix.len() >= best.len() {
            return Requirement::Prefix { skip_space, prefix };
        }
    }
    if best.is_empty() {
        Requirement::None
    } else {
        Requirement::Contains(best)
    }
}

/// More parameters than this and a format takes the general way (the duplicate check
/// below is quadratic).
const PLAIN_MAX_PARAMETERS: usize = 32;

/// The prefilter condition of a *plain* format, one StackStorm certainly accepts, read
/// from its text: `None` unless the format is only literal text (no character that means
/// something in a Python pattern, and no `=`) and `{{name}}` / `{{name=default}}`
/// parameters, each a whole whitespace-separated word, with distinct ASCII identifiers for
/// names and defaults of plain characters. Most formats are plain, and this skips
/// StackStorm's rewriting and the pattern parse, which were most of the time a large
/// catalogue took to load.
///
/// Why it agrees with the general way (the tests compare both on generated formats): the
/// final regex is `^\s*`, the format's literals, `\s*$`; a `{{name}}` becomes its
/// preceding whitespace (kept as literals) and then non-literal items (`["\']?`, the named
/// group); a `{{name=default}}` takes its preceding whitespace into one optional group.
/// Because parameters are separated by whitespace and `=` appears only inside them,
/// StackStorm's key pattern (`\S+?` up to an `=`) cannot reach from one parameter into
/// another. Names that are distinct identifiers are valid group names.
fn plain_verdict(format: &str) -> Option<Requirement> {
    let mut items = Vec::with_capacity(format.len() + 4);
    items.push(TopItem::StartAnchor);
    items.push(TopItem::SpaceRepeat);
    let mut names: Vec<&str> = Vec::new();
    let mut previous: Option<char> = None;
    let mut rest = format;
    while let Some(c) = rest.chars().next() {
        if let Some(inner) = rest.strip_prefix("{{") {
            let end = inner.find("}}")?;
            let (name, default) = match inner[..end].split_once('=') {
                Some((name, default)) => (name, Some(default)),
                None => (&inner[..end], None),
            };
            let after = &inner[end + 2..];
            let separated = previous.is_none_or(unicode::is_py_space)
                && after.chars().next().is_none_or(unicode::is_py_space);
            if !separated
                || !is_ascii_identifier(name)
                || names.len() >= PLAIN_MAX_PARAMETERS
                || names.contains(&name)
                || default.is_some_and(|d| d.is_empty() || !d.chars().all(is_plain_default_char))
            {
                return None;
            }
            names.push(name);
            if default.is_some() {
                // The whitespace before it goes into the optional group.
                while let Some(TopItem::Literal(c)) = items.last()
                    && unicode::is_py_space(*c)
                {
                    items.pop();
                }
            }
            items.push(TopItem::Other);
            previous = Some('}');
            rest = after;
            continue;
        }
        if !is_plain_literal(c) {
            return None;
        }
        items.push(TopItem::Literal(c));
        previous = Some(c);
        rest = &rest[c.len_utf8()..];
    }
    items.push(TopItem::SpaceRepeat);
    items.push(TopItem::Other);
    Some(requirement_from(items.into_iter()))
}

/// A character that stands for itself in a Python pattern (outside a set) and plays no
/// part in StackStorm's parameter syntax.
fn is_plain_literal(c: char) -> bool {
    !matches!(
        c,
        '\\' | '.' | '^' | '$' | '*' | '+' | '?' | '{' | '}' | '[' | ']' | '|' | '(' | ')' | '='
    )
}

fn is_ascii_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A character a plain format's default may hold (no quote, brace, `=` or space, which
/// StackStorm's default pattern treats specially).
fn is_plain_default_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':' | '/' | '@' | ',' | '%' | '+')
}

/// A repeat of exactly Python's Unicode `\s`.
fn is_space_repeat(node: &Node) -> bool {
    match node {
        Node::Repeat { body, .. } => matches!(
            body.as_slice(),
            [Node::In { negate: false, items }]
                if items.as_slice() == [parse::SetItem::Category(parse::Category::Space)]
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a format compiles to, as far as the index and the matcher can tell: its
    /// verdict (with Python's message), its defaults and its prefilter condition.
    fn outcome(format: &str, skip_anchor_parse: bool) -> Result<String, String> {
        let (optional, regex) =
            CompiledFormat::build_with(format, skip_anchor_parse, PARAM_MATCH_TAIL)?;
        let compiled = CompiledFormat {
            format: format.to_owned(),
            optional,
            compiled: Ok(regex),
        };
        Ok(format!(
            "{:?} {:?} {:?}",
            compiled.optional,
            compiled.requirement(),
            compiled.regex().map(|r| &r.parsed().group_names)
        ))
    }

    /// Every string of up to three pieces of `alphabet`, then 20,000 pseudo-random strings
    /// of `lengths` pieces (a fixed `seed`, so a failure reproduces).
    fn generated_formats(
        alphabet: &[&str],
        seed: u64,
        lengths: std::ops::Range<usize>,
    ) -> Vec<String> {
        let mut formats = vec![String::new()];
        for _ in 0..3 {
            let longer: Vec<String> = formats
                .iter()
                .flat_map(|f| alphabet.iter().map(move |c| format!("{f}{c}")))
                .collect();
            formats.extend(longer);
        }
        let mut state = seed;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = lengths.start + (next() % lengths.len() as u64) as usize;
            let format: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            formats.push(format);
        }
        formats
    }

    fn assert_same(format: &str) {
        assert_eq!(
            outcome(format, true),
            outcome(format, false),
            "format {format:?}"
        );
    }

    #[test]
    fn skipping_the_anchor_parse_never_changes_a_verdict() {
        // Every string of up to three characters over the characters that matter at the
        // edges of a pattern, then pseudo-random longer ones with parameters in them.
        const ALPHABET: &[&str] = &[
            "a", " ", "^", "$", "\\", "*", "?", "+", "{", "}", "(", ")", "[", "]", "|", "A", "Z",
            "1", ",", "#", "(?i)", "{{p}}", "{{q=1}}",
        ];
        for format in &generated_formats(ALPHABET, 0x2545_f491_4f6c_dd1d, 4..10) {
            assert_same(format);
        }
    }

    /// `CompiledFormat::verdict` agrees with the real pattern on `format`, and takes the
    /// short way exactly when the format is valid.
    fn assert_same_verdict(format: &str) {
        let real = CompiledFormat::new(format);
        assert_eq!(
            CompiledFormat::build_with(format, true, verdict_tail(format)).is_ok(),
            real.invalid_reason().is_none(),
            "format {format:?}"
        );
        assert_eq!(
            CompiledFormat::verdict(format),
            (real.requirement(), real.invalid_reason().map(Box::from)),
            "format {format:?}"
        );
    }

    #[test]
    fn the_simplified_parameter_body_never_changes_a_verdict() {
        // Every string of up to three pieces over what could interact with a parameter's
        // pattern (sets, escapes, verbose mode, look-behinds, group references,
        // conditionals, quotes), then pseudo-random longer ones.
        const ALPHABET: &[&str] = &[
            "a",
            " ",
            "^",
            "$",
            "\\",
            "*",
            "?",
            "{",
            "}",
            "(",
            ")",
            "[",
            "]",
            "|",
            "#",
            "'",
            "\"",
            "-",
            "(?x)",
            "(?i)",
            "(?<=",
            "(?<!",
            "(?=",
            "\\1",
            "(?P=p)",
            "(?(1)a|b)",
            "(?P<p>",
            "(?#",
            "{{p}}",
            "{{q=1}}",
            "{{p=\"a b\"}}",
            "{{ r }}",
        ];
        for format in &generated_formats(ALPHABET, 0x9e37_79b9_7f4a_7c15, 4..12) {
            assert_same_verdict(format);
        }
    }

    #[test]
    fn skipping_the_scans_that_cannot_match_changes_nothing() {
        let mut formats: Vec<String> = [
            "",
            "a",
            "=",
            "{{",
            "}}",
            "{{p}}",
            "{{p=}}",
            "{{p=1}}",
            "x = {{p}}",
            "{{{p=1}}}",
            "{{p}}{{q=\"a b\"}}",
            "a=b {{c}}",
            "{{ p = {x} }}",
            "{ {p} }",
            "{{p}} = {{q}}",
        ]
        .iter()
        .map(|f| f.to_string())
        .collect();
        const PIECES: &[&str] = &["a", " ", "=", "{", "}", "{{", "}}", "'", "\"", "\\"];
        formats.extend(generated_formats(PIECES, 0x1234_5678_9abc_def1, 1..11));
        for format in &formats {
            assert_eq!(
                CompiledFormat::rewrite(format, PARAM_MATCH_TAIL, false),
                CompiledFormat::rewrite(format, PARAM_MATCH_TAIL, true),
                "format {format:?}"
            );
        }
    }

    #[test]
    fn the_simplified_parameter_body_agrees_on_stackstorms_own_formats() {
        let mut checked = 0;
        for file in [
            "tests/data/st2-vectors/format_cases.jsonl",
            "tests/data/differential.formats.jsonl",
        ] {
            let path = format!("{}/{file}", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(&path).expect("the vectors are in the repository");
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let case: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
                if let Some(format) = case.get("format").and_then(|f| f.as_str()) {
                    assert_same_verdict(format);
                    checked += 1;
                }
            }
        }
        assert!(checked > 100, "only {checked} formats found in the vectors");
    }

    #[test]
    fn a_comment_open_before_a_parameter_takes_the_real_tail() {
        // The fuzz target's find: with the simplified tail the comment closed cleanly.
        let format = "ounn(?#z \u{1} on {{hou}}";
        assert!(CompiledFormat::new(format).invalid_reason().is_some());
        assert!(CompiledFormat::build_with(format, true, PARAM_MATCH_TAIL_FOR_VERDICT).is_ok());
        assert_same_verdict(format);
        assert_same_verdict("a (?#x {{p}}) b");
    }

    #[test]
    fn plain_formats_take_the_short_way_and_agree() {
        // Plain pieces, whitespace of every kind Python's `\s` knows, and what must send a
        // format the general way (joined parameters, bad names, `=`, braces, specials).
        const PIECES: &[&str] = &[
            "deploy",
            "a",
            "\u{e9}",
            "-",
            ",",
            "#",
            "'",
            "\"",
            " ",
            "  ",
            "\t",
            "\n",
            "\u{a0}",
            "\u{1c}",
            "\u{85}",
            "\u{2028}",
            "{{p}}",
            "{{q=1}}",
            "{{p=x.y}}",
            "{{_p2}}",
            "{{2p}}",
            "{{p q}}",
            "{{p=}}",
            "{{ p }}",
            "{{p=\"a\"}}",
            "=",
            "{",
            "}",
            "x}}",
            "{{x",
            "?",
            "(",
        ];
        let formats = generated_formats(PIECES, 0x5deece66d, 1..9);
        let mut plain = 0;
        for format in &formats {
            if plain_verdict(format).is_some() {
                plain += 1;
            }
            assert_same_verdict(format);
        }
        assert!(
            plain > formats.len() / 10,
            "only {plain} of {} formats were plain",
            formats.len()
        );
    }

    #[test]
    fn what_the_short_way_leaves_to_the_general_one() {
        for format in [
            // StackStorm's key pattern runs from `{{a` to the next `=`: an invalid name.
            "{{a}}{{b=1}}",
            "{{a}}x {{b=1}}",
            // A name twice: Python's "redefinition of group name".
            "{{p}} {{p}}",
            "x={{p}}",
            "a {{p=}}",
            "a {{p= 1}}",
            "a{{p}}",
            "{{p}}a",
            "(?i)a {{p}}",
        ] {
            assert_eq!(plain_verdict(format), None, "{format:?}");
            assert_same_verdict(format);
        }
        for (format, requirement) in [
            (
                "deploy {{app}} on {{env=prod}}",
                Requirement::Prefix {
                    skip_space: true,
                    prefix: "deploy ".into(),
                },
            ),
            (
                "{{noun}} status {{level=info}}",
                Requirement::Contains(" status".into()),
            ),
            ("{{cmd}}", Requirement::None),
        ] {
            assert_eq!(plain_verdict(format), Some(requirement), "{format:?}");
            assert_same_verdict(format);
        }
    }

    #[test]
    fn the_edges_that_would_change_a_verdict_take_the_full_path() {
        // Valid only with text before or after: both ways must reject them alike.
        for format in ["?x", "*x", "+x", "{1}x", "x\\", "(?i)x {{p}}"] {
            assert_same(format);
            assert!(outcome(format, true).is_err(), "{format:?} is invalid");
        }
        assert!(!anchors_cannot_matter("?x"));
        assert!(!anchors_cannot_matter("x\\"));
        assert!(!anchors_cannot_matter("^x"));
        assert!(!anchors_cannot_matter("x\\Z"));
        assert!(anchors_cannot_matter("deploy (?P<app>.+)"));
    }
}
