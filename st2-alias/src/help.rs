//! Help listings (`GET /api/v1/actionalias/help`) and "did you mean" suggestions for
//! commands that matched nothing.

use crate::alias::Alias;
use crate::index::AliasIndex;
use crate::pyre::translate::DollarMode;
use crate::pyre::{Flags, PyRegex};

/// One help line, as in the `helpstrings` of `GET /actionalias/help`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HelpEntry {
    /// The alias's pack.
    pub pack: String,
    /// The help text of one format.
    pub display: String,
    /// The alias's description.
    pub description: Option<String>,
}

/// A help filter that is not a valid (Python) regular expression. StackStorm would answer
/// with an HTTP 500.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid help filter {filter:?}: {reason}")]
pub struct HelpFilterError {
    /// The filter as given.
    pub filter: String,
    /// Why it is invalid (Python's `re.error` text, or what the engine could not run).
    pub reason: String,
}

/// The help texts of an alias's formats: the string format, or the object's `display`; an
/// object without a display falls back to its non-empty representations.
fn help_texts(alias: &Alias) -> impl Iterator<Item = &str> {
    alias.formats.iter().flat_map(|entry| {
        let (display, representations) = match entry.display().filter(|d| !d.is_empty()) {
            Some(display) => (Some(display), Vec::new()),
            None => (None, entry.representations()),
        };
        display
            .into_iter()
            .chain(representations.into_iter().filter(|r| !r.is_empty()))
    })
}

/// Characters that end the literal start of a format (parameters and regex syntax).
const NON_LITERAL: &[char] = &['{', '<', '[', '(', '\\', '|', '^', '$', '*', '+', '?'];

/// The words a format starts with, before its first parameter or regex syntax, lowercased.
fn literal_words(display: &str) -> Vec<String> {
    display
        .split_whitespace()
        .take_while(|word| !word.contains(NON_LITERAL))
        .map(str::to_lowercase)
        .collect()
}

/// A compiled help filter: `filter` of `GET /actionalias/help`, a case-insensitive Python
/// regular expression searched in each display.
#[derive(Debug)]
pub struct HelpFilter {
    filter: String,
    regex: PyRegex,
}

