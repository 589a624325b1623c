//! StackStorm action-alias matching, reproduced exactly.
//!
//! StackStorm's ChatOps turns a chat command into an action execution by matching it
//! against the `formats` of its action aliases. The rules are subtle: a format is a Python
//! regular expression in which `{{param}}` and `{{param=default}}` are rewritten into
//! non-greedy named groups with look-behinds; trailing `key=value` extras are cut off the
//! command first (with a plain string replace); the rest is padded with one space on each
//! side; `^\s*` and `\s*$` are added unless the parse tree has anchors where StackStorm looks;
//! every pattern of every alias is tried and more than one match is an error. This crate
//! reproduces all of it, checked against vectors produced by StackStorm's own code
//! (`tests/data/st2-vectors/`, StackStorm commit `c2eaf56b`, CPython 3.11.7), so a bot can
//! resolve commands locally and still agree with `POST /api/v1/actionalias/match`.
//!
//! # Entry points
//!
//! - [`extract_parameters`]: StackStorm's `extract_parameters(format, command,
//!   match_multiple)` for one format.
//! - [`AliasIndex`]: aliases with their formats compiled once.
//!   [`matches`](AliasIndex::matches) is `match_command_to_alias`,
//!   [`resolve`](AliasIndex::resolve) is `get_matching_alias` (the API's matcher),
//!   [`execution_params`](AliasIndex::execution_params) is what `match_and_execute` then
//!   extracts, [`help_entries`](AliasIndex::help_entries) mirrors `GET /actionalias/help` and
//!   [`suggestions`](AliasIndex::suggestions) lists the formats closest to an unmatched
//!   command.
//! - [`Alias`]: the API's alias document (serde).
//!
//! # Regular expressions
//!
//! Formats are parsed with CPython 3.11's `re` rules (own parser: errors such as
//! `nothing to repeat` or `global flags not at the start of the expression`, possessive
//! `++`, `(?P<name>…)`, `(?P=name)`, conditionals, verbose mode, Python's Unicode `\s`, `\w`,
//! `\d`, `\b` and case folding, `\N{name}` escapes with Python's name lookup) and run on
//! [`fancy_regex`], a backtracking engine with the same leftmost-first semantics. What
//! cannot be run is reported as [`ExtractError::InvalidFormat`] instead of being
//! approximated: more than 100 nested groups (Python allows about 495) and counted repeats
//! too large for the engine's limits. The engine stops a search after 10 million
//! backtracking steps ([`ExtractError::MatchLimit`]); Python would go on.
//!
//! Known differences from StackStorm, all outside what its API can express or observe in
//! practice: `\w`/`\d` follow the `regex` crate's Unicode tables (newer than Python 3.11's
//! Unicode 14 for recently assigned characters); case-insensitive back-references compare
//! with simple case folding where Python compares lowercases (`ſ`/`s`, `ς`/`σ`); `\N{name}`
//! knows the names of a newer Unicode than Python 3.11's 14.0, and accepts a name alias
//! written without its spaces (`LINEFEED`), which Python rejects. A format object's
//! `match_multiple: null` is kept as StackStorm keeps it ([`Match::match_multiple`] `None`,
//! executed like `false`).

mod alias;
mod format;
mod help;
mod index;
mod pyre;
mod unicode;

pub use alias::{AckSettings, Alias, FormatEntry, FormatObject, Representation, ResultSettings};
pub use format::{CompiledFormat, ExtractError, Params, PreparedCommand, extract_parameters};
pub use help::{HelpEntry, HelpFilter, HelpFilterError};
pub use index::{AliasIndex, COMPILED_CACHE, Match, MatchPass, ResolveError, Resolved};
