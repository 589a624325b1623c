//! The IRC backend against real IRC servers on 127.0.0.1: ngircd (TLS for the bot, plain
//! text for the test user) and InspIRCd with Atheme services (SASL PLAIN and NickServ).
//! The bot's backend is driven directly through its channels; a separate test client plays
//! the human and sees exactly what the server relays.

use st2bot_testkit as support;

use std::time::Duration;

use st2bot::config::{IrcAuth, IrcSpec, SecretRef};
use st2bot::runtime::backend::irc::IrcBackend;
use st2bot::runtime::backend::{
    Backend, BackendError, ConnState, Incoming, Outgoing, Room, Target,
};
use support::TempDir;
use support::backend::Driven;
use support::irc_client::IrcClient;
use support::ircd::{InspircdAtheme, Ngircd};

const WAIT: Duration = Duration::from_secs(30);

fn spec(port: u16, tls: Option<&std::path::Path>) -> IrcSpec {
    IrcSpec {
        server: "127.0.0.1".into(),
        port,
        tls: tls.is_some(),
        ca_file: tls.map(|p| p.to_string_lossy().into_owned().into()),
        nickname: "st2bot".into(),
        username: "st2bot".into(),
        password: None,
        auth: IrcAuth::None,
        rooms: vec!["#ops".into()].into(),
    }
}

fn in_ops() -> Option<Room> {
    Some(Room {
        id: "#ops".into(),
        name: "#ops".into(),
    })
}

fn to_ops(text: &str) -> Outgoing {
    Outgoing::text(
        Target::Room {
            id: "#ops".into(),
            thread: None,
        },
        text,
    )
}

