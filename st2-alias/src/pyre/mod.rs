//! Python `re` semantics on top of `fancy-regex`: a pattern is parsed with Python's rules
//! ([`parse`]), translated ([`translate`]) and compiled once; searching, `finditer`,
//! `findall` and `sub` then follow Python's iteration rules (for example, an empty match
//! right after a non-empty one is kept, as Python 3.7+ does).

pub(crate) mod parse;
pub(crate) mod translate;

use std::sync::OnceLock;

pub(crate) use parse::{Flags, Parsed, PatternError};
use translate::DollarMode;

/// How many backtracking steps one search may take before giving up. Python has no limit;
/// this only stops pathological patterns from hanging a chat bot.
const BACKTRACK_LIMIT: usize = 10_000_000;

/// A search that could not run to its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SearchError {
    /// The engine hit its backtracking limit, where Python would have kept going.
    Limit(String),
    /// The pattern is valid Python but the engine cannot compile it (found on first use).
    Engine(String),
}

impl std::fmt::Display for SearchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SearchError::Limit(message) | SearchError::Engine(message) => f.write_str(message),
        }
    }
}

/// Byte spans of the groups of one match; index 0 is the whole match.
#[derive(Clone, Debug)]
pub(crate) struct Spans(Vec<Option<(usize, usize)>>);

impl Spans {
    pub(crate) fn get(&self, group: usize) -> Option<(usize, usize)> {
        self.0.get(group).copied().flatten()
    }

    pub(crate) fn whole(&self) -> (usize, usize) {
        self.get(0).unwrap_or((0, 0))
    }

    /// The text of a group, `None` if it did not take part.
    pub(crate) fn text<'t>(&self, subject: &'t str, group: usize) -> Option<&'t str> {
        self.get(group).map(|(start, end)| &subject[start..end])
    }
}

/// A Python regular expression: parsed (and so validated) at once, translated and compiled
/// for the engine on first use, which keeps building an index of thousands of formats cheap.
#[derive(Debug)]
pub(crate) struct PyRegex {
    parsed: Parsed,
    dollar: DollarMode,
    regex: OnceLock<Result<fancy_regex::Regex, PatternError>>,
    /// `(?=(.*))(?:pattern)(?!\1\z)`: the same pattern, refusing an empty match. Built on
    /// first use by `finditer` after an empty match.
    non_empty: OnceLock<Result<fancy_regex::Regex, PatternError>>,
}

fn build(pattern: &str) -> Result<fancy_regex::Regex, PatternError> {
    fancy_regex::RegexBuilder::new(pattern)
        .backtrack_limit(BACKTRACK_LIMIT)
        // fancy-regex 0.20's tree optimizer changes which groups take part in some matches
        // (`\A\s*(?:(.+?))?\s+\s*\z` on two spaces captures `" "`; Python, Perl and the
        // `regex` crate capture nothing), so patterns are compiled as written.
        .optimize(false)
        .build()
        .map_err(|error| {
            PatternError::unsupported(format!("the regex engine cannot run this pattern: {error}"))
        })
}

impl PyRegex {
    /// Compiles `pattern` as `re.compile(pattern, flags)` would, including the engine's
    /// compilation (for the fixed patterns, whose failure is a bug).
    pub(crate) fn compile(
        pattern: &str,
        flags: Flags,
        dollar: DollarMode,
    ) -> Result<PyRegex, PatternError> {
        let regex = Self::parse(pattern, flags, dollar)?;
        if let Err(error) = regex.engine() {
            return Err(PatternError::unsupported(error.to_string()));
        }
        Ok(regex)
    }

    /// Parses `pattern` as `re.compile(pattern, flags)` would; the engine's compilation waits
    /// for the first search.
    pub(crate) fn parse(
        pattern: &str,
        flags: Flags,
        dollar: DollarMode,
    ) -> Result<PyRegex, PatternError> {
        Ok(PyRegex {
            parsed: parse::parse(pattern, flags)?,
            dollar,
            regex: OnceLock::new(),
            non_empty: OnceLock::new(),
        })
    }

