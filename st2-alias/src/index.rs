//! A set of aliases with every format compiled once, answering what StackStorm's
//! `match_command_to_alias`, `get_matching_alias` and `match_and_execute` would.
//!
//! Matching must try every pattern in StackStorm's order (aliases as listed, then formats,
//! then representations), because every match counts (ambiguity is exact) and the first
//! failing format fails the whole call. To stay fast with thousands of aliases the index
//! first narrows the patterns to those that *can* match, using a condition each compiled
//! regex guarantees (see [`Requirement`]): a literal the stream must start with after the
//! leading `^\s*`, or a literal it must contain. Patterns with neither, and broken formats,
//! are always tried. A pattern skipped this way cannot match, so it could never have been a
//! result nor raised anything (only successful matches raise after compilation), and results
//! are identical to a full scan; `prefilter_agrees_with_full_scan` checks that.
//!
//! Memory does not grow with what was matched: each distinct format is read once when the
//! index is built (to learn whether StackStorm would reject it and what the prefilter may
//! assume; a plain format from its text, any other by parsing it), and only that verdict
//! is kept. A format is compiled again when a command needs
//! it, into a least-recently-used cache of [`COMPILED_CACHE`] entries, so a catalogue of
//! ten thousand aliases holds at most that many compiled regexes, however many of its
//! aliases have been used. Patterns point into their alias's formats instead of copying
//! the text.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

use aho_corasick::AhoCorasick;

use crate::alias::{Alias, FormatEntry, FormatObject, Representation};
use crate::format::{CompiledFormat, ExtractError, Params, PreparedCommand, Requirement};
use crate::unicode;

/// One (alias, representation) pair that matched a command: StackStorm's match dict.
#[derive(Clone, Debug, PartialEq)]
pub struct Match {
    /// Position of the alias in [`AliasIndex::aliases`].
    pub alias_index: usize,
    /// The alias reference, `pack.name`.
    pub alias_ref: String,
    /// The alias name (what `POST /aliasexecution` takes as `name`).
    pub alias_name: String,
    /// The alias's pack.
    pub pack: String,
    /// The `formats` entry the pattern came from, as written.
    pub format: FormatEntry,
    /// The help text of that entry (`None` for an object without `display`).
    pub display: Option<String>,
    /// The pattern that matched (what `POST /aliasexecution` takes as `format`).
    pub representation: String,
    /// The entry's `match_multiple`; `None` where StackStorm leaves the key out (a
    /// display-only object, see [`Match::display_only`]) or copies a `null` from the alias.
    pub match_multiple: Option<bool>,
    /// The entry is a display-only object: StackStorm's match has no `match_multiple` key,
    /// which makes `match_and_execute` fail (a `null` executes like `false`).
    pub display_only: bool,
}

/// Which of StackStorm's two passes chose a [`Resolved`] match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchPass {
    /// Pass 1: aliases with at least one format not flagged `match_multiple: true`.
    Single,
    /// Pass 2 (only when pass 1 found nothing): aliases with a `match_multiple: true` format.
    Multiple,
}

/// The one pattern `get_matching_alias` chose for a command. Dereferences to [`Match`].
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// The chosen match.
    pub matched: Match,
    /// The pass that found it.
    pub pass: MatchPass,
}

impl Deref for Resolved {
    type Target = Match;
    fn deref(&self) -> &Match {
        &self.matched
    }
}

/// Why `get_matching_alias` found no single pattern. `Display` gives StackStorm's message
/// (the `faultstring` of `POST /actionalias/match`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// No pattern matched in either pass (`match_count` 0).
    #[error("Command '{command}' matched no patterns")]
    NoMatch {
        /// The command as given.
        command: String,
    },
    /// More than one pattern matched in pass 1.
    #[error("Command '{command}' matched more than 1 pattern")]
    Ambiguous {
        /// The command as given.
        command: String,
        /// StackStorm's `match_count`.
        count: usize,
        /// `(alias ref, representation)` of every match, in order.
        candidates: Vec<(String, String)>,
    },
    /// More than one `match_multiple` pattern matched in pass 2.
    #[error("Command '{command}' matched more than 1 (multi) pattern")]
    AmbiguousMulti {
        /// The command as given.
        command: String,
        /// StackStorm's `match_count`.
        count: usize,
        /// `(alias ref, representation)` of every match, in order.
        candidates: Vec<(String, String)>,
    },
    /// A tried format failed (invalid regex, engine limit): StackStorm fails the whole call
    /// with that error (HTTP 500), even if other aliases matched.
    #[error("{error}")]
    InvalidFormat {
        /// The alias whose format failed (empty when the command itself could not be
        /// preprocessed).
        alias_ref: String,
        /// The failing representation.
        representation: String,
        /// What went wrong.
        error: ExtractError,
    },
}

