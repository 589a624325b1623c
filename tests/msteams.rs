//! Whole-bot tests of the Microsoft Teams backend: the bot from a `kind: msteams`
//! definition (real dispatcher, StackStorm simulator) against the in-repo fake Teams
//! (`testkit/src/fakes/msteams.rs`: token endpoint, Bot Framework Connector, and the Teams side
//! delivering activities to the bot's messaging endpoint). Unsigned activities are accepted
//! through the documented test-only switch (`ST2BOT_MSTEAMS_UNSIGNED_INBOUND`, here the
//! command-line option it sets), on loopback as it requires; the JWT checks are unit-tested
//! in `bot-runtime/src/backend/msteams/jwt.rs` against a fake issuer.

use st2bot_testkit::backend as harness;
use st2bot_testkit::fakes::msteams as fake;

use std::time::Duration;

use fake::{APP_ID, APP_SECRET, FakeTeams, OPS, personal_chat};
use harness::{WholeBot, eventually};
use serde_json::json;
use st2bot_testkit::{TempDir, free_port};

const ALICE: (&str, &str) = ("29:alice", "Alice");
const BOB: (&str, &str) = ("29:bob", "Bob");

struct Setup {
    sim: st2_sim::Sim,
    fake: FakeTeams,
    yaml: String,
    _state_dir: TempDir,
}

/// The simulator, the fake, and a definition whose app password is `password`.
async fn setup(password: &str) -> Setup {
    let sim = st2_sim::Sim::start(st2_sim::SimConfig::demo())
        .await
        .expect("simulator");
    let fake = FakeTeams::start().await;
    let port = free_port();
    fake.set_endpoint(&format!("http://127.0.0.1:{port}"));
    let state_dir = TempDir::new("msteams-e2e");
    let password_path = state_dir.file("app-password", password);
    let yaml = format!(
        "name: msteams-e2e\n\
         backend:\n  kind: msteams\n  app_id: {APP_ID}\n  app_password: file:{password_path}\n  \
         listen: 127.0.0.1:{port}\n  state_file: {}\n  url: {}\n\
         stackstorm:\n  url: {{st2_url}}\n  auth:\n    api_key: {{st2_key}}\n\
         chat:\n  prefix: \"!\"\n\
         access:\n  default: allow\n",
        state_dir.join("refs.json").display(),
        fake.login_url(),
    );
    Setup {
        sim,
        fake,
        yaml,
        _state_dir: state_dir,
    }
}

fn unsigned() -> st2bot::runtime::cli::Options {
    st2bot::runtime::cli::Options {
        msteams_unsigned_inbound: Some("1".into()),
        ..Default::default()
    }
}

/// Runs the bot of `s` (its state directory holds the password file).
fn start(s: &Setup) -> WholeBot {
    WholeBot::start_with(&s.yaml, &s.sim.url(), Vec::new(), unsigned())
}

