//! Golden access matrix of `bots/demo.yaml` with its packs fixture (`bots/packs/`): a
//! change to the demo's access rules, groups or packs shows up here as a reviewable diff of
//! who may run what where. Rewrite it with
//! `ST2BOT_BLESS=1 cargo test -p bot-config --test matrix`, then read the diff.

use std::fs;
use std::path::Path;

use bot_config::{SourceFile, load_in, matrix};

#[test]
fn the_demo_access_matrix_matches_its_golden_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let yaml = root.join("bots/demo.yaml");
    let file = SourceFile::new("bots/demo.yaml", fs::read_to_string(&yaml).unwrap());
    let loaded = load_in(&file, &root.join("bots"));
    let spec = match loaded.result {
        Ok(spec) => spec,
        Err(d) => panic!("bots/demo.yaml must be valid: {d:?}"),
    };
    assert!(
        loaded.catalogue_aliases.iter().any(|a| a == "linux.rm"),
        "the packs fixture is read: {:?}",
        loaded.catalogue_aliases
    );
    let text = matrix::access_matrix(&spec, &loaded.catalogue_aliases).expect("rules compile");
    // The rules' own facts, independent of the golden file: carol is "anyone else".
    let row = |command: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("| `{command}` |")))
            .unwrap_or_else(|| panic!("no row for {command}:\n{text}"))
            .to_owned()
    };
    assert_eq!(
        row("linux.rm"),
        "| `linux.rm` | allow (r1) | allow (r1) | deny (r2) | deny (r2) |"
    );
    assert_eq!(
        row("core.local"),
        "| `core.local` | allow (r1) | allow (r1) | allow (r3) | allow (r3) |"
    );
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/matrix/demo.access.md");
    if std::env::var_os("ST2BOT_BLESS").is_some() {
        fs::write(&golden, &text).expect("write golden file");
    } else {
        assert!(
            fs::read_to_string(&golden).ok().as_deref() == Some(text.as_str()),
            "the demo's access matrix changed; if intended, run\n    \
             ST2BOT_BLESS=1 cargo test -p bot-config --test matrix\nand review the diff:\n{text}"
        );
    }
}