impl ResolveError {
    /// StackStorm's `match_count` for ambiguity errors (0 for no match), `None` otherwise.
    pub fn match_count(&self) -> Option<usize> {
        match self {
            ResolveError::NoMatch { .. } => Some(0),
            ResolveError::Ambiguous { count, .. } | ResolveError::AmbiguousMulti { count, .. } => {
                Some(*count)
            }
            ResolveError::InvalidFormat { .. } => None,
        }
    }
}

/// How many compiled formats an index keeps (least recently used ones are dropped and
/// compiled again when needed). A compiled format takes about 24 KiB (its parameters'
/// look-arounds make `fancy-regex` build several engines); a chat command compiles the few
/// formats its prefilter selects, and compiling one again costs about 0.1 ms
/// (`cargo bench -p st2-alias --bench resolve -- compile`). 128 keeps the formats a site's
/// users actually cycle through and bounds this cache to about 3 MiB however large the
/// catalogue.
pub const COMPILED_CACHE: usize = 128;

/// Where a pattern's text is in its alias: the format entry itself (a plain string, or
/// a display-only object, whose pattern is empty) or one of an object's representations.
const WHOLE_ENTRY: u32 = u32::MAX;

/// One pattern of the index (what StackStorm's `list_format_strings_from_aliases` yields),
/// pointing into its alias's formats.
#[derive(Debug)]
struct IndexedPattern {
    alias: u32,
    format_index: u32,
    /// Index in the entry's `representation` list, or [`WHOLE_ENTRY`].
    representation: u32,
    /// The distinct format (in [`AliasIndex::formats`]) this pattern compiles to.
    format: u32,
    /// `None` where StackStorm leaves the key out (display-only objects) or copies a `null`.
    match_multiple: Option<bool>,
    /// A display-only object: StackStorm's match dict has no `match_multiple` key.
    display_only: bool,
    /// The alias takes part in pass 1 / pass 2 of `get_matching_alias`.
    in_single_pass: bool,
    in_multiple_pass: bool,
}

/// One distinct format text of the index.
#[derive(Debug)]
struct FormatSlot {
    /// A pattern with this text (the text is read from its alias).
    pattern: u32,
    /// Why StackStorm would reject the format, if it would (found when the index is built).
    invalid: Option<Box<str>>,
}

/// Formats parsed per thread before the work is split (below this, one thread is faster).
const FORMATS_PER_THREAD: usize = 512;

