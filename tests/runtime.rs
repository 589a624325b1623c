//! End-to-end: the demo bot executable on its Text backend against the StackStorm
//! simulator (`st2-sim`): help, runs with acks and results, every kind of failure reply,
//! announcements (room, whisper, other room), a malformed stream event, stream reconnects,
//! token renewal, and access rules that stop a command before it reaches StackStorm.

use st2bot_testkit as support;

use std::time::Duration;

use serde_json::json;
use st2_sim::{Sim, SimConfig};
use support::bot::BotProcess;

const WAIT: Duration = Duration::from_secs(15);

async fn start(user: &str) -> (Sim, BotProcess) {
    let sim = Sim::start(SimConfig::demo()).await.expect("simulator");
    let url = sim.url();
    let bot = BotProcess::start(
        env!("CARGO_BIN_EXE_demo"),
        &["--user", user, "--stackstorm-url", &url],
        &[("ST2_API_KEY", "sim-api-key")],
    );
    (sim, bot)
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

#[tokio::test]
async fn help_lists_everything_by_pack_and_by_keyword() {
    let (_sim, mut bot) = start("alice").await;
    bot.say("!help").await;
    let all = bot
        .collect_until("!rm {{path}} on {{hosts}}", WAIT)
        .await
        .join("\n");
    assert!(all.contains("core:"), "{all}");
    assert!(
        all.contains("  !local {{cmd}} - Run a command on the StackStorm host"),
        "{all}"
    );
    assert!(
        all.contains("  !deploy <app> [to <env>] - Deploy an application"),
        "{all}"
    );
    assert!(
        !all.contains("reboot"),
        "disabled aliases are not listed: {all}"
    );

    bot.say("!help packs").await;
    let packs = bot
        .collect_until("!pack get {{pack}}", WAIT)
        .await
        .join("\n");
    assert!(
        packs.contains("packs:") && packs.contains("!pack install {{packs}}"),
        "{packs}"
    );
    assert!(!packs.contains("local {{cmd}}"), "{packs}");

    bot.say("!help deploy").await;
    bot.expect("!deploy <app> [to <env>]", WAIT).await;

    bot.say("!help examples status").await;
    let line = bot.expect("status", WAIT).await;
    assert!(
        line.contains("!status {{service}}") || line.contains("examples:"),
        "{line}"
    );

    bot.say("!help nosuchthing").await;
    bot.expect("alice: no commands matching `nosuchthing`.", WAIT)
        .await;
}

/// Issue 15 item 4: help lists only what the caller may run there, and `help --all` is a
/// command of its own (`bot:help-all`) that the access rules grant.
#[tokio::test]
async fn help_lists_only_what_the_caller_may_run_and_all_needs_a_rule() {
    // carol is not on call: rule 2 denies her `core.remote*` and `linux.rm*`.
    let (_sim, mut bot) = start("carol").await;
    bot.say("!help").await;
    let mine = bot
        .collect_until("!status of {{service}} - Check a service", WAIT)
        .await
        .join("\n");
    assert!(
        mine.contains("core:\n  !local {{cmd}} - Run a command on the StackStorm host"),
        "{mine}"
    );
    assert!(
        mine.contains("  !deploy <app> [to <env>] - Deploy an application"),
        "{mine}"
    );
    assert!(
        !mine.contains("{{hosts}}"),
        "core.remote and linux.rm are denied: {mine}"
    );
    assert!(
        !mine.contains("packs:"),
        "no rule lets carol run packs.*: {mine}"
    );
    assert!(
        !mine.contains("fixes"),
        "no rule lets carol run jira.*: {mine}"
    );
    bot.say("!help linux").await;
    bot.expect("carol: no commands in pack `linux`.", WAIT)
        .await;
    bot.say("!help --all").await;
    bot.expect(
        "carol: you are not allowed to run `help --all` in ops. Ask an admin if you need it.",
        WAIT,
    )
    .await;

    // alice is on call (rule 1 has no `commands`: it grants `bot:help-all` too).
    let (_sim, mut bot) = start("alice").await;
    bot.say("!help --all linux").await;
    bot.expect("!rm {{path}} on {{hosts}}", WAIT).await;
}

#[tokio::test]
async fn a_command_runs_is_acknowledged_and_its_result_arrives() {
    let (sim, mut bot) = start("alice").await;
    wait_for_stream(&sim, 1).await;
    bot.say("!local date").await;
    let ack = bot
        .expect("alice: running `core.local`, execution", WAIT)
        .await;
    let executions = sim.executions();
    assert_eq!(executions.len(), 1);
    let e = &executions[0];
    assert!(
        ack.contains(&e.id) && ack.contains(&format!("/#/history/{}/general", e.id)),
        "{ack}"
    );
    assert_eq!(e.alias, "core.local");
    assert_eq!(e.parameters, json!({"cmd": "date"}));
    assert_eq!(e.user, "alice");
    assert_eq!(e.source_channel, "ops");
    assert_eq!(e.notification_route.as_deref(), Some("hubot"));
    assert_eq!(e.source_context["room"], "ops");
    assert_eq!(e.source_context["bot"], "demo");
    assert_eq!(e.credential, Some(("api-key".into(), "sim-api-key".into())));
    // The simulated chatops rule posts the result back to the room, mentioning the user.
    bot.expect(&format!("@alice: Execution {} succeeded:", e.id), WAIT)
        .await;

    // An alias with its own ack format: StackStorm's rendered message is used.
    bot.say("!deploy api to prod").await;
    bot.expect("deploying deploy (execution", WAIT).await;
    assert_eq!(
        sim.executions()[1].parameters,
        json!({"app": "api", "env": "prod"})
    );
    // Issue 13 item 4: the aliases are loaded once at start, not twice.
    let logs = bot.logs.lock().unwrap().clone();
    assert_eq!(logs.matches("action aliases loaded").count(), 1, "{logs}");
}

#[tokio::test]
async fn no_match_ambiguity_and_disabled_aliases_get_clear_replies() {
    let (_sim, mut bot) = start("alice").await;
    bot.say("!dpeloy api").await;
    bot.expect("alice: no command matches `dpeloy api`. Closest:", WAIT)
        .await;
    bot.expect("!deploy", WAIT).await;
    bot.expect("See !help.", WAIT).await;

    bot.say("!status of nginx").await;
    bot.expect(
        "alice: `status of nginx` matches more than one command:",
        WAIT,
    )
    .await;

    bot.say("!reboot web1").await;
    bot.expect("alice: no command matches `reboot web1`", WAIT)
        .await;

    bot.say("!").await;
    bot.expect("alice: say `!help` to see what I can do", WAIT)
        .await;
}

#[tokio::test]
async fn stackstorm_down_and_back() {
    let (sim, mut bot) = start("alice").await;
    wait_for_stream(&sim, 1).await;
    sim.set_available(false);
    bot.say("!local date").await;
    bot.expect(
        "alice: `local date` failed: HTTP 503 Service Unavailable",
        WAIT,
    )
    .await;
    sim.set_available(true);
    bot.say("!local date").await;
    bot.expect("alice: running `core.local`", WAIT).await;
    // Gone altogether: a clear "unreachable" reply, not silence.
    drop(sim);
    bot.say("!local uptime").await;
    bot.expect("StackStorm is unreachable right now", WAIT)
        .await;
}

#[tokio::test]
async fn announcements_go_to_rooms_and_whispers_and_bad_events_are_skipped() {
    let (sim, mut bot) = start("alice").await;
    wait_for_stream(&sim, 1).await;
    sim.announce(
        "chatops",
        json!({"message": "deploy finished", "channel": "ops", "user": "alice"}),
    );
    bot.expect("@alice: deploy finished", WAIT).await;
    sim.announce(
        "chatops",
        json!({"message": "for your eyes", "channel": "ops", "user": "alice", "whisper": true}),
    );
    bot.expect("[to alice] for your eyes", WAIT).await;
    sim.announce(
        "chatops",
        json!({"message": "from a rule", "channel": "dev"}),
    );
    bot.expect("[dev] from a rule", WAIT).await;
    // Another route is not ours.
    sim.announce(
        "errbot",
        json!({"message": "not for this bot", "channel": "ops"}),
    );
    sim.send_raw_event("st2.announcement__chatops", "{not json");
    sim.announce(
        "chatops",
        json!({"message": "still alive", "channel": "ops"}),
    );
    bot.expect("still alive", WAIT).await;
    assert!(
        !bot.transcript
            .lock()
            .unwrap()
            .join("\n")
            .contains("not for this bot")
    );
    bot.expect_log("skipping malformed stream event", WAIT)
        .await;
}

#[tokio::test]
async fn the_stream_reconnects_after_a_disconnect() {
    let (sim, mut bot) = start("alice").await;
    wait_for_stream(&sim, 1).await;
    sim.drop_stream_clients();
    bot.expect_log("StackStorm stream disconnected", WAIT).await;
    wait_for_stream(&sim, 1).await;
    sim.announce(
        "chatops",
        json!({"message": "after the reconnect", "channel": "ops"}),
    );
    bot.expect("after the reconnect", WAIT).await;
}

#[tokio::test]
async fn access_rules_stop_denied_commands_before_stackstorm() {
    let (sim, mut bot) = start("carol").await;
    wait_for_stream(&sim, 1).await;
    bot.say("!rm /tmp/x on web1").await;
    let denial = bot
        .expect(
            "carol: you are not allowed to run `rm /tmp/x on web1` in ops. Ask an admin if you need it.",
            WAIT,
        )
        .await;
    assert!(
        !denial.contains("rule") && !denial.contains("line"),
        "{denial}"
    );
    bot.say("!local hostname").await;
    bot.expect("carol: running `core.local`", WAIT).await;
    let executions = sim.executions();
    assert_eq!(executions.len(), 1, "only the allowed command ran");
    assert_eq!(executions[0].alias, "core.local");
    assert!(
        !sim.requests().iter().any(|r| r
            .body
            .as_ref()
            .is_some_and(|b| b.to_string().contains("rm /tmp/x"))),
        "the denied command reached StackStorm"
    );
    bot.expect_log("decision=\"deny\"", WAIT).await;
    bot.expect_log("rule=rule 2 (line", WAIT).await;
}

/// Issue 12 item 5: echoes of user text are capped, in replies and in logs, and a typed
/// `{~}` does not split the reply.
#[tokio::test]
async fn echoed_user_text_is_capped_and_cannot_split_the_reply() {
    let (_sim, mut bot) = start("carol").await;
    let long = format!("x{{~}}{}", "z".repeat(60_000));
    bot.say(&format!("!rm {long} on web1")).await;
    let denial = bot
        .expect("carol: you are not allowed to run `rm x{", WAIT)
        .await;
    assert!(denial.contains("…` in ops."), "{denial}");
    assert!(
        denial.chars().count() < 300,
        "{} characters",
        denial.chars().count()
    );
    assert!(!denial.contains("{~}"), "{denial}");
    bot.say("!").await;
    bot.expect("carol: say `!help`", WAIT).await;
    let logs = bot.logs.lock().unwrap().clone();
    assert!(
        logs.lines().all(|l| l.len() < 2_000),
        "a log line carries the whole command"
    );
}

#[tokio::test]
async fn end_of_input_finishes_in_flight_work_and_exits_cleanly() {
    let (sim, mut bot) = start("alice").await;
    wait_for_stream(&sim, 1).await;
    bot.say("!local date").await;
    bot.close_input();
    bot.expect("alice: running `core.local`", WAIT).await;
    assert_eq!(bot.wait(WAIT).await, Some(0));
}

#[tokio::test]
async fn check_reports_each_problem_and_exits_non_zero() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_demo"))
        .args(["--check", "--stackstorm-url", "http://127.0.0.1:9"])
        .env_remove("ST2_API_KEY")
        .env_remove("ST2BOT_STACKSTORM_URL")
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            "FAIL secret stackstorm.auth.api_key: environment variable `ST2_API_KEY` is not set"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "FAIL StackStorm API: http://127.0.0.1:9/api/v1/actionalias?limit=1 is unreachable"
        ),
        "{text}"
    );
    assert!(text.contains("check(s) failed"), "{text}");

    let sim = Sim::start(SimConfig::demo()).await.unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_demo"))
        .args(["--check", "--stackstorm-url", &sim.url()])
        .env("ST2_API_KEY", "sim-api-key")
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("ok   StackStorm API:") && text.ends_with("all checks passed\n"),
        "{text}"
    );
}

