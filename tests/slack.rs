//! End-to-end tests of the Slack backend against the in-repo fake Slack
//! (`testkit/src/fakes/slack.rs`): Socket Mode events in, Web API posts out, driven through
//! `BackendIo` as the dispatcher drives it. Also checks that the fake rejects what Slack
//! rejects, so a bot that passes here is not passing against a lenient stand-in.

use st2bot_testkit::backend as harness;
use st2bot_testkit::fakes::slack as slack_fake;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use harness::Driven;
use serde_json::{Value, json};
use slack_fake::{ALICE, ALICE_DM, APP_TOKEN, BOB, BOT_TOKEN, BOT_USER, OPS, PRIVATE, SlackFake};
use st2bot::config::SlackSpec;
use st2bot::runtime::backend::slack::SlackBackend;
use st2bot::runtime::backend::{BackendError, ConnState, Outgoing, Status, Target};
use st2bot_testkit::TempDir;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(10);

fn start(fake: &SlackFake, dir: &TempDir, app_token: &str, bot_token: &str) -> Driven {
    let spec = SlackSpec {
        app_token: dir.secret("app_token", app_token),
        bot_token: dir.secret("bot_token", bot_token),
        url: fake.api_url().into(),
    };
    Driven::start(Box::new(SlackBackend::new(&spec)))
}

async fn connected(fake: &SlackFake) -> (Driven, TempDir) {
    let dir = TempDir::new("slack");
    let mut bot = start(fake, &dir, APP_TOKEN, BOT_TOKEN);
    bot.connected().await;
    (bot, dir)
}

