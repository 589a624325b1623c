//! End-to-end tests of the Rocket.Chat backend against the in-repo fake Rocket.Chat
//! (`testkit/src/fakes/rocketchat.rs`): the backend runs as in the bot, driven through
//! `BackendIo`; each test plays the dispatcher's part and checks what the fake recorded.

use st2bot_testkit::backend as harness;
use st2bot_testkit::fakes::rocketchat as fake;

use std::time::Duration;

use fake::{BOT_ID, BOT_NAME, BOT_PASSWORD, BOT_PAT, DEV, FakeRocketChat, OPS, USERS};
use futures_util::{SinkExt as _, StreamExt as _};
use harness::{Driven, WAIT, WholeBot, eventually};
use serde_json::{Value, json};
use st2bot::config::{BackendSpec, RocketChatLogin, RocketChatSpec};
use st2bot::runtime::backend::{self, BackendError, ConnState, Outgoing, Status, Target};
use st2bot_testkit::TempDir;
use tokio_tungstenite::tungstenite::Message;

const PING: Duration = Duration::from_millis(400);

fn with_password(fake: &FakeRocketChat, password: &str) -> Driven {
    let secrets = TempDir::new("rocketchat");
    let spec = BackendSpec::RocketChat(RocketChatSpec {
        url: fake.url.clone().into(),
        login: RocketChatLogin::Password {
            username: BOT_NAME.into(),
            password: secrets.secret("password", password),
        },
    });
    let bot = Driven::from_spec(&spec, secrets);
    assert_eq!(bot.capabilities.max_message_len, 5000);
    assert!(bot.capabilities.rich && bot.capabilities.threads);
    bot
}

fn with_token(fake: &FakeRocketChat, token: &str) -> Driven {
    let secrets = TempDir::new("rocketchat");
    let spec = BackendSpec::RocketChat(RocketChatSpec {
        url: fake.url.clone().into(),
        login: RocketChatLogin::Token {
            user_id: BOT_ID.into(),
            token: secrets.secret("token", token),
        },
    });
    Driven::from_spec(&spec, secrets)
}

fn user_id(name: &str) -> &'static str {
    USERS
        .iter()
        .find(|(_, n)| *n == name)
        .expect("known user")
        .0
}

