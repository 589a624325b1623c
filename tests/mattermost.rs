//! End-to-end tests of the Mattermost backend against the in-repo fake Mattermost
//! (`testkit/src/fakes/mattermost.rs`): WebSocket `posted` events in, REST posts out, driven
//! through `BackendIo` as the dispatcher drives it; plus checks that the fake refuses what
//! Mattermost refuses.

use st2bot_testkit::backend as harness;
use st2bot_testkit::fakes::mattermost as mattermost_fake;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use harness::Driven;
use mattermost_fake::{ALICE, BOB, BOT_NAME, MattermostFake, OPS, PRIVATE, TEAM, TOKEN};
use serde_json::{Value, json};
use st2bot::config::MattermostSpec;
use st2bot::runtime::backend::mattermost::MattermostBackend;
use st2bot::runtime::backend::{BackendError, ConnState, Outgoing, Status, Target};
use st2bot_testkit::TempDir;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(10);

fn start(fake: &MattermostFake, dir: &TempDir, token: &str, team: &str) -> Driven {
    let spec = MattermostSpec {
        url: fake.url().into(),
        token: dir.secret("token", token),
        team: team.to_owned().into(),
        listen: None,
        actions_url: None,
    };
    Driven::start(Box::new(MattermostBackend::new(&spec)))
}

async fn connected(fake: &MattermostFake) -> (Driven, TempDir) {
    let dir = TempDir::new("mattermost");
    let mut bot = start(fake, &dir, TOKEN, TEAM);
    bot.connected().await;
    (bot, dir)
}