#[tokio::test]
async fn help_and_alias_in_a_channel_a_thread_and_a_dm() {
    let fake = SlackFake::start().await;
    let (mut bot, _dir) = connected(&fake).await;

    // In a channel: `!help`.
    fake.user_says(ALICE, OPS, "!help", None);
    let help = bot.next().await;
    assert_eq!(help.user, "alice");
    assert_eq!(help.user_id, ALICE);
    assert_eq!(
        help.room.as_ref().map(|r| (r.id.as_str(), r.name.as_str())),
        Some((OPS, "#ops"))
    );
    assert_eq!(help.text, "!help");
    assert!(!help.mentioned);
    assert_eq!(help.thread, None);
    bot.reply(&help, "Available commands: run deploy").await;

    // In a thread, addressed by mention: the alias command. The mention arrives as both a
    // `message` and an `app_mention` event; the bot must see it once.
    let parent = fake.user_says(BOB, OPS, "deploy time?", None);
    let chatter = bot.next().await;
    assert_eq!(chatter.text, "deploy time?");
    let reply_ts = fake.user_says(
        ALICE,
        OPS,
        &format!("<@{BOT_USER}> run deploy <http://web1.example.com|web1.example.com>"),
        Some(&parent),
    );
    let alias = bot.next().await;
    assert!(alias.mentioned);
    assert_eq!(alias.text, "run deploy web1.example.com");
    assert_eq!(alias.thread.as_deref(), Some(parent.as_str()));
    assert_eq!(alias.message_id.as_deref(), Some(reply_ts.as_str()));
    bot.reply(&alias, "deploying (execution 5f0c)").await;

    // In a DM: no prefix needed, no room; the reply goes back privately.
    fake.user_says(ALICE, ALICE_DM, "help", None);
    let dm = bot.next().await;
    assert_eq!(dm.room, None);
    assert_eq!(dm.text, "help");
    bot.reply(&dm, "in private").await;

    // A private channel is named like any other.
    fake.user_says(BOB, PRIVATE, "!help", None);
    let private = bot.next().await;
    assert_eq!(private.room.map(|r| r.name), Some("#secret-ops".to_owned()));
    assert_eq!(private.user, "bob");

    let posts = fake.wait_posts(3, WAIT).await;
    assert_eq!(
        (posts[0].channel.as_str(), posts[0].thread_ts.as_deref()),
        (OPS, None)
    );
    assert_eq!(
        posts[0].text.as_deref(),
        Some("Available commands: run deploy")
    );
    assert_eq!(posts[1].channel, OPS);
    assert_eq!(
        posts[1].thread_ts.as_deref(),
        Some(parent.as_str()),
        "reply in the thread's parent"
    );
    assert_eq!(
        (posts[2].channel.as_str(), posts[2].thread_ts.as_deref()),
        (ALICE_DM, None)
    );
    assert_eq!(posts[2].text.as_deref(), Some("in private"));

    // The bot's own posts came back as events and were not taken as commands; every
    // envelope was acknowledged, none had to be redelivered.
    bot.nothing_more(Duration::from_millis(500)).await;
    fake.wait_until("all envelopes acknowledged", WAIT, |f| f.unacked() == 0)
        .await;
    assert!(fake.deliveries().iter().all(|d| d["retry_attempt"] == 0));
    assert!(fake.rejections().is_empty(), "{:?}", fake.rejections());
    bot.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn edits_and_other_bots_are_ignored() {
    let fake = SlackFake::start().await;
    let (mut bot, _dir) = connected(&fake).await;
    let ts = fake.user_says(ALICE, OPS, "!hepl", None);
    assert_eq!(bot.next().await.text, "!hepl");
    fake.user_edits(ALICE, OPS, &ts, "!help");
    fake.deliver_event(json!({
        "type": "message", "channel": OPS, "bot_id": "B0OTHER01", "user": "U0OTHER01",
        "text": "!help", "ts": "1700009999.000001", "channel_type": "channel",
    }));
    bot.nothing_more(Duration::from_millis(700)).await;
}

#[tokio::test]
async fn rich_output_carries_the_status_colour_and_extra() {
    let fake = SlackFake::start().await;
    let (bot, _dir) = connected(&fake).await;
    let room = Target::Room {
        id: OPS.into(),
        thread: None,
    };
    bot.send(Outgoing {
        target: room.clone(),
        text: "Execution 5f0c failed{~}stderr: disk full".into(),
        mention: Some("alice".into()),
        extra: Some(json!({"slack": {"title": "core.remote", "fields": [{"title": "host", "value": "web1", "short": true}]}})),
        status: Some(Status::Failed),
        remember_as: None,
        replaces: None,
        handle: None,
        replaces_whole: false,
        report_posted: None,
        actions: Vec::new(),
    })
    .await;
    let blocks =
        json!([{"type": "section", "text": {"type": "mrkdwn", "text": "*deployed* web1"}}]);
    bot.send(Outgoing {
        target: room,
        text: "deployed web1".into(),
        mention: None,
        extra: Some(json!({"slack": {"blocks": blocks, "thread_response": false}})),
        status: Some(Status::Succeeded),
        remember_as: None,
        replaces: None,
        handle: None,
        replaces_whole: false,
        report_posted: None,
        actions: Vec::new(),
    })
    .await;
    let posts = fake.wait_posts(2, WAIT).await;
    let failed = &posts[0];
    assert_eq!(
        failed.text.as_deref(),
        Some(format!("<@{ALICE}>: Execution 5f0c failed").as_str())
    );
    let attachment = &failed.attachments.as_ref().expect("attachments")[0];
    assert_eq!(attachment["color"], "#E01E5A");
    assert_eq!(attachment["text"], "stderr: disk full");
    assert_eq!(attachment["fallback"], "stderr: disk full");
    assert_eq!(attachment["title"], "core.remote");
    assert_eq!(attachment["fields"][0]["value"], "web1");
    let passed = &posts[1];
    assert_eq!(passed.blocks.as_ref(), Some(&blocks));
    assert_eq!(
        passed.text.as_deref(),
        Some("deployed web1"),
        "plain fallback text kept"
    );
    assert!(passed.body.get("thread_response").is_none());
}

#[tokio::test]
async fn long_output_is_split_under_the_limit_in_order() {
    let fake = SlackFake::start().await;
    let (bot, _dir) = connected(&fake).await;
    let lines: Vec<String> = (0..600)
        .map(|i| format!("line {i:04} of the deployment log"))
        .collect();
    let text = lines.join("\n");
    bot.send(Outgoing::text(
        Target::Room {
            id: OPS.into(),
            thread: None,
        },
        text.clone(),
    ))
    .await;
    // The same output as an attachment body (rich), with a status.
    bot.send(Outgoing {
        status: Some(Status::Succeeded),
        remember_as: None,
        replaces: None,
        handle: None,
        replaces_whole: false,
        report_posted: None,
        ..Outgoing::text(
            Target::Room {
                id: OPS.into(),
                thread: None,
            },
            format!("done{{~}}{text}"),
        )
    })
    .await;
    let expected_parts = text.chars().count().div_ceil(4000);
    let plain_of = |f: &SlackFake| -> Vec<String> {
        f.posts()
            .iter()
            .filter(|p| p.attachments.is_none())
            .filter_map(|p| p.text.clone())
            .collect()
    };
    let rich_of = |f: &SlackFake| -> Vec<Value> {
        f.posts()
            .iter()
            .filter_map(|p| p.attachments.as_ref().map(|a| a[0].clone()))
            .collect()
    };
    fake.wait_until("both messages in full", WAIT, |f| {
        plain_of(f).join("\n") == text
            && rich_of(f)
                .iter()
                .map(|a| a["text"].as_str().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n")
                == text
    })
    .await;
    let plain = plain_of(&fake);
    assert!(plain.len() >= expected_parts);
    assert!(plain.iter().all(|t| t.chars().count() <= 4000));
    let rich = rich_of(&fake);
    assert!(rich.len() >= expected_parts);
    for a in &rich {
        assert_eq!(a["color"], "#2EB67D");
        assert!(a["text"].as_str().unwrap().chars().count() <= 4000);
    }
    let posts = fake.posts();
    assert_eq!(
        posts[plain.len()].text.as_deref(),
        Some("done"),
        "pretext on the first rich part"
    );
    assert!(fake.rejections().is_empty(), "{:?}", fake.rejections());
}

#[tokio::test]
async fn rate_limits_are_waited_out() {
    let fake = SlackFake::start().await;
    let (bot, _dir) = connected(&fake).await;
    fake.rate_limit("chat.postMessage", 1, 1);
    let sent = Instant::now();
    bot.send(Outgoing::text(
        Target::Room {
            id: OPS.into(),
            thread: None,
        },
        "after the limit",
    ))
    .await;
    let posts = fake.wait_posts(1, WAIT).await;
    assert!(
        sent.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert_eq!(posts[0].text.as_deref(), Some("after the limit"));
    assert_eq!(fake.rate_limited(), 1);
}

#[tokio::test]
async fn reconnects_after_a_drop_and_a_refresh_and_still_answers() {
    let fake = SlackFake::start().await;
    let (mut bot, _dir) = connected(&fake).await;
    assert_eq!(fake.connections_opened(), 1);

    fake.drop_connections();
    fake.wait_until("a second connection", WAIT, |f| {
        f.connections_opened() == 2 && f.open_sockets() == 1
    })
    .await;
    bot.connected().await;
    fake.user_says(ALICE, OPS, "!help", None);
    let m = bot.next().await;
    bot.reply(&m, "still here").await;
    fake.wait_posts(1, WAIT).await;

    fake.request_refresh();
    fake.wait_until("a third connection", WAIT, |f| {
        f.connections_opened() == 3 && f.open_sockets() == 1
    })
    .await;
    fake.user_says(ALICE, OPS, "!help again", None);
    assert_eq!(bot.next().await.text, "!help again");
    assert_eq!(*bot.state.borrow(), ConnState::Connected);
    assert_eq!(
        fake.calls()
            .iter()
            .filter(|c| *c == "apps.connections.open")
            .count(),
        3,
        "a fresh URL per connection"
    );
    bot.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_bad_bot_token_stops_the_backend_without_retrying() {
    let fake = SlackFake::start().await;
    let dir = TempDir::new("slack-bad");
    let mut bot = start(&fake, &dir, APP_TOKEN, "xoxb-wrong");
    let result = bot.finished(WAIT).await;
    assert!(
        matches!(&result, Err(BackendError::Auth { service: "slack", reason }) if reason == "invalid_auth"),
        "{result:?}"
    );
    assert_eq!(
        *bot.state.borrow(),
        ConnState::Failed("invalid_auth".into())
    );
    assert_eq!(fake.calls(), vec!["auth.test"]);
}

#[tokio::test]
async fn a_bad_app_token_stops_the_backend_without_retrying() {
    let fake = SlackFake::start().await;
    let dir = TempDir::new("slack-bad-app");
    // The bot token where the app token belongs: Slack says `not_allowed_token_type`.
    let mut bot = start(&fake, &dir, BOT_TOKEN, BOT_TOKEN);
    let result = bot.finished(WAIT).await;
    assert!(
        matches!(&result, Err(BackendError::Auth { reason, .. }) if reason == "not_allowed_token_type"),
        "{result:?}"
    );
    assert_eq!(fake.calls(), vec!["auth.test", "apps.connections.open"]);
}

// The fake itself: what Slack rejects, it rejects.

async fn raw_socket(
    fake: &SlackFake,
) -> (
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Value,
) {
    let http = st2bot::runtime::http::client(true, None, None).unwrap();
    let open: Value = http
        .post(format!("{}/apps.connections.open", fake.api_url()))
        .bearer_auth(APP_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = open["url"].as_str().unwrap().to_owned();
    let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let hello = next_json(&mut socket).await;
    // A ticket works once.
    assert!(
        tokio_tungstenite::connect_async(url.as_str())
            .await
            .is_err()
    );
    (socket, hello)
}

async fn next_json<S>(socket: &mut S) -> Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let frame = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("frame in time")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = frame {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

#[tokio::test]
async fn fake_redelivers_unacked_envelopes_with_retry_attempt() {
    let fake = SlackFake::start_with_ack_timeout(Duration::from_millis(300)).await;
    let (mut socket, hello) = raw_socket(&fake).await;
    assert_eq!(hello["type"], "hello");
    fake.user_says(ALICE, OPS, "!help", None);
    let first = next_json(&mut socket).await;
    assert_eq!(first["type"], "events_api");
    assert_eq!(first["retry_attempt"], 0);
    assert_eq!(first["payload"]["event"]["text"], "!help");
    let again = next_json(&mut socket).await;
    assert_eq!(again["envelope_id"], first["envelope_id"]);
    assert_eq!(again["retry_attempt"], 1);
    assert_eq!(again["retry_reason"], "timeout");
    socket
        .send(Message::Text(
            json!({"envelope_id": again["envelope_id"]})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    fake.wait_until("the ack", WAIT, |f| f.unacked() == 0).await;
    let quiet = tokio::time::timeout(Duration::from_millis(700), socket.next()).await;
    assert!(quiet.is_err(), "no redelivery after the ack: {quiet:?}");
}

#[tokio::test]
async fn fake_refuses_what_slack_refuses() {
    let fake = SlackFake::start().await;
    let http = st2bot::runtime::http::client(true, None, None).unwrap();
    let call = |method: &str, token: &str, body: Value| {
        let request = http
            .post(format!("{}/{method}", fake.api_url()))
            .bearer_auth(token)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, retry_after, response.json::<Value>().await.unwrap())
        }
    };
    let too_long = "x".repeat(40_001);
    assert_eq!(
        call(
            "chat.postMessage",
            BOT_TOKEN,
            json!({"channel": OPS, "text": too_long})
        )
        .await
        .2,
        json!({"ok": false, "error": "msg_too_long"})
    );
    assert_eq!(
        call(
            "chat.postMessage",
            "xoxb-nope",
            json!({"channel": OPS, "text": "x"})
        )
        .await
        .2["error"],
        "invalid_auth"
    );
    assert_eq!(
        call(
            "chat.postMessage",
            APP_TOKEN,
            json!({"channel": OPS, "text": "x"})
        )
        .await
        .2["error"],
        "not_allowed_token_type"
    );
    assert_eq!(
        call(
            "chat.postMessage",
            BOT_TOKEN,
            json!({"channel": "C0NOPE", "text": "x"})
        )
        .await
        .2["error"],
        "channel_not_found"
    );
    assert_eq!(
        call("chat.postMessage", BOT_TOKEN, json!({"channel": OPS}))
            .await
            .2["error"],
        "no_text"
    );
    let big_section =
        json!([{"type": "section", "text": {"type": "mrkdwn", "text": "y".repeat(3001)}}]);
    assert_eq!(
        call(
            "chat.postMessage",
            BOT_TOKEN,
            json!({"channel": OPS, "blocks": big_section})
        )
        .await
        .2["error"],
        "invalid_blocks"
    );
    assert_eq!(
        call("apps.connections.open", BOT_TOKEN, json!({})).await.2["error"],
        "not_allowed_token_type"
    );
    // Read methods take form or query arguments, not JSON.
    assert_eq!(
        call("users.info", BOT_TOKEN, json!({"user": ALICE}))
            .await
            .2["error"],
        "user_not_found"
    );
    fake.rate_limit("auth.test", 1, 7);
    let (status, retry_after, body) = call("auth.test", BOT_TOKEN, json!({})).await;
    assert_eq!(
        (status, retry_after.as_deref(), body["error"].as_str()),
        (429, Some("7"), Some("ratelimited"))
    );
    assert!(fake.posts().is_empty());
}

// The whole bot: dispatcher, StackStorm client and the Slack backend, against the StackStorm
// simulator and the fake Slack.

#[tokio::test]
async fn whole_bot_runs_commands_from_slack_against_the_stackstorm_simulator() {
    let sim = st2_sim::Sim::start(st2_sim::SimConfig::demo())
        .await
        .expect("simulator");
    let fake = SlackFake::start().await;
    let dir = TempDir::new("slack-whole");
    let yaml = format!(
        r##"name: slack-e2e
backend:
  kind: slack
  app_token: "file:{app}"
  bot_token: "file:{bot}"
  url: {api}
stackstorm:
  url: {st2}
  auth:
    api_key: "file:{key}"
  matcher: local
chat:
  prefix: "!"
access:
  default: deny
  rules:
    - allow: {{ users: ["alice"], rooms: ["#ops"] }}
    - allow: {{ users: ["alice"], direct: true }}
"##,
        app = dir.file("app", APP_TOKEN),
        bot = dir.file("bot", BOT_TOKEN),
        key = dir.file("st2", "sim-api-key"),
        api = fake.api_url(),
        st2 = sim.url(),
    );
    let _bot = harness::WholeBot::run(&yaml);
    fake.wait_until("the bot's socket", WAIT, |f| f.open_sockets() == 1)
        .await;
    let deadline = Instant::now() + WAIT;
    while sim.stream_clients() == 0 {
        assert!(
            Instant::now() < deadline,
            "the bot never connected to the stream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let texts_in = |channel: &str, thread: Option<&str>| -> Vec<String> {
        let all = fake.posts();
        all.iter()
            .filter(|p| p.channel == channel && p.thread_ts.as_deref() == thread)
            .map(|p| {
                let mut t = p.text.clone().unwrap_or_default();
                for a in p
                    .attachments
                    .iter()
                    .flat_map(|a| a.as_array().into_iter().flatten())
                {
                    t.push('\n');
                    t.push_str(a["text"].as_str().unwrap_or_default());
                }
                t
            })
            .collect()
    };

    // `!help` in #ops.
    fake.user_says(ALICE, OPS, "!help", None);
    fake.wait_until("help in #ops", WAIT, |_| {
        texts_in(OPS, None)
            .iter()
            .any(|t| t.contains("!local {{cmd}}"))
    })
    .await;

    // An alias command in a thread: the ack and the result land in the thread, the result
    // mentions alice by her Slack id.
    let parent = fake.user_says(BOB, OPS, "anyone checked the clock?", None);
    fake.user_says(ALICE, OPS, "!local date", Some(&parent));
    fake.wait_until("ack and result in the thread", WAIT, |_| {
        let t = texts_in(OPS, Some(&parent));
        t.iter().any(|m| m.contains("running `core.local`"))
            && t.iter().any(|m| {
                m.starts_with(&format!("<@{ALICE}>\nExecution")) && m.contains("succeeded")
            })
    })
    .await;
    // The result is an attachment coloured from the execution's status (issue 19 item 4).
    assert!(
        fake.posts().iter().any(
            |p| p.attachments.as_ref().and_then(|a| a[0]["color"].as_str()) == Some("#2EB67D")
        ),
        "{:#?}",
        fake.posts()
    );
    // Live ack (issue 19 item 3): the ack itself is edited with `chat.update` as the
    // execution runs and ends, from the stream's `st2.execution__update` events.
    fake.wait_until("the ack edited to its final status", WAIT, |f| {
        f.posts().iter().any(|p| {
            p.text.as_deref().is_some_and(|t| {
                t.contains("running `core.local`") && t.contains("✅ succeeded in")
            })
        })
    })
    .await;
    let ack = fake
        .posts()
        .into_iter()
        .find(|p| p.edits.iter().any(|e| e.contains("✅ succeeded in")))
        .unwrap();
    assert_eq!(ack.thread_ts.as_deref(), Some(parent.as_str()));
    assert!(
        ack.edits.len() <= 2,
        "running, then succeeded: {:?}",
        ack.edits
    );
    let executions = sim.executions();
    assert_eq!(executions[0].user, "alice");
    assert_eq!(executions[0].source_channel, OPS);
    assert_eq!(executions[0].source_context["thread"], parent.as_str());

    // In a DM, without the prefix: ack and result come back privately.
    fake.user_says(ALICE, ALICE_DM, "local uptime", None);
    fake.wait_until("ack and result in the DM", WAIT, |_| {
        let t = texts_in(ALICE_DM, None);
        t.iter().any(|m| m.contains("running `core.local`"))
            && t.iter().any(|m| m.contains("succeeded"))
    })
    .await;

    // Access rules see Slack names: bob is not allowed, and StackStorm never hears of it.
    fake.user_says(BOB, OPS, "!local reboot", None);
    fake.wait_until("the denial", WAIT, |_| {
        texts_in(OPS, None).iter().any(|t| t.contains("bob"))
    })
    .await;
    assert_eq!(sim.executions().len(), 2);
    assert!(fake.rejections().is_empty(), "{:?}", fake.rejections());
}

/// Issue 19 item 1: the live ack's message is kept with the owed record
/// (`stackstorm.results_store`), so a bot restarted between the ack and the result still
/// edits the ack it posted before the restart.
#[tokio::test]
async fn a_live_ack_posted_before_a_restart_is_edited_after_it() {
    let sim = st2_sim::Sim::start(st2_sim::SimConfig::demo())
        .await
        .expect("simulator");
    let fake = SlackFake::start().await;
    let dir = TempDir::new("slack-restart");
    let store = dir.path().join("owed.redb");
    let yaml = format!(
        r##"name: slack-restart
backend:
  kind: slack
  app_token: "file:{app}"
  bot_token: "file:{bot}"
  url: {api}
stackstorm:
  url: {st2}
  auth:
    api_key: "file:{key}"
  matcher: local
  results_store: {store}
chat:
  prefix: "!"
access:
  default: allow
"##,
        app = dir.file("app", APP_TOKEN),
        bot = dir.file("bot", BOT_TOKEN),
        key = dir.file("st2", "sim-api-key"),
        api = fake.api_url(),
        st2 = sim.url(),
        store = store.display(),
    );
    let connected = async |sim: &st2_sim::Sim| {
        fake.wait_until("the bot's socket", WAIT, |f| f.open_sockets() == 1)
            .await;
        let deadline = Instant::now() + WAIT;
        while sim.stream_clients() == 0 {
            assert!(Instant::now() < deadline, "never connected to the stream");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let first = harness::WholeBot::run(&yaml);
    connected(&sim).await;
    sim.hold_results(true);
    fake.user_says(ALICE, OPS, "!local date", None);
    fake.wait_until("the ack, edited to running", WAIT, |f| {
        f.posts().iter().any(|p| {
            p.text
                .as_deref()
                .is_some_and(|t| t.contains("running `core.local`"))
                && p.edits.iter().any(|e| e.contains("⏳ running"))
        })
    })
    .await;
    let id = sim.executions()[0].id.clone();

    first.stop().await;
    fake.wait_until("the socket closed", WAIT, |f| f.open_sockets() == 0)
        .await;
    let _second = harness::WholeBot::run(&yaml);
    connected(&sim).await;
    sim.release_results();

    fake.wait_until("the ack edited after the restart", WAIT, |f| {
        f.posts()
            .iter()
            .any(|p| p.edits.iter().any(|e| e.contains("✅ succeeded in")))
    })
    .await;
    let posts = fake.posts();
    let acks: Vec<_> = posts
        .iter()
        .filter(|p| {
            p.text
                .as_deref()
                .is_some_and(|t| t.contains("running `core.local`"))
        })
        .collect();
    assert_eq!(acks.len(), 1, "one ack, edited in place: {posts:#?}");
    assert!(
        acks[0].edits.last().unwrap().contains("✅ succeeded in"),
        "{:?}",
        acks[0].edits
    );
    // And the result follows, once.
    fake.wait_until("the result", WAIT, |f| {
        f.posts().iter().any(|p| {
            p.attachments
                .iter()
                .flat_map(|a| a.as_array().into_iter().flatten())
                .any(|a| a["text"].as_str().is_some_and(|t| t.contains(&id)))
                || p.text
                    .as_deref()
                    .is_some_and(|t| t.contains(&format!("Execution {id}")))
        })
    })
    .await;
    assert!(fake.rejections().is_empty(), "{:?}", fake.rejections());
}

/// Issue 19 item 3: with `chat.ack.replace`, the result replaces the ack: the ack message
/// is edited into the result (its attachment and status colour included) and no second
/// message is posted; a late live-ack edit does not overwrite it. A result too long for one
/// message follows its ack as new messages.
#[tokio::test]
async fn the_result_replaces_its_ack_when_the_definition_says_so() {
    let sim = st2_sim::Sim::start(st2_sim::SimConfig::demo())
        .await
        .expect("simulator");
    let fake = SlackFake::start().await;
    let dir = TempDir::new("slack-replace");
    let yaml = format!(
        r##"name: slack-replace
backend:
  kind: slack
  app_token: "file:{app}"
  bot_token: "file:{bot}"
  url: {api}
stackstorm:
  url: {st2}
  auth:
    api_key: "file:{key}"
  matcher: local
chat:
  prefix: "!"
  ack:
    replace: true
access:
  default: allow
"##,
        app = dir.file("app", APP_TOKEN),
        bot = dir.file("bot", BOT_TOKEN),
        key = dir.file("st2", "sim-api-key"),
        api = fake.api_url(),
        st2 = sim.url(),
    );
    let _bot = harness::WholeBot::run(&yaml);
    fake.wait_until("the bot's socket", WAIT, |f| f.open_sockets() == 1)
        .await;
    let deadline = Instant::now() + WAIT;
    while sim.stream_clients() == 0 {
        assert!(Instant::now() < deadline, "never connected to the stream");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let attachment_texts = |p: &slack_fake::Posted| -> String {
        p.attachments
            .iter()
            .flat_map(|a| a.as_array().into_iter().flatten())
            .filter_map(|a| a["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n")
    };

    fake.user_says(ALICE, OPS, "!local hostname", None);
    fake.wait_until("the ack edited into the result", WAIT, |f| {
        f.posts()
            .iter()
            .any(|p| attachment_texts(p).contains("st2-simulator"))
    })
    .await;
    let id = sim.executions()[0].id.clone();
    // Let any late status edit arrive: it must not overwrite the result.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let posts = fake.posts();
    assert_eq!(posts.len(), 1, "the ack only, edited: {posts:#?}");
    let ack = &posts[0];
    assert!(
        ack.body["text"]
            .as_str()
            .is_some_and(|t| t.contains("running `core.local`")),
        "posted as the ack: {ack:#?}"
    );
    assert!(
        attachment_texts(ack).contains("st2-simulator"),
        "the result is what the message shows now: {ack:#?}"
    );
    assert_eq!(
        ack.attachments
            .as_ref()
            .and_then(|a| a[0]["color"].as_str()),
        Some("#2EB67D"),
        "coloured from the execution's status: {ack:#?}"
    );
    assert!(
        !ack.text.as_deref().unwrap_or_default().contains("✅"),
        "no status line after the result: {ack:#?}"
    );
    assert!(
        attachment_texts(ack).contains(&id) || ack.text.as_deref().unwrap_or("").contains(&id),
        "{ack:#?}"
    );

    // Too long for one Slack message: the result follows its ack as new messages.
    let long = "x".repeat(4500);
    fake.user_says(ALICE, OPS, &format!("!local {long}"), None);
    fake.wait_until("the long result, posted after its ack", WAIT, |f| {
        f.posts().len() >= 3
            && f.posts()
                .iter()
                .skip(1)
                .any(|p| p.edits.iter().any(|e| e.contains("✅ succeeded in")))
    })
    .await;
    let posts = fake.posts();
    let second_ack = &posts[1];
    assert!(
        second_ack.body["text"]
            .as_str()
            .is_some_and(|t| t.contains("running `core.local`")),
        "{posts:#?}"
    );
    assert!(
        posts[2..].iter().all(|p| p.edits.is_empty()
            && !p.body["text"]
                .as_str()
                .unwrap_or("")
                .contains("running `core.local`")),
        "the result pieces are new messages: {posts:#?}"
    );
    assert!(fake.rejections().is_empty(), "{:?}", fake.rejections());
}
