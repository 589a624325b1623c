//! The XMPP backend against a real Prosody on 127.0.0.1 (STARTTLS required, SASL, MUC at
//! `conference.localhost`). The bot's backend is driven directly through its channels; a
//! separate test client plays the human.

mod support;

use std::time::Duration;

use st2bot::config::{SecretRef, XmppSpec};
use st2bot::runtime::backend::xmpp::XmppBackend;
use st2bot::runtime::backend::{
    Backend, BackendError, ConnState, Incoming, Outgoing, Room, Target,
};
use support::TempDir;
use support::backend::BotHarness;
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
async fn help_round_trip(bot: &mut BotHarness, alice: &mut XmppClient) {
    alice.say_in_room(ROOM, "!help").await;
    let got = bot.next_incoming(WAIT).await;
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
    bot.reply(to_ops("Commands:{~}!help - this list")).await;
    alice
        .expect_message(
            MessageType::Groupchat,
            &format!("{ROOM}/st2bot"),
            "Commands:\n!help - this list",
            WAIT,
        )
        .await;

    alice.say_to("bot@localhost", "!help").await;
    let got = bot.next_incoming(WAIT).await;
    assert_eq!(
        (
            got.user_id.as_str(),
            got.user.as_str(),
            got.room.clone(),
            got.text.as_str()
        ),
        ("alice@localhost", "alice@localhost", None, "!help")
    );
    bot.reply(Outgoing::text(
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
    let password = SecretRef::File(support::secret_file(&secrets, "bot", "botpass").into());

    // Something said in the room before the bot arrives is history, not a command.
    let mut alice = alice(&server).await;
    alice.say_in_room(ROOM, "!old command").await;

    let backend = XmppBackend::new(&spec(&server, password)).unwrap();
    assert!(backend.capabilities().rich);
    let mut bot = BotHarness::start(Box::new(backend));
    bot.wait_connected(WAIT).await;
    help_round_trip(&mut bot, &mut alice).await;

    // Mentions of the room nick are stripped; the bot's own messages never come back in.
    bot.reply(to_ops("an echo the bot must not hear")).await;
    alice.say_in_room(ROOM, "st2bot: pack list").await;
    let got = bot.next_incoming(WAIT).await;
    assert_eq!((got.text.as_str(), got.mentioned), ("pack list", true));

    // Rich output: extra.xmpp.html becomes XHTML-IM next to the plain body.
    let mut rich = to_ops("Deployed web-1");
    rich.extra = Some(serde_json::json!({
        "xmpp": {"html": "<p>Deployed <strong>web-1</strong><script>x()</script></p>"}
    }));
    bot.reply(rich).await;
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
    bot.reply(to_ops(&long)).await;
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
    bot.wait_connected(Duration::from_secs(90)).await;
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
    let good = SecretRef::File(support::secret_file(&secrets, "good", "botpass").into());
    let mut bot = BotHarness::start(Box::new(XmppBackend::new(&spec(&server, good)).unwrap()));
    bot.wait_connected(WAIT).await;
    squatter.say_in_room(ROOM, "st2bot_: !help").await;
    let got = bot.next_incoming(WAIT).await;
    assert_eq!((got.text.as_str(), got.mentioned), ("!help", true));
    bot.reply(to_ops("hello from st2bot_")).await;
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
    let bad = SecretRef::File(support::secret_file(&secrets, "bad", "wrongpass").into());
    let mut bot = BotHarness::start(Box::new(XmppBackend::new(&spec(&server, bad)).unwrap()));
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
