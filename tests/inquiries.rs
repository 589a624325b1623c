//! Issue 16: inquiries answered from chat. The demo bot (Text backend) against the
//! simulator, where two workflows pause on an inquiry (`core.ask`) and the inquiry rule of
//! docs/inquiries.md announces each new one: the bot posts the question where the workflow
//! was started, an answer from chat resumes it, an invalid answer and a user outside the
//! inquiry's roles are refused before StackStorm sees anything, and an answered or expired
//! inquiry says so.

use st2bot_testkit as support;

use st2bot_testkit::fakes::slack as slack_fake;

use std::time::Duration;

use serde_json::{Value, json};
use st2_sim::{Sim, SimConfig};
use support::bot::BotProcess;

const WAIT: Duration = Duration::from_secs(15);

fn alias(name: &str, action: &str, format: &str) -> Value {
    json!({
        "id": format!("{:0>24}", name.len()), "uid": format!("action:ops:{name}"),
        "ref": format!("ops.{name}"), "name": name, "pack": "ops",
        "description": format!("{name}, after a human says yes"), "enabled": true,
        "action_ref": action, "formats": [format],
        "ack": {"enabled": true, "append_url": true}, "result": {"enabled": true},
    })
}

/// The demo data set plus two gated workflows: `ops.gated_deploy` asks one yes/no question
/// of the `oncall` role; `ops.release` asks for an environment and a replica count.
fn config() -> SimConfig {
    let mut config = SimConfig::demo();
    config.aliases.push(alias(
        "gated_deploy",
        "ops.gated_deploy",
        "gated deploy {{service}}",
    ));
    config
        .aliases
        .push(alias("release", "ops.release", "release {{version}}"));
    config.workflows = vec![
        (
            "ops.gated_deploy".into(),
            json!({"roles": ["oncall"], "ttl": 60, "schema": {"type": "object", "properties": {
                "approve": {"type": "boolean", "description": "Deploy to production?", "required": true}}}}),
        ),
        (
            "ops.release".into(),
            json!({"ttl": 30, "schema": {"type": "object", "properties": {
                "env": {"type": "string", "enum": ["prod", "staging"], "description": "Where to"},
                "replicas": {"type": "integer", "required": true}}}}),
        ),
    ];
    config.inquiry_rules = vec!["chatops".into()];
    config
}