/// Alice says `!help` in `#ops` and privately; the bot sees both and its replies reach her
/// in the same places.
async fn help_round_trip(bot: &mut Driven, alice: &mut IrcClient, bot_nick: &str) {
    alice.say("#ops", "!help").await;
    let got = bot.next_within(WAIT).await;
    assert_eq!(
        got,
        Incoming {
            user_id: "alice".into(),
            user: "alice".into(),
            room: in_ops(),
            text: "!help".into(),
            mentioned: false,
            thread: None,
            message_id: None,
        }
    );
    let mut reply = to_ops("Commands:{~}!help - this list");
    reply.mention = Some("alice".into());
    bot.send(reply).await;
    let lines = alice
        .privmsgs_until(bot_nick, "#ops", "!help - this list", WAIT)
        .await;
    let texts: Vec<&str> = lines.iter().map(|l| l.text()).collect();
    assert_eq!(texts, ["alice: Commands:", "!help - this list"]);

    alice.say(bot_nick, "!help").await;
    let got = bot.next_within(WAIT).await;
    assert_eq!(
        (
            got.user.as_str(),
            got.room.clone(),
            got.text.as_str(),
            got.mentioned
        ),
        ("alice", None, "!help", false)
    );
    bot.send(Outgoing::text(
        Target::Direct {
            user: got.user_id.clone(),
        },
        "private help",
    ))
    .await;
    alice
        .privmsgs_until(bot_nick, "alice", "private help", WAIT)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irc_over_tls_answers_in_channel_and_privately_splits_long_replies_and_survives_a_restart()
{
    let mut server = Ngircd::start();
    let backend = IrcBackend::new(&spec(server.tls_port, Some(&server.cert.cert))).unwrap();
    assert!(!backend.capabilities().rich);
    let mut bot = Driven::start(Box::new(backend));
    bot.connected_within(WAIT).await;

    let mut alice = IrcClient::connect(server.plain_port, "alice").await;
    alice.join("#ops").await;
    help_round_trip(&mut bot, &mut alice, "st2bot").await;

    // Addressed by mention: the mention is stripped and flagged.
    alice.say("#ops", "St2Bot, pack list").await;
    let got = bot.next_within(WAIT).await;
    assert_eq!((got.text.as_str(), got.mentioned), ("pack list", true));
    // CTCP and notices are not commands.
    alice.say("#ops", "\u{1}ACTION waves\u{1}").await;
    alice.send("NOTICE #ops :!help").await;
    alice.say("#ops", "after").await;
    assert_eq!(bot.next_within(WAIT).await.text, "after");

    // A long reply: a fenced block and one line far over the 512-byte limit, in UTF-8.
    let long_line = "é=ü ".repeat(300);
    let mut text = String::from("Result:\n```\n");
    for i in 0..12 {
        text.push_str(&format!("output line {i}\n"));
    }
    text.push_str(&long_line);
    text.push_str("\n```\ndone");
    bot.send(to_ops(&text)).await;
    let lines = alice
        .privmsgs_until("st2bot", "#ops", "done", Duration::from_secs(60))
        .await;
    for line in &lines {
        assert!(
            line.raw.len() <= 512,
            "{} bytes: {}",
            line.raw.len(),
            line.raw
        );
        assert!(line.raw.ends_with("\r\n") && !line.text().contains(['\r', '\n']));
    }
    let longest = lines.iter().map(|l| l.raw.len()).max().unwrap();
    assert!(
        longest >= 500,
        "the line budget is wasted: longest {longest}"
    );
    let fences = lines.iter().filter(|l| l.text().starts_with("```")).count();
    assert_eq!(fences, 2, "fences balanced");
    let received: String = lines.iter().map(|l| l.text()).collect();
    let expected: String = text.lines().filter(|l| !l.trim().is_empty()).collect();
    // Trailing spaces at a cut may be trimmed by the server; compare without spaces.
    assert_eq!(received.replace(' ', ""), expected.replace(' ', ""));
    assert!(
        lines.len() >= 16 + 3,
        "the long line was split: {}",
        lines.len()
    );

    // The server dies and comes back: the bot reconnects, rejoins and answers again.
    server.kill();
    bot.wait_state(WAIT, |s| *s == ConnState::Connecting).await;
    server.restart();
    bot.connected_within(Duration::from_secs(90)).await;
    let mut alice = IrcClient::connect(server.plain_port, "alice").await;
    alice.join("#ops").await;
    help_round_trip(&mut bot, &mut alice, "st2bot").await;

    // A reply queued right before shutdown still goes out, then the bot quits.
    bot.send(to_ops("last words")).await;
    bot.stop().await.expect("clean shutdown");
    alice
        .privmsgs_until("st2bot", "#ops", "last words", WAIT)
        .await;
    let quit = alice
        .expect(WAIT, |l| l.command == "QUIT" && l.nick() == "st2bot")
        .await;
    assert!(quit.text().contains("shutting down"), "{}", quit.raw);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irc_nick_in_use_falls_back_to_underscore() {
    let server = Ngircd::start();
    let _squatter = IrcClient::connect(server.plain_port, "st2bot").await;
    let mut bot = Driven::start(Box::new(
        IrcBackend::new(&spec(server.plain_port, None)).unwrap(),
    ));
    bot.connected_within(WAIT).await;
    let mut alice = IrcClient::connect(server.plain_port, "alice").await;
    alice.join("#ops").await;
    alice.say("#ops", "st2bot_: !help").await;
    let got = bot.next_within(WAIT).await;
    assert_eq!((got.text.as_str(), got.mentioned), ("!help", true));
    help_round_trip(&mut bot, &mut alice, "st2bot_").await;
    bot.stop().await.unwrap();
}

/// The account a nick is logged in as, from `WHOIS` (numeric 330), if any.
async fn whois_account(client: &mut IrcClient, nick: &str) -> Option<String> {
    client.send(&format!("WHOIS {nick}")).await;
    let mut account = None;
    loop {
        let line = client
            .expect(WAIT, |l| l.command == "330" || l.command == "318")
            .await;
        if line.command == "318" {
            return account;
        }
        account = line.params.get(2).cloned();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irc_sasl_and_nickserv_logins_on_inspircd_with_atheme() {
    let server = InspircdAtheme::start();
    IrcClient::register_account(server.port, "st2bot", "botpass").await;
    let secrets = TempDir::new("irc-secrets");
    let good = SecretRef::File(secrets.file("good", "botpass").into());
    let bad = SecretRef::File(secrets.file("bad", "wrongpass").into());

    // SASL PLAIN with the right password: logged in before registration ends.
    let mut sasl = spec(server.port, None);
    sasl.auth = IrcAuth::Sasl;
    sasl.password = Some(good.clone());
    let mut bot = Driven::start(Box::new(IrcBackend::new(&sasl).unwrap()));
    bot.connected_within(WAIT).await;
    let mut alice = IrcClient::connect(server.port, "alice").await;
    alice.join("#ops").await;
    assert_eq!(
        whois_account(&mut alice, "st2bot").await.as_deref(),
        Some("st2bot"),
        "{}",
        server.log_tail()
    );
    help_round_trip(&mut bot, &mut alice, "st2bot").await;
    bot.stop().await.unwrap();

    // SASL with a wrong password: a clear error, no retry loop.
    let mut wrong = sasl.clone();
    wrong.password = Some(bad);
    let mut bot = Driven::start(Box::new(IrcBackend::new(&wrong).unwrap()));
    let result = bot.finished(WAIT).await;
    assert!(
        matches!(&result, Err(BackendError::Auth { reason, .. }) if reason.contains("904")),
        "{result:?}"
    );
    assert!(matches!(bot.state(), ConnState::Failed(_)));

    // NickServ IDENTIFY after registration.
    let mut nickserv = spec(server.port, None);
    nickserv.auth = IrcAuth::NickServ;
    nickserv.password = Some(good);
    let mut bot = Driven::start(Box::new(IrcBackend::new(&nickserv).unwrap()));
    bot.connected_within(WAIT).await;
    assert_eq!(
        whois_account(&mut alice, "st2bot").await.as_deref(),
        Some("st2bot")
    );
    alice.say("#ops", "!help").await;
    assert_eq!(bot.next_within(WAIT).await.room, in_ops());
    bot.stop().await.unwrap();
}

/// End-to-end: the compiled `irc` bot (`bots/irc.yaml` as shipped: TLS, SASL as `st2bot`,
/// `#ops` and `#deploys`, alice in `@oncall`) against InspIRCd with Atheme (behind a TLS
/// front) and the StackStorm simulator. `--chat-server` points the executable at the
/// loopback TLS port, `SSL_CERT_FILE` makes the test certificate trusted,
/// `--stackstorm-url` points at the simulator.
/// Alice asks `!help`, runs an alias command (ack, then the result from the stream), is
/// refused `core.*` in `#deploys`, and sees an announcement in `#ops` and a whisper in
/// private.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_irc_bot_serves_alice_over_tls_with_sasl_and_stackstorm() {
    use st2_sim::{Sim, SimConfig};
    use support::bot::BotProcess;

    let server = InspircdAtheme::start();
    IrcClient::register_account(server.port, "st2bot", "botpass").await;
    let sim = Sim::start(SimConfig::demo()).await.expect("simulator");
    let mut alice = IrcClient::connect(server.port, "alice").await;
    alice.join("#ops").await;
    let front = support::TlsFront::start(server.port).await;
    let chat_server = format!("127.0.0.1:{}", front.port);
    let cert = front.cert.cert.to_string_lossy().into_owned();
    let bot = BotProcess::start(
        env!("CARGO_BIN_EXE_irc"),
        &[
            "--stackstorm-url",
            &sim.url(),
            "--chat-server",
            &chat_server,
        ],
        &[
            ("IRC_PASSWORD", "botpass"),
            ("ST2_API_KEY", "sim-api-key"),
            ("SSL_CERT_FILE", &cert),
        ],
    );
    alice
        .expect(WAIT, |l| l.command == "JOIN" && l.nick() == "st2bot")
        .await;
    // Logged in with SASL over TLS, as the definition says.
    assert_eq!(
        whois_account(&mut alice, "st2bot").await.as_deref(),
        Some("st2bot"),
        "{}",
        server.log_tail()
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    while sim.stream_clients() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no stream client");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // !help in #ops: the catalogue alice may run there, in the channel.
    alice.say("#ops", "!help").await;
    alice
        .privmsg_containing(
            "st2bot",
            "#ops",
            "Run a command on the StackStorm host",
            WAIT,
        )
        .await;

    // An alias command: the ack (the definition's template), then the result.
    alice.say("#ops", "!local date").await;
    let ack = alice
        .privmsg_containing("st2bot", "#ops", "alice: running", WAIT)
        .await;
    let executions = sim.executions();
    let execution = executions.last().expect("an execution");
    assert_eq!(execution.alias, "core.local");
    assert_eq!(execution.user, "alice");
    assert_eq!(execution.source_channel, "#ops");
    assert!(ack.text().contains(&execution.id), "{}", ack.raw);
    alice
        .privmsg_containing("st2bot", "#ops", &execution.id, WAIT)
        .await;

    // `core.*` is denied in #deploys: explained, and StackStorm never hears of it.
    alice.join("#deploys").await;
    alice.say("#deploys", "!local date").await;
    alice
        .privmsg_containing("st2bot", "#deploys", "not allowed", WAIT)
        .await;
    assert_eq!(sim.executions().len(), 1);

    // Announcements: to #ops, and whispered to alice in private.
    sim.announce(
        "chatops",
        serde_json::json!({ "message": "deploy finished", "channel": "#ops" }),
    );
    alice
        .privmsg_containing("st2bot", "#ops", "deploy finished", WAIT)
        .await;
    sim.announce(
        "chatops",
        serde_json::json!({
            "message": "psst: your token expires soon",
            "channel": "#ops",
            "user": "alice",
            "whisper": true,
        }),
    );
    alice
        .privmsg_containing("st2bot", "alice", "psst: your token expires soon", WAIT)
        .await;
    drop(bot);
}
