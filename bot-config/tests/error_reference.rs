//! Every diagnostic id ([`DiagnosticId::ALL`]) has a compile-fail case under `tests/ui/` that
//! emits it and an entry in the error reference of `docs/definition.md`, and every entry of
//! that reference is an id, so no error ships untested or unexplained and no entry outlives
//! its error.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use bot_config::{DiagnosticId, SourceFile};

/// Ids no definition can trigger (a bug in a check), so they have no compile-fail case.
const WITHOUT_UI_CASE: &[DiagnosticId] = &[DiagnosticId::Internal];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The compile-fail cases: file stem (`unknown-key-nested`) → the YAML file.
fn ui_cases() -> BTreeMap<String, PathBuf> {
    let mut cases = BTreeMap::new();
    for family in fs::read_dir(repo().join("tests/ui")).expect("tests/ui exists") {
        let family = family.expect("family").path();
        if !family.is_dir() {
            continue;
        }
        for case in fs::read_dir(&family).expect("family dir") {
            let path = case.expect("case").path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let stem = path.file_stem().expect("a name").to_string_lossy();
                cases.insert(stem.into_owned(), path);
            }
        }
    }
    cases
}

/// The ids a case emits, errors and warnings alike, as the `bot!` macro would see them.
fn emitted(path: &Path) -> Vec<DiagnosticId> {
    let text = fs::read_to_string(path).expect("readable case");
    let file = SourceFile::new(path.to_string_lossy().into_owned(), text);
    let loaded = bot_config::load_in(&file, path.parent().expect("in a family directory"));
    let errors = loaded.result.err().unwrap_or_default();
    errors
        .iter()
        .chain(&loaded.warnings)
        .map(|d| d.id)
        .collect()
}

/// The `### <id>` headings under `## Error reference` in docs/definition.md.
fn reference_entries() -> Vec<String> {
    let docs = fs::read_to_string(repo().join("docs/definition.md")).expect("docs exist");
    let (_, reference) = docs
        .split_once("\n## Error reference\n")
        .expect("docs/definition.md has an `## Error reference` section");
    let reference = reference.split("\n## ").next().unwrap_or(reference);
    reference
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_id_has_a_ui_case_that_emits_it() {
    let cases = ui_cases();
    assert!(cases.len() >= DiagnosticId::ALL.len(), "{cases:?}");
    let mut missing = Vec::new();
    for &id in DiagnosticId::ALL {
        if WITHOUT_UI_CASE.contains(&id) {
            continue;
        }
        let named: Vec<&PathBuf> = cases
            .iter()
            .filter(|(stem, _)| {
                stem.as_str() == id.as_str()
                    || stem
                        .strip_prefix(id.as_str())
                        .is_some_and(|rest| rest.starts_with('-'))
            })
            .map(|(_, path)| path)
            .collect();
        if !named.iter().any(|path| emitted(path).contains(&id)) {
            missing.push(format!("`{id}` (cases named after it: {named:?})"));
        }
    }
    assert!(
        missing.is_empty(),
        "no compile-fail case emits these ids; add tests/ui/<family>/<id>.yaml and .rs, \
         then bless with TRYBUILD=overwrite:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_error_reference_has_one_entry_per_id() {
    let entries = reference_entries();
    for &id in DiagnosticId::ALL {
        let count = entries.iter().filter(|e| *e == id.as_str()).count();
        assert_eq!(
            count, 1,
            "docs/definition.md needs exactly one `### {id}` entry in its error reference"
        );
    }
    for entry in &entries {
        assert!(
            DiagnosticId::from_name(entry).is_some(),
            "docs/definition.md documents `{entry}`, which is not a `DiagnosticId`"
        );
    }
    let ids: Vec<&str> = DiagnosticId::ALL.iter().map(|id| id.as_str()).collect();
    assert_eq!(
        entries, ids,
        "the error reference lists the ids in the order of `DiagnosticId::ALL`"
    );
}