fn start_bot(sim: &Sim, user: &str) -> BotProcess {
    let url = sim.url();
    BotProcess::start(
        env!("CARGO_BIN_EXE_demo"),
        &["--user", user, "--stackstorm-url", url.as_str()],
        &[("ST2_API_KEY", "sim-api-key")],
    )
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

/// Starts `command` as alice and waits for its inquiry to be posted: (workflow id, inquiry
/// id, the question's first line).
async fn ask_with_line(sim: &Sim, bot: &mut BotProcess, command: &str) -> (String, String, String) {
    bot.say(command).await;
    bot.expect("alice: running `ops.", WAIT).await;
    let workflow = sim.executions().last().expect("an execution").id.clone();
    let line = bot.expect("❓ Inquiry ", WAIT).await;
    let id = line
        .split("Inquiry ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("an inquiry id")
        .to_owned();
    let parent = sim.execution_document(&id).expect("the inquiry")["parent"].clone();
    assert_eq!(
        parent,
        json!(workflow),
        "the inquiry belongs to the workflow"
    );
    (workflow, id, line)
}

/// [`ask_with_line`] without the line.
async fn ask(sim: &Sim, bot: &mut BotProcess, command: &str) -> (String, String) {
    let (workflow, id, _) = ask_with_line(sim, bot, command).await;
    (workflow, id)
}

fn answers_sent(sim: &Sim) -> Vec<Value> {
    sim.requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path.starts_with("/api/v1/inquiries/"))
        .map(|r| r.body.unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn a_workflow_inquiry_answered_from_chat_resumes_it() {
    let sim = Sim::start(config()).await.expect("simulator");
    let mut bot = start_bot(&sim, "alice");
    wait_for_stream(&sim, 1).await;
    let (workflow, id, first) = ask_with_line(&sim, &mut bot, "!gated deploy web").await;
    // Posted in the room the command came from (the Text backend prefixes other rooms
    // with `[room]`), mentioning who started it, with the
    // field, its type and description, the time left and how to answer.
    assert_eq!(
        first,
        format!("@alice: ❓ Inquiry {id} is waiting for an answer (59m left)")
    );
    let question = bot
        .collect_until("Only members of oncall may answer.", WAIT)
        .await;
    let question = question.join("\n");
    assert!(
        question.contains("• approve (yes/no, required): Deploy to production?"),
        "{question}"
    );
    assert!(
        question.contains(&format!("`!approve {id}` or `!reject {id}`")),
        "{question}"
    );
    assert_eq!(
        sim.execution_document(&workflow).unwrap()["status"],
        "paused"
    );

    bot.say("!inquiry list").await;
    bot.expect(&format!("• {id} asks approve"), WAIT).await;

    bot.say(&format!("!approve {id}")).await;
    bot.expect(
        &format!("alice: inquiry {id} answered with {{\"approve\":true}}; the workflow resumes."),
        WAIT,
    )
    .await;
    assert_eq!(
        answers_sent(&sim),
        vec![json!({"id": id, "response": {"approve": true}})]
    );
    bot.expect(&format!("@alice: Execution {workflow} succeeded:"), WAIT)
        .await;
    bot.expect("response: {\"approve\":true}", WAIT).await;

    // Answered once: a second answer is refused by StackStorm's state, and said so.
    bot.say(&format!("!reject {id}")).await;
    bot.expect(&format!("alice: inquiry {id} was already answered"), WAIT)
        .await;
    assert_eq!(answers_sent(&sim).len(), 1);
}

#[tokio::test]
async fn an_invalid_answer_is_refused_before_stackstorm_sees_it() {
    let sim = Sim::start(config()).await.expect("simulator");
    let mut bot = start_bot(&sim, "alice");
    wait_for_stream(&sim, 1).await;
    let (workflow, id) = ask(&sim, &mut bot, "!release 2.4.1").await;
    bot.expect("• env (one of prod, staging): Where to", WAIT)
        .await;
    bot.expect("• replicas (integer, required)", WAIT).await;

    for (answer, reply) in [
        (
            "env=dev replicas=2",
            "`env` must be one of prod, staging, not `dev`",
        ),
        (
            "env=prod replicas=two",
            "`replicas` must be integer, not `two`",
        ),
        ("env=prod", "`replicas` is required"),
        (
            "env=prod replica=2",
            "`replica` is not a field of this inquiry (its fields: env, replicas)",
        ),
    ] {
        bot.say(&format!("!inquiry respond {id} {answer}")).await;
        bot.expect(
            &format!("alice: your answer to inquiry {id} was not sent: {reply}"),
            WAIT,
        )
        .await;
    }
    bot.say(&format!("!approve {id}")).await;
    bot.expect(
        &format!("alice: inquiry {id} asks more than yes or no"),
        WAIT,
    )
    .await;
    assert!(answers_sent(&sim).is_empty(), "nothing reached StackStorm");

    bot.say(&format!("!inquiry respond {id} env=prod replicas=3"))
        .await;
    bot.expect(&format!("alice: inquiry {id} answered with"), WAIT)
        .await;
    assert_eq!(
        answers_sent(&sim),
        vec![json!({"id": id, "response": {"env": "prod", "replicas": 3}})]
    );
    bot.expect(&format!("@alice: Execution {workflow} succeeded:"), WAIT)
        .await;
}

#[tokio::test]
async fn a_user_outside_the_inquirys_roles_cannot_answer() {
    let sim = Sim::start(config()).await.expect("simulator");
    let mut alice = start_bot(&sim, "alice");
    let mut carol = start_bot(&sim, "carol");
    wait_for_stream(&sim, 2).await;
    let (_, id) = ask(&sim, &mut alice, "!gated deploy api").await;
    // carol's bot did not start the workflow and the inquiry names no route: not posted.
    carol
        .expect_log(
            "an inquiry from a workflow this bot did not start, without route",
            WAIT,
        )
        .await;

    carol.say(&format!("!approve {id}")).await;
    carol
        .expect(
            &format!(
                "carol: you may not answer inquiry {id}: only members of oncall may answer it"
            ),
            WAIT,
        )
        .await;
    carol
        .say(&format!("!inquiry respond {id} approve=yes"))
        .await;
    carol
        .expect(&format!("carol: you may not answer inquiry {id}"), WAIT)
        .await;
    assert!(answers_sent(&sim).is_empty(), "nothing reached StackStorm");
    carol.expect_log("decision=\"deny\"", WAIT).await;
}

#[tokio::test]
async fn an_expired_inquiry_says_so_and_its_workflow_fails() {
    let sim = Sim::start(config()).await.expect("simulator");
    let mut bot = start_bot(&sim, "alice");
    wait_for_stream(&sim, 1).await;
    let (workflow, id) = ask(&sim, &mut bot, "!gated deploy db").await;
    assert_eq!(sim.expire_inquiries(), 1);
    bot.expect(&format!("@alice: Execution {workflow} failed:"), WAIT)
        .await;
    bot.say(&format!("!approve {id}")).await;
    bot.expect(
        &format!(
            "alice: inquiry {id} has expired (its time ran out): it can no longer be answered"
        ),
        WAIT,
    )
    .await;
    bot.say("!inquiry list").await;
    bot.expect("alice: no inquiry is waiting for an answer.", WAIT)
        .await;
    bot.say("!inquiry show 0123456789abcdef01234567").await;
    bot.expect("alice: there is no inquiry 0123456789abcdef01234567", WAIT)
        .await;
    bot.say("!approve").await;
    bot.expect(
        "alice: say which inquiry: `!approve ID` (`!inquiry list` shows them)",
        WAIT,
    )
    .await;
    bot.say("!inquiry answer 42").await;
    bot.expect(
        "alice: `answer` is not an inquiry command; say `!inquiry list`, `!inquiry show ID`",
        WAIT,
    )
    .await;
    bot.say("!inquiry show ../../executions").await;
    bot.expect("alice: `../../executions` is not an inquiry id", WAIT)
        .await;
    assert!(answers_sent(&sim).is_empty());
}

/// The simulator's side, through the bot's client: StackStorm checks `users` against the
/// requester (the bot's service identity here), and a bad response against the schema.
#[tokio::test]
async fn stackstorm_refuses_answers_from_users_not_listed_and_answers_off_schema() {
    use bot_runtime::stackstorm::St2Client;
    let mut config = config();
    config.workflows[0].1["users"] = json!(["alice"]);
    let sim = Sim::start(config).await.expect("simulator");
    let key = std::env::temp_dir().join(format!("st2bot-inquiry-key-{}", std::process::id()));
    std::fs::write(&key, "sim-api-key").unwrap();
    let yaml = format!(
        "name: t\nbackend: {{kind: text}}\nstackstorm:\n  url: {}\n  auth: {{api_key: \"file:{}\"}}\n",
        sim.url(),
        key.display()
    );
    let spec = bot_config::load(&bot_config::SourceFile::new("t.yaml", yaml)).expect("valid");
    bot_runtime::http::install_crypto_provider();
    let client = St2Client::new(&spec.stackstorm).unwrap();
    let mut bot = start_bot(&sim, "alice");
    wait_for_stream(&sim, 1).await;
    let (_, id) = ask(&sim, &mut bot, "!gated deploy web").await;

    let listed = client.inquiries().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].users, vec!["alice".to_owned()]);
    assert_eq!(listed[0].ttl, 60);
    let mut answer = serde_json::Map::new();
    answer.insert("approve".into(), json!("yes"));
    let e = client
        .respond_inquiry(&id, &answer, None)
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(403));
    assert_eq!(
        e.user_message(),
        format!("User \"st2admin\" does not have permission to respond to inquiry \"{id}\".")
    );
    // The bot tells the user so (it found alice in `users`; StackStorm saw its service user).
    bot.say(&format!("!approve {id}")).await;
    bot.expect(
        &format!("alice: StackStorm refused your answer to inquiry {id}: User \"st2admin\""),
        WAIT,
    )
    .await;
    drop(bot);
    let mut config = self::config();
    config.workflows[0].1["users"] = json!([]);
    let sim = Sim::start(config).await.expect("simulator");
    let mut bot = start_bot(&sim, "alice");
    wait_for_stream(&sim, 1).await;
    let (_, id) = ask(&sim, &mut bot, "!gated deploy web").await;
    let spec_yaml = format!(
        "name: t\nbackend: {{kind: text}}\nstackstorm:\n  url: {}\n  auth: {{api_key: \"file:{}\"}}\n",
        sim.url(),
        key.display()
    );
    let spec = bot_config::load(&bot_config::SourceFile::new("t.yaml", spec_yaml)).expect("valid");
    let client = St2Client::new(&spec.stackstorm).unwrap();
    let e = client
        .respond_inquiry(&id, &answer, None)
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(400));
    assert_eq!(
        e.user_message(),
        format!(
            "Response for inquiry \"{id}\" did not pass schema validation. \"yes\" is not of type 'boolean'"
        )
    );
}