    fn engine(&self) -> Result<&fancy_regex::Regex, SearchError> {
        self.regex
            .get_or_init(|| {
                let translated =
                    translate::translate(&self.parsed.nodes, self.parsed.flags, self.dollar, 0)?;
                build(&translated)
            })
            .as_ref()
            .map_err(|error| SearchError::Engine(error.to_string()))
    }

    pub(crate) fn parsed(&self) -> &Parsed {
        &self.parsed
    }

    /// `(name, group number)` for each named group, in group order (`groupindex`).
    pub(crate) fn named_groups(&self) -> impl Iterator<Item = (&str, usize)> {
        self.parsed
            .group_names
            .iter()
            .enumerate()
            .filter_map(|(index, name)| name.as_deref().map(|name| (name, index)))
    }

    fn spans(captures: &fancy_regex::Captures<'_, str>, offset: usize, groups: usize) -> Spans {
        Spans(
            (0..=groups)
                .map(|group| {
                    let index = if group == 0 { 0 } else { group + offset };
                    captures.get(index).map(|m| (m.start(), m.end()))
                })
                .collect(),
        )
    }

    /// `pattern.search(subject, pos)`.
    pub(crate) fn search(&self, subject: &str, pos: usize) -> Result<Option<Spans>, SearchError> {
        let captures = self
            .engine()?
            .captures_from_pos(subject, pos)
            .map_err(|error| SearchError::Limit(error.to_string()))?;
        Ok(captures.map(|c| Self::spans(&c, 0, self.parsed.group_count())))
    }

    /// The highest-priority non-empty match starting exactly at `pos`, if any (Python's
    /// `must_advance` rule after an empty match).
    fn non_empty_match_at(&self, subject: &str, pos: usize) -> Result<Option<Spans>, SearchError> {
        let regex = self.non_empty.get_or_init(|| {
            let inner =
                translate::translate(&self.parsed.nodes, self.parsed.flags, self.dollar, 1)?;
            build(&format!(r"(?=((?s:.)*))(?:{inner})(?!\1\z)"))
        });
        let regex = match regex {
            Ok(regex) => regex,
            Err(error) => return Err(SearchError::Engine(error.to_string())),
        };
        let captures = regex
            .captures_from_pos(subject, pos)
            .map_err(|error| SearchError::Limit(error.to_string()))?;
        Ok(captures
            .map(|c| Self::spans(&c, 1, self.parsed.group_count()))
            .filter(|spans| spans.whole().0 == pos))
    }

    /// `pattern.finditer(subject)`: all non-overlapping matches, Python 3.7+ rules.
    pub(crate) fn finditer(&self, subject: &str) -> Result<Vec<Spans>, SearchError> {
        let mut matches = Vec::new();
        let mut pos = 0;
        let mut must_advance = false;
        while pos <= subject.len() {
            let found = if must_advance {
                match self.non_empty_match_at(subject, pos)? {
                    Some(spans) => Some(spans),
                    None => match next_char_boundary(subject, pos) {
                        Some(next) => self.search(subject, next)?,
                        None => None,
                    },
                }
            } else {
                self.search(subject, pos)?
            };
            let Some(spans) = found else {
                break;
            };
            let (start, end) = spans.whole();
            must_advance = start == end;
            pos = end;
            matches.push(spans);
        }
        Ok(matches)
    }