/// The prefilter condition and the verdict (why StackStorm would reject it, if it would)
/// of each format, in order. Parsing is independent per format, so a large catalogue is
/// split over the machine's cores (at most four threads).
fn format_verdicts(texts: &[&str]) -> Vec<(Requirement, Option<Box<str>>)> {
    let verdict = |text: &&str| CompiledFormat::verdict(text);
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(4)
        .min(texts.len() / FORMATS_PER_THREAD)
        .max(1);
    if threads == 1 {
        return texts.iter().map(verdict).collect();
    }
    let chunk = texts.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let parts: Vec<_> = texts
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(verdict).collect::<Vec<_>>()))
            .collect();
        parts
            .into_iter()
            .flat_map(|part| {
                part.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// Compiled formats by slot, least recently used dropped first.
#[derive(Debug, Default)]
struct CompiledCache {
    entries: HashMap<u32, (Arc<CompiledFormat>, u64)>,
    clock: u64,
}

impl CompiledCache {
    fn get(&mut self, slot: u32) -> Option<Arc<CompiledFormat>> {
        self.clock += 1;
        let clock = self.clock;
        self.entries.get_mut(&slot).map(|(compiled, used)| {
            *used = clock;
            compiled.clone()
        })
    }

    fn insert(&mut self, slot: u32, compiled: Arc<CompiledFormat>) {
        if self.entries.len() >= COMPILED_CACHE
            && !self.entries.contains_key(&slot)
            && let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(slot, _)| *slot)
        {
            self.entries.remove(&oldest);
        }
        self.clock += 1;
        self.entries.insert(slot, (compiled, self.clock));
    }
}

/// Pattern ids grouped by a text key, kept flat: a key's ids are one range of a single
/// list, so the tens of thousands of keys of a large catalogue cost no allocation each.
#[derive(Debug, Default)]
struct GroupedIds {
    /// `(key, id)` as added; emptied by [`GroupedIds::finish`].
    pending: Vec<(String, u32)>,
    /// Key → `(start, end)` in `ids`.
    ranges: HashMap<Box<str>, IdRange>,
    ids: Vec<u32>,
    /// Distinct byte lengths of the keys.
    lengths: Vec<usize>,
}

/// `(start, end)` of a key's ids in a flat id list.
type IdRange = (u32, u32);

/// `(key, id)` pairs sorted and grouped: each distinct key with its range in the returned
/// ids (in the order the ids were added).
fn group(mut pending: Vec<(String, u32)>) -> (Vec<(Box<str>, IdRange)>, Vec<u32>) {
    pending.sort_by(|a, b| a.0.cmp(&b.0));
    let to_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let mut keys: Vec<(Box<str>, IdRange)> = Vec::new();
    let mut ids = Vec::with_capacity(pending.len());
    for (key, id) in pending {
        let at = to_u32(ids.len());
        ids.push(id);
        match keys.last_mut() {
            Some((last, range)) if **last == *key => range.1 = at + 1,
            _ => keys.push((key.into_boxed_str(), (at, at + 1))),
        }
    }
    (keys, ids)
}

impl GroupedIds {
    fn add(&mut self, key: String, id: u32) {
        self.pending.push((key, id));
    }

    fn finish(&mut self) {
        let (keys, ids) = group(std::mem::take(&mut self.pending));
        let mut lengths: Vec<usize> = keys.iter().map(|(key, _)| key.len()).collect();
        lengths.sort_unstable();
        lengths.dedup();
        self.lengths = lengths;
        self.ranges = keys.into_iter().collect();
        self.ids = ids;
    }

    /// Adds to `out` the ids of every key that is a prefix of `text`.
    fn prefixes_of(&self, text: &str, out: &mut Vec<u32>) {
        for &length in &self.lengths {
            if length > text.len() {
                break;
            }
            if let Some(key) = text.get(..length)
                && let Some(&(start, end)) = self.ranges.get(key)
            {
                out.extend_from_slice(&self.ids[start as usize..end as usize]);
            }
        }
    }
}

/// Pattern ids grouped by the condition that selects them.
#[derive(Debug, Default)]
struct Prefilter {
    /// Prefix after skipping leading whitespace → pattern ids.
    after_space: GroupedIds,
    /// Prefix at the very start of the stream → pattern ids.
    at_start: GroupedIds,
    /// `(literal, id)`: patterns that need the literal somewhere in the stream (until
    /// [`Prefilter::finish`] builds the automaton).
    contains: Vec<(String, u32)>,
    /// One automaton over the distinct literals; literal `i`'s ids are
    /// `contains_ids[contains_ranges[i].0..contains_ranges[i].1]`.
    contains_automaton: Option<AhoCorasick>,
    contains_ranges: Vec<IdRange>,
    contains_ids: Vec<u32>,
    /// Patterns that are always tried.
    always: Vec<u32>,
}

impl Prefilter {
    fn add(&mut self, id: u32, requirement: Requirement) {
        match requirement {
            Requirement::Prefix {
                skip_space: true,
                prefix,
            } => self.after_space.add(prefix, id),
            Requirement::Prefix {
                skip_space: false,
                prefix,
            } => self.at_start.add(prefix, id),
            Requirement::Contains(text) => self.contains.push((text, id)),
            Requirement::None => self.always.push(id),
        }
    }

    fn finish(&mut self) {
        self.after_space.finish();
        self.at_start.finish();
        let (literals, ids) = group(std::mem::take(&mut self.contains));
        let (texts, ranges): (Vec<Box<str>>, Vec<IdRange>) = literals.into_iter().unzip();
        // Building can only fail on absurd sizes; then every such pattern is always tried.
        match AhoCorasick::new(texts.iter().map(|text| text.as_bytes())) {
            Ok(automaton) if !texts.is_empty() => {
                self.contains_automaton = Some(automaton);
                self.contains_ranges = ranges;
                self.contains_ids = ids;
            }
            _ => self.always.extend(ids),
        }
        self.always.sort_unstable();
    }

    /// Ids of the patterns that may match `stream`, in index order.
    fn candidates(&self, stream: &str) -> Vec<u32> {
        let mut ids: Vec<u32> = self.always.clone();
        let trimmed = stream.trim_start_matches(unicode::is_py_space);
        self.after_space.prefixes_of(trimmed, &mut ids);
        self.at_start.prefixes_of(stream, &mut ids);
        if let Some(automaton) = &self.contains_automaton {
            for found in automaton.find_overlapping_iter(stream) {
                let (start, end) = self.contains_ranges[found.pattern().as_usize()];
                ids.extend_from_slice(&self.contains_ids[start as usize..end as usize]);
            }
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// Aliases with their formats compiled, ready to match chat commands.
///
/// ```
/// use st2_alias::{Alias, AliasIndex, FormatEntry};
///
/// let index = AliasIndex::new(vec![
///     Alias::new("examples", "remote", vec![FormatEntry::Plain("run {{cmd}} on {{hosts}}".into())]),
///     Alias::new("examples", "local", vec![FormatEntry::Plain("run {{cmd}}".into())]),
/// ]);
/// // Both match: StackStorm calls that ambiguous.
/// let error = index.resolve("run date on web1").unwrap_err();
/// assert_eq!(error.to_string(), "Command 'run date on web1' matched more than 1 pattern");
///
/// let resolved = index.resolve("run date").unwrap();
/// assert_eq!(resolved.alias_ref, "examples.local");
/// let params = index.execution_params(&resolved, "run date").unwrap();
/// assert_eq!(params[0].get("cmd"), Some(Some("date")));
/// ```
#[derive(Debug)]
pub struct AliasIndex {
    aliases: Vec<Alias>,
    /// In alias order; the patterns of alias `i` are `alias_patterns[i]..alias_patterns[i + 1]`.
    patterns: Vec<IndexedPattern>,
    alias_patterns: Vec<u32>,
    /// Distinct format texts (identical representations share one).
    formats: Vec<FormatSlot>,
    compiled: Mutex<CompiledCache>,
    prefilter: Prefilter,
}

/// The text and help text of a pattern: StackStorm's expansion of a format entry.
fn entry_pattern(entry: &FormatEntry, representation: u32) -> (&str, Option<&str>) {
    match entry {
        FormatEntry::Plain(format) => (format, Some(format)),
        FormatEntry::Object(object) => {
            let text = match (&object.representation, representation) {
                (_, WHOLE_ENTRY) => "",
                (Some(Representation::One(text)), _) => text,
                (Some(Representation::Many(list)), i) => {
                    list.get(i as usize).map_or("", String::as_str)
                }
                (None, _) => "",
            };
            (text, object.display.as_deref())
        }
    }
}

/// The patterns a format entry contributes, as StackStorm expands them: `(representation
/// position, match_multiple, display_only)` for each.
fn entry_patterns(entry: &FormatEntry) -> Vec<(u32, Option<bool>, bool)> {
    match entry {
        FormatEntry::Plain(_) => vec![(WHOLE_ENTRY, Some(false), false)],
        FormatEntry::Object(object) => {
            let count = match &object.representation {
                None => 0,
                Some(Representation::One(text)) if text.is_empty() => 0,
                Some(Representation::One(_)) => 1,
                Some(Representation::Many(list)) => list.len(),
            };
            let FormatObject {
                display,
                match_multiple,
                ..
            } = object;
            let display_is_truthy = display.as_deref().is_some_and(|d| !d.is_empty());
            if display_is_truthy && count == 0 {
                return vec![(WHOLE_ENTRY, None, true)];
            }
            let multiple = match_multiple.unwrap_or(Some(false));
            (0..count)
                .map(|i| (u32::try_from(i).unwrap_or(u32::MAX - 1), multiple, false))
                .collect()
        }
    }
}

impl AliasIndex {
    /// Expands and compiles every format of `aliases` (kept in the given order, which is
    /// StackStorm's database order). Formats that StackStorm would reject are remembered as
    /// invalid; they fail the calls that try them, as in StackStorm.
    pub fn new(aliases: Vec<Alias>) -> AliasIndex {
        let to_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let mut patterns = Vec::new();
        let mut alias_patterns = Vec::with_capacity(aliases.len() + 1);
        let verdicts;
        let mut first_pattern: Vec<u32> = Vec::new();
        {
            // Distinct format texts, borrowed from the aliases while the index is built.
            let mut slots: HashMap<&str, u32> = HashMap::new();
            let mut texts: Vec<&str> = Vec::new();
            for (alias_index, alias) in aliases.iter().enumerate() {
                alias_patterns.push(to_u32(patterns.len()));
                let in_single_pass =
                    alias.enabled && alias.formats.iter().any(|f| !f.is_match_multiple());
                let in_multiple_pass =
                    alias.enabled && alias.formats.iter().any(FormatEntry::is_match_multiple);
                for (format_index, entry) in alias.formats.iter().enumerate() {
                    for (representation, match_multiple, display_only) in entry_patterns(entry) {
                        let id = to_u32(patterns.len());
                        let (text, _) = entry_pattern(entry, representation);
                        let format = *slots.entry(text).or_insert_with(|| {
                            texts.push(text);
                            first_pattern.push(id);
                            to_u32(texts.len() - 1)
                        });
                        patterns.push(IndexedPattern {
                            alias: to_u32(alias_index),
                            format_index: to_u32(format_index),
                            representation,
                            format,
                            match_multiple,
                            display_only,
                            in_single_pass,
                            in_multiple_pass,
                        });
                    }
                }
            }
            alias_patterns.push(to_u32(patterns.len()));
            // Each distinct format parsed once for its verdict and prefilter condition,
            // then dropped: compiled again on use (see `compiled`).
            verdicts = format_verdicts(&texts);
        }
        let mut prefilter = Prefilter::default();
        for (id, pattern) in patterns.iter().enumerate() {
            prefilter.add(to_u32(id), verdicts[pattern.format as usize].0.clone());
        }
        // Not collected in place: the verdicts' allocation is twice the slots' size.
        let mut formats: Vec<FormatSlot> = Vec::with_capacity(verdicts.len());
        formats.extend(
            verdicts
                .into_iter()
                .zip(first_pattern)
                .map(|((_, invalid), pattern)| FormatSlot { pattern, invalid }),
        );
        prefilter.finish();
        patterns.shrink_to_fit();
        AliasIndex {
            aliases,
            patterns,
            alias_patterns,
            formats,
            compiled: Mutex::new(CompiledCache::default()),
            prefilter,
        }
    }

    /// A pattern's text (its representation) and help text.
    fn pattern_text(&self, pattern: &IndexedPattern) -> (&str, Option<&str>) {
        let entry = &self.aliases[pattern.alias as usize].formats[pattern.format_index as usize];
        entry_pattern(entry, pattern.representation)
    }

    /// The compiled form of a distinct format: from the cache, or compiled now.
    fn compiled(&self, slot: u32) -> Arc<CompiledFormat> {
        let mut cache = self
            .compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(compiled) = cache.get(slot) {
            return compiled;
        }
        drop(cache);
        let (text, _) =
            self.pattern_text(&self.patterns[self.formats[slot as usize].pattern as usize]);
        let compiled = Arc::new(CompiledFormat::new(text));
        self.compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(slot, compiled.clone());
        compiled
    }

    /// How many compiled formats the index holds now (at most [`COMPILED_CACHE`]).
    pub fn compiled_count(&self) -> usize {
        self.compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entries
            .len()
    }

    /// The aliases, in the order given.
    pub fn aliases(&self) -> &[Alias] {
        &self.aliases
    }

    /// Number of aliases.
    pub fn len(&self) -> usize {
        self.aliases.len()
    }

    /// True when the index holds no alias.
    pub fn is_empty(&self) -> bool {
        self.aliases.is_empty()
    }

    /// Number of patterns (representations) the formats expanded to.
    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }

    /// `(alias ref, representation, reason)` for every format StackStorm would reject.
    pub fn invalid_formats(&self) -> Vec<(&str, &str, &str)> {
        self.patterns
            .iter()
            .filter_map(|p| {
                self.formats[p.format as usize]
                    .invalid
                    .as_deref()
                    .map(|reason| {
                        (
                            self.aliases[p.alias as usize].reference(),
                            self.pattern_text(p).0,
                            reason,
                        )
                    })
            })
            .collect()
    }

    fn to_match(&self, id: usize) -> Match {
        let indexed = &self.patterns[id];
        let alias = &self.aliases[indexed.alias as usize];
        let (representation, display) = self.pattern_text(indexed);
        Match {
            alias_index: indexed.alias as usize,
            alias_ref: alias.reference().to_owned(),
            alias_name: alias.name.clone(),
            pack: alias.pack.clone(),
            format: alias.formats[indexed.format_index as usize].clone(),
            display: display.map(str::to_owned),
            representation: representation.to_owned(),
            match_multiple: indexed.match_multiple,
            display_only: indexed.display_only,
        }
    }

    /// `extract_one` of a pattern's format: its recorded verdict when StackStorm would
    /// reject it, else the compiled format's answer.
    fn extract_one(
        &self,
        indexed: &IndexedPattern,
        prepared: &PreparedCommand,
    ) -> Result<Params, ExtractError> {
        if let Some(reason) = &self.formats[indexed.format as usize].invalid {
            return Err(ExtractError::InvalidFormat(reason.to_string()));
        }
        self.compiled(indexed.format).extract_one(prepared)
    }

    /// Tries the candidate patterns selected by `include`, in order; returns the ids that
    /// matched, or the first failure.
    fn scan(
        &self,
        prepared: &PreparedCommand,
        candidates: &[u32],
        include: impl Fn(&IndexedPattern) -> bool,
    ) -> Result<Vec<usize>, ResolveError> {
        let mut matched = Vec::new();
        for &id in candidates {
            let id = id as usize;
            let indexed = &self.patterns[id];
            if !include(indexed) {
                continue;
            }
            match self.extract_one(indexed, prepared) {
                Ok(_) => matched.push(id),
                Err(ExtractError::Parse(_)) => {}
                Err(error) => {
                    return Err(ResolveError::InvalidFormat {
                        alias_ref: self.aliases[indexed.alias as usize].reference().to_owned(),
                        representation: self.pattern_text(indexed).0.to_owned(),
                        error,
                    });
                }
            }
        }
        Ok(matched)
    }

    fn prepare(command: &str) -> Result<PreparedCommand, ResolveError> {
        PreparedCommand::new(command).map_err(|error| ResolveError::InvalidFormat {
            alias_ref: String::new(),
            representation: String::new(),
            error,
        })
    }

    fn candidates(&self, prepared: &PreparedCommand, full_scan: bool) -> Vec<u32> {
        if full_scan {
            (0..self.patterns.len()).map(|id| id as u32).collect()
        } else {
            self.prefilter.candidates(prepared.stream())
        }
    }

    /// StackStorm's `match_command_to_alias(command, aliases)` over every alias, **enabled
    /// or not**: each (alias, representation) pair whose extraction raises no
    /// `ParseException`, in order. A failing format fails the call with its error.
    pub fn matches(&self, command: &str) -> Result<Vec<Match>, ExtractError> {
        self.matches_with(command, false)
    }

    fn matches_with(&self, command: &str, full_scan: bool) -> Result<Vec<Match>, ExtractError> {
        let prepared = PreparedCommand::new(command)?;
        let candidates = self.candidates(&prepared, full_scan);
        match self.scan(&prepared, &candidates, |_| true) {
            Ok(ids) => Ok(ids.into_iter().map(|id| self.to_match(id)).collect()),
            Err(ResolveError::InvalidFormat { error, .. }) => Err(error),
            Err(other) => Err(ExtractError::InvalidFormat(other.to_string())),
        }
    }

    /// StackStorm's `get_matching_alias(command)`, as used by `POST /actionalias/match` and
    /// `match_and_execute`: pass 1 over enabled aliases with a format not flagged
    /// `match_multiple: true` (all their formats are tried), then, only if nothing matched,
    /// pass 2 over enabled aliases with a `match_multiple: true` format. Exactly one match
    /// wins; there is no ranking.
    pub fn resolve(&self, command: &str) -> Result<Resolved, ResolveError> {
        self.resolve_with(command, false)
    }

    fn resolve_with(&self, command: &str, full_scan: bool) -> Result<Resolved, ResolveError> {
        let prepared = Self::prepare(command)?;
        let candidates = self.candidates(&prepared, full_scan);
        let describe = |ids: &[usize]| -> Vec<(String, String)> {
            ids.iter()
                .map(|&id| {
                    let p = &self.patterns[id];
                    (
                        self.aliases[p.alias as usize].reference().to_owned(),
                        self.pattern_text(p).0.to_owned(),
                    )
                })
                .collect()
        };

        let single = self.scan(&prepared, &candidates, |p| p.in_single_pass)?;
        if single.len() > 1 {
            return Err(ResolveError::Ambiguous {
                command: command.to_owned(),
                count: single.len(),
                candidates: describe(&single),
            });
        }
        if let [id] = single.as_slice() {
            return Ok(Resolved {
                matched: self.to_match(*id),
                pass: MatchPass::Single,
            });
        }

        let multiple = self.scan(&prepared, &candidates, |p| p.in_multiple_pass)?;
        match multiple.as_slice() {
            [] => Err(ResolveError::NoMatch {
                command: command.to_owned(),
            }),
            [id] => Ok(Resolved {
                matched: self.to_match(*id),
                pass: MatchPass::Multiple,
            }),
            _ => Err(ResolveError::AmbiguousMulti {
                command: command.to_owned(),
                count: multiple.len(),
                candidates: describe(&multiple),
            }),
        }
    }

    /// The parameter sets `POST /aliasexecution/match_and_execute` extracts for a resolved
    /// match: one set, or one per non-overlapping match when the chosen format has
    /// `match_multiple: true`. Reproduces its failures too, in its order: a display-only
    /// pattern ([`ExtractError::MissingMatchMultiple`]), the *first alias with that name*
    /// (any pack) being disabled ([`ExtractError::AliasDisabled`]), the representation not
    /// being one of that alias's format strings ([`ExtractError::FormatNotAvailable`]).
    pub fn execution_params(
        &self,
        resolved: &Resolved,
        command: &str,
    ) -> Result<Vec<Params>, ExtractError> {
        if resolved.display_only {
            return Err(ExtractError::MissingMatchMultiple);
        }
        // `null` is falsy in StackStorm's `extract_parameters`.
        let match_multiple = resolved.match_multiple.unwrap_or(false);
        let alias = self
            .aliases
            .iter()
            .find(|alias| alias.name == resolved.alias_name)
            .or_else(|| self.aliases.get(resolved.alias_index))
            .ok_or_else(|| ExtractError::AliasDisabled(resolved.alias_name.clone()))?;
        if !alias.enabled {
            return Err(ExtractError::AliasDisabled(alias.name.clone()));
        }
        if !alias.format_strings().contains(&resolved.representation) {
            return Err(ExtractError::FormatNotAvailable {
                format: resolved.representation.clone(),
                alias: alias.name.clone(),
            });
        }
        let prepared = PreparedCommand::new(command)?;
        // The resolved alias's own pattern with that text shares the index's compiled form.
        let slot = self
            .alias_patterns
            .get(resolved.alias_index)
            .zip(self.alias_patterns.get(resolved.alias_index + 1))
            .and_then(|(&start, &end)| {
                self.patterns[start as usize..end as usize]
                    .iter()
                    .find(|p| self.pattern_text(p).0 == resolved.representation)
            })
            .map(|p| p.format);
        match slot {
            Some(slot) => match &self.formats[slot as usize].invalid {
                Some(reason) => Err(ExtractError::InvalidFormat(reason.to_string())),
                None => self.compiled(slot).extract(&prepared, match_multiple),
            },
            None => {
                CompiledFormat::new(&resolved.representation).extract(&prepared, match_multiple)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(format: &str) -> FormatEntry {
        FormatEntry::Plain(format.to_owned())
    }

    /// A deterministic mix of realistic and awkward formats.
    fn sample_aliases() -> Vec<Alias> {
        let formats = [
            "run {{cmd}} on {{hosts}}",
            "run {{cmd}}",
            "run {{cmd=date}} locally",
            "status {{svc=all}}",
            "status",
            "{{text}}",
            "{{ captain }} is my captain",
            "pack install {{ packs }} {{ force=false }}",
            "deploy {{x}}|release {{y}}",
            "(?i)^\\s*restart {{svc}}",
            "^\\s*foo (?P<key>[A-Z]+-[0-9]+)",
            "(?:\\b|^)fixes (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+)(?:\\b|$)",
            "a|b {{x}}",
            "c++ {{x}}",
            "price {{x}}$",
            "^ run {{x}}",
            "",
            "ping  {{host}}",
            "grüß {{name}}",
            "\u{3000}wide {{x}}",
            "[foo] {{x}}",
            "get (?P<key>[^ ]+) {{rest}}",
            // Repeated formats share compiled regexes and prefilter keys.
            "{{ captain }} is my captain",
            "(?:\\b|^)fixes (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+)(?:\\b|$)",
            "status {{svc=all}}",
            "{{x}} captain",
        ];
        formats
            .iter()
            .enumerate()
            .map(|(i, format)| {
                let mut alias = Alias::new(
                    &format!("pack{}", i % 3),
                    &format!("a{i}"),
                    vec![plain(format)],
                );
                alias.enabled = i % 5 != 4;
                alias
            })
            .collect()
    }

    #[test]
    fn prefilter_agrees_with_full_scan() {
        let index = AliasIndex::new(sample_aliases());
        let words = [
            "run",
            "date",
            "on",
            "web1",
            "status",
            "nginx",
            "pack",
            "install",
            "st2",
            "force=true",
            "deploy",
            "release",
            "RESTART",
            "restart",
            "foo",
            "ABC-1",
            "fixes",
            "is",
            "my",
            "captain",
            "a",
            "b",
            "c",
            "price",
            "5",
            "ping",
            " ",
            "\t",
            "grüß",
            "\u{3000}",
            "wide",
            "o",
            "get",
            "k1",
            "x=1",
            "locally",
            "",
            "\u{a0}",
            "'q w'",
            "\"a b\"",
            "{\"k\": 1}",
        ];
        let mut seed: u64 = 0x5eed;
        let mut next = |bound: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % bound as u64) as usize
        };
        let mut commands: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
        for _ in 0..3000 {
            let count = 1 + next(5);
            let mut command = String::new();
            for i in 0..count {
                if i > 0 {
                    command.push_str([" ", " ", "  ", "\t"][next(4)]);
                }
                command.push_str(words[next(words.len())]);
            }
            if next(4) == 0 {
                command.insert(0, ' ');
            }
            commands.push(command);
        }
        let mut compared = 0;
        for command in &commands {
            assert_eq!(
                index.matches_with(command, false),
                index.matches_with(command, true),
                "matches differ for {command:?}"
            );
            assert_eq!(
                index.resolve_with(command, false),
                index.resolve_with(command, true),
                "resolve differs for {command:?}"
            );
            compared += 1;
        }
        assert_eq!(compared, commands.len());
        // The prefilter must actually filter: a plain command skips most patterns.
        let prepared = PreparedCommand::new("status nginx").expect("prepared");
        assert!(index.prefilter.candidates(prepared.stream()).len() < index.patterns.len() / 2);
    }

    #[test]
    fn expands_patterns_like_stackstorm() {
        let display_only = FormatEntry::Object(FormatObject {
            display: Some("Watch this.".into()),
            ..FormatObject::default()
        });
        assert_eq!(entry_patterns(&display_only), [(WHOLE_ENTRY, None, true)]);
        assert_eq!(
            entry_pattern(&display_only, WHOLE_ENTRY),
            ("", Some("Watch this."))
        );
        let empty_display = FormatEntry::Object(FormatObject {
            display: Some(String::new()),
            ..FormatObject::default()
        });
        assert!(entry_patterns(&empty_display).is_empty());
        assert_eq!(entry_patterns(&plain("")).len(), 1);
        assert_eq!(
            entry_pattern(&plain("x {{y}}"), WHOLE_ENTRY),
            ("x {{y}}", Some("x {{y}}"))
        );

        let entries: Vec<FormatEntry> = serde_json::from_str(
            r#"[{"representation": ["a"], "match_multiple": null},
                {"representation": ["b", "c"], "display": "b or c"},
                {"representation": "d", "match_multiple": true},
                {"representation": ""}]"#,
        )
        .expect("valid formats");
        let expanded: Vec<_> = entries.iter().map(entry_patterns).collect();
        assert_eq!(
            expanded,
            [
                vec![(0, None, false)],
                vec![(0, Some(false), false), (1, Some(false), false)],
                vec![(0, Some(true), false)],
                vec![],
            ]
        );
        assert_eq!(entry_pattern(&entries[1], 1), ("c", Some("b or c")));
        assert_eq!(entry_pattern(&entries[2], 0), ("d", None));
    }

    #[test]
    fn compiled_formats_are_bounded_and_answers_do_not_change() {
        let count = COMPILED_CACHE * 2 + 10;
        let aliases: Vec<Alias> = (0..count)
            .map(|i| {
                Alias::new(
                    "p",
                    &format!("a{i}"),
                    vec![plain(&format!("cmd{i} {{{{x}}}}"))],
                )
            })
            .collect();
        let index = AliasIndex::new(aliases);
        assert_eq!(index.compiled_count(), 0, "nothing is compiled before use");
        for round in 0..2 {
            for i in 0..count {
                let resolved = index
                    .resolve(&format!("cmd{i} value{round}"))
                    .unwrap_or_else(|e| panic!("cmd{i}: {e}"));
                assert_eq!(resolved.alias_ref, format!("p.a{i}"));
                let params = index
                    .execution_params(&resolved, &format!("cmd{i} value{round}"))
                    .expect("params");
                assert_eq!(params[0].get("x"), Some(Some(&*format!("value{round}"))));
                assert!(index.compiled_count() <= COMPILED_CACHE);
            }
        }
        assert_eq!(index.compiled_count(), COMPILED_CACHE);
        // The most recently used formats are the ones kept.
        let cache = index.compiled.lock().expect("not poisoned");
        let last = index.patterns[count - 1].format;
        assert!(cache.entries.contains_key(&last));
        assert!(!cache.entries.contains_key(&index.patterns[0].format));
    }

    #[test]
    fn deeply_nested_format_fails_cleanly_on_a_small_stack() {
        let worker = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(|| {
                let nested = format!("{}run {{{{x}}}}{}", "(".repeat(95), ")".repeat(95));
                let index = AliasIndex::new(vec![Alias::new("p", "deep", vec![plain(&nested)])]);
                index
                    .resolve("run it")
                    .map(|r| r.alias_ref.clone())
                    .map_err(|e| e.to_string())
            })
            .expect("thread");
        // Python accepts this nesting; the engine may refuse it (it limits nesting), but
        // either way the answer is a value, not a crash.
        let outcome = worker.join().expect("no stack overflow");
        assert!(
            matches!(outcome.as_deref(), Ok("p.deep") | Err(_)),
            "{outcome:?}"
        );
    }

    #[test]
    fn broken_disabled_alias_does_no_harm() {
        let mut broken = Alias::new("misc", "broken", vec![plain("(?i)bad flags {{x}}")]);
        broken.enabled = false;
        let good = Alias::new("misc", "good", vec![plain("hello {{who}}")]);
        let index = AliasIndex::new(vec![good, broken]);
        assert_eq!(index.invalid_formats().len(), 1);
        let resolved = index.resolve("hello world").expect("resolves");
        assert_eq!(resolved.alias_ref, "misc.good");
        // match_command_to_alias ignores `enabled`, so it reports the broken format.
        assert!(matches!(
            index.matches("hello world"),
            Err(ExtractError::InvalidFormat(_))
        ));

        let mut enabled = Alias::new("misc", "broken", vec![plain("(?i)bad flags {{x}}")]);
        enabled.enabled = true;
        let index = AliasIndex::new(vec![
            Alias::new("misc", "good", vec![plain("hello {{who}}")]),
            enabled,
        ]);
        let error = index
            .resolve("hello world")
            .expect_err("broken format fails the call");
        assert!(matches!(error, ResolveError::InvalidFormat { .. }));
        assert_eq!(error.match_count(), None);
    }
}
