//! Every bot definition in `bots/` is valid and builds: it loads through `bot_config::load`
//! without a diagnostic, and each one (except the documentation-only `reference.yaml`) has
//! its one-line `src/bin/<stem>.rs` shim. Also pins a few facts the examples rely on.

use std::fs;
use std::path::{Path, PathBuf};

use st2bot::config::acl::{AccessControl, Request};
use st2bot::config::{BackendSpec, BotSpec, SourceFile, load};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `(stem, display path, text)` of every `bots/*.yaml`, sorted.
fn definitions() -> Vec<(String, String, String)> {
    let mut out: Vec<_> = fs::read_dir(root().join("bots"))
        .expect("bots/ exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .map(|p| {
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            let display = format!("bots/{}", p.file_name().unwrap().to_string_lossy());
            let text = fs::read_to_string(&p).expect("readable definition");
            (stem, display, text)
        })
        .collect();
    out.sort();
    out
}

fn load_ok(display: &str, text: &str) -> BotSpec {
    let file = SourceFile::new(display, text);
    match load(&file) {
        Ok(spec) => spec,
        Err(diagnostics) => panic!(
            "{display} must be valid:\n{}",
            diagnostics
                .iter()
                .map(|d| d.render_long(&file))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

#[test]
fn every_definition_loads_without_diagnostics() {
    let all = definitions();
    assert!(all.len() >= 9, "demo, reference and one per backend");
    let mut names = std::collections::BTreeMap::new();
    for (_, display, text) in &all {
        let spec = load_ok(display, text);
        if let Some(other) = names.insert(spec.name.to_string(), display.clone()) {
            panic!("{display} and {other} both name their bot `{}`", spec.name);
        }
    }
}

#[test]
fn every_definition_has_its_shim() {
    for (stem, display, _) in definitions() {
        if stem == "reference" {
            continue;
        }
        let shim = root().join("src/bin").join(format!("{stem}.rs"));
        let body = fs::read_to_string(&shim)
            .unwrap_or_else(|_| panic!("{display} has no executable: create src/bin/{stem}.rs"));
        let code: Vec<&str> = body
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("//"))
            .collect();
        assert_eq!(
            code,
            [format!("st2bot::bot!(\"{display}\");")],
            "src/bin/{stem}.rs must be the one line that compiles {display}"
        );
    }
}

#[test]
fn every_shim_has_its_definition() {
    for entry in fs::read_dir(root().join("src/bin")).expect("src/bin exists") {
        let path = entry.expect("entry").path();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(
            Path::new(&root().join(format!("bots/{stem}.yaml"))).is_file(),
            "src/bin/{stem}.rs has no bots/{stem}.yaml"
        );
    }
}

#[test]
fn every_definition_starts_with_the_schema_line() {
    for (_, display, text) in definitions() {
        assert_eq!(
            text.lines().next(),
            Some("# yaml-language-server: $schema=../schema/bot.schema.json"),
            "{display} must start with the schema line so editors complete and check it"
        );
    }
}

#[test]
fn there_is_one_example_per_backend() {
    let mut kinds: Vec<&str> = definitions()
        .iter()
        .map(|(_, display, text)| match load_ok(display, text).backend {
            BackendSpec::Text(_) => "text",
            BackendSpec::Xmpp(_) => "xmpp",
            BackendSpec::Irc(_) => "irc",
            BackendSpec::Matrix(_) => "matrix",
            BackendSpec::Slack(_) => "slack",
            BackendSpec::Mattermost(_) => "mattermost",
            BackendSpec::Discord(_) => "discord",
            BackendSpec::RocketChat(_) => "rocketchat",
            BackendSpec::MsTeams(_) => "msteams",
        })
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    let mut all = st2bot::config::backend_kinds();
    all.sort_unstable();
    assert_eq!(kinds, all);
}

/// Matrix user ids start with `@`, which names a group in `users`; bots/matrix.yaml
/// escapes them (`'\@alice:example.org'`), and the escaped pattern matches the real id.
#[test]
fn escaped_matrix_user_ids_match() {
    let (_, display, text) = definitions()
        .into_iter()
        .find(|(stem, _, _)| stem == "matrix")
        .expect("bots/matrix.yaml");
    let spec = load_ok(&display, &text);
    let acl = AccessControl::new(&spec.access).expect("rules compile");
    let ask = |user, command| {
        acl.decide(&Request {
            user,
            command,
            room: Some("#ops:example.org"),
        })
        .allowed()
    };
    assert!(
        ask("@alice:example.org", "packs.install"),
        "a member of @sre"
    );
    assert!(ask("@dave:example.org", "st2.executions.get"));
    assert!(!ask("@dave:example.org", "packs.install"));
    assert!(!ask("@mallory:evil.example", "st2.executions.get"));
}