#[tokio::test]
async fn help_and_alias_in_a_channel_a_thread_and_a_dm_are_answered_in_place() {
    let fake = FakeRocketChat::start(PING).await;
    let mut bot = with_password(&fake, BOT_PASSWORD);
    bot.connected().await;

    // In a channel.
    let said = fake.say(OPS, "alice", "!help", None);
    let m = bot.next().await;
    assert_eq!(
        (m.user.as_str(), m.user_id.as_str()),
        ("alice", user_id("alice"))
    );
    let room = m.room.clone().expect("a room");
    assert_eq!((room.id.as_str(), room.name.as_str()), (OPS, "#ops"));
    assert_eq!(
        (m.text.as_str(), m.mentioned, m.thread.as_deref()),
        ("!help", false, None)
    );
    assert_eq!(m.message_id.as_deref(), Some(said.as_str()));
    bot.reply_with(&m, "!run date - run a command", None, None)
        .await;
    let posted = fake.wait_posted(0, WAIT).await;
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].rid, OPS);
    assert_eq!(posted[0].body["roomId"], OPS);
    assert_eq!(posted[0].text(), "@alice: !run date - run a command");
    assert!(posted[0].attachments().is_empty());
    assert!(posted[0].body.get("tmid").is_none());

    // In a thread, addressed by mention: the alias command, answered with a status.
    fake.say(OPS, "alice", &format!("@{BOT_NAME} !run date"), Some(&said));
    let m = bot.next().await;
    assert_eq!((m.text.as_str(), m.mentioned), ("!run date", true));
    assert_eq!(m.thread.as_deref(), Some(said.as_str()));
    bot.reply_with(
        &m,
        "Ran core.local date{~}Tue Nov 25 12:00:00 UTC 2026",
        Some(Status::Succeeded),
        None,
    )
    .await;
    let posted = fake.wait_posted(1, WAIT).await;
    assert_eq!(posted.len(), 1);
    assert_eq!(
        posted[0].body["tmid"],
        said.as_str(),
        "the reply stays in the thread"
    );
    assert_eq!(posted[0].text(), "@alice: Ran core.local date");
    let attachment = &posted[0].attachments()[0];
    assert_eq!(attachment["text"], "Tue Nov 25 12:00:00 UTC 2026");
    assert_eq!(attachment["color"], "#2EB67D");

    // In a direct message.
    fake.say_direct("bob", "!help");
    let m = bot.next().await;
    assert_eq!((m.user.as_str(), m.room.as_ref()), ("bob", None));
    bot.reply_with(&m, "help for bob", None, None).await;
    let posted = fake.wait_posted(2, WAIT).await;
    assert_eq!(posted[0].rid, fake.dm_room("bob"));
    assert_eq!(posted[0].text(), "@bob: help for bob");

    // The bot's own messages came back on its stream and were ignored.
    bot.assert_quiet().await;
    bot.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn rooms_unknown_to_the_stream_are_looked_up_and_dms_are_opened() {
    let fake = FakeRocketChat::start(PING).await;
    fake.set_room_meta(false);
    let mut bot = with_token(&fake, BOT_PAT);
    bot.connected().await;
    fake.say(DEV, "bob", "!help", None);
    let m = bot.next().await;
    assert_eq!(
        m.room.map(|r| r.name),
        Some("#dev".to_owned()),
        "from rooms.info"
    );
    // A private message to someone who never wrote to the bot: im.create by username.
    bot.send(Outgoing::text(
        Target::Direct {
            user: "alice".into(),
        },
        "psst",
    ))
    .await;
    let posted = fake.wait_posted(0, WAIT).await;
    assert_eq!(posted[0].rid, fake.dm_room("alice"));
    bot.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn announcements_render_extra_and_long_output_is_split_under_the_limit() {
    let fake = FakeRocketChat::start(PING).await;
    let mut bot = with_password(&fake, BOT_PASSWORD);
    bot.connected().await;

    let mut out = Outgoing::text(
        Target::Room {
            id: "#dev".into(),
            thread: None,
        },
        "Execution 5f3 failed{~}Traceback: boom",
    );
    out.status = Some(Status::Failed);
    out.extra = Some(json!({"rocketchat": {"title": "core.local", "color": "#123456"}}));
    bot.send(out).await;
    let posted = fake.wait_posted(0, WAIT).await;
    assert_eq!(posted[0].rid, DEV);
    assert_eq!(posted[0].body["channel"], "#dev");
    assert_eq!(posted[0].text(), "Execution 5f3 failed");
    let attachment = &posted[0].attachments()[0];
    assert_eq!(attachment["title"], "core.local");
    assert_eq!(attachment["text"], "Traceback: boom");
    assert_eq!(
        attachment["color"], "#123456",
        "extra.rocketchat.color wins"
    );

    // The status colour when extra has none.
    let mut out = Outgoing::text(
        Target::Room {
            id: OPS.into(),
            thread: None,
        },
        "failed{~}details",
    );
    out.status = Some(Status::Failed);
    bot.send(out).await;
    let posted = fake.wait_posted(1, WAIT).await;
    assert_eq!(posted[0].attachments()[0]["color"], "#E01E5A");

    // extra.rocketchat.attachments verbatim.
    let mut out = Outgoing::text(
        Target::Room {
            id: OPS.into(),
            thread: None,
        },
        "see below",
    );
    out.extra = Some(json!({"rocketchat": {"attachments": [{"title": "given", "text": "as is"}]}}));
    bot.send(out).await;
    let posted = fake.wait_posted(2, WAIT).await;
    assert_eq!(posted[0].text(), "see below");
    assert_eq!(
        posted[0].attachments(),
        vec![json!({"title": "given", "text": "as is"})]
    );

    // Long output: several messages within 5000 characters, in order, nothing lost.
    let text = (0..600)
        .map(|i| format!("line {i:03} of the output"))
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
    let posted = fake.wait_posted(3, WAIT).await;
    assert!(posted.len() >= 3, "split into {} parts", posted.len());
    let joined: Vec<&str> = posted.iter().map(|p| p.text()).collect();
    assert!(joined.iter().all(|t| t.chars().count() <= 5000));
    assert_eq!(joined.join("\n"), text);
    assert_eq!(fake.counters().too_long, 0, "Rocket.Chat refused nothing");
    bot.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_429_is_honoured() {
    let fake = FakeRocketChat::start(PING).await;
    let mut bot = with_password(&fake, BOT_PASSWORD);
    bot.connected().await;
    fake.inject_429(0.6);
    bot.send(Outgoing::text(
        Target::Room {
            id: OPS.into(),
            thread: None,
        },
        "after a 429",
    ))
    .await;
    let posted = fake.wait_posted(0, WAIT).await;
    assert_eq!(posted[0].text(), "after a 429");
    let c = fake.counters();
    assert_eq!(c.rate_limited, 1);
    assert_eq!(c.rate_limit_violations, 0, "never called while limited");
    bot.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_dropped_connection_is_reestablished_and_still_answers() {
    let fake = FakeRocketChat::start(PING).await;
    let mut bot = with_password(&fake, BOT_PASSWORD);
    bot.connected().await;
    assert_eq!(fake.counters().subscriptions, 1);
    fake.drop_connections();
    eventually("re-subscribed", || {
        fake.counters().subscriptions >= 2 && fake.live_subscriptions() == 1
    })
    .await;
    fake.say(OPS, "alice", "!help", None);
    let m = bot.next().await;
    bot.reply_with(&m, "still here", None, None).await;
    assert_eq!(
        fake.wait_posted(0, WAIT).await[0].text(),
        "@alice: still here"
    );
    assert_eq!(
        fake.counters().rest_logins,
        1,
        "the token was resumed, no new login"
    );

    // Now the login token expires while the bot is away: it logs in again over REST.
    fake.expire_tokens();
    fake.drop_connections();
    eventually("logged in again and re-subscribed", || {
        let c = fake.counters();
        c.rest_logins == 2 && c.subscriptions >= 3 && fake.live_subscriptions() == 1
    })
    .await;
    assert!(fake.counters().realtime_login_failures >= 1);
    fake.say(OPS, "bob", "!help", None);
    assert_eq!(bot.next().await.user, "bob");
    assert_eq!(
        fake.counters().ping_timeouts,
        0,
        "the bot answered every ping"
    );
    bot.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_bad_password_is_fatal_without_retrying() {
    let fake = FakeRocketChat::start(PING).await;
    let mut bot = with_password(&fake, "wrong");
    let result = bot.finished(WAIT).await;
    assert!(
        matches!(
            result,
            Err(BackendError::Auth {
                service: "rocketchat",
                ..
            })
        ),
        "{result:?}"
    );
    assert!(matches!(&*bot.state.borrow(), ConnState::Failed(_)));
    let c = fake.counters();
    assert_eq!(c.login_failures, 1, "asked once, no retry loop");
    assert_eq!(c.connections, 0);
}

#[tokio::test]
async fn a_bad_personal_access_token_is_fatal_without_retrying() {
    let fake = FakeRocketChat::start(PING).await;
    let mut bot = with_token(&fake, "not-the-token");
    let result = bot.finished(WAIT).await;
    assert!(
        matches!(
            result,
            Err(BackendError::Auth {
                service: "rocketchat",
                ..
            })
        ),
        "{result:?}"
    );
    assert_eq!(fake.counters().unauthorized, 1);
}

/// The fake itself: it refuses what Rocket.Chat refuses, so the tests above mean something.
#[tokio::test]
async fn the_fake_refuses_bad_credentials_oversized_messages_and_silent_clients() {
    let fake = FakeRocketChat::start(Duration::from_millis(150)).await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/api/v1/chat.postMessage", fake.url))
        .header("X-User-Id", BOT_ID)
        .header("X-Auth-Token", "nope")
        .json(&json!({"roomId": OPS, "text": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": "error", "message": "You must be logged in to do this."})
    );
    let r = http
        .post(format!("{}/api/v1/chat.postMessage", fake.url))
        .header("X-User-Id", BOT_ID)
        .header("X-Auth-Token", BOT_PAT)
        .json(&json!({"roomId": OPS, "text": "x".repeat(5001)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["success"], false);
    assert!(fake.posted().is_empty());

    let url = format!("{}/websocket", fake.url.replace("http", "ws"));
    let mut ws = backend::websocket::connect(&url).await.unwrap();
    assert_eq!(read(&mut ws).await, Some(json!({"server_id": "0"})));
    write(
        &mut ws,
        json!({"msg": "connect", "version": "1", "support": ["1"]}),
    )
    .await;
    let connected = read(&mut ws).await.unwrap();
    assert_eq!(connected["msg"], "connected");
    write(
        &mut ws,
        json!({"msg": "sub", "id": "s1", "name": "stream-room-messages",
                        "params": ["__my_messages__", false]}),
    )
    .await;
    let nosub = read(&mut ws).await.unwrap();
    assert_eq!(
        (nosub["msg"].as_str(), nosub["id"].as_str()),
        (Some("nosub"), Some("s1"))
    );
    write(
        &mut ws,
        json!({"msg": "method", "method": "login", "id": "l1",
                        "params": [{"resume": "expired"}]}),
    )
    .await;
    let refused = read(&mut ws).await.unwrap();
    assert_eq!(refused["error"]["error"], 403);
    // Never answer the pings: the server hangs up.
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => continue,
        }
    }
    assert_eq!(fake.counters().ping_timeouts, 1);
}

async fn write(ws: &mut backend::websocket::WsStream, frame: Value) {
    ws.send(Message::text(frame.to_string())).await.unwrap();
}

async fn read(ws: &mut backend::websocket::WsStream) -> Option<Value> {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.ok()?? {
            Ok(Message::Text(t)) => {
                let v: Value = serde_json::from_str(&t).ok()?;
                if v["msg"] == "ping" {
                    continue;
                }
                return Some(v);
            }
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

/// The whole bot: a YAML definition with `kind: rocketchat`, the real dispatcher, the
/// StackStorm simulator, and the fake Rocket.Chat.
#[tokio::test]
async fn the_whole_bot_runs_commands_from_rocketchat_and_posts_results_back() {
    let sim = st2_sim::Sim::start(st2_sim::SimConfig::demo())
        .await
        .expect("simulator");
    let fake = FakeRocketChat::start(PING).await;
    let secrets = TempDir::new("rocketchat-e2e");
    let password_path = secrets.file("password", BOT_PASSWORD);
    let yaml = format!(
        "name: rocketchat-e2e\n\
         backend:\n  kind: rocketchat\n  url: {}\n  username: {BOT_NAME}\n  password: file:{password_path}\n\
         stackstorm:\n  url: {{st2_url}}\n  auth:\n    api_key: {{st2_key}}\n\
         chat:\n  prefix: \"!\"\n\
         access:\n  default: allow\n",
        fake.url
    );
    let _bot = WholeBot::start(&yaml, &sim.url(), vec![secrets]);
    eventually("connected to Rocket.Chat and to the stream", || {
        fake.live_subscriptions() == 1 && sim.stream_clients() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let said = fake.say(OPS, "alice", "!help", None);
    let help = fake.wait_posted(0, WAIT).await;
    let text: String = help.iter().map(|p| p.text()).collect::<Vec<_>>().join("\n");
    assert!(text.contains("!local {{cmd}}"), "{text}");
    assert!(help.iter().all(|p| p.rid == OPS));

    let before = fake.posted().len();
    fake.say(
        OPS,
        "alice",
        &format!("@{BOT_NAME} !local date"),
        Some(&said),
    );
    eventually("the execution", || sim.executions().len() == 1).await;
    let execution = sim.executions()[0].clone();
    assert_eq!(execution.user, "alice");
    assert_eq!(execution.source_channel, OPS);
    // The result is an attachment coloured from the execution's status (issue 19 item 4).
    let result = format!("Execution {} succeeded", execution.id);
    eventually("ack and result", || {
        fake.posted()[before..].iter().any(|p| {
            p.attachments().iter().any(|a| {
                a["text"].as_str().is_some_and(|t| t.contains(&result)) && a["color"] == "#2EB67D"
            })
        })
    })
    .await;
    // Live ack (issue 19 item 3): the ack itself is edited as the execution ends.
    eventually("the ack edited to its final status", || {
        fake.posted()[before..].iter().any(|p| {
            p.text().contains("running `core.local`")
                && p.edits.iter().any(|e| e.contains("✅ succeeded in"))
        })
    })
    .await;
    let replies = &fake.posted()[before..];
    assert!(
        replies
            .iter()
            .any(|p| p.text().contains("running `core.local`")),
        "{replies:#?}"
    );
    assert!(
        replies
            .iter()
            .all(|p| p.rid == OPS && p.body["tmid"] == said.as_str()),
        "replies stay in the thread: {replies:#?}"
    );

    let before = fake.posted().len();
    fake.say_direct("bob", "!help local");
    let dm = fake.wait_posted(before, WAIT).await;
    assert!(dm.iter().all(|p| p.rid == fake.dm_room("bob")));
}
