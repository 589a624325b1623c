//! Golden expansion tests: what `bot!` expands to for a few definitions, formatted as
//! `cargo expand` would show it. A change to `codegen.rs` or the spec types shows up here
//! as a reviewable diff of the generated code.
//!
//! Cases are `tests/expand/<case>.yaml` with their expansion in `<case>.expanded.rs`.
//! Rewrite the expansions with `ST2BOT_BLESS=1 cargo test -p bot-config --test expand`,
//! then read the diff.

use std::fs;
use std::path::{Path, PathBuf};

use bot_config::{SourceFile, codegen, load};

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/expand");
    let mut cases: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("tests/expand exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    cases.sort();
    cases
}

#[test]
fn expansions_match_their_golden_files() {
    let bless = std::env::var_os("ST2BOT_BLESS").is_some();
    let cases = cases();
    assert!(
        cases.len() >= 3,
        "expected the expansion cases, found {cases:?}"
    );
    let mut stale = Vec::new();
    for yaml in cases {
        let name = yaml.file_name().unwrap().to_string_lossy().into_owned();
        let display = format!("tests/expand/{name}");
        let file = SourceFile::new(display.clone(), fs::read_to_string(&yaml).unwrap());
        let spec = match load(&file) {
            Ok(spec) => spec,
            Err(diagnostics) => panic!(
                "{display} must be valid:\n{}",
                diagnostics
                    .iter()
                    .map(|d| d.render_long(&file))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        };
        let expanded = codegen::pretty(codegen::expand(&spec, &display), &display);
        let golden = yaml.with_extension("expanded.rs");
        if bless {
            fs::write(&golden, &expanded).expect("write golden file");
        } else if fs::read_to_string(&golden).ok().as_deref() != Some(expanded.as_str()) {
            stale.push(golden.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "expansion changed for {stale:?}; if the change is intended, run\n    ST2BOT_BLESS=1 cargo test -p bot-config --test expand\nand review the diff"
    );
}