impl HelpFilter {
    /// Compiles `filter` as StackStorm does.
    pub fn new(filter: &str) -> Result<HelpFilter, HelpFilterError> {
        let regex = PyRegex::compile(filter, Flags::IGNORECASE, DollarMode::BeforeFinalNewline)
            .map_err(|e| HelpFilterError {
                filter: filter.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(HelpFilter {
            filter: filter.to_owned(),
            regex,
        })
    }

    /// Whether `display` is listed under this filter.
    pub fn matches(&self, display: &str) -> Result<bool, HelpFilterError> {
        self.regex
            .search(display, 0)
            .map(|found| found.is_some())
            .map_err(|e| HelpFilterError {
                filter: self.filter.clone(),
                reason: e.to_string(),
            })
    }
}

impl AliasIndex {
    /// Every help line of the index, enabled aliases or not, in help order (alias order,
    /// then format order): the alias's position in [`AliasIndex::aliases`] and the text.
    /// The text is the string format, or the object's `display`; an object without a
    /// display falls back to its representations (StackStorm's own help leaves such
    /// formats out). [`AliasIndex::help_entries`] is this list filtered.
    pub fn help_lines(&self) -> impl Iterator<Item = (usize, &str)> {
        self.aliases()
            .iter()
            .enumerate()
            .flat_map(|(position, alias)| help_texts(alias).map(move |display| (position, display)))
    }

    fn help_displays(&self) -> impl Iterator<Item = (&Alias, &str)> {
        self.aliases()
            .iter()
            .flat_map(|alias| help_texts(alias).map(move |display| (alias, display)))
    }

    /// Mirrors `GET /actionalias/help?pack=…&filter=…` (without paging): enabled aliases
    /// only, `pack` compared exactly, `filter` a case-insensitive Python regex *searched* in
    /// each display. Entries come in alias order, then format order.
    pub fn help_entries(
        &self,
        pack: Option<&str>,
        filter: Option<&str>,
    ) -> Result<Vec<HelpEntry>, HelpFilterError> {
        let filter = HelpFilter::new(filter.unwrap_or(""))?;
        let mut entries = Vec::new();
        for (alias, display) in self.help_displays() {
            if !alias.enabled || pack.is_some_and(|pack| pack != alias.pack) {
                continue;
            }
            if !filter.matches(display)? {
                continue;
            }
            entries.push(HelpEntry {
                pack: alias.pack.clone(),
                display: display.to_owned(),
                description: alias.description.clone(),
            });
        }
        Ok(entries)
    }

    /// Up to `limit` help texts of enabled aliases that are closest to `command`, best first,
    /// for a "no match" reply.
    ///
    /// Ranking (deterministic): first by how many leading words of the command equal the
    /// leading literal words of the display (case-insensitive; literal words are those
    /// before the first parameter or regex syntax), then by the Jaro–Winkler similarity of the
    /// lowercased command and those literal words, then by index order. A display with no
    /// shared leading word needs a similarity of at least 0.7 to be listed. Each display text
    /// is listed once.
    pub fn suggestions(&self, command: &str, limit: usize) -> Vec<(&Alias, String)> {
        let command_lower = command.trim().to_lowercase();
        let command_words: Vec<&str> = command_lower.split_whitespace().collect();
        let mut scored: Vec<(usize, f64, usize, &Alias, &str)> = Vec::new();
        for (position, (alias, display)) in self.help_displays().enumerate() {
            if !alias.enabled {
                continue;
            }
            let words = literal_words(display);
            let shared = command_words
                .iter()
                .zip(&words)
                .take_while(|(c, w)| **c == w.as_str())
                .count();
            let similarity = if words.is_empty() {
                0.0
            } else {
                strsim::jaro_winkler(&command_lower, &words.join(" "))
            };
            if shared == 0 && similarity < 0.7 {
                continue;
            }
            scored.push((shared, similarity, position, alias, display));
        }
        scored.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.total_cmp(&a.1)).then(a.2.cmp(&b.2)));
        let mut seen = std::collections::HashSet::new();
        scored
            .into_iter()
            .filter(|(_, _, _, _, display)| seen.insert(*display))
            .take(limit)
            .map(|(_, _, _, alias, display)| (alias, display.to_owned()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::alias::{Alias, FormatEntry, FormatObject, Representation};
    use crate::index::AliasIndex;

    fn index() -> AliasIndex {
        let mut disabled = Alias::new(
            "ops",
            "old",
            vec![FormatEntry::Plain("deploy legacy {{app}}".into())],
        );
        disabled.enabled = false;
        let mut deploy = Alias::new(
            "ops",
            "deploy",
            vec![FormatEntry::Object(FormatObject {
                display: Some("deploy <app> [to <env>]".into()),
                representation: Some(Representation::Many(vec![
                    "deploy {{app}} to {{env}}".into(),
                    "deploy {{app}}".into(),
                ])),
                match_multiple: None,
            })],
        );
        deploy.description = Some("Deploy an application".into());
        let rollback = Alias::new(
            "ops",
            "rollback",
            vec![FormatEntry::Object(FormatObject {
                display: None,
                representation: Some(Representation::Many(vec!["rollback {{app}}".into()])),
                match_multiple: None,
            })],
        );
        let packs = Alias::new(
            "packs",
            "install",
            vec![
                FormatEntry::Plain("pack install {{packs}}".into()),
                FormatEntry::Plain("pack get {{pack}}".into()),
            ],
        );
        AliasIndex::new(vec![disabled, deploy, rollback, packs])
    }

    #[test]
    fn help_lists_enabled_displays_with_filters() {
        let index = index();
        let all = index.help_entries(None, None).expect("no filter");
        let displays: Vec<&str> = all.iter().map(|e| e.display.as_str()).collect();
        assert_eq!(
            displays,
            [
                "deploy <app> [to <env>]",
                "rollback {{app}}",
                "pack install {{packs}}",
                "pack get {{pack}}"
            ]
        );
        assert_eq!(all[0].description.as_deref(), Some("Deploy an application"));

        let ops = index.help_entries(Some("packs"), None).expect("valid");
        assert_eq!(ops.len(), 2);
        let filtered = index.help_entries(None, Some("^PACK I")).expect("valid");
        assert_eq!(filtered.len(), 1);
        assert_eq!(filtered[0].display, "pack install {{packs}}");
        assert!(index.help_entries(None, Some("(unclosed")).is_err());
        assert!(index.help_entries(None, Some("x{2,1}")).is_err());
    }

    #[test]
    fn suggestions_rank_shared_words_first() {
        let index = index();
        let suggestions = index.suggestions("pack instal foo", 3);
        let displays: Vec<&str> = suggestions.iter().map(|(_, d)| d.as_str()).collect();
        assert_eq!(displays.first(), Some(&"pack install {{packs}}"));
        assert!(displays.contains(&"pack get {{pack}}"));
        assert!(
            !displays.iter().any(|d| d.contains("legacy")),
            "disabled aliases are not suggested"
        );
        assert_eq!(
            index.suggestions("deploy", 5)[0].1,
            "deploy <app> [to <env>]"
        );
        assert!(index.suggestions("zzzz qqqq", 5).is_empty());
        assert_eq!(index.suggestions("pack", 1).len(), 1);
    }
}