/// Issue 12 item 1: a 1 MiB result line inside a code fence used to hang the splitter for
/// ever; now the result arrives, cut to a bounded size with a note pointing at the execution.
/// (Commands are capped at 64 KiB since, so the line here is 64 KiB: longer than the 40,000
/// characters a reply may have.)
#[tokio::test]
async fn an_over_long_result_line_is_posted_truncated_with_a_pointer_to_the_execution() {
    let (sim, mut bot) = start("alice").await;
    wait_for_stream(&sim, 1).await;
    // As long as a command may be (64 KiB): its output is longer than a reply may be.
    let word = "y".repeat(bot_runtime::dispatch::MAX_COMMAND_BYTES - "local echo ".len());
    bot.say(&format!("!local echo {word}")).await;
    let slow = Duration::from_secs(30);
    bot.expect("alice: running `core.local`", slow).await;
    let id = sim.executions()[0].id.clone();
    let note = bot.expect("… (truncated, ", slow).await;
    assert!(
        note.contains(" more characters; see http://127.0.0.1:")
            && note.contains(&format!("/#/history/{id}/general)")),
        "{note}"
    );
    let printed: usize = bot.transcript.lock().unwrap().iter().map(|l| l.len()).sum();
    assert!(printed < 64 * 1024, "{printed} bytes printed");
    // The bot is still responsive afterwards.
    bot.say("!local date").await;
    bot.expect("alice: running `core.local`", WAIT).await;
    let second = sim.executions()[1].id.clone();
    bot.expect(&format!("@alice: Execution {second} succeeded:"), WAIT)
        .await;
}

