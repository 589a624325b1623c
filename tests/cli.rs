//! Transcripts of the real demo executable's one-shot commands: `--check` telling refused
//! credentials (HTTP 401) apart from unchecked ones, with and without `--simulate`, and
//! `--print-spec` writing the compiled definition as YAML or JSON with secrets as references,
//! and `--explain` naming the alias and the deciding access rule, with its exit status.

use std::process::Output;

use st2_sim::{Sim, SimConfig};

const DEMO: &str = env!("CARGO_BIN_EXE_demo");

/// Runs the demo executable with `args` and only `env` (plus PATH) in its environment.
async fn demo(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(DEMO);
    command.args(args).env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().await.expect("run the demo executable")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn transcript(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn check_says_refused_for_a_wrong_key_and_not_checked_for_a_missing_one() {
    let sim = Sim::start(SimConfig::demo()).await.unwrap();
    let url = sim.url();

    // A key StackStorm refuses: each endpoint fails with the status, exit 1.
    let out = demo(
        &["--check", "--stackstorm-url", &url],
        &[("ST2_API_KEY", "not-the-key")],
    )
    .await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    assert!(
        text.contains(&format!(
            "FAIL StackStorm API: {url}/api/v1/actionalias?limit=1 refuses the bot's credentials (HTTP 401)"
        )),
        "{}",
        transcript(&out)
    );
    assert!(
        !text.contains("not checked"),
        "a refused key was checked: {text}"
    );
    assert!(
        !text.contains("not-the-key"),
        "the key is never echoed: {text}"
    );

    // No key at all: the secret fails, the endpoints answer, the credentials are "not
    // checked", and the line says why.
    let out = demo(&["--check", "--stackstorm-url", &url], &[]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    assert!(
        text.contains(
            "FAIL secret stackstorm.auth.api_key: environment variable `ST2_API_KEY` is not set"
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "ok   StackStorm API: {url}/api/v1/actionalias?limit=1 answers (HTTP 401 without credentials); credentials not checked: a secret they need is missing"
        )),
        "{text}"
    );
    assert!(!text.contains("refuses"), "{text}");

    // The right key: accepted.
    let out = demo(
        &["--check", "--stackstorm-url", &url],
        &[("ST2_API_KEY", "sim-api-key")],
    )
    .await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert!(
        text.contains("answers and accepts the credentials") && !text.contains("not checked"),
        "{text}"
    );
}

#[tokio::test]
async fn check_with_simulate_checks_the_simulators_credentials() {
    // Demo mode uses the simulator's own key: the endpoints must accept it, not merely answer
    // 401 and pass as "credentials not checked" (issue 13).
    let out = demo(&["--check", "--simulate"], &[]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    for what in ["StackStorm API", "StackStorm stream"] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("ok   {what}: ")))
            .unwrap_or_else(|| panic!("no `{what}` line: {}", transcript(&out)));
        assert!(
            line.ends_with("answers and accepts the credentials"),
            "{line}"
        );
    }
    assert!(!text.contains("not checked"), "{text}");
    assert!(text.ends_with("all checks passed\n"), "{text}");
}

