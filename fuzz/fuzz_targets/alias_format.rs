//! The alias format parser and matcher: a format and a command from the input (split at
//! the first newline), compiled and matched both ways, never a panic; and the index (its
//! verdict and prefilter, read from the format's text when it is plain) answers what
//! matching the one format directly answers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use st2_alias::{ExtractError, ResolveError};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (format, command) = text.split_once('\n').unwrap_or((text, ""));
    let direct = st2_alias::extract_parameters(format, command, false);
    let _ = st2_alias::extract_parameters(format, command, true);
    let alias = st2_alias::Alias::new(
        "fuzz",
        "alias",
        vec![st2_alias::FormatEntry::Plain(format.to_owned())],
    );
    let index = st2_alias::AliasIndex::new(vec![alias]);
    let resolved = index.resolve(command);
    let agree = match (&direct, &resolved) {
        (Ok(_), Ok(_)) => true,
        (Err(ExtractError::Parse(_)), Err(ResolveError::NoMatch { .. })) => true,
        (
            Err(ExtractError::InvalidFormat(_) | ExtractError::MatchLimit(_)),
            Err(ResolveError::InvalidFormat { .. }),
        ) => true,
        // A format Python accepts but this engine cannot run (a huge repeat count), or a
        // search that hit the backtracking limit: the index's prefilter knew the command
        // cannot match, and answers what StackStorm would.
        (Err(ExtractError::MatchLimit(_)), Err(ResolveError::NoMatch { .. })) => true,
        (Err(ExtractError::InvalidFormat(why)), Err(ResolveError::NoMatch { .. })) => {
            why.starts_with("the regex engine cannot run this pattern")
        }
        _ => false,
    };
    assert!(
        agree,
        "format {format:?}, command {command:?}: matched directly {direct:?}, by the index {resolved:?}"
    );
});