/// Issue 12 item 3: an invalid UTF-8 byte on standard input costs a character, not the bot;
/// terminal escapes in results are printed visibly escaped.
#[tokio::test]
async fn invalid_utf8_input_and_terminal_escapes_do_not_reach_the_terminal_raw() {
    let (sim, mut bot) = start("alice").await;
    wait_for_stream(&sim, 1).await;
    bot.type_bytes(b"!help \xff\xfe\n").await;
    bot.expect("alice: no commands matching `\u{fffd}\u{fffd}`.", WAIT)
        .await;
    sim.announce(
        "chatops",
        json!({"message": "\u{1b}]0;owned\u{7}\u{1b}[2Jdone \u{9b}31m", "channel": "ops"}),
    );
    let line = bot.expect("owned", WAIT).await;
    assert_eq!(line, "\\x1b]0;owned\\x07\\x1b[2Jdone \\u{9b}31m");
    bot.say("!local date").await;
    bot.expect("alice: running `core.local`", WAIT).await;
}

/// A TCP proxy to `target` that holds each chunk the client sends for `delay`: StackStorm
/// answering slowly, so a command is still in flight when the test wants it to be.
async fn slow_proxy(target: std::net::SocketAddr, delay: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                let (mut client_rx, mut client_tx) = client.into_split();
                let (mut server_rx, mut server_tx) = server.into_split();
                let up = async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n @ 1..) = client_rx.read(&mut buf).await {
                        tokio::time::sleep(delay).await;
                        if server_tx.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = server_tx.shutdown().await;
                };
                let down = async move {
                    let _ = tokio::io::copy(&mut server_rx, &mut client_tx).await;
                    let _ = client_tx.shutdown().await;
                };
                tokio::join!(up, down);
            });
        }
    });
    format!("http://{addr}")
}

