//! Issue 19: results are not lost in a stream gap. The demo bot (Text backend) against the
//! simulator, whose stream is cut while a result is published (StackStorm does not replay
//! it): the result is recovered exactly once after the reconnect, after a bot restart (owed
//! list in `--results-store`), for `match_and_execute` executions (by execution id), a late
//! duplicate announcement is dropped, and an execution
//! that never finishes stops being awaited after `--result-timeout` with a log line. Also
//! the simulator's side of it: execution documents by id and by filter, and execution
//! updates on the stream.

use st2bot_testkit as support;

use std::time::Duration;

use serde_json::{Value, json};
use st2_sim::{Sim, SimConfig};
use support::bot::BotProcess;

const WAIT: Duration = Duration::from_secs(15);

fn start_bot(sim: &Sim, extra: &[&str]) -> BotProcess {
    start_exe(env!("CARGO_BIN_EXE_demo"), sim, extra)
}

/// `exe` as alice against `sim`.
fn start_exe(exe: &str, sim: &Sim, extra: &[&str]) -> BotProcess {
    let url = sim.url();
    let mut args = vec!["--user", "alice", "--stackstorm-url", url.as_str()];
    args.extend_from_slice(extra);
    BotProcess::start(exe, &args, &[("ST2_API_KEY", "sim-api-key")])
}