/// Delivers until the endpoint answers (it starts with the bot).
async fn deliver_when_up(s: &Setup, id: &str) {
    let deadline = tokio::time::Instant::now() + harness::WAIT;
    loop {
        let status = s.fake.say_personal(id, BOB, "!help").await;
        if status == 200 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "endpoint never answered: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_whole_bot_on_teams() {
    let s = setup(APP_SECRET).await;
    let bot = start(&s);
    eventually("a token and the stream", || {
        s.fake.tokens_issued() == 1 && s.sim.stream_clients() == 1
    })
    .await;

    // Help in a personal chat (no mention needed there).
    deliver_when_up(&s, "p1").await;
    eventually("help in the personal chat", || {
        s.fake
            .posted()
            .iter()
            .any(|p| p.conversation == personal_chat(BOB.0) && p.all_text().contains("!local"))
    })
    .await;

    // In a channel: only a mention counts. Without one (and without the prefix) nothing
    // happens; Teams would not even deliver it.
    let before = s.fake.posted().len();
    assert_eq!(
        s.fake.say_in_ops_unmentioned("c0", ALICE, "help").await,
        200
    );

    // A command with a mention: an ack in the message's reply chain, edited in place, and
    // the result as an Adaptive Card in the same chain.
    assert_eq!(
        s.fake.say_in_ops("c1", ALICE, "!local date", None).await,
        200
    );
    eventually("the execution", || s.sim.executions().len() == 1).await;
    let execution = s.sim.executions()[0].clone();
    assert_eq!(execution.user, "Alice");
    assert_eq!(execution.source_channel, OPS);
    let result = format!("Execution {} succeeded", execution.id);
    eventually("the result card", || {
        s.fake.posted()[before..].iter().any(|p| {
            p.all_text().contains(&result)
                && p.body["attachments"][0]["contentType"]
                    == "application/vnd.microsoft.card.adaptive"
        })
    })
    .await;
    eventually("the ack edited to its final status", || {
        let posted = s.fake.posted();
        posted[before..].iter().any(|p| {
            p.method == "PUT"
                && p.body["text"]
                    .as_str()
                    .is_some_and(|t| t.contains("succeeded in"))
        })
    })
    .await;
    let replies: Vec<_> = s.fake.posted()[before..]
        .iter()
        .filter(|p| p.method == "POST")
        .cloned()
        .collect();
    assert!(
        replies
            .iter()
            .all(|p| p.conversation == format!("{OPS};messageid=c1")
                && p.reply_to.as_deref() == Some("c1")
                && p.body["replyToId"] == "c1"),
        "every reply in the command's reply chain, nothing for the unmentioned message: {replies:#?}"
    );
    assert!(
        replies
            .iter()
            .any(|p| p.all_text().contains("running `core.local`")),
        "an ack: {replies:#?}"
    );
    // The result mentions whoever ran the command, with a mention entity Teams notifies.
    let result_post = replies
        .iter()
        .find(|p| p.all_text().contains(&result))
        .unwrap();
    assert_eq!(
        result_post.body["entities"][0]["mentioned"]["id"], ALICE.0,
        "{result_post:?}"
    );
    assert!(
        result_post.body["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("<at>Alice</at>")),
        "{result_post:?}"
    );

    // A reply inside a reply chain stays there.
    let before = s.fake.posted().len();
    assert_eq!(
        s.fake
            .say_in_ops("c2", ALICE, "!help local", Some("c1"))
            .await,
        200
    );
    eventually("help in the thread", || s.fake.posted().len() > before).await;
    let p = &s.fake.posted()[before];
    assert_eq!(
        (p.conversation.as_str(), p.reply_to.as_deref()),
        (format!("{OPS};messageid=c1").as_str(), Some("c1"))
    );

    // An announcement to the channel by name, and a whisper to Bob's personal chat.
    s.sim.announce(
        "chatops",
        json!({ "message": "deploy finished", "channel": "#ops", "user": "Bob", "whisper": false }),
    );
    eventually("the announcement", || {
        s.fake.posted().iter().any(|p| {
            p.conversation == OPS
                && p.reply_to.is_none()
                && p.all_text().contains("deploy finished")
        })
    })
    .await;
    s.sim.announce(
        "chatops",
        json!({ "message": "psst", "channel": "#ops", "user": "Bob", "whisper": true }),
    );
    eventually("the whisper", || {
        s.fake
            .posted()
            .iter()
            .any(|p| p.conversation == personal_chat(BOB.0) && p.all_text().contains("psst"))
    })
    .await;
    assert!(
        !s.fake
            .posted()
            .iter()
            .any(|p| p.conversation == OPS && p.all_text().contains("psst")),
        "a whisper reached the channel"
    );

    // 429: the reply waits for Retry-After.
    s.fake.script(429, Some(1));
    let before = s.fake.posted().len();
    assert_eq!(s.fake.say_personal("p2", BOB, "!help local").await, 200);
    eventually("the reply after the wait", || {
        s.fake.posted().len() > before
    })
    .await;
    assert!(s.fake.refused().contains(&429));

    // 401: the token is fetched again and the reply goes out with the new one.
    s.fake.revoke_tokens();
    let before = s.fake.posted().len();
    let tokens = s.fake.tokens_issued();
    assert_eq!(tokens, 0, "revoked");
    assert_eq!(s.fake.say_personal("p3", BOB, "!help local").await, 200);
    eventually("the reply with a fresh token", || {
        s.fake.posted().len() > before
    })
    .await;
    assert_eq!(s.fake.tokens_issued(), 1);
    assert!(s.fake.refused().contains(&401));

    // Restart: a new process knows the conversations from the state file, so an
    // announcement reaches #ops before anyone speaks.
    drop(bot);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _bot = start(&s);
    eventually("the stream again", || s.sim.stream_clients() >= 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = s.fake.posted().len();
    s.sim.announce(
        "chatops",
        json!({ "message": "after the restart", "channel": "#ops", "user": "Bob", "whisper": false }),
    );
    eventually("the announcement after the restart", || {
        s.fake.posted()[before..]
            .iter()
            .any(|p| p.conversation == OPS && p.all_text().contains("after the restart"))
    })
    .await;
}

#[tokio::test]
async fn a_wrong_app_password_stops_the_bot() {
    let s = setup("not-the-secret").await;
    let mut bot = start(&s);
    let code = tokio::time::timeout(harness::WAIT, bot.finished())
        .await
        .expect("the bot stops");
    assert_ne!(
        format!("{code:?}"),
        format!("{:?}", std::process::ExitCode::SUCCESS)
    );
    assert_eq!(s.fake.tokens_issued(), 0);
}