/// Issue 12 item 4: SIGTERM with standard input still open ends the bot within the drain
/// bound, after the reply to the command in flight, with exit status 0.
#[tokio::test]
async fn sigterm_with_input_open_exits_in_time_after_the_reply_in_flight() {
    let sim = Sim::start(SimConfig::demo()).await.expect("simulator");
    let slow = slow_proxy(sim.addr(), Duration::from_millis(1500)).await;
    let mut bot = BotProcess::start(
        env!("CARGO_BIN_EXE_demo"),
        &["--user", "alice", "--stackstorm-url", &slow],
        &[("ST2_API_KEY", "sim-api-key")],
    );
    wait_for_stream(&sim, 1).await;
    bot.expect_log("action aliases loaded", WAIT).await;
    bot.say("!local date").await;
    // The command is read and sent; StackStorm takes 1.5 s to see it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(sim.executions().is_empty(), "not in flight any more");
    bot.terminate();
    let started = std::time::Instant::now();
    let code = bot.wait_exit(Duration::from_secs(20)).await;
    let took = started.elapsed();
    assert_eq!(code, Some(0), "exit status after SIGTERM");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(
        bot.transcript
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("alice: running `core.local`")),
        "the reply in flight was not printed"
    );
}

/// Issue 13 item 4: piped into the terminal demo, a command's result is printed before the
/// bot exits; logs stay at warnings; the banner says who and where.
#[tokio::test]
async fn piped_input_waits_for_results_and_the_terminal_stays_quiet() {
    // As the README says: printf '!local date\n' | cargo run --release --bin demo -- --simulate
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_demo"))
        .arg("--simulate")
        .env_remove("USER")
        .env_remove("ST2_API_KEY")
        .env_remove("RUST_LOG")
        .env_remove("ST2BOT_STACKSTORM_URL")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start demo");
    let mut child = out;
    type_and_close(&mut child, b"!local date\n").await;
    let started = std::time::Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(40), child.wait_with_output())
        .await
        .expect("the demo exits")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_local_date_ran(&stdout, "operator");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "lingered the whole bound although nothing was in flight"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l == "You are operator in room ops: type !help for commands, Ctrl-D to quit."),
        "no banner: {stderr}"
    );
    assert!(
        !stderr.contains(" INFO ") && stderr.lines().count() <= 3,
        "logs below WARN on the terminal: {stderr}"
    );
}

