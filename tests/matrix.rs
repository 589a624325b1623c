//! The Matrix backend against a real Synapse (installed by `scripts/setup-test-deps`): the
//! bot logs in, joins its configured room, accepts invites to another room and to a direct
//! chat, turns alice's messages into `Incoming` values and posts `Outgoing` replies that
//! alice sees in the same rooms (threads, mentions, rich content, long output split into
//! several events); it keeps working after its access token is revoked and after Synapse
//! is stopped and started again mid-test.

use st2bot_testkit::matrix_client;
use st2bot_testkit::matrix_server;

use std::time::Duration;

use serde_json::{Value, json};
use st2bot::config::{BackendSpec, MatrixLogin, MatrixSpec, SecretRef};
use st2bot::runtime::backend::{
    self, BackendError, BackendOptions, ConnState, Incoming, Outgoing, Room, Target,
};
use st2bot_testkit::backend::Driven;

use matrix_client::TestUser;
use matrix_server::Synapse;

const BOT: &str = "@st2bot:localhost";
const ALICE: &str = "@alice:localhost";
const WAIT: Duration = Duration::from_secs(30);

/// Builds the Matrix backend for `url` as the bot does and runs it.
fn start_bot(url: &str, login: MatrixLogin, rooms: &[&str]) -> Driven {
    let spec = BackendSpec::Matrix(MatrixSpec {
        url: url.to_owned().into(),
        login,
        rooms: rooms
            .iter()
            .map(|r| (*r).to_owned().into())
            .collect::<Vec<_>>()
            .into(),
    });
    let bot =
        Driven::start(backend::build(&spec, &BackendOptions::default()).expect("build backend"));
    let caps = &bot.capabilities;
    assert!(caps.rich && caps.threads && caps.max_message_len == 16_000);
    bot
}

/// Hands the backend `text` for `target`, mentioning `mention`.
async fn say(bot: &Driven, target: Target, text: &str, mention: Option<&str>) {
    let mut out = Outgoing::text(target, text);
    out.mention = mention.map(str::to_owned);
    bot.send(out).await;
}

fn room(id: &str) -> Target {
    Target::Room {
        id: id.to_owned(),
        thread: None,
    }
}

