//! Every diagnostic id the checks can emit has a compile-fail case under `tests/ui/` and an
//! entry in the error reference of `docs/definition.md`, so no error ships untested or
//! unexplained.
//!
//! Ids are the kebab-case string literals in `bot-config/src/check/` (each is the first
//! argument of a `Diagnostic::new` or an entry of a table of them).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Kebab-case string literals (`"unknown-key"`) in the check sources.
fn emitted_ids() -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let dir = repo().join("bot-config/src/check");
    for entry in fs::read_dir(&dir).expect("check/ exists") {
        let text = fs::read_to_string(entry.expect("entry").path()).expect("readable source");
        for literal in text.split('"').skip(1).step_by(2) {
            let kebab = literal.contains('-')
                && literal
                    .split('-')
                    .all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase()));
            if kebab {
                ids.insert(literal.to_owned());
            }
        }
    }
    ids
}

#[test]
fn every_id_has_a_ui_case_and_a_reference_entry() {
    let ids = emitted_ids();
    assert!(ids.len() >= 45, "found only {} ids: {ids:?}", ids.len());
    let mut cases = BTreeSet::new();
    for family in fs::read_dir(repo().join("tests/ui")).expect("tests/ui exists") {
        for case in fs::read_dir(family.expect("family").path()).expect("family dir") {
            let path = case.expect("case").path();
            if path.extension().is_some_and(|e| e == "yaml") {
                cases.insert(path.file_stem().unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let docs = fs::read_to_string(repo().join("docs/definition.md")).expect("docs exist");
    for id in &ids {
        assert!(
            cases
                .iter()
                .any(|c| c == id || c.starts_with(&format!("{id}-"))),
            "no compile-fail case for `{id}`: add tests/ui/<family>/{id}.yaml and .rs, then bless"
        );
        assert!(
            docs.lines().any(|l| l == format!("### {id}")),
            "docs/definition.md has no `### {id}` entry in its error reference"
        );
    }
}
