//! The XMPP backend against a real Prosody on 127.0.0.1 (STARTTLS required, SASL, MUC at
//! `conference.localhost`). The bot's backend is driven directly through its channels; a
//! separate test client plays the human.

use st2bot_testkit as support;

use std::time::Duration;

use st2bot::config::{SecretRef, XmppSpec};
use st2bot::runtime::backend::xmpp::XmppBackend;
use st2bot::runtime::backend::{
    Backend, BackendError, ConnState, Incoming, Outgoing, Room, Target,
};
use support::TempDir;
use support::backend::Driven;
use support::prosody::Prosody;
use support::xmpp_client::XmppClient;
use tokio_xmpp::parsers::message::MessageType;
use tokio_xmpp::parsers::ns;

const WAIT: Duration = Duration::from_secs(30);
const ROOM: &str = "ops@conference.localhost";

fn spec(server: &Prosody, password: SecretRef) -> XmppSpec {
    XmppSpec {
        jid: "bot@localhost".into(),
        password,
        server: "127.0.0.1".into(),
        port: server.port,
        tls: true,
        ca_file: Some(server.cert.cert.to_string_lossy().into_owned().into()),
        nickname: "st2bot".into(),
        rooms: vec![ROOM.into()].into(),
    }
}

fn in_ops() -> Option<Room> {
    Some(Room {
        id: ROOM.into(),
        name: ROOM.into(),
    })
}

fn to_ops(text: &str) -> Outgoing {
    Outgoing::text(
        Target::Room {
            id: ROOM.into(),
            thread: None,
        },
        text,
    )
}

async fn alice(server: &Prosody) -> XmppClient {
    let mut alice = XmppClient::connect(server.port, "alice", "alicepass", &server.cert.cert).await;
    alice.join(ROOM, "alice").await;
    alice
}