    /// `pattern.sub(template, subject)` where the template is a list of literal pieces and
    /// group references (unmatched groups expand to nothing).
    pub(crate) fn sub(
        &self,
        subject: &str,
        template: &[TemplatePiece<'_>],
    ) -> Result<String, SearchError> {
        let mut out = String::with_capacity(subject.len());
        let mut last = 0;
        for spans in self.finditer(subject)? {
            let (start, end) = spans.whole();
            out.push_str(&subject[last..start]);
            for piece in template {
                match piece {
                    TemplatePiece::Text(text) => out.push_str(text),
                    TemplatePiece::Group(group) => {
                        out.push_str(spans.text(subject, *group).unwrap_or(""));
                    }
                }
            }
            last = end;
        }
        out.push_str(&subject[last..]);
        Ok(out)
    }
}

/// One piece of a `re.sub` replacement template.
#[derive(Clone, Copy, Debug)]
pub(crate) enum TemplatePiece<'a> {
    Text(&'a str),
    Group(usize),
}

fn next_char_boundary(text: &str, pos: usize) -> Option<usize> {
    text[pos..].chars().next().map(|c| pos + c.len_utf8())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(pattern: &str) -> PyRegex {
        PyRegex::compile(pattern, Flags::DOTALL, DollarMode::BeforeFinalNewline)
            .unwrap_or_else(|e| panic!("{pattern:?}: {e}"))
    }

    fn all(pattern: &str, subject: &str) -> Vec<(usize, usize)> {
        compile(pattern)
            .finditer(subject)
            .expect("no limit")
            .iter()
            .map(Spans::whole)
            .collect()
    }

    #[test]
    fn finditer_follows_python_empty_match_rules() {
        // Python: [m.span() for m in re.finditer('a*', 'ab')] == [(0, 1), (1, 1), (2, 2)]
        assert_eq!(all("a*", "ab"), vec![(0, 1), (1, 1), (2, 2)]);
        // re.finditer('a??', 'aa') -> (0,0), (0,1), (1,1), (1,2), (2,2)
        assert_eq!(
            all("a??", "aa"),
            vec![(0, 0), (0, 1), (1, 1), (1, 2), (2, 2)]
        );
        assert_eq!(all("x*", ""), vec![(0, 0)]);
    }

    #[test]
    fn python_classes_and_anchors() {
        let re = compile(r"^\s*(\w+)\b.*$");
        let spans = re
            .search("\u{1c} héllo wörld\n", 0)
            .expect("ok")
            .expect("match");
        assert_eq!(spans.text("\u{1c} héllo wörld\n", 1), Some("héllo"));
        // `$` matches before a final newline but not before an inner one.
        assert!(compile("a$").search("a\n", 0).expect("ok").is_some());
        assert!(compile("a$").search("a\nb", 0).expect("ok").is_none());
        // Python's \w has no combining marks; Rust's does.
        assert!(compile(r"^\w$").search("\u{301}", 0).expect("ok").is_none());
    }

    #[test]
    fn optional_group_backtracking_matches_python() {
        // fancy-regex's optimizer would capture " " here; Python captures nothing.
        let re = compile(r"\A\s*(?:(.+?))?\s+\s*\Z");
        let spans = re.search("  ", 0).expect("ok").expect("match");
        assert_eq!(spans.get(1), None);
    }

    #[test]
    fn case_insensitive_matching_uses_python_case_rules() {
        let re =
            PyRegex::compile("(?i)straße", Flags::DOTALL, DollarMode::EndOfText).expect("valid");
        assert!(re.search("STRAßE", 0).expect("ok").is_some());
        assert!(re.search("ſtraße", 0).expect("ok").is_some());
        assert!(re.search("STRASSE", 0).expect("ok").is_none());
        let re =
            PyRegex::compile("(?i)[a-c]x", Flags::DOTALL, DollarMode::EndOfText).expect("valid");
        assert!(re.search("Bx", 0).expect("ok").is_some());
    }

    #[test]
    fn sub_expands_groups() {
        let re = compile(r"(\s*)\{\{(\w+)\}\}");
        let out = re
            .sub(
                "a {{x}} b{{y}}",
                &[
                    TemplatePiece::Group(1),
                    TemplatePiece::Text("<"),
                    TemplatePiece::Group(2),
                    TemplatePiece::Text(">"),
                ],
            )
            .expect("ok");
        assert_eq!(out, "a <x> b<y>");
    }
}
