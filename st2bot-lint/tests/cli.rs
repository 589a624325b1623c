//! `st2bot-lint` as pack repositories run it in CI: exit status and the three output
//! formats, on the compile-fail fixtures of `tests/ui/catalogue/`.

use std::process::Command;

fn fixture(name: &str) -> String {
    format!(
        "{}/../tests/ui/catalogue/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn lint(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_st2bot-lint"))
        .args(args)
        .output()
        .expect("st2bot-lint runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn clean_packs_exit_zero() {
    let (code, _, stderr) = lint(&[&fixture("packs")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("0 errors"), "{stderr}");
}

#[test]
fn problems_exit_one_with_positions_in_the_alias_file() {
    let packs = fixture("invalid-alias-format-packs");
    let (code, _, stderr) = lint(&[&packs]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("error: StackStorm would reject this format of alias `ops.restart`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("invalid-alias-format-packs/ops/aliases/restart.yaml:7:5"),
        "{stderr}"
    );
}

#[test]
fn json_lists_every_finding() {
    let (code, stdout, _) = lint(&["--format", "json", &fixture("unknown-action-packs")]);
    assert_eq!(code, 1);
    let found: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    let list = found.as_array().expect("a list");
    assert_eq!(list.len(), 1, "{stdout}");
    assert_eq!(list[0]["id"], "unknown-action");
    assert_eq!(list[0]["line"], 4);
    assert_eq!(list[0]["help"], "did you mean `ops.deploy`?");
}

#[test]
fn sarif_is_sarif_2_1_0() {
    let (code, stdout, _) = lint(&["--format", "sarif", &fixture("ambiguous-aliases-packs")]);
    assert_eq!(code, 1);
    let sarif: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(sarif["version"], "2.1.0");
    let result = &sarif["runs"][0]["results"][0];
    assert_eq!(result["ruleId"], "ambiguous-aliases");
    assert_eq!(result["level"], "error");
    assert_eq!(
        result["locations"][0]["physicalLocation"]["region"]["startLine"],
        6
    );
    assert_eq!(
        sarif["runs"][0]["tool"]["driver"]["rules"][0]["id"],
        "ambiguous-aliases"
    );
}

#[test]
fn usage_errors_exit_two() {
    assert_eq!(lint(&[]).0, 2);
    assert_eq!(lint(&["--format", "xml", "p"]).0, 2);
    let (code, _, stderr) = lint(&["no/such/dir"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("`no/such/dir` is not a directory"),
        "{stderr}"
    );
}
