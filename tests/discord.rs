//! End-to-end tests of the Discord backend against the in-repo fake Discord
//! (`testkit/src/fakes/discord.rs`): the backend runs as in the bot, driven through `BackendIo`;
//! each test plays the dispatcher's part (reads `Incoming`, answers with `Outgoing` to the
//! same place) and checks what the fake recorded.

use st2bot_testkit::backend as harness;
use st2bot_testkit::fakes::discord as fake;

use std::time::Duration;

use fake::{BOT_ID, DEV, FakeDiscord, OPS, THREAD, USERS};
use futures_util::{SinkExt as _, StreamExt as _};
use harness::{Driven, WAIT, WholeBot, eventually};
use serde_json::{Value, json};
use st2bot::config::{BackendSpec, DiscordSpec};
use st2bot::runtime::backend::{self, BackendError, ConnState, Outgoing, Status, Target};
use st2bot_testkit::TempDir;
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "MTA0.fake.bot-token";

fn start_bot(fake: &FakeDiscord, token: &str) -> Driven {
    let secrets = TempDir::new("discord");
    let spec = BackendSpec::Discord(DiscordSpec {
        token: secrets.secret("token", token),
        url: fake.api_url.clone().into(),
    });
    let bot = Driven::from_spec(&spec, secrets);
    assert_eq!(bot.capabilities.max_message_len, 2000);
    assert!(bot.capabilities.rich && bot.capabilities.threads);
    bot
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
    let fake = FakeDiscord::start(TOKEN, Duration::from_millis(800)).await;
    let mut bot = start_bot(&fake, TOKEN);
    bot.connected().await;

    // In a channel.
    let said = fake.say(OPS, "alice", "!help");
    let m = bot.next().await;
    assert_eq!(m.user, "alice");
    assert_eq!(m.user_id, user_id("alice"));
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
    assert_eq!(posted[0].channel_id, OPS);
    assert_eq!(
        posted[0].content(),
        format!("<@{}>: !run date - run a command", user_id("alice"))
    );
    assert!(posted[0].embeds().is_empty());

    // In a thread, addressed by mention: the alias command, answered with a status.
    fake.say(THREAD, "alice", &format!("<@{BOT_ID}> !run date"));
    let m = bot.next().await;
    assert_eq!(m.text, "!run date");
    assert!(m.mentioned);
    assert_eq!(m.thread.as_deref(), Some(THREAD));
    assert_eq!(m.room.as_ref().map(|r| r.name.as_str()), Some("#ops"));
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
        posted[0].channel_id, THREAD,
        "the reply stays in the thread"
    );
    assert_eq!(
        posted[0].content(),
        format!("<@{}>: Ran core.local date", user_id("alice"))
    );
    let embed = &posted[0].embeds()[0];
    assert_eq!(embed["description"], "Tue Nov 25 12:00:00 UTC 2026");
    assert_eq!(embed["color"], 0x2EB67D);

    // In a direct message.
    fake.say_direct("bob", "!help");
    let m = bot.next().await;
    assert_eq!((m.user.as_str(), m.room.as_ref()), ("bob", None));
    assert_eq!(m.text, "!help");
    bot.reply_with(&m, "help for bob", None, None).await;
    let posted = fake.wait_posted(2, WAIT).await;
    assert_eq!(posted[0].channel_id, fake.dm_channel("bob"));

    // The bot's own messages came back on the gateway and were ignored.
    bot.assert_quiet().await;
    assert_eq!(fake.counters().invalid_form_bodies, 0);
    bot.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn announcements_render_extra_and_long_output_is_split_under_the_limits() {
    let fake = FakeDiscord::start(TOKEN, Duration::from_millis(800)).await;
    fake.set_message_bucket(50, Duration::from_secs(1));
    let mut bot = start_bot(&fake, TOKEN);
    bot.connected().await;

    // An announcement with extra.discord, to a channel by name, as chatops.post_message sends.
    let mut out = Outgoing::text(
        Target::Room {
            id: "#dev".into(),
            thread: None,
        },
        "Execution 5f3 failed{~}Traceback: boom",
    );
    out.status = Some(Status::Failed);
    out.extra = Some(
        json!({"discord": {"title": "core.local", "color": "#123456",
                                        "footer": {"text": "st2"}}}),
    );
    bot.send(out).await;
    let posted = fake.wait_posted(0, WAIT).await;
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].channel_id, DEV);
    assert_eq!(posted[0].content(), "Execution 5f3 failed");
    let embed = &posted[0].embeds()[0];
    assert_eq!(embed["title"], "core.local");
    assert_eq!(embed["description"], "Traceback: boom");
    assert_eq!(embed["color"], 0x123456, "extra.discord.color wins");
    assert_eq!(embed["footer"]["text"], "st2");

    // Without extra, the failure colour comes from the structured status.
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
    assert_eq!(posted[0].embeds()[0]["color"], 0xE01E5A);

    // Long plain output: several messages, each within 2000 characters, nothing lost.
    let lines: Vec<String> = (0..400)
        .map(|i| format!("line {i:03} of the output"))
        .collect();
    let text = lines.join("\n");
    bot.outgoing
        .send(Outgoing::text(
            Target::Room {
                id: OPS.into(),
                thread: None,
            },
            text.clone(),
        ))
        .await
        .unwrap();
    let posted = fake.wait_posted(2, WAIT).await;
    assert!(posted.len() >= 5, "split into {} parts", posted.len());
    let mut joined = String::new();
    for p in &posted {
        assert!(p.content().chars().count() <= 2000);
        joined.push_str(p.content());
        joined.push('\n');
    }
    assert_eq!(joined.trim_end(), text, "in order, nothing lost");

    // A long rich body: several embeds, each within 4096 characters.
    let mut out = Outgoing::text(
        Target::Room {
            id: OPS.into(),
            thread: None,
        },
        format!("big result{{~}}{}", "x".repeat(60) + &"\nrow".repeat(3000)),
    );
    out.status = Some(Status::Succeeded);
    let before = fake.posted().len();
    bot.send(out).await;
    let posted = fake.wait_posted(before, WAIT).await;
    assert!(posted.len() >= 3);
    for p in &posted {
        for e in p.embeds() {
            assert!(e["description"].as_str().unwrap().chars().count() <= 4096);
        }
    }
    assert_eq!(
        fake.counters().invalid_form_bodies,
        0,
        "Discord refused nothing"
    );
    bot.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn rate_limits_are_honoured() {
    let fake = FakeDiscord::start(TOKEN, Duration::from_millis(800)).await;
    let mut bot = start_bot(&fake, TOKEN);
    bot.connected().await;
    let to_ops = |text: &str| {
        Outgoing::text(
            Target::Room {
                id: OPS.into(),
                thread: None,
            },
            text,
        )
    };

    // A 429 on the route: the bot waits `retry_after`, then the message goes through.
    fake.inject_429(0.4, false);
    bot.outgoing.send(to_ops("after a 429")).await.unwrap();
    let posted = fake.wait_posted(0, WAIT).await;
    assert_eq!(posted[0].content(), "after a 429");

    // A global 429.
    fake.inject_429(0.3, true);
    bot.outgoing
        .send(to_ops("after a global 429"))
        .await
        .unwrap();
    let posted = fake.wait_posted(1, WAIT).await;
    assert_eq!(posted[0].content(), "after a global 429");

    // A small bucket: the bot paces itself from the X-RateLimit headers.
    fake.set_message_bucket(2, Duration::from_millis(400));
    for i in 0..6 {
        bot.outgoing
            .send(to_ops(&format!("burst {i}")))
            .await
            .unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 6 {
        let before = 2 + got.len();
        got.extend(fake.wait_posted(before, WAIT).await);
    }
    let contents: Vec<&str> = got.iter().map(|p| p.content()).collect();
    assert_eq!(
        contents,
        (0..6).map(|i| format!("burst {i}")).collect::<Vec<_>>()
    );
    let counters = fake.counters();
    assert_eq!(counters.rate_limited, 2, "only the injected 429s");
    assert_eq!(
        counters.rate_limit_violations, 0,
        "never sent while limited"
    );
    bot.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_dropped_connection_is_resumed_and_missed_messages_are_answered() {
    let fake = FakeDiscord::start(TOKEN, Duration::from_millis(800)).await;
    let mut bot = start_bot(&fake, TOKEN);
    bot.connected().await;
    fake.drop_connections();
    // Said while the bot is away: Discord replays it on RESUME.
    fake.say(OPS, "alice", "!help");
    let m = bot.next().await;
    assert_eq!(m.text, "!help");
    bot.reply_with(&m, "still here", None, None).await;
    let posted = fake.wait_posted(0, WAIT).await;
    assert!(posted[0].content().ends_with("still here"));
    let c = fake.counters();
    assert_eq!(c.identifies, 1, "resumed, not re-identified");
    assert!(c.resumes >= 1);
    bot.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_zombie_connection_is_detected_and_resumed() {
    let fake = FakeDiscord::start(TOKEN, Duration::from_millis(300)).await;
    let mut bot = start_bot(&fake, TOKEN);
    bot.connected().await;
    fake.set_ack_heartbeats(false);
    eventually("a RESUME after missing ACKs", || {
        fake.counters().resumes > 0
    })
    .await;
    fake.set_ack_heartbeats(true);
    fake.say(OPS, "bob", "!help");
    let m = bot.next().await;
    assert_eq!(m.user, "bob");
    assert_eq!(
        fake.counters().heartbeat_timeouts,
        0,
        "the bot kept beating"
    );
    bot.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn an_invalid_session_leads_to_a_fresh_identify() {
    let fake = FakeDiscord::start(TOKEN, Duration::from_millis(800)).await;
    let mut bot = start_bot(&fake, TOKEN);
    bot.connected().await;
    fake.forget_sessions();
    fake.drop_connections();
    eventually("a new IDENTIFY after op 9", || {
        fake.counters().identifies >= 2
    })
    .await;
    assert!(fake.counters().invalid_sessions >= 1);
    bot.connected().await;
    // Let the new session settle before talking to it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    fake.say(DEV, "alice", "!help");
    let m = bot.next().await;
    assert_eq!(m.room.map(|r| r.name), Some("#dev".to_owned()));
    bot.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_bad_token_is_fatal_without_retrying() {
    let fake = FakeDiscord::start(TOKEN, Duration::from_millis(800)).await;
    let mut bot = start_bot(&fake, "not-the-token");
    let result = bot.finished(WAIT).await;
    assert!(
        matches!(
            result,
            Err(BackendError::Auth {
                service: "discord",
                ..
            })
        ),
        "{result:?}"
    );
    assert!(matches!(&*bot.state.borrow(), ConnState::Failed(_)));
    let c = fake.counters();
    assert_eq!(c.rest_unauthorized, 1, "asked once, no retry loop");
    assert_eq!(c.connections, 0);
}

#[tokio::test]
async fn a_disallowed_message_content_intent_is_fatal() {
    let fake = FakeDiscord::start(TOKEN, Duration::from_millis(800)).await;
    fake.set_message_content_enabled(false);
    let mut bot = start_bot(&fake, TOKEN);
    let result = bot.finished(WAIT).await;
    let Err(BackendError::Config { reason, .. }) = result else {
        panic!("expected a configuration error, got {result:?}");
    };
    assert!(
        reason.contains("4014") && reason.contains("MESSAGE CONTENT"),
        "{reason}"
    );
    assert_eq!(fake.counters().connections, 1, "no reconnect loop");
}

/// The fake itself: it refuses what Discord refuses, so the tests above mean something.
#[tokio::test]
async fn the_fake_gateway_refuses_bad_tokens_silent_clients_and_unknown_sessions() {
    let fake = FakeDiscord::start(TOKEN, Duration::from_millis(200)).await;
    let url = fake.gateway_url();
    let connect = || async {
        let mut ws = backend::websocket::connect(&format!("{url}/?v=10&encoding=json"))
            .await
            .expect("gateway reachable");
        let hello = ws.next().await.unwrap().unwrap();
        let hello: Value = serde_json::from_str(hello.to_text().unwrap()).unwrap();
        assert_eq!(hello["op"], 10);
        assert_eq!(hello["d"]["heartbeat_interval"], 200);
        ws
    };
    async fn close_code(ws: &mut backend::websocket::WsStream) -> u16 {
        loop {
            match tokio::time::timeout(WAIT, ws.next()).await.expect("closes") {
                Some(Ok(Message::Close(Some(f)))) => return f.code.into(),
                Some(Ok(_)) => continue,
                other => panic!("no close frame: {other:?}"),
            }
        }
    }
    let identify = |token: &str| {
        Message::text(
            json!({"op": 2, "d": {"token": token, "intents": 37377,
                   "properties": {"os": "linux", "browser": "t", "device": "t"}}})
            .to_string(),
        )
    };

    let mut ws = connect().await;
    ws.send(identify("wrong")).await.unwrap();
    assert_eq!(close_code(&mut ws).await, 4004);

    let mut ws = connect().await;
    ws.send(Message::text(json!({"op": 1, "d": null}).to_string()))
        .await
        .unwrap();
    ws.send(identify(TOKEN)).await.unwrap();
    // READY, GUILD_CREATE, then silence from us: the fake times the session out.
    assert_eq!(close_code(&mut ws).await, 4009);
    assert_eq!(fake.counters().heartbeat_timeouts, 1);

    let mut ws = connect().await;
    ws.send(Message::text(
        json!({"op": 6, "d": {"token": TOKEN, "session_id": "nope", "seq": 3}}).to_string(),
    ))
    .await
    .unwrap();
    let reply = ws.next().await.unwrap().unwrap();
    let reply: Value = serde_json::from_str(reply.to_text().unwrap()).unwrap();
    assert_eq!(reply["op"], 9);
    assert_eq!(reply["d"], false);

    let mut ws = connect().await;
    ws.send(Message::text(json!({"op": 3, "d": {}}).to_string()))
        .await
        .unwrap();
    assert_eq!(close_code(&mut ws).await, 4003, "payload before IDENTIFY");
}

#[tokio::test]
async fn the_fake_rest_api_refuses_bad_tokens_and_oversized_messages() {
    let fake = FakeDiscord::start(TOKEN, Duration::from_millis(800)).await;
    let http = reqwest_client();
    let url = format!("{}/channels/{OPS}/messages", fake.api_url);
    let r = http
        .post(&url)
        .header("authorization", "Bot wrong")
        .json(&json!({"content": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"message": "401: Unauthorized", "code": 0})
    );
    let r = http
        .post(&url)
        .header("authorization", format!("Bot {TOKEN}"))
        .json(&json!({"content": "x".repeat(2001)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], 50035);
    assert_eq!(
        body["errors"]["content"]["_errors"][0]["code"],
        "BASE_TYPE_MAX_LENGTH"
    );
    let r = http
        .post(&url)
        .header("authorization", format!("Bot {TOKEN}"))
        .json(&json!({"content": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], 50006);
    assert!(fake.posted().is_empty());
}

fn reqwest_client() -> reqwest::Client {
    st2bot::runtime::http::client(true, None, Some(Duration::from_secs(10))).unwrap()
}

/// The whole bot: a YAML definition with `kind: discord`, the real dispatcher, the StackStorm
/// simulator, and the fake Discord.
#[tokio::test]
async fn the_whole_bot_runs_commands_from_discord_and_posts_results_back() {
    let sim = st2_sim::Sim::start(st2_sim::SimConfig::demo())
        .await
        .expect("simulator");
    let fake = FakeDiscord::start(TOKEN, Duration::from_millis(800)).await;
    let secrets = TempDir::new("discord-e2e");
    let token_path = secrets.file("token", TOKEN);
    let yaml = format!(
        "name: discord-e2e\n\
         backend:\n  kind: discord\n  token: file:{token_path}\n  url: {}\n\
         stackstorm:\n  url: {{st2_url}}\n  auth:\n    api_key: {{st2_key}}\n\
         chat:\n  prefix: \"!\"\n\
         access:\n  default: allow\n",
        fake.api_url
    );
    let _bot = WholeBot::start(&yaml, &sim.url(), vec![secrets]);
    eventually("connected to Discord and to the stream", || {
        fake.counters().identifies == 1 && sim.stream_clients() == 1
    })
    .await;
    // Let the alias cache load after the stream connects.
    tokio::time::sleep(Duration::from_millis(300)).await;

    fake.say(OPS, "alice", "!help");
    let help = fake.wait_posted(0, WAIT).await;
    let text: String = help
        .iter()
        .map(|p| p.content())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains("!local {{cmd}}"), "{text}");
    assert!(help.iter().all(|p| p.channel_id == OPS));

    let before = fake.posted().len();
    fake.say(THREAD, "alice", &format!("<@{BOT_ID}> !local date"));
    eventually("the execution", || sim.executions().len() == 1).await;
    let execution = sim.executions()[0].clone();
    assert_eq!(execution.user, "alice");
    assert_eq!(execution.source_channel, OPS);
    assert_eq!(execution.parameters, json!({"cmd": "date"}));
    // The ack, then the result the simulated chatops rule announces, both in the thread;
    // the result is an embed coloured from the execution's status (issue 19 item 4).
    let result = format!("Execution {} succeeded", execution.id);
    eventually("ack and result", || {
        fake.posted()[before..].iter().any(|p| {
            p.embeds().iter().any(|e| {
                e["description"]
                    .as_str()
                    .is_some_and(|d| d.contains(&result))
                    && e["color"] == json!(0x2EB67D)
            })
        })
    })
    .await;
    // Live ack (issue 19 item 3): the ack itself is edited as the execution ends.
    eventually("the ack edited to its final status", || {
        fake.posted()[before..].iter().any(|p| {
            p.content().contains("running `core.local`")
                && p.edits.iter().any(|e| e.contains("✅ succeeded in"))
        })
    })
    .await;
    let replies = &fake.posted()[before..];
    assert!(
        replies
            .iter()
            .any(|p| p.content().contains("running `core.local`")),
        "{replies:#?}"
    );
    assert!(
        replies.iter().all(|p| p.channel_id == THREAD),
        "{replies:#?}"
    );
    assert!(
        replies
            .iter()
            .any(|p| p.content().contains(&format!("<@{}>", USERS[0].0))),
        "results mention the user: {replies:#?}"
    );

    // A direct message.
    let before = fake.posted().len();
    fake.say_direct("bob", "!help local");
    let dm = fake.wait_posted(before, WAIT).await;
    assert!(dm.iter().all(|p| p.channel_id == fake.dm_channel("bob")));
}