#[tokio::test]
async fn help_and_alias_in_a_channel_a_thread_and_a_dm() {
    let fake = MattermostFake::start().await;
    let (mut bot, _dir) = connected(&fake).await;

    fake.user_says(ALICE, OPS, "!help", None);
    let help = bot.next().await;
    assert_eq!(
        (help.user.as_str(), help.user_id.as_str()),
        ("alice", ALICE)
    );
    assert_eq!(
        help.room.as_ref().map(|r| (r.id.as_str(), r.name.as_str())),
        Some((OPS, "#ops"))
    );
    assert_eq!(
        (help.text.as_str(), help.mentioned, help.thread.as_deref()),
        ("!help", false, None)
    );
    bot.reply(&help, "Available commands: run deploy").await;

    let root = fake.user_says(BOB, OPS, "deploy time?", None);
    assert_eq!(bot.next().await.text, "deploy time?");
    let reply_id = fake.user_says(
        ALICE,
        OPS,
        &format!("@{BOT_NAME}: run deploy “web1”"),
        Some(&root),
    );
    let alias = bot.next().await;
    assert!(alias.mentioned);
    assert_eq!(alias.text, "run deploy \"web1\"");
    assert_eq!(alias.thread.as_deref(), Some(root.as_str()));
    assert_eq!(alias.message_id.as_deref(), Some(reply_id.as_str()));
    bot.reply(&alias, "deploying (execution 5f0c)").await;

    let dm_channel = fake.direct_channel(ALICE);
    fake.user_says(ALICE, &dm_channel, "help", None);
    let dm = bot.next().await;
    assert_eq!((dm.room.as_ref(), dm.text.as_str()), (None, "help"));
    bot.reply(&dm, "in private").await;

    fake.user_says(BOB, PRIVATE, "!help", None);
    let private = bot.next().await;
    assert_eq!(private.room.map(|r| r.name), Some("#secret-ops".to_owned()));

    let posts = fake.wait_posts(3, WAIT).await;
    assert_eq!(
        (posts[0].channel_id.as_str(), posts[0].root_id.as_str()),
        (OPS, "")
    );
    assert_eq!(posts[0].message, "Available commands: run deploy");
    assert_eq!(
        (posts[1].channel_id.as_str(), posts[1].root_id.as_str()),
        (OPS, root.as_str())
    );
    assert_eq!(
        (posts[2].channel_id.as_str(), posts[2].message.as_str()),
        (dm_channel.as_str(), "in private")
    );
    // The bot's own posts came back as `posted` events and were not taken as commands.
    bot.nothing_more(Duration::from_millis(500)).await;
    assert!(fake.rejections().is_empty(), "{:?}", fake.rejections());
    bot.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn replies_by_channel_name_and_user_name() {
    let fake = MattermostFake::start().await;
    let (bot, _dir) = connected(&fake).await;
    // Announcements name channels and users as StackStorm knows them.
    bot.send(Outgoing::text(
        Target::Room {
            id: "#ops".into(),
            thread: None,
        },
        "to ops",
    ))
    .await;
    bot.send(Outgoing::text(
        Target::Direct { user: "bob".into() },
        "to bob",
    ))
    .await;
    let posts = fake.wait_posts(2, WAIT).await;
    assert_eq!(posts[0].channel_id, OPS);
    let bob_dm = fake.direct_channel(BOB);
    assert_eq!(
        (posts[1].channel_id.as_str(), posts[1].message.as_str()),
        (bob_dm.as_str(), "to bob")
    );
}

#[tokio::test]
async fn rich_output_carries_the_status_colour_and_extra() {
    let fake = MattermostFake::start().await;
    let (bot, _dir) = connected(&fake).await;
    bot.send(Outgoing {
        target: Target::Room {
            id: OPS.into(),
            thread: None,
        },
        text: "Execution 5f0c failed{~}stderr: disk full".into(),
        mention: Some(ALICE.into()),
        extra: Some(json!({"mattermost": {"title": "core.remote"}})),
        status: Some(Status::Failed),
        remember_as: None,
        replaces: None,
        handle: None,
        replaces_whole: false,
        report_posted: None,
        actions: Vec::new(),
    })
    .await;
    let given = json!([{"text": "Approve?", "actions": [{"name": "Yes", "integration": {"url": "http://127.0.0.1:1/a"}}]}]);
    bot.send(Outgoing {
        target: Target::Room {
            id: OPS.into(),
            thread: None,
        },
        text: "approval needed".into(),
        mention: None,
        extra: Some(json!({"mattermost": {"attachments": given}})),
        status: None,
        remember_as: None,
        replaces: None,
        handle: None,
        replaces_whole: false,
        report_posted: None,
        actions: Vec::new(),
    })
    .await;
    let posts = fake.wait_posts(2, WAIT).await;
    assert_eq!(posts[0].message, "@alice: Execution 5f0c failed");
    let attachment = &posts[0].props["attachments"][0];
    assert_eq!(attachment["color"], "#E01E5A");
    assert_eq!(attachment["text"], "stderr: disk full");
    assert_eq!(attachment["title"], "core.remote");
    assert_eq!(posts[1].message, "approval needed");
    assert_eq!(posts[1].props["attachments"], given);
}

#[tokio::test]
async fn long_output_is_split_under_the_limit_even_on_an_old_server() {
    let fake = MattermostFake::start().await;
    fake.set_max_post_size(4000);
    let (bot, _dir) = connected(&fake).await;
    let text = (0..500)
        .map(|i| format!("line {i:04} of the deployment log"))
        .collect::<Vec<_>>()
        .join("\n");
    bot.send(Outgoing::text(
        Target::Room {
            id: OPS.into(),
            thread: None,
        },
        text.clone(),
    ))
    .await;
    fake.wait_until("the whole output", WAIT, |f| {
        f.posts()
            .iter()
            .map(|p| p.message.as_str())
            .collect::<Vec<_>>()
            .join("\n")
            == text
    })
    .await;
    let posts = fake.posts();
    assert!(posts.len() >= text.chars().count().div_ceil(4000));
    assert!(posts.iter().all(|p| p.message.chars().count() <= 4000));
    assert!(fake.rejections().is_empty(), "{:?}", fake.rejections());
}

#[tokio::test]
async fn rate_limits_are_waited_out() {
    let fake = MattermostFake::start().await;
    let (bot, _dir) = connected(&fake).await;
    fake.rate_limit("POST /posts", 1, 1);
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
        "X-Ratelimit-Reset honoured"
    );
    assert_eq!(posts[0].message, "after the limit");
    assert_eq!(fake.rate_limited(), 1);
}