async fn wait_for_stream(sim: &Sim, clients: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while sim.stream_clients() < clients {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the bot never connected to the stream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the simulator has finished execution `id` (its announcement, if the stream
/// is cut, went nowhere).
async fn wait_finished(sim: &Sim, id: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status = sim
            .execution_document(id)
            .and_then(|d| d["status"].as_str().map(str::to_owned));
        if status.as_deref() == Some("succeeded") {
            // The notify rule announces right after the status changes.
            tokio::time::sleep(Duration::from_millis(100)).await;
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "execution {id} never finished: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `!local date` while the stream is cut; returns the execution id once its result
/// has been published to no one.
async fn run_during_a_gap(sim: &Sim, bot: &mut BotProcess) -> String {
    wait_for_stream(sim, 1).await;
    sim.cut_stream();
    bot.expect_log("StackStorm stream disconnected", WAIT).await;
    bot.say("!local date").await;
    bot.expect("alice: running `core.local`, execution", WAIT)
        .await;
    let id = sim.executions().last().expect("an execution").id.clone();
    wait_finished(sim, &id).await;
    id
}

fn results_posted(bot: &BotProcess, id: &str) -> usize {
    let needle = format!("@alice: Execution {id} succeeded:");
    bot.transcript
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(&needle))
        .count()
}

async fn metrics(port: u16) -> String {
    bot_runtime::http::install_crypto_provider();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await
            && r.status().is_success()
        {
            return r.text().await.unwrap_or_default();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no /metrics on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_result_published_during_a_stream_gap_is_posted_once_after_the_reconnect() {
    let sim = Sim::start(SimConfig::demo()).await.expect("simulator");
    let port = support::free_port().to_string();
    let mut bot = start_bot(&sim, &["--health-listen", &format!("127.0.0.1:{port}")]);
    let id = run_during_a_gap(&sim, &mut bot).await;
    assert_eq!(results_posted(&bot, &id), 0, "the stream was cut");

    sim.restore_stream();
    bot.expect(&format!("@alice: Execution {id} succeeded:"), WAIT)
        .await;
    bot.expect_log("recovered=1", WAIT).await;
    // StackStorm was asked to run the notify rule's action again, as the rule does.
    let request = sim
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path == "/api/v1/executions")
        .expect("a chatops.post_result request");
    let body = request.body.expect("a body");
    assert_eq!(body["action"], "chatops.post_result");
    assert_eq!(body["parameters"]["execution_id"], id);
    assert_eq!(body["parameters"]["channel"], "ops");
    assert_eq!(body["parameters"]["route"], "chatops");
    assert_eq!(
        body["parameters"]["context"],
        sim.executions().last().unwrap().source_context
    );

    // Another gap with nothing owed recovers nothing and posts nothing twice.
    sim.drop_stream_clients();
    wait_for_stream(&sim, 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(results_posted(&bot, &id), 1);
    let port: u16 = port.parse().unwrap();
    let m = metrics(port).await;
    assert!(m.contains("st2bot_results_recovered_total 1"), "{m}");
}

/// Executions started by `match_and_execute` (a `match_multiple` format) carry no
/// `source_context`: they are owed by execution id, recovered without a context, and
/// told apart by the id their result names.
#[tokio::test]
async fn match_and_execute_results_missed_in_a_gap_are_recovered_by_execution_id() {
    let sim = Sim::start(SimConfig::demo()).await.expect("simulator");
    let mut bot = start_bot(&sim, &[]);
    wait_for_stream(&sim, 1).await;
    sim.cut_stream();
    bot.expect_log("StackStorm stream disconnected", WAIT).await;
    bot.say("!fixes ABC-1 and fixes ABC-2").await;
    bot.expect("alice: running `jira.link_fixes`, execution", WAIT)
        .await;
    bot.expect("alice: running `jira.link_fixes`, execution", WAIT)
        .await;
    let executions = sim.executions();
    assert_eq!(executions.len(), 2, "one execution per issue key");
    assert!(executions.iter().all(|e| e.source_context.is_null()));
    let ids: Vec<String> = executions.iter().map(|e| e.id.clone()).collect();
    for id in &ids {
        wait_finished(&sim, id).await;
    }

    sim.restore_stream();
    // Both results, in whichever order the recovery posts them.
    let mut unseen: Vec<String> = ids
        .iter()
        .map(|id| format!("@alice: Execution {id} succeeded:"))
        .collect();
    while !unseen.is_empty() {
        let line = bot.expect("@alice: Execution ", WAIT).await;
        unseen.retain(|want| !line.contains(want.as_str()));
    }
    bot.expect_log("recovered=2", WAIT).await;
    let asked: Vec<Value> = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/api/v1/executions")
        .filter_map(|r| r.body)
        .collect();
    assert_eq!(asked.len(), 2, "{asked:?}");
    for body in &asked {
        assert_eq!(body["action"], "chatops.post_result");
        assert!(
            body["parameters"].get("context").is_none(),
            "no context to pass on: {body}"
        );
    }

    // The original announcement, late: recognised by the execution id in its text.
    sim.announce(
        "chatops",
        json!({
            "message": format!("Execution {} succeeded:\n```\nlate\n```", ids[0]),
            "channel": "ops",
            "user": "alice",
            "whisper": false,
            "context": null,
        }),
    );
    bot.expect_log("duplicate announcement dropped", WAIT).await;
    // Another gap: nothing is owed any more, nothing is asked for again.
    sim.drop_stream_clients();
    wait_for_stream(&sim, 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in &ids {
        assert_eq!(results_posted(&bot, id), 1);
    }
}

#[tokio::test]
async fn a_late_announcement_after_recovery_is_dropped_as_a_duplicate() {
    let sim = Sim::start(SimConfig::demo()).await.expect("simulator");
    let mut bot = start_bot(&sim, &[]);
    let id = run_during_a_gap(&sim, &mut bot).await;
    sim.restore_stream();
    bot.expect(&format!("@alice: Execution {id} succeeded:"), WAIT)
        .await;

    // The original announcement, late (a slow notify chain): same context, same text.
    let execution = sim.executions().last().unwrap().clone();
    sim.announce(
        "chatops",
        json!({
            "message": format!("Execution {id} succeeded:\n```\nlate\n```"),
            "channel": execution.source_channel,
            "user": execution.user,
            "whisper": false,
            "context": execution.source_context,
        }),
    );
    bot.expect_log("duplicate announcement dropped", WAIT).await;
    // Announcements that are not owed results still go through.
    sim.announce(
        "chatops",
        json!({"message": "a rule says hello", "channel": "ops"}),
    );
    bot.expect("a rule says hello", WAIT).await;
    assert_eq!(results_posted(&bot, &id), 1);
}

#[tokio::test]
async fn a_result_missed_while_the_bot_was_down_is_posted_after_its_restart() {
    let sim = Sim::start(SimConfig::demo()).await.expect("simulator");
    let dir = support::TempDir::new("results-restart");
    let store = dir.join("owed.redb");
    let store = store.to_str().unwrap();
    // The demo with `stackstorm.results_store` (the file store is linked in only there).
    let exe = env!("CARGO_BIN_EXE_demo-results");
    let mut bot = start_exe(exe, &sim, &["--results-store", store]);
    wait_for_stream(&sim, 1).await;
    sim.cut_stream();
    bot.say("!local date").await;
    bot.expect("alice: running `core.local`, execution", WAIT)
        .await;
    let id = sim.executions().last().unwrap().id.clone();
    bot.terminate();
    assert!(bot.wait_exit(WAIT).await.is_some(), "the bot did not stop");
    wait_finished(&sim, &id).await;
    sim.restore_stream();

    let mut again = start_exe(exe, &sim, &["--results-store", store]);
    again
        .expect(&format!("@alice: Execution {id} succeeded:"), WAIT)
        .await;
    again.expect_log("recovered=1", WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(results_posted(&again, &id), 1);
}

#[tokio::test]
async fn an_execution_that_never_finishes_is_no_longer_awaited_after_the_bound() {
    let sim = Sim::start(SimConfig::demo()).await.expect("simulator");
    let mut bot = start_bot(&sim, &["--result-timeout", "2s"]);
    wait_for_stream(&sim, 1).await;
    sim.hold_results(true);
    bot.say("!local date").await;
    bot.expect("alice: running `core.local`, execution", WAIT)
        .await;
    let id = sim.executions().last().unwrap().id.clone();
    // A gap while it runs: it is looked up, found running, and stays owed.
    sim.drop_stream_clients();
    bot.expect_log("running=1", WAIT).await;
    bot.expect_log(
        "no result for this execution within stackstorm.result_timeout",
        WAIT,
    )
    .await;
    let logs = bot.logs.lock().unwrap().clone();
    let line = logs
        .lines()
        .find(|l| l.contains("within stackstorm.result_timeout"))
        .unwrap();
    assert!(line.contains(&id), "{line}");
    assert_eq!(
        sim.execution_document(&id).unwrap()["status"],
        "running",
        "the simulator still runs it"
    );
    // Nothing is owed any more: the next gap asks StackStorm nothing.
    let lookups = |sim: &Sim| {
        sim.requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.starts_with("/api/v1/executions/"))
            .count()
    };
    let before = lookups(&sim);
    sim.drop_stream_clients();
    wait_for_stream(&sim, 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(lookups(&sim), before);
}

/// The simulator serves executions as StackStorm's API does: by id (with
/// `include_attributes`), 404 with StackStorm's message, listed newest first with
/// filters and `X-Total-Count`; and each status change is an `st2.execution__update` event.
#[tokio::test]
async fn the_simulator_serves_executions_and_their_updates() {
    bot_runtime::http::install_crypto_provider();
    let sim = Sim::start(SimConfig::demo()).await.expect("simulator");
    let http = reqwest::Client::new();
    let api = format!("{}/api/v1", sim.url());
    let mut stream = http
        .get(format!(
            "{}/stream/v1/stream?events=st2.execution__update",
            sim.url()
        ))
        .header("St2-Api-Key", "sim-api-key")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let run = |command: &str, format: &str, name: &str| {
        http.post(format!("{api}/aliasexecution"))
            .header("St2-Api-Key", "sim-api-key")
            .json(&json!({"name": name, "format": format, "command": command,
                "user": "alice", "source_channel": "ops", "source_context": {"k": 1},
                "notification_route": "hubot"}))
            .send()
    };
    let first: Value = run("local date", "local {{cmd}}", "local")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = first["execution"]["id"].as_str().unwrap().to_owned();
    run("status web", "status {{service}}", "service_status")
        .await
        .unwrap();

    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !(seen.contains(&id) && seen.contains("\"status\":\"succeeded\"")) {
        assert!(tokio::time::Instant::now() < deadline, "{seen}");
        if let Ok(Ok(Some(chunk))) =
            tokio::time::timeout(Duration::from_millis(200), stream.chunk()).await
        {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    assert!(seen.contains("event: st2.execution__update"), "{seen}");
    assert!(seen.contains("\"status\":\"running\""), "{seen}");

    let one: Value = http
        .get(format!(
            "{api}/executions/{id}?include_attributes=id,status"
        ))
        .header("St2-Api-Key", "sim-api-key")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one, json!({"id": id, "status": "succeeded"}));
    let missing = http
        .get(format!("{api}/executions/000000000000000000000000"))
        .header("St2-Api-Key", "sim-api-key")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let fault: Value = missing.json().await.unwrap();
    assert_eq!(
        fault["faultstring"],
        "Unable to identify resource with id \"000000000000000000000000\"."
    );
    let unauthenticated = http
        .get(format!("{api}/executions/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);

    let list = http
        .get(format!("{api}/executions?action=core.local&limit=10"))
        .header("St2-Api-Key", "sim-api-key")
        .send()
        .await
        .unwrap();
    assert_eq!(list.headers()["X-Total-Count"], "1");
    let docs: Vec<Value> = list.json().await.unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["id"], id);
    assert_eq!(docs[0]["context"]["source_channel"], "ops");
    let deadline = tokio::time::Instant::now() + WAIT;
    let all = loop {
        let all: Vec<Value> = http
            .get(format!("{api}/executions?status=succeeded"))
            .header("St2-Api-Key", "sim-api-key")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if all.len() == 2 {
            break all;
        }
        assert!(tokio::time::Instant::now() < deadline, "{all:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(all[1]["id"], id, "newest first");
    let too_many = http
        .get(format!("{api}/executions?limit=101"))
        .header("St2-Api-Key", "sim-api-key")
        .send()
        .await
        .unwrap();
    assert_eq!(too_many.status(), 400);
}