/// Standard input and output that are files, not pipes, are read and written on threads
/// of their own (backend/text.rs): the same replies, in the same shape.
#[tokio::test]
async fn input_and_output_files_print_the_same_replies() {
    let dir = std::env::temp_dir().join(format!("st2bot-text-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("input");
    let output = dir.join("output");
    std::fs::write(&input, "!local date\n").unwrap();
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_demo"))
        .args(["--simulate", "--user", "alice"])
        .env_remove("ST2_API_KEY")
        .env_remove("ST2BOT_STACKSTORM_URL")
        .stdin(std::fs::File::open(&input).unwrap())
        .stdout(std::fs::File::create(&output).unwrap())
        .stderr(std::process::Stdio::null())
        .status();
    let status = tokio::time::timeout(Duration::from_secs(40), status)
        .await
        .expect("the demo exits")
        .unwrap();
    let printed = std::fs::read_to_string(&output).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(status.code(), Some(0), "{printed}");
    assert_local_date_ran(&printed, "alice");
}

/// Output and errors sent into one pipe (`2>&1`): replies go through the bot's own
/// non-blocking descriptor for the pipe, while the banner and logs still use the inherited
/// blocking one; both arrive whole.
#[tokio::test]
async fn output_and_errors_in_one_pipe_both_arrive() {
    let (mut reader, writer) = std::io::pipe().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_demo"))
        .args(["--simulate", "--user", "alice"])
        .env_remove("ST2_API_KEY")
        .env_remove("ST2BOT_STACKSTORM_URL")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::piped())
        .stdout(writer.try_clone().unwrap())
        .stderr(writer)
        .spawn()
        .expect("start demo");
    type_and_close(&mut child, b"!local date\n!help\n").await;
    let read = tokio::task::spawn_blocking(move || {
        let mut all = String::new();
        std::io::Read::read_to_string(&mut reader, &mut all).map(|_| all)
    });
    let status = tokio::time::timeout(Duration::from_secs(40), child.wait())
        .await
        .expect("the demo exits")
        .unwrap();
    let printed = tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the pipe closes with the bot")
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0), "{printed}");
    assert!(printed.contains("You are alice in room ops"), "{printed}");
    assert_local_date_ran(&printed, "alice");
    assert!(
        printed.contains("!local {{cmd}} - Run a command"),
        "{printed}"
    );
}

/// bots/terminal.yaml, as its header says: commands piped in against a StackStorm given on
/// the command line. Without `simulator: true` it carries no simulator, and `--simulate`
/// says so.
#[tokio::test]
async fn the_terminal_bot_runs_against_stackstorm_and_has_no_demo_mode() {
    let sim = Sim::start(SimConfig::demo()).await.expect("simulator");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_terminal"))
        .args(["--user", "alice", "--stackstorm-url", &sim.url()])
        .env("ST2_API_KEY", "sim-api-key")
        .env_remove("ST2BOT_STACKSTORM_URL")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start terminal");
    type_and_close(&mut child, b"!local date\n").await;
    let out = tokio::time::timeout(Duration::from_secs(40), child.wait_with_output())
        .await
        .expect("the bot exits")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_local_date_ran(&stdout, "alice");

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_terminal"))
        .arg("--simulate")
        .env_remove("ST2_API_KEY")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "terminal: this executable has no StackStorm simulator: `--simulate` is for \
             terminal bots in demo mode (`backend: { kind: text, simulator: true }`"
        ),
        "{stderr}"
    );
}

/// What `!local date` typed as `user` prints: the ack, then the result.
fn assert_local_date_ran(printed: &str, user: &str) {
    assert!(
        printed.contains(&format!("{user}: running `core.local`")),
        "the ack: {printed}"
    );
    assert!(
        printed.contains(&format!("@{user}: Execution ")),
        "the result: {printed}"
    );
}

/// Writes `input` to the child's standard input and closes it (end of input).
async fn type_and_close(child: &mut tokio::process::Child, input: &[u8]) {
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().expect("standard input is piped");
    stdin.write_all(input).await.unwrap();
}