fn body(content: &Value) -> &str {
    content["body"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_serves_rooms_and_direct_chats_on_a_real_synapse() {
    // Bot logs on standard error when RUST_LOG is set (e.g. RUST_LOG=info).
    st2bot::runtime::logging::init(
        &st2bot::config::LogSpec {
            format: st2bot::config::LogFormat::Text,
            level: "off".into(),
            audit_file: None,
            audit_stdout: false,
        },
        None,
    );
    let mut synapse = Synapse::start().await;
    synapse.register(&[
        ("st2bot", "botpass", false),
        ("alice", "alicepass", false),
        ("bob", "bobpass", false),
        ("root", "rootpass", true),
    ]);
    let url = synapse.url();
    let password_file = synapse.dir().join("bot-password");
    std::fs::write(&password_file, "botpass\n").unwrap();
    let password = SecretRef::File(password_file.to_string_lossy().into_owned().into());

    let mut alice = TestUser::login(&url, "alice", "alicepass").await;
    let mut bob = TestUser::login(&url, "bob", "bobpass").await;
    // #ops: the configured room. Alice created it and invited the bot before it started.
    let ops = alice
        .create_room(json!({ "room_alias_name": "ops", "preset": "public_chat", "invite": [BOT] }))
        .await;

    // Said before the bot runs: history, never acted on.
    alice.send(&ops, "!before the bot started", json!({})).await;

    let mut bot = start_bot(
        &url,
        MatrixLogin::Password {
            username: "st2bot".into(),
            password: password.clone(),
        },
        &["#ops:localhost"],
    );
    bot.wait_state(WAIT, |s| *s == ConnState::Connected).await;
    alice.wait_for_member(&ops, BOT).await;

    // A command in the configured room.
    let help = alice.send(&ops, "!help", json!({})).await;
    let got = bot.next_within(WAIT).await;
    assert_eq!(
        got,
        Incoming {
            user_id: ALICE.into(),
            user: ALICE.into(),
            room: Some(Room {
                id: ops.clone(),
                name: "#ops:localhost".into(),
            }),
            text: "!help".into(),
            mentioned: false,
            thread: None,
            message_id: Some(help),
        }
    );
    say(&bot, room(&ops), "Commands: !help, !run", Some(ALICE)).await;
    let reply = alice.take_messages(&ops, BOT, 1).await;
    assert_eq!(body(&reply[0]), "alice: Commands: !help, !run");
    assert_eq!(reply[0]["msgtype"], "m.notice");
    assert_eq!(reply[0]["m.mentions"]["user_ids"], json!([ALICE]));
    assert!(reply[0].get("formatted_body").is_none());

    // Live acks (issue 19 item 3): a message posted under a key is edited in place with
    // an `m.replace` event; an edit for a key never posted sends nothing.
    let mut ack = Outgoing::text(room(&ops), "alice: running `core.local`");
    ack.remember_as = Some("ack:5f5e00000000000000000001".into());
    bot.outgoing.send(ack).await.expect("backend stopped");
    let posted = alice.take_events(&ops, BOT, 1).await.remove(0);
    let mut edit = Outgoing::text(room(&ops), "never posted");
    edit.replaces = Some("ack:unknown".into());
    bot.outgoing.send(edit).await.expect("backend stopped");
    let mut edit = Outgoing::text(
        room(&ops),
        "alice: running `core.local`\n✅ succeeded in 0.2s",
    );
    edit.replaces = Some("ack:5f5e00000000000000000001".into());
    bot.outgoing.send(edit).await.expect("backend stopped");
    let replaced = alice.take_messages(&ops, BOT, 1).await.remove(0);
    assert_eq!(
        replaced["m.relates_to"],
        json!({"rel_type": "m.replace", "event_id": posted["event_id"]})
    );
    assert_eq!(
        replaced["m.new_content"]["body"],
        "alice: running `core.local`\n✅ succeeded in 0.2s"
    );
    assert_eq!(
        body(&replaced),
        "* alice: running `core.local`\n✅ succeeded in 0.2s"
    );
    // A result replacing its ack (`chat.ack.replace`): the edit carries the whole message,
    // rich content included, not only its text.
    let mut result = Outgoing::text(room(&ops), "Execution 5f5e00000000000000000001 succeeded");
    result.extra = Some(json!({"matrix": {
        "body": "Execution succeeded",
        "formatted_body": "<b>Execution</b> succeeded",
    }}));
    result.replaces = Some("ack:5f5e00000000000000000001".into());
    result.replaces_whole = true;
    bot.outgoing.send(result).await.expect("backend stopped");
    let replaced = alice.take_messages(&ops, BOT, 1).await.remove(0);
    assert_eq!(
        replaced["m.relates_to"],
        json!({"rel_type": "m.replace", "event_id": posted["event_id"]})
    );
    assert_eq!(replaced["m.new_content"]["body"], "Execution succeeded");
    assert_eq!(
        replaced["m.new_content"]["formatted_body"],
        "<b>Execution</b> succeeded"
    );
    assert_eq!(
        replaced["m.new_content"]["format"],
        "org.matrix.custom.html"
    );
    assert_eq!(replaced["formatted_body"], "* <b>Execution</b> succeeded");
    assert_eq!(body(&replaced), "* Execution succeeded");

    // A mention by display name (Synapse's default display name is the localpart).
    alice.send(&ops, "st2bot: !run date", json!({})).await;
    let got = bot.next_within(WAIT).await;
    assert_eq!((got.text.as_str(), got.mentioned), ("!run date", true));

    // A command in a thread; the reply goes to the same thread, with rich content.
    let root = alice.send(&ops, "deploy thread", json!({})).await;
    let _ = bot.next_within(WAIT).await;
    alice
        .send(
            &ops,
            "!status",
            json!({ "m.relates_to": { "rel_type": "m.thread", "event_id": root, "is_falling_back": true, "m.in_reply_to": { "event_id": root } } }),
        )
        .await;
    let got = bot.next_within(WAIT).await;
    assert_eq!(got.thread.as_deref(), Some(root.as_str()));
    say(
        &bot,
        Target::Room {
            id: ops.clone(),
            thread: Some(root.clone()),
        },
        "status: ok{~}```\nall <good>\n```",
        None,
    )
    .await;
    let reply = alice.take_messages(&ops, BOT, 1).await;
    assert_eq!(reply[0]["m.relates_to"]["rel_type"], "m.thread");
    assert_eq!(reply[0]["m.relates_to"]["event_id"], json!(root));
    assert_eq!(reply[0]["format"], "org.matrix.custom.html");
    assert_eq!(
        reply[0]["formatted_body"],
        "status: ok<br><pre><code>all &lt;good&gt;\n</code></pre>"
    );
    assert_eq!(body(&reply[0]), "status: ok\n```\nall <good>\n```");

    // An invite to a room that is not configured (three members): the bot accepts it.
    let dev = alice
        .create_room(json!({ "room_alias_name": "dev", "preset": "public_chat", "invite": ["@bob:localhost"] }))
        .await;
    bob.join(&dev).await;
    alice.send(&dev, "!before the bot joined", json!({})).await;
    alice.invite(&dev, BOT).await;
    alice.wait_for_member(&dev, BOT).await;
    alice.send(&dev, "!help", json!({})).await;
    let got = bot.next_within(WAIT).await;
    assert_eq!(
        (got.text.as_str(), got.room),
        (
            "!help",
            Some(Room {
                id: dev.clone(),
                name: "#dev:localhost".into(),
            })
        )
    );

    // A direct chat alice starts: two members, so `room: None`; the reply goes back there.
    let dm = alice
        .create_room(
            json!({ "is_direct": true, "preset": "trusted_private_chat", "invite": [BOT] }),
        )
        .await;
    alice.wait_for_member(&dm, BOT).await;
    let help = alice.send(&dm, "!help", json!({})).await;
    let got = bot.next_within(WAIT).await;
    assert_eq!(
        (
            got.room.clone(),
            got.text.as_str(),
            got.message_id.as_deref()
        ),
        (None, "!help", Some(help.as_str()))
    );
    say(
        &bot,
        Target::Direct {
            user: got.user_id.clone(),
        },
        "Commands: !help",
        None,
    )
    .await;
    let reply = alice.take_messages(&dm, BOT, 1).await;
    assert_eq!(body(&reply[0]), "Commands: !help");

    // Rich content from `extra.matrix`.
    let mut rich = Outgoing::text(room(&dm), "deploy finished");
    rich.extra = Some(
        json!({ "matrix": { "formatted_body": "<b>deploy</b> finished", "msgtype": "m.text" } }),
    );
    bot.outgoing.send(rich).await.unwrap();
    let reply = alice.take_messages(&dm, BOT, 1).await;
    assert_eq!(
        (
            body(&reply[0]),
            reply[0]["formatted_body"].as_str(),
            reply[0]["msgtype"].as_str()
        ),
        (
            "deploy finished",
            Some("<b>deploy</b> finished"),
            Some("m.text")
        )
    );

    // A long reply is split into several events, in order, each within the limits; the
    // homeserver rate-limits the bot meanwhile (2 messages/s, bursts of 1), and the bot
    // waits out each `429 M_LIMIT_EXCEEDED` instead of losing pieces.
    let root_user = TestUser::login(&url, "root", "rootpass").await;
    let limit_path = format!("users/{}/override_ratelimit", matrix_client::enc(BOT));
    root_user
        .admin(
            reqwest::Method::POST,
            &limit_path,
            Some(json!({ "messages_per_second": 2, "burst_count": 1 })),
        )
        .await;
    let line = "0123456789 the quick brown fox jumps over the lazy dog €\n";
    let long = format!("Result{{~}}{}", line.repeat(800));
    say(&bot, room(&ops), &long, None).await;
    let pieces = alice.take_messages(&ops, BOT, 3).await;
    alice.settle().await;
    assert!(
        alice.untaken(&ops, BOT).is_empty(),
        "46,400 characters → 3 messages of ≤ 16,000"
    );
    let mut lines = 0;
    for (i, p) in pieces.iter().enumerate() {
        assert!(body(p).chars().count() <= 16_000);
        assert!(p["formatted_body"].as_str().is_some_and(|h| !h.is_empty()));
        assert_eq!(body(p).starts_with("Result\n"), i == 0);
        lines += body(p).matches("lazy dog").count();
    }
    assert_eq!(lines, 800);
    let stamps = alice.last_taken_timestamps();
    assert!(
        stamps.windows(2).all(|w| w[1] - w[0] >= 300),
        "pieces were not rate-limited: {stamps:?}"
    );
    root_user
        .admin(reqwest::Method::DELETE, &limit_path, None)
        .await;

    // A direct message to someone the bot has no chat with: it creates one and invites.
    say(
        &bot,
        Target::Direct {
            user: "bob:localhost".into(),
        },
        "hello bob",
        None,
    )
    .await;
    let invited = bob.take_invite().await;
    bob.join(&invited).await;
    let members = bob.joined_members(&invited).await;
    assert!(members.contains(&BOT.to_owned()) && members.len() == 2);
    let reply = bob.take_messages(&invited, BOT, 1).await;
    assert_eq!(body(&reply[0]), "hello bob");

    // Someone revokes the bot's access tokens: it logs in again and keeps answering.
    let other_session = TestUser::login(&url, "st2bot", "botpass").await;
    other_session
        .call(reqwest::Method::POST, "logout/all", Some(json!({})))
        .await;
    alice.send(&ops, "!help after logout", json!({})).await;
    assert_eq!(bot.next_within(WAIT).await.text, "!help after logout");

    // Synapse goes away: a reply queued meanwhile is delivered once it is back, and the
    // bot resumes syncing from where it was.
    synapse.stop();
    bot.wait_state(WAIT, |s| *s == ConnState::Connecting).await;
    say(
        &bot,
        room(&ops),
        "queued while the homeserver was down",
        None,
    )
    .await;
    synapse.restart().await;
    bot.wait_state(WAIT, |s| *s == ConnState::Connected).await;
    let reply = alice.take_messages(&ops, BOT, 1).await;
    assert_eq!(body(&reply[0]), "queued while the homeserver was down");
    alice.send(&ops, "!help", json!({})).await;
    let got = bot.next_within(WAIT).await;
    assert_eq!(
        (got.text.as_str(), got.room.map(|r| r.id)),
        ("!help", Some(ops.clone()))
    );
    say(&bot, room(&ops), "still here", None).await;
    let reply = alice.take_messages(&ops, BOT, 1).await;
    assert_eq!(body(&reply[0]), "still here");

    bot.stop().await.expect("clean shutdown");
    assert!(
        alice.untaken(&ops, BOT).is_empty(),
        "unexpected extra replies"
    );

    // An access token instead of a password: `whoami` tells the bot who it is.
    let session = TestUser::login(&url, "st2bot", "botpass").await;
    let token_file = synapse.dir().join("bot-token");
    std::fs::write(&token_file, session.token()).unwrap();
    let mut by_token = start_bot(
        &url,
        MatrixLogin::Token(SecretRef::File(
            token_file.to_string_lossy().into_owned().into(),
        )),
        &[],
    );
    by_token
        .wait_state(WAIT, |s| *s == ConnState::Connected)
        .await;
    alice.send(&ops, "!help", json!({})).await;
    assert_eq!(by_token.next_within(WAIT).await.user_id, ALICE);
    by_token.stop().await.expect("clean shutdown");

    // A wrong password is not retried: the backend fails with an authentication error.
    let wrong = synapse.dir().join("wrong-password");
    std::fs::write(&wrong, "nope").unwrap();
    let mut refused = start_bot(
        &url,
        MatrixLogin::Password {
            username: "st2bot".into(),
            password: SecretRef::File(wrong.to_string_lossy().into_owned().into()),
        },
        &[],
    );
    refused
        .wait_state(WAIT, |s| matches!(s, ConnState::Failed(_)))
        .await;
    let result = refused.finished(WAIT).await;
    assert!(
        matches!(
            &result,
            Err(BackendError::Auth {
                service: "matrix",
                ..
            })
        ),
        "{result:?}"
    );
}