/// Issue 16, the audit trail: a session replayed through the dispatcher of a definition with
/// `log.audit_file` (against the simulator); the trail has one JSON line per decision, in
/// order: a denied command, an allowed one and its execution, an inquiry answer refused for
/// the user, one refused for its value, and the answer sent. No credential appears in it.
#[tokio::test]
async fn the_audit_trail_records_a_session_line_by_line() {
    use bot_runtime::aliases::AliasCache;
    use bot_runtime::backend::{Capabilities, Incoming, Room};
    use bot_runtime::dispatch::Dispatcher;
    use bot_runtime::stackstorm::St2Client;
    use std::sync::Arc;

    let sim = Sim::start(config()).await.expect("simulator");
    let dir = std::env::temp_dir().join(format!("st2bot-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("api-key");
    std::fs::write(&key, "sim-api-key").unwrap();
    let trail = dir.join("audit.jsonl");
    let _ = std::fs::remove_file(&trail);
    let yaml = format!(
        "name: audited\nbackend: {{kind: text}}\nstackstorm:\n  url: {}\n  auth: {{api_key: \"file:{}\"}}\n\
         access:\n  default: deny\n  rules:\n    - allow: {{ users: [\"@oncall\"] }}\n    - allow: {{ commands: [\"bot:inquiry\"] }}\n\
         groups:\n  oncall: [alice, bob]\nlog:\n  audit_file: {}\n",
        sim.url(),
        key.display(),
        trail.display()
    );
    bot_runtime::http::install_crypto_provider();
    let spec = bot_config::load(&bot_config::SourceFile::new("audited.yaml", yaml)).expect("valid");
    let client = St2Client::new(&spec.stackstorm).unwrap();
    let (tx, mut replies) = tokio::sync::mpsc::channel(256);
    let dispatcher = Arc::new(
        Dispatcher::new(
            &spec,
            client.clone(),
            Capabilities {
                max_message_len: 4000,
                rich: false,
                threads: false,
                edit: false,
                buttons: false,
            },
            AliasCache::new(),
            tx,
        )
        .expect("dispatcher"),
    );
    let say = |user: &str, text: &str| Incoming {
        user_id: format!("U-{user}"),
        user: user.to_owned(),
        room: Some(Room {
            id: "C-ops".into(),
            name: "ops".into(),
        }),
        text: text.to_owned(),
        mentioned: false,
        thread: None,
        message_id: Some(format!("m-{user}-{}", text.len())),
    };

    dispatcher
        .clone()
        .handle(say("carol", "!gated deploy web"))
        .await;
    dispatcher
        .clone()
        .handle(say("alice", "!gated deploy web"))
        .await;
    let workflow = sim.executions().last().expect("an execution").id.clone();
    let deadline = tokio::time::Instant::now() + WAIT;
    let id = loop {
        if let Some(i) = client.inquiries().await.unwrap().first() {
            break i.id.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "no inquiry");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    dispatcher
        .clone()
        .handle(say("carol", &format!("!approve {id}")))
        .await;
    dispatcher
        .clone()
        .handle(say("bob", &format!("!inquiry respond {id} approve=maybe")))
        .await;
    dispatcher
        .clone()
        .handle(say("bob", &format!("!approve {id}")))
        .await;
    let mut said = Vec::new();
    while let Ok(out) = replies.try_recv() {
        said.push(out.text);
    }
    assert!(
        said.last()
            .unwrap()
            .contains("answered with {\"approve\":true}"),
        "{said:#?}"
    );

    let text = std::fs::read_to_string(&trail).unwrap();
    assert!(!text.contains("sim-api-key"), "a credential in the trail");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let brief: Vec<Value> = lines
        .iter()
        .map(|l| {
            assert_eq!(l["bot"], "audited");
            assert!(l["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{l}");
            let mut b = json!({"event": l["event"], "user": l["user"], "decision": l["decision"]});
            for k in [
                "command",
                "execution",
                "inquiry",
                "response",
                "reason",
                "rule",
            ] {
                if !l[k].is_null() {
                    b[k] = l[k].clone();
                }
            }
            b
        })
        .collect();
    let expected = vec![
        json!({"event": "access", "user": "carol", "decision": "deny", "command": "ops.gated_deploy", "rule": "the default"}),
        json!({"event": "access", "user": "alice", "decision": "allow", "command": "ops.gated_deploy", "rule": "rule 1 (line 9)"}),
        json!({"event": "execution", "user": "alice", "decision": null, "command": "ops.gated_deploy", "execution": workflow}),
        json!({"event": "access", "user": "carol", "decision": "allow", "command": "bot:inquiry", "rule": "rule 2 (line 10)"}),
        json!({"event": "inquiry", "user": "carol", "decision": "deny", "inquiry": id, "reason": "only members of oncall may answer it"}),
        json!({"event": "access", "user": "bob", "decision": "allow", "command": "bot:inquiry", "rule": "rule 1 (line 9)"}),
        json!({"event": "inquiry", "user": "bob", "decision": "invalid", "inquiry": id, "reason": "`approve` must be yes/no, not `maybe`"}),
        json!({"event": "access", "user": "bob", "decision": "allow", "command": "bot:inquiry", "rule": "rule 1 (line 9)"}),
        json!({"event": "inquiry", "user": "bob", "decision": "answered", "inquiry": id, "response": {"approve": true}}),
    ];
    assert_eq!(brief.len(), expected.len(), "{text}");
    for (i, (got, want)) in brief.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "audit line {} of\n{text}", i + 1);
    }
    assert_eq!(lines[2]["room"], "ops");
    assert_eq!(lines[8]["st2_user"], "bob");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The whole bot (`app::run`, what the executable runs) on the Slack fake with the
/// simulator: oncall (alice, bob) may run anything, everyone may answer inquiries.
async fn start_slack_bot(
    sim: &Sim,
    fake: &slack_fake::SlackFake,
) -> (
    tokio::task::JoinHandle<std::process::ExitCode>,
    st2bot_testkit::TempDir,
) {
    use slack_fake::{APP_TOKEN, BOT_TOKEN};
    let dir = st2bot_testkit::TempDir::new("inquiry-slack");
    let yaml = format!(
        "name: slack-inquiries\nbackend:\n  kind: slack\n  app_token: \"file:{}\"\n  bot_token: \"file:{}\"\n  url: {}\n\
         stackstorm:\n  url: {}\n  auth: {{api_key: \"file:{}\"}}\n\
         access:\n  default: deny\n  rules:\n    - allow: {{ users: [\"@oncall\"] }}\n    - allow: {{ commands: [\"bot:inquiry\"] }}\n\
         groups:\n  oncall: [alice, bob]\n",
        dir.file("app_token", APP_TOKEN),
        dir.file("bot_token", BOT_TOKEN),
        fake.api_url(),
        sim.url(),
        dir.file("api_key", "sim-api-key"),
    );
    let spec = bot_config::load(&bot_config::SourceFile::new("slack-inquiries.yaml", yaml))
        .expect("valid");
    bot_runtime::http::install_crypto_provider();
    let st2 = bot_runtime::stackstorm::St2Client::new(&spec.stackstorm).unwrap();
    let bot = tokio::spawn(async move {
        bot_runtime::app::run(&spec, st2, &bot_runtime::cli::Options::default()).await
    });
    wait_for_stream(sim, 1).await;
    fake.wait_until("the bot's socket", WAIT, |f| f.open_sockets() >= 1)
        .await;
    (bot, dir)
}

/// Issue 16 item 1: on a service with threads, a yes/no question is asked in the thread of
/// the command, and a plain `yes` or `no` there answers it with the checks of `!approve` /
/// `!reject`: a user outside the roles is refused, a member's `Yes` resumes the workflow.
#[tokio::test]
async fn on_slack_a_yes_in_the_questions_thread_answers_it() {
    use slack_fake::{ALICE, BOB, OPS, SlackFake};
    const DAVE: &str = "U0DAVE001";

    let sim = Sim::start(config()).await.expect("simulator");
    let fake = SlackFake::start().await;
    fake.add_user(DAVE, "dave");
    let (bot, _dir) = start_slack_bot(&sim, &fake).await;
    let posted = |needle: &str| {
        let needle = needle.to_owned();
        move |f: &SlackFake| {
            f.posts()
                .iter()
                .any(|p| p.text.as_deref().is_some_and(|t| t.contains(&needle)))
        }
    };

    let ts = fake.user_says(ALICE, OPS, "!gated deploy web", None);
    fake.wait_until("the question", WAIT, posted("❓ Inquiry "))
        .await;
    let question = fake
        .posts()
        .into_iter()
        .find(|p| p.text.as_deref().is_some_and(|t| t.contains("❓ Inquiry ")))
        .unwrap();
    assert_eq!(question.channel, OPS);
    assert_eq!(
        question.thread_ts.as_deref(),
        Some(ts.as_str()),
        "in the command's thread"
    );
    let text = question.text.unwrap();
    assert!(
        text.ends_with("Or reply `yes` or `no` in this thread."),
        "{text}"
    );
    let id = text
        .split("Inquiry ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();

    // Not in the thread, or not a yes/no word: not an answer, and no reply.
    fake.user_says(BOB, OPS, "yes", None);
    fake.user_says(BOB, OPS, "yes, later", Some(&ts));
    fake.user_says(DAVE, OPS, "yes", Some(&ts));
    fake.wait_until(
        "dave refused",
        WAIT,
        posted(&format!(
            "dave: you may not answer inquiry {id}: only members of oncall may answer it"
        )),
    )
    .await;
    assert!(answers_sent(&sim).is_empty(), "nothing reached StackStorm");

    fake.user_says(BOB, OPS, "Yes", Some(&ts));
    fake.wait_until(
        "the answer",
        WAIT,
        posted(&format!(
            "bob: inquiry {id} answered with {{\"approve\":true}}; the workflow resumes."
        )),
    )
    .await;
    assert_eq!(
        answers_sent(&sim),
        vec![json!({"id": id, "response": {"approve": true}})]
    );
    let answer = fake
        .posts()
        .into_iter()
        .find(|p| {
            p.text
                .as_deref()
                .is_some_and(|t| t.contains("answered with"))
        })
        .unwrap();
    assert_eq!(answer.thread_ts.as_deref(), Some(ts.as_str()));
    bot.abort();
}

/// Issue 16 acceptance on a web backend: the whole bot (`app::run`, what the executable
/// runs) on the Slack fake (`testkit/src/fakes/slack.rs`, Socket Mode in, Web API out) with the
/// simulator: the question is posted in the channel of the command, a user outside the
/// roles and an invalid answer are refused before StackStorm sees anything, and a member's
/// answer resumes the workflow, whose result comes back to the channel.
#[tokio::test]
async fn on_slack_an_inquiry_is_answered_from_the_channel_and_the_workflow_resumes() {
    use slack_fake::{ALICE, BOB, OPS, SlackFake};
    const DAVE: &str = "U0DAVE001";

    let sim = Sim::start(config()).await.expect("simulator");
    let fake = SlackFake::start().await;
    fake.add_user(DAVE, "dave");
    let (bot, _dir) = start_slack_bot(&sim, &fake).await;

    let posted = |needle: &str| {
        let needle = needle.to_owned();
        move |f: &SlackFake| {
            f.posts()
                .iter()
                .any(|p| p.text.as_deref().is_some_and(|t| t.contains(&needle)))
        }
    };
    let text_of = |needle: &str| {
        fake.posts()
            .into_iter()
            .find(|p| p.text.as_deref().is_some_and(|t| t.contains(needle)))
            .expect("posted")
    };

    fake.user_says(ALICE, OPS, "!gated deploy web", None);
    fake.wait_until("the question", WAIT, posted("❓ Inquiry "))
        .await;
    let question = text_of("❓ Inquiry ");
    assert_eq!(question.channel, OPS);
    let text = question.text.unwrap();
    assert!(
        text.contains("• approve (yes/no, required): Deploy to production?"),
        "{text}"
    );
    let id = text
        .split("Inquiry ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("an inquiry id")
        .to_owned();
    let workflow = sim.executions().last().expect("an execution").id.clone();

    fake.user_says(DAVE, OPS, &format!("!approve {id}"), None);
    fake.wait_until(
        "dave's refusal",
        WAIT,
        posted(&format!(
            "dave: you may not answer inquiry {id}: only members of oncall may answer it"
        )),
    )
    .await;
    fake.user_says(
        BOB,
        OPS,
        &format!("!inquiry respond {id} approve=maybe"),
        None,
    );
    fake.wait_until(
        "the invalid answer refused",
        WAIT,
        posted(&format!(
            "bob: your answer to inquiry {id} was not sent: `approve` must be yes/no, not `maybe`"
        )),
    )
    .await;
    assert!(answers_sent(&sim).is_empty(), "nothing reached StackStorm");

    fake.user_says(BOB, OPS, &format!("!approve {id}"), None);
    fake.wait_until(
        "the answer",
        WAIT,
        posted(&format!("bob: inquiry {id} answered with")),
    )
    .await;
    assert_eq!(
        answers_sent(&sim),
        vec![json!({"id": id, "response": {"approve": true}})]
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    let result = loop {
        let posts = fake.posts();
        if let Some(p) = posts.iter().find(|p| {
            serde_json::to_string(&p.body)
                .unwrap()
                .contains(&format!("Execution {workflow} succeeded"))
        }) {
            break p.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no result: {posts:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(result.channel, OPS);
    bot.abort();
}

/// The README's first command: the demo in `--simulate` mode has a workflow that waits for
/// a yes (StackStorm's default inquiry, `continue`), and `!approve ID` lets it finish.
#[tokio::test]
async fn the_simulated_demo_asks_and_goes_on_when_approved() {
    let mut bot = BotProcess::start(
        env!("CARGO_BIN_EXE_demo"),
        &["--simulate", "--user", "dana"],
        &[],
    );
    bot.say("!gated deploy web").await;
    let ack = bot
        .expect("dana: running `examples.gated_deploy`, execution ", WAIT)
        .await;
    let workflow = ack
        .rsplit("execution ")
        .next()
        .and_then(|rest| rest.split_whitespace().next())
        .expect("an execution id")
        .to_owned();
    let line = bot.expect("❓ Inquiry ", WAIT).await;
    let id = line
        .split("Inquiry ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("an inquiry id")
        .to_owned();
    bot.expect(
        "• continue (yes/no, required): Would you like to continue the workflow?",
        WAIT,
    )
    .await;
    bot.say(&format!("!approve {id}")).await;
    bot.expect(
        &format!("dana: inquiry {id} answered with {{\"continue\":true}}; the workflow resumes."),
        WAIT,
    )
    .await;
    bot.expect(&format!("@dana: Execution {workflow} succeeded:"), WAIT)
        .await;
}