/// Alice says `!help` in the room and privately; the bot sees both and its replies reach
/// her in the same places.
async fn help_round_trip(bot: &mut Driven, alice: &mut XmppClient) {
    alice.say_in_room(ROOM, "!help").await;
    let got = bot.next_within(WAIT).await;
    assert_eq!(
        Incoming {
            message_id: None,
            ..got.clone()
        },
        Incoming {
            user_id: "alice@localhost".into(),
            user: "alice@localhost".into(),
            room: in_ops(),
            text: "!help".into(),
            mentioned: false,
            thread: None,
            message_id: None,
        }
    );
    assert!(got.message_id.is_some());
    bot.send(to_ops("Commands:{~}!help - this list")).await;
    alice
        .expect_message(
            MessageType::Groupchat,
            &format!("{ROOM}/st2bot"),
            "Commands:\n!help - this list",
            WAIT,
        )
        .await;

    alice.say_to("bot@localhost", "!help").await;
    let got = bot.next_within(WAIT).await;
    assert_eq!(
        (
            got.user_id.as_str(),
            got.user.as_str(),
            got.room.clone(),
            got.text.as_str()
        ),
        ("alice@localhost", "alice@localhost", None, "!help")
    );
    bot.send(Outgoing::text(
        Target::Direct {
            user: got.user_id.clone(),
        },
        "private help",
    ))
    .await;
    alice
        .expect_message(MessageType::Chat, "bot@localhost", "private help", WAIT)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xmpp_joins_answers_in_room_and_privately_renders_xhtml_and_survives_a_restart() {
    let mut server = Prosody::start();
    server.register("bot", "botpass");
    server.register("alice", "alicepass");
    let secrets = TempDir::new("xmpp-secrets");
    let password = SecretRef::File(secrets.file("bot", "botpass").into());

    // Something said in the room before the bot arrives is history, not a command.
    let mut alice = alice(&server).await;
    alice.say_in_room(ROOM, "!old command").await;

    let backend = XmppBackend::new(&spec(&server, password)).unwrap();
    assert!(backend.capabilities().rich);
    let mut bot = Driven::start(Box::new(backend));
    bot.connected_within(WAIT).await;
    help_round_trip(&mut bot, &mut alice).await;

    // Mentions of the room nick are stripped; the bot's own messages never come back in.
    bot.send(to_ops("an echo the bot must not hear")).await;
    alice.say_in_room(ROOM, "st2bot: pack list").await;
    let got = bot.next_within(WAIT).await;
    assert_eq!((got.text.as_str(), got.mentioned), ("pack list", true));

    // Rich output: extra.xmpp.html becomes XHTML-IM next to the plain body.
    let mut rich = to_ops("Deployed web-1");
    rich.extra = Some(serde_json::json!({
        "xmpp": {"html": "<p>Deployed <strong>web-1</strong><script>x()</script></p>"}
    }));
    bot.send(rich).await;
    let message = alice
        .expect_message(
            MessageType::Groupchat,
            &format!("{ROOM}/st2bot"),
            "Deployed web-1",
            WAIT,
        )
        .await;
    let html = message
        .payloads
        .iter()
        .find(|p| p.is("html", ns::XHTML_IM))
        .expect("XHTML-IM payload");
    let xml = String::from(html);
    assert!(
        xml.contains("<strong>web-1</strong>") && !xml.contains("script"),
        "{xml}"
    );

    // A long multi-line reply arrives whole, in one message.
    let long: String = (0..400).map(|i| format!("output line {i}\n")).collect();
    bot.send(to_ops(&long)).await;
    alice
        .expect_message(
            MessageType::Groupchat,
            &format!("{ROOM}/st2bot"),
            &long,
            WAIT,
        )
        .await;

    // The server dies and comes back: the bot logs in again, rejoins and answers.
    server.kill();
    bot.wait_state(WAIT, |s| *s == ConnState::Connecting).await;
    alice.close().await;
    server.restart();
    bot.connected_within(Duration::from_secs(90)).await;
    let mut alice = self::alice(&server).await;
    help_round_trip(&mut bot, &mut alice).await;

    bot.stop().await.expect("clean shutdown");
    alice.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xmpp_room_nick_conflict_and_refused_password() {
    let server = Prosody::start();
    server.register("bot", "botpass");
    server.register("alice", "alicepass");
    let secrets = TempDir::new("xmpp-secrets");

    // Someone already uses the bot's nick in the room: the bot joins as `st2bot_`.
    let mut squatter =
        XmppClient::connect(server.port, "alice", "alicepass", &server.cert.cert).await;
    squatter.join(ROOM, "st2bot").await;
    let good = SecretRef::File(secrets.file("good", "botpass").into());
    let mut bot = Driven::start(Box::new(XmppBackend::new(&spec(&server, good)).unwrap()));
    bot.connected_within(WAIT).await;
    squatter.say_in_room(ROOM, "st2bot_: !help").await;
    let got = bot.next_within(WAIT).await;
    assert_eq!((got.text.as_str(), got.mentioned), ("!help", true));
    bot.send(to_ops("hello from st2bot_")).await;
    squatter
        .expect_message(
            MessageType::Groupchat,
            &format!("{ROOM}/st2bot_"),
            "hello from st2bot_",
            WAIT,
        )
        .await;
    bot.stop().await.unwrap();
    squatter.close().await;

    // A wrong password stops the backend with an authentication error, no retry loop.
    let bad = SecretRef::File(secrets.file("bad", "wrongpass").into());
    let mut bot = Driven::start(Box::new(XmppBackend::new(&spec(&server, bad)).unwrap()));
    let result = bot.finished(WAIT).await;
    assert!(
        matches!(
            &result,
            Err(BackendError::Auth {
                service: "XMPP",
                ..
            })
        ),
        "{result:?}\n{}",
        server.log_tail()
    );
    assert!(matches!(bot.state(), ConnState::Failed(_)));
}

/// End-to-end: the compiled `xmpp` bot (`bots/xmpp.yaml` as shipped: JID
/// `st2bot@chat.example.org`, rooms on `conference.chat.example.org`, alice in `@ops`, the
/// `errbot` routes) against a Prosody serving `chat.example.org` and the StackStorm
/// simulator. `--chat-server` points the executable at the loopback port, `SSL_CERT_FILE`
/// makes the test certificate trusted, `--stackstorm-url` points at the simulator. Alice
/// asks `!help` in the room and privately, runs an alias command (ack, then the result from
/// the stream), is refused `core.remote`, and sees an announcement in the room and a
/// whisper in private; then Prosody restarts and the bot still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_xmpp_bot_serves_alice_in_rooms_and_privately_with_stackstorm() {
    use st2_sim::{Sim, SimConfig};
    use support::bot::BotProcess;

    const OPS: &str = "ops@conference.chat.example.org";
    const BOT_IN_OPS: &str = "ops@conference.chat.example.org/st2bot";
    const BOT: &str = "st2bot@chat.example.org";

    let mut server = Prosody::start_named("chat.example.org");
    server.register("st2bot", "botpass");
    server.register("alice", "alicepass");
    let sim = Sim::start(SimConfig::demo()).await.expect("simulator");
    let mut alice = XmppClient::connect(
        server.port,
        "alice@chat.example.org",
        "alicepass",
        &server.cert.cert,
    )
    .await;
    alice.join(OPS, "alice").await;
    let chat_server = format!("127.0.0.1:{}", server.port);
    let cert = server.cert.cert.to_string_lossy().into_owned();
    let bot = BotProcess::start(
        env!("CARGO_BIN_EXE_xmpp"),
        &[
            "--stackstorm-url",
            &sim.url(),
            "--chat-server",
            &chat_server,
        ],
        &[
            ("XMPP_PASSWORD", "botpass"),
            ("ST2_API_KEY", "sim-api-key"),
            ("SSL_CERT_FILE", &cert),
        ],
    );
    // The bot's presence in the room.
    alice
        .expect(WAIT, |stanza| {
            matches!(stanza, tokio_xmpp::Stanza::Presence(p)
                if p.from.as_ref().is_some_and(|f| f.to_string() == BOT_IN_OPS))
        })
        .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while sim.stream_clients() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no stream client");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // !help in the room, and privately.
    alice.say_in_room(OPS, "!help").await;
    alice
        .expect_message_containing(MessageType::Groupchat, BOT_IN_OPS, "!pack get", WAIT)
        .await;
    alice.say_to(BOT, "!help").await;
    alice
        .expect_message_containing(MessageType::Chat, BOT, "!pack get", WAIT)
        .await;

    // An alias command in the room: the ack, then the result announced on the stream.
    alice.say_in_room(OPS, "!pack get linux").await;
    let executions = {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let executions = sim.executions();
            if !executions.is_empty() {
                break executions;
            }
            assert!(tokio::time::Instant::now() < deadline, "no execution");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let execution = executions.last().expect("an execution");
    assert_eq!(execution.alias, "packs.pack_get");
    assert_eq!(execution.user, "alice@chat.example.org");
    assert_eq!(execution.source_channel, OPS);
    alice
        .expect_message_containing(MessageType::Groupchat, BOT_IN_OPS, &execution.id, WAIT)
        .await;

    // `core.remote` is denied everywhere: explained, StackStorm never hears of it.
    alice.say_in_room(OPS, "!run uptime on web1").await;
    alice
        .expect_message_containing(MessageType::Groupchat, BOT_IN_OPS, "not allowed", WAIT)
        .await;
    assert_eq!(sim.executions().len(), 1);

    // Announcements on the definition's `errbot` route: to the room, and whispered.
    sim.announce(
        "errbot",
        serde_json::json!({ "message": "deploy finished", "channel": OPS }),
    );
    alice
        .expect_message(MessageType::Groupchat, BOT_IN_OPS, "deploy finished", WAIT)
        .await;
    sim.announce(
        "errbot",
        serde_json::json!({
            "message": "psst: your token expires soon",
            "channel": OPS,
            "user": "alice@chat.example.org",
            "whisper": true,
        }),
    );
    alice
        .expect_message(
            MessageType::Chat,
            BOT,
            "psst: your token expires soon",
            WAIT,
        )
        .await;

    // Prosody restarts: the bot reconnects and rejoins by itself and still answers.
    alice.close().await;
    server.restart();
    bot.expect_log("XMPP connection lost", WAIT).await;
    bot.expect_log_count("joined room", 4, WAIT).await;
    let mut alice = XmppClient::connect(
        server.port,
        "alice@chat.example.org",
        "alicepass",
        &server.cert.cert,
    )
    .await;
    alice.say_to(BOT, "!help").await;
    alice
        .expect_message_containing(MessageType::Chat, BOT, "!pack get", WAIT)
        .await;
    drop(bot);
}