#[tokio::test]
async fn print_spec_writes_yaml_by_default_and_json_on_request() {
    // No secret is set: printing never resolves one.
    let yaml = demo(&["--print-spec"], &[]).await;
    assert_eq!(yaml.status.code(), Some(0), "{}", transcript(&yaml));
    let yaml_text = stdout(&yaml);
    assert!(yaml_text.starts_with("name: demo\n"), "{yaml_text}");
    assert!(yaml_text.contains("api_key: ${ST2_API_KEY}"), "{yaml_text}");
    assert!(
        !yaml_text.contains("BotSpec {"),
        "not Rust Debug: {yaml_text}"
    );

    let mut jsons = Vec::new();
    for args in [
        &["--print-spec=json"][..],
        &["--print-spec", "--format", "json"],
        &["--format=json", "--print-spec"],
    ] {
        let out = demo(args, &[]).await;
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", transcript(&out));
        let value: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", transcript(&out)));
        jsons.push(value);
    }
    assert!(jsons.windows(2).all(|w| w[0] == w[1]));
    let json = &jsons[0];
    assert_eq!(json["name"], "demo");
    assert_eq!(json["source"], "bots/demo.yaml");
    assert_eq!(json["backend"]["kind"], "text");
    assert_eq!(json["backend"]["room"], "ops");
    assert_eq!(json["stackstorm"]["api_url"], "http://127.0.0.1:9080/api");
    assert_eq!(json["stackstorm"]["auth"]["api_key"], "${ST2_API_KEY}");
    assert_eq!(json["stackstorm"]["matcher"], "local");
    assert_eq!(json["chat"]["prefix"], "!");
    assert_eq!(json["access"]["default"], "deny");
    assert_eq!(json["access"]["rules"].as_array().unwrap().len(), 3);

    // The YAML says the same as the JSON.
    let from_yaml: serde_json::Value = serde_saphyr::from_str(&yaml_text)
        .unwrap_or_else(|e| panic!("not YAML ({e}): {yaml_text}"));
    assert_eq!(&from_yaml, json);

    // A secret's value in the environment never shows.
    let out = demo(
        &["--print-spec=json"],
        &[("ST2_API_KEY", "super-secret-value")],
    )
    .await;
    assert!(
        !stdout(&out).contains("super-secret-value"),
        "{}",
        transcript(&out)
    );

    let out = demo(&["--print-spec=toml"], &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown format (use `yaml` or `json`)"),
        "{}",
        transcript(&out)
    );
}

/// Issue 15 item 3: `--explain USER ROOM COMMAND` against the simulator's aliases.
#[tokio::test]
async fn explain_names_the_alias_and_the_deciding_rule_and_exits_by_decision() {
    let out = demo(
        &[
            "--simulate",
            "--explain",
            "carol",
            "ops",
            "!rm /tmp/x on web1",
        ],
        &[],
    )
    .await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    assert!(
        text.starts_with("carol says `rm /tmp/x on web1` in ops\n"),
        "{text}"
    );
    assert!(
        text.contains("resolves to alias linux.rm (format `rm {{path}} on {{hosts}}`)"),
        "{text}"
    );
    // Exactly the transcript docs/access.md shows.
    assert!(
        text.ends_with(
            "deny: rule 2 at bots/demo.yaml:29 is the first rule that matches \
             (deny any user commands [core.remote*, linux.rm*] any room)\n"
        ),
        "{text}"
    );

    let out = demo(
        &["--simulate", "--explain", "alice", "-", "rm /tmp/x on web1"],
        &[],
    )
    .await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert!(text.contains("in a direct message"), "{text}");
    assert!(text.contains("allow: rule 1 at "), "{text}");

    let out = demo(&["--simulate", "--explain", "carol", "-"], &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));
}

/// Issue 15 item 3: the access matrix computed at build time is embedded and printed; it
/// is the golden file of bot-config's matrix test.
#[tokio::test]
async fn access_matrix_prints_the_build_time_matrix() {
    let out = demo(&["--access-matrix"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let golden = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/bot-config/tests/matrix/demo.access.md"
    ))
    .expect("golden matrix");
    assert_eq!(stdout(&out), golden);
    let written = std::fs::read_to_string(concat!(env!("OUT_DIR"), "/bots/demo.access.md"));
    assert_eq!(
        written.ok().as_deref(),
        Some(golden.as_str()),
        "build.rs writes it too"
    );
}

/// Issue #14: an executable carries only the subsystems its definition uses. A flag that
/// needs one it was built without is refused before anything starts, naming the key that
/// links it in (exit status 2, as for other bad flags).
#[tokio::test]
async fn a_flag_needing_a_subsystem_the_executable_lacks_is_refused() {
    let sim = Sim::start(SimConfig::demo()).await.unwrap();
    let url = sim.url();
    let out = demo(
        &[
            "--user",
            "alice",
            "--stackstorm-url",
            &url,
            "--results-store",
            "/nonexistent/owed.redb",
        ],
        &[("ST2_API_KEY", "sim-api-key")],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));
    assert!(
        stderr.contains(
            "demo: `--results-store` needs `stackstorm.results_store` in the definition: \
             this executable was built without it\n"
        ),
        "{}",
        transcript(&out)
    );
    assert!(
        !std::path::Path::new("/nonexistent/owed.redb").exists() && stdout(&out).is_empty(),
        "{}",
        transcript(&out)
    );
}
