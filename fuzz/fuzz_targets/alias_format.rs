//! The alias format parser and matcher: a format and a command from the input (split at
//! the first newline), compiled and matched both ways, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (format, command) = text.split_once('\n').unwrap_or((text, ""));
    let _ = st2_alias::extract_parameters(format, command, false);
    let _ = st2_alias::extract_parameters(format, command, true);
    let alias = st2_alias::Alias::new(
        "fuzz",
        "alias",
        vec![st2_alias::FormatEntry::Plain(format.to_owned())],
    );
    let index = st2_alias::AliasIndex::new(vec![alias]);
    let _ = index.resolve(command);
});