#[tokio::test]
async fn resumes_after_a_drop_without_losing_events() {
    let fake = MattermostFake::start().await;
    let (mut bot, _dir) = connected(&fake).await;
    fake.drop_connections();
    // Said while the bot is away: the server queues it for the connection.
    fake.user_says(ALICE, OPS, "!help while away", None);
    fake.wait_until("a resumed connection", WAIT, |f| {
        f.resumed() == 1 && f.live_sockets() == 1
    })
    .await;
    let m = bot.next().await;
    assert_eq!(m.text, "!help while away");
    bot.reply(&m, "still here").await;
    fake.wait_posts(1, WAIT).await;
    assert_eq!(fake.hellos(), 1, "resumed: no new hello");
    bot.nothing_more(Duration::from_millis(300)).await;
    bot.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn reconnects_fresh_after_a_server_restart_and_still_answers() {
    let fake = MattermostFake::start().await;
    let (mut bot, _dir) = connected(&fake).await;
    fake.restart_connections();
    fake.wait_until("a new connection", WAIT, |f| {
        f.hellos() == 2 && f.live_sockets() == 1
    })
    .await;
    bot.connected().await;
    fake.user_says(ALICE, OPS, "!help", None);
    let m = bot.next().await;
    bot.reply(&m, "back").await;
    assert_eq!(fake.wait_posts(1, WAIT).await[0].message, "back");
    assert_eq!(fake.resumed(), 0);
}

#[tokio::test]
async fn a_bad_token_stops_the_backend_without_retrying() {
    let fake = MattermostFake::start().await;
    let dir = TempDir::new("mattermost-bad");
    let mut bot = start(&fake, &dir, "wrongtoken", TEAM);
    let result = bot.finished(WAIT).await;
    assert!(
        matches!(&result, Err(BackendError::Auth { service: "mattermost", reason }) if reason.contains("Invalid or expired session")),
        "{result:?}"
    );
    assert!(matches!(&*bot.state.borrow(), ConnState::Failed(_)));
    assert_eq!(fake.calls(), vec!["GET /users/me"]);
    assert_eq!(fake.sockets_opened(), 0);
}

// The fake itself.

#[tokio::test]
async fn fake_refuses_what_mattermost_refuses() {
    let fake = MattermostFake::start().await;
    let http = st2bot::runtime::http::client(true, None, None).unwrap();
    let post = |token: &str, body: Value| {
        let request = http
            .post(format!("{}/api/v4/posts", fake.url()))
            .bearer_auth(token)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, body) = post("nope", json!({"channel_id": OPS, "message": "x"})).await;
    assert_eq!(
        (status, body["id"].as_str()),
        (401, Some("api.context.session_expired.app_error"))
    );
    assert_eq!(
        body["message"],
        "Invalid or expired session, please login again."
    );
    let (status, body) = post(
        TOKEN,
        json!({"channel_id": OPS, "message": "x".repeat(16_384)}),
    )
    .await;
    assert_eq!(
        (status, body["id"].as_str()),
        (400, Some("model.post.is_valid.msg.app_error"))
    );
    let (status, body) = post(
        TOKEN,
        json!({"channel_id": OPS, "message": "x", "root_id": "nosuchpost000000000000001"}),
    )
    .await;
    assert_eq!(
        (status, body["id"].as_str()),
        (400, Some("api.post.create_post.root_id.app_error"))
    );
    let (status, _) = post(
        TOKEN,
        json!({"channel_id": "nosuchchannel0000000000001", "message": "x"}),
    )
    .await;
    assert_eq!(status, 400);
    fake.rate_limit("POST /posts", 1, 3);
    let response = http
        .post(format!("{}/api/v4/posts", fake.url()))
        .bearer_auth(TOKEN)
        .json(&json!({"channel_id": OPS, "message": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert_eq!(response.headers()["x-ratelimit-reset"], "3");
    assert!(fake.posts().is_empty());

    // WebSocket: a wrong token on the challenge closes the socket; the right one gets a
    // `hello` and an OK reply.
    let ws_url = format!(
        "{}/api/v4/websocket",
        fake.url().replace("http://", "ws://")
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url.as_str())
        .await
        .unwrap();
    socket
        .send(Message::Text(
            json!({"seq": 1, "action": "authentication_challenge", "data": {"token": "nope"}})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    let end = tokio::time::timeout(WAIT, socket.next()).await.unwrap();
    assert!(
        matches!(end, None | Some(Ok(Message::Close(_))) | Some(Err(_))),
        "{end:?}"
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url.as_str())
        .await
        .unwrap();
    socket
        .send(Message::Text(
            json!({"seq": 1, "action": "authentication_challenge", "data": {"token": TOKEN}})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    let mut frames = Vec::new();
    while frames.len() < 2 {
        if let Some(Ok(Message::Text(t))) = tokio::time::timeout(WAIT, socket.next()).await.unwrap()
        {
            frames.push(serde_json::from_str::<Value>(t.as_str()).unwrap());
        }
    }
    assert_eq!(frames[0]["event"], "hello");
    assert_eq!(frames[0]["seq"], 0);
    assert_eq!(frames[1], json!({"status": "OK", "seq_reply": 1}));
}

// The whole bot: dispatcher, StackStorm client and the Mattermost backend, against the
// StackStorm simulator and the fake Mattermost.

#[tokio::test]
async fn whole_bot_runs_commands_from_mattermost_against_the_stackstorm_simulator() {
    let sim = st2_sim::Sim::start(st2_sim::SimConfig::demo())
        .await
        .expect("simulator");
    let fake = MattermostFake::start().await;
    let dir = TempDir::new("mattermost-whole");
    let yaml = format!(
        r##"name: mattermost-e2e
backend:
  kind: mattermost
  url: {url}
  token: "file:{token}"
  team: {TEAM}
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
        url = fake.url(),
        token = dir.file("token", TOKEN),
        key = dir.file("st2", "sim-api-key"),
        st2 = sim.url(),
    );
    let _bot = harness::WholeBot::run(&yaml);
    fake.wait_until("the bot's socket", WAIT, |f| f.live_sockets() == 1)
        .await;
    let deadline = Instant::now() + WAIT;
    while sim.stream_clients() == 0 {
        assert!(
            Instant::now() < deadline,
            "the bot never connected to the stream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let texts_in = |channel: &str, root: &str| -> Vec<String> {
        fake.posts()
            .iter()
            .filter(|p| p.channel_id == channel && p.root_id == root)
            .map(|p| {
                let mut t = p.message.clone();
                for a in p.props["attachments"].as_array().into_iter().flatten() {
                    t.push('\n');
                    t.push_str(a["text"].as_str().unwrap_or_default());
                }
                t
            })
            .collect()
    };

    fake.user_says(ALICE, OPS, "!help", None);
    fake.wait_until("help in ~ops", WAIT, |_| {
        texts_in(OPS, "")
            .iter()
            .any(|t| t.contains("!local {{cmd}}"))
    })
    .await;

    let root = fake.user_says(BOB, OPS, "anyone checked the clock?", None);
    fake.user_says(ALICE, OPS, "!local date", Some(&root));
    fake.wait_until("ack and result in the thread", WAIT, |_| {
        let t = texts_in(OPS, &root);
        t.iter().any(|m| m.contains("running `core.local`"))
            && t.iter()
                .any(|m| m.starts_with("@alice\nExecution") && m.contains("succeeded"))
    })
    .await;
    // The result is an attachment coloured from the execution's status (issue 19 item 4).
    assert!(
        fake.posts()
            .iter()
            .any(|p| p.props["attachments"][0]["color"] == "#2EB67D"),
        "{:#?}",
        fake.posts()
    );
    // Live ack (issue 19 item 3): the ack post itself is patched as the execution ends.
    fake.wait_until("the ack edited to its final status", WAIT, |f| {
        f.posts().iter().any(|p| {
            p.root_id == root
                && p.message.contains("running `core.local`")
                && p.message.contains("✅ succeeded in")
                && !p.edits.is_empty()
        })
    })
    .await;
    assert_eq!(sim.executions()[0].source_context["thread"], root.as_str());

    let dm = fake.direct_channel(ALICE);
    fake.user_says(ALICE, &dm, "local uptime", None);
    fake.wait_until("ack and result in the DM", WAIT, |_| {
        let t = texts_in(&dm, "");
        t.iter().any(|m| m.contains("running `core.local`"))
            && t.iter().any(|m| m.contains("succeeded"))
    })
    .await;

    fake.user_says(BOB, OPS, "!local reboot", None);
    fake.wait_until("the denial", WAIT, |_| {
        texts_in(OPS, "").iter().any(|t| t.contains("bob"))
    })
    .await;
    assert_eq!(sim.executions().len(), 2);
    assert!(fake.rejections().is_empty(), "{:?}", fake.rejections());
}
