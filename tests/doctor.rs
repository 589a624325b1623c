//! `--doctor` against the StackStorm simulator: a healthy StackStorm passes every line (and the
//! test announcement really travels through `POST /v1/executions` and the stream); a missing
//! or disabled notify rule, a rule announcing on another route, an unreachable stream, no
//! enabled alias, refused or missing credentials each fail their own line with a fix and make
//! the exit status non-zero. Also: the simulator's rules and executions endpoints answer like
//! StackStorm's (shapes, filters, 400s and 401s).

use std::process::Output;

use serde_json::{Value, json};
use st2_sim::{Sim, SimConfig};

/// Runs `demo --doctor` against `sim` with `api_key` (or none).
async fn doctor(sim: &Sim, api_key: Option<&str>) -> (Option<i32>, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_demo"));
    cmd.args(["--doctor", "--stackstorm-url", &sim.url()])
        .env_remove("ST2BOT_STACKSTORM_URL")
        .env_remove("ST2_API_KEY")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    if let Some(key) = api_key {
        cmd.env("ST2_API_KEY", key);
    }
    let Output { status, stdout, .. } = cmd.output().await.expect("run the demo bot");
    (status.code(), String::from_utf8_lossy(&stdout).into_owned())
}

fn line<'a>(text: &'a str, what: &str) -> &'a str {
    text.lines()
        .find(|l| l[4..].trim_start().starts_with(&format!("{what}:")))
        .unwrap_or_else(|| panic!("no `{what}` line in\n{text}"))
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("st2bot-doctor-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A definition whose API and auth are `sim`'s and whose stream is `stream_url`, with the
/// simulator's API key in a file.
fn spec_with(sim: &Sim, stream_url: &str, extra: &str, name: &str) -> bot_config::BotSpec {
    let key = temp_dir(name).join("st2-api-key");
    std::fs::write(&key, "sim-api-key\n").unwrap();
    let base = sim.url();
    let yaml = format!(
        "name: t\nbackend: {{kind: text}}\nstackstorm:\n  api_url: {base}/api\n  auth_url: {base}/auth\n  stream_url: {stream_url}\n  auth: {{api_key: \"file:{}\"}}\n{extra}",
        key.display()
    );
    bot_config::load(&bot_config::SourceFile::new("t.yaml", yaml)).expect("valid")
}

async fn doctor_in_process(spec: &bot_config::BotSpec) -> Vec<bot_runtime::check::CheckLine> {
    bot_runtime::http::install_crypto_provider();
    let client = bot_runtime::stackstorm::St2Client::new(&spec.stackstorm).expect("client");
    bot_runtime::doctor::run(spec, &client).await
}

#[tokio::test]
async fn a_healthy_stackstorm_passes_every_check() {
    let sim = Sim::start(SimConfig::demo()).await.unwrap();
    let (code, text) = doctor(&sim, Some("sim-api-key")).await;
    assert_eq!(code, Some(0), "{text}");
    for what in [
        "StackStorm API",
        "action aliases",
        "notify rule",
        "event stream",
        "test announcement",
    ] {
        assert!(line(&text, what).starts_with("ok "), "{what}: {text}");
    }
    assert!(
        line(&text, "action aliases").contains("8 of 9 enabled"),
        "{text}"
    );
    assert!(
        line(&text, "notify rule").contains(
            "`chatops.notify` is enabled: results of route `hubot` are announced on `chatops`"
        ),
        "{text}"
    );
    assert!(text.ends_with("all checks passed\n"), "{text}");

    // The doctor asked StackStorm the documented way, with the bot's key.
    let requests = sim.requests();
    let rules = requests
        .iter()
        .find(|r| r.path == "/api/v1/rules")
        .expect("rules listed");
    assert!(rules.query.contains("pack=chatops"), "{rules:?}");
    let post = requests
        .iter()
        .find(|r| r.method == "POST" && r.path == "/api/v1/executions")
        .expect("test announcement requested");
    assert_eq!(
        post.credential,
        Some(("api-key".into(), "sim-api-key".into()))
    );
    let body = post.body.as_ref().unwrap();
    assert_eq!(body["action"], "chatops.post_message");
    assert_eq!(body["parameters"]["route"], "chatops");
    let channel = body["parameters"]["channel"].as_str().unwrap();
    assert!(channel.starts_with("st2bot-doctor-"), "{body}");
    assert!(
        line(&text, "test announcement").contains("arrived on `st2.announcement__chatops`"),
        "{text}"
    );
}

#[tokio::test]
async fn a_missing_notify_rule_fails_with_the_rule_to_add() {
    let config = SimConfig {
        routes: vec![("errbot".into(), "errbot".into())],
        ..SimConfig::demo()
    };
    let sim = Sim::start(config).await.unwrap();
    let (code, text) = doctor(&sim, Some("sim-api-key")).await;
    assert_eq!(code, Some(1), "{text}");
    let rule = line(&text, "notify rule");
    assert!(rule.starts_with("FAIL"), "{text}");
    assert!(
        rule.contains("no rule in the `chatops` pack handles notification route `hubot`")
            && rule.contains("st2 pack install chatops")
            && rule.contains("pattern: hubot"),
        "{rule}"
    );
    // The other checks still ran and passed.
    assert!(
        line(&text, "test announcement").starts_with("ok "),
        "{text}"
    );
    assert!(text.ends_with("1 check(s) failed\n"), "{text}");
}

#[tokio::test]
async fn a_disabled_notify_rule_fails_with_the_command_that_enables_it() {
    let config = SimConfig {
        disabled_rules: vec!["hubot".into()],
        ..SimConfig::demo()
    };
    let sim = Sim::start(config).await.unwrap();
    let (code, text) = doctor(&sim, Some("sim-api-key")).await;
    assert_eq!(code, Some(1), "{text}");
    let rule = line(&text, "notify rule");
    assert!(
        rule.starts_with("FAIL")
            && rule.contains("`chatops.notify` handles route `hubot` but is disabled")
            && rule.contains("st2 rule enable chatops.notify"),
        "{rule}"
    );
}

#[tokio::test]
async fn a_rule_announcing_on_another_route_is_caught() {
    let sim = Sim::start(SimConfig::demo()).await.unwrap();
    let stream = format!("{}/stream", sim.url());
    // The stock errbot rule announces on `errbot`; this bot listens on `chatops`.
    let spec = spec_with(&sim, &stream, "  notification_route: errbot\n", "mismatch");
    let lines = doctor_in_process(&spec).await;
    let rule = lines.iter().find(|l| l.what == "notify rule").unwrap();
    assert!(!rule.ok, "{rule:?}");
    assert!(
        rule.detail
            .contains("`chatops.notify-errbot` announces results on `errbot`, but the bot listens on `chatops`")
            && rule.detail.contains("announcement_route: errbot"),
        "{rule:?}"
    );
}

#[tokio::test]
async fn an_unreachable_stream_fails_and_skips_the_test_announcement() {
    let sim = Sim::start(SimConfig::demo()).await.unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let spec = spec_with(
        &sim,
        &format!("http://127.0.0.1:{port}/stream"),
        "",
        "stream",
    );
    let lines = doctor_in_process(&spec).await;
    let text = bot_runtime::check::render(&lines);
    assert!(line(&text, "StackStorm API").starts_with("ok "), "{text}");
    assert!(line(&text, "notify rule").starts_with("ok "), "{text}");
    let stream = line(&text, "event stream");
    assert!(
        stream.starts_with("FAIL")
            && stream.contains("is unreachable")
            && stream.contains("is st2stream running"),
        "{text}"
    );
    assert!(
        line(&text, "test announcement")
            .contains("FAIL test announcement: not checked: the event stream did not connect"),
        "{text}"
    );
    assert!(
        !sim.requests()
            .iter()
            .any(|r| r.path == "/api/v1/executions"),
        "nothing posted when it could not be heard"
    );
}

#[tokio::test]
async fn no_enabled_alias_fails() {
    let mut aliases = st2_sim::demo_aliases();
    for a in &mut aliases {
        a["enabled"] = json!(false);
    }
    let sim = Sim::start(SimConfig {
        aliases,
        ..SimConfig::demo()
    })
    .await
    .unwrap();
    let (code, text) = doctor(&sim, Some("sim-api-key")).await;
    assert_eq!(code, Some(1), "{text}");
    let aliases = line(&text, "action aliases");
    assert!(
        aliases.starts_with("FAIL action aliases: 9 registered, none enabled")
            && aliases.contains("st2ctl reload --register-aliases"),
        "{text}"
    );

    let sim = Sim::start(SimConfig {
        aliases: Vec::new(),
        ..SimConfig::demo()
    })
    .await
    .unwrap();
    let (code, text) = doctor(&sim, Some("sim-api-key")).await;
    assert_eq!(code, Some(1), "{text}");
    assert!(
        line(&text, "action aliases").starts_with("FAIL action aliases: 0 registered"),
        "{text}"
    );
}

#[tokio::test]
async fn refused_or_missing_credentials_fail_first_and_skip_the_rest() {
    let sim = Sim::start(SimConfig::demo()).await.unwrap();
    let (code, text) = doctor(&sim, Some("wrong-key")).await;
    assert_eq!(code, Some(1), "{text}");
    let api = line(&text, "StackStorm API");
    assert!(
        api.starts_with("FAIL") && api.contains("refused") && api.contains("st2 apikey"),
        "{text}"
    );
    assert!(
        !text.contains("wrong-key"),
        "the key is never printed: {text}"
    );
    assert!(
        line(&text, "event stream").contains("not checked"),
        "{text}"
    );
    assert!(text.ends_with("5 check(s) failed\n"), "{text}");

    let (code, text) = doctor(&sim, None).await;
    assert_eq!(code, Some(1), "{text}");
    assert!(
        line(&text, "StackStorm credentials").contains("`ST2_API_KEY` is not set"),
        "{text}"
    );
}

#[tokio::test]
async fn the_simulator_answers_rules_and_executions_like_stackstorm() {
    bot_runtime::http::install_crypto_provider();
    let sim = Sim::start(SimConfig {
        disabled_rules: vec!["errbot".into()],
        ..SimConfig::demo()
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let api = format!("{}/api/v1", sim.url());

    let r = http.get(format!("{api}/rules")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["faultstring"],
        "Unauthorized - One of Token or API key required."
    );

    let get = |query: &str| {
        http.get(format!("{api}/rules{query}"))
            .header("St2-Api-Key", "sim-api-key")
            .send()
    };
    let r = get("?pack=chatops").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["X-Total-Count"], "2");
    let rules: Vec<Value> = r.json().await.unwrap();
    let names: Vec<&str> = rules.iter().map(|r| r["ref"].as_str().unwrap()).collect();
    assert_eq!(names, ["chatops.notify", "chatops.notify-errbot"]);
    let notify = &rules[0];
    assert_eq!(notify["trigger"]["type"], "core.st2.generic.notifytrigger");
    assert_eq!(
        notify["criteria"]["trigger.route"],
        json!({"pattern": "hubot", "type": "equals"})
    );
    assert_eq!(notify["action"]["ref"], "chatops.post_result");
    assert!(notify["action"]["parameters"].get("route").is_none());
    assert_eq!(rules[1]["enabled"], false);
    assert_eq!(
        rules[1]["action"]["parameters"]["route"],
        "{{ trigger.route }}"
    );
    let enabled: Vec<Value> = get("?pack=chatops&enabled=true")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(enabled.len(), 1);
    assert_eq!(
        get("?pack=core").await.unwrap().headers()["X-Total-Count"],
        "0"
    );
    assert_eq!(get("?enabled=maybe").await.unwrap().status(), 400);
    assert_eq!(get("?limit=101").await.unwrap().status(), 400);

    let post = |body: Value| {
        http.post(format!("{api}/executions"))
            .header("St2-Api-Key", "sim-api-key")
            .json(&body)
            .send()
    };
    let fault = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        (
            status,
            body["faultstring"].as_str().unwrap_or("").to_owned(),
        )
    };
    assert_eq!(
        fault(post(json!({"action": "nope.nothing"})).await.unwrap()).await,
        (400, "Action \"nope.nothing\" cannot be found.".into())
    );
    assert_eq!(
        fault(
            post(json!({"action": "chatops.post_message", "parameters": {"channel": "x"}}))
                .await
                .unwrap()
        )
        .await,
        (400, "'message' is a required property".into())
    );
    assert_eq!(
        fault(post(json!({"action": "chatops.post_message", "parameters": {"channel": "x", "message": "m", "colour": 1}})).await.unwrap()).await,
        (400, "Additional properties are not allowed ('colour' was unexpected)".into())
    );
    assert_eq!(
        fault(post(json!({"action": "chatops.post_message", "parameters": {"channel": "x", "message": "m", "experimental": false}})).await.unwrap()).await,
        (400, "Override of immutable parameter(s) ['experimental'] is unsupported.".into())
    );
    assert_eq!(
        fault(
            post(json!({"action": "chatops.post_message", "bogus": 1}))
                .await
                .unwrap()
        )
        .await,
        (
            400,
            "Additional properties are not allowed ('bogus' was unexpected)".into()
        )
    );
    let unauthenticated = http
        .post(format!("{api}/executions"))
        .json(&json!({"action": "chatops.post_message"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);

    // A valid post_message is accepted as `requested` and announced on its route.
    let mut stream = http
        .get(format!(
            "{}/stream/v1/stream?events=st2.announcement__*",
            sim.url()
        ))
        .header("St2-Api-Key", "sim-api-key")
        .send()
        .await
        .unwrap();
    let r = post(json!({"action": "chatops.post_message", "parameters": {"channel": "ops", "message": "hello", "route": "errbot"}}))
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let execution: Value = r.json().await.unwrap();
    assert_eq!(execution["status"], "requested");
    assert_eq!(execution["action"]["ref"], "chatops.post_message");
    assert_eq!(execution["parameters"]["whisper"], false);
    let mut seen = String::new();
    while !seen.contains("\n\n") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), stream.chunk())
            .await
            .expect("announcement in time")
            .unwrap()
            .expect("stream open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        seen.starts_with("event: st2.announcement__errbot\n"),
        "{seen}"
    );
    let data: Value =
        serde_json::from_str(seen.lines().find_map(|l| l.strip_prefix("data: ")).unwrap()).unwrap();
    assert_eq!(
        data["payload"],
        json!({"channel": "ops", "message": "hello", "whisper": false})
    );
}
