//! End-to-end: the compiled `matrix` bot (`bots/matrix.yaml`, as shipped) against a real
//! Synapse named `example.org` (so the definition's room, users and access rules apply as
//! written: alice is in its `sre` group) and the StackStorm simulator, which knows the bot's
//! StackStorm account. `--backend-url` and `--stackstorm-url` point the
//! executable at the two loopback servers. Alice asks `!help` in `#ops:example.org` and in
//! a direct chat, runs an alias command (ack, then the result from the stream), and the
//! bot posts stream announcements to the room and, whispered, to her direct chat. Then
//! Synapse restarts and the bot still answers.

use st2bot_testkit as support;
use st2bot_testkit::matrix_client;
use st2bot_testkit::matrix_server;

use std::time::Duration;

use serde_json::{Value, json};
use st2_sim::{Sim, SimConfig};
use support::bot::BotProcess;

use matrix_client::TestUser;
use matrix_server::Synapse;

const BOT: &str = "@st2bot:example.org";
const ALICE: &str = "@alice:example.org";
const WAIT: Duration = Duration::from_secs(30);

fn body(content: &Value) -> &str {
    content["body"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_matrix_bot_serves_alice_on_synapse_and_stackstorm() {
    let mut synapse = Synapse::start_named("example.org").await;
    synapse.register(&[("st2bot", "botpass", false), ("alice", "alicepass", false)]);
    let url = synapse.url();
    let sim = Sim::start(SimConfig {
        users: vec![("st2bot".into(), "st2-test-password".into())],
        ..SimConfig::demo()
    })
    .await
    .expect("simulator");
    let mut alice = TestUser::login(&url, "alice", "alicepass").await;
    // The room the definition names; public, so the bot joins it by alias at start.
    let ops = alice
        .create_room(json!({ "room_alias_name": "ops", "preset": "public_chat" }))
        .await;

    let bot = BotProcess::start(
        env!("CARGO_BIN_EXE_matrix"),
        &["--stackstorm-url", &sim.url(), "--backend-url", &url],
        &[
            ("MATRIX_PASSWORD", "botpass"),
            ("ST2_PASSWORD", "st2-test-password"),
        ],
    );
    alice.wait_for_member(&ops, BOT).await;
    bot.expect_log("matrix: syncing", WAIT).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while sim.stream_clients() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no stream client");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // !help in the room: the aliases StackStorm has that alice may run here (her group's
    // packs, not `core.local`), answered in the room.
    alice.send(&ops, "!help", json!({})).await;
    let help = alice.take_until(&ops, BOT, "!pack get {{pack}}").await;
    let help = help.last().map(body).unwrap_or_default();
    assert!(help.contains("!deploy"), "{help}");
    assert!(
        !help.contains("Run a command on the StackStorm host"),
        "help lists core.local, which alice may not run: {help}"
    );

    // An alias command alice's group may run: the ack, then the result StackStorm
    // announces on the stream, back in the room and mentioning her.
    alice.send(&ops, "!deploy api to prod", json!({})).await;
    let ack = alice
        .take_until(&ops, BOT, "deploying deploy (execution")
        .await;
    assert_eq!(ack.len(), 1, "{ack:?}");
    let executions = sim.executions();
    let execution = executions.last().expect("an execution");
    assert_eq!(execution.alias, "examples.deploy");
    assert_eq!(execution.user, ALICE);
    assert_eq!(execution.source_channel, ops);
    let result = alice
        .take_until(&ops, BOT, &format!("Execution {} succeeded", execution.id))
        .await;
    // Live ack (issue 19 item 3): before the result, the ack was edited in place
    // (`m.replace`) to show how the execution ended.
    assert!(
        result.iter().any(|m| {
            m["m.relates_to"]["rel_type"] == "m.replace"
                && m["m.new_content"]["body"].as_str().is_some_and(|b| {
                    b.starts_with("deploying deploy") && b.contains("✅ succeeded in")
                })
        }),
        "{result:?}"
    );
    let result = result.last().unwrap();
    assert!(body(result).starts_with("alice: "), "{result}");
    assert_eq!(result["m.mentions"]["user_ids"], json!([ALICE]));

    // A command the access rules deny: explained, and StackStorm never hears of it.
    alice.send(&ops, "!local date", json!({})).await;
    let denied = alice.take_messages(&ops, BOT, 1).await;
    assert!(!body(&denied[0]).contains("running"), "{denied:?}");
    assert_eq!(sim.executions().len(), 1);

    // An announcement from a rule or workflow, to the room by alias, with rich content.
    sim.announce(
        "chatops",
        json!({
            "message": "deploy finished",
            "channel": "#ops:example.org",
            "user": ALICE,
            "whisper": false,
            "extra": { "matrix": { "formatted_body": "<b>deploy</b> finished" } },
        }),
    );
    let posted = alice.take_until(&ops, BOT, "deploy finished").await;
    let posted = posted.last().unwrap();
    assert!(
        posted["formatted_body"]
            .as_str()
            .is_some_and(|h| h.contains("<b>deploy</b> finished")),
        "{posted}"
    );

    // A direct chat: alice invites the bot; `help` needs no prefix there.
    let dm = alice
        .create_room(
            json!({ "is_direct": true, "preset": "trusted_private_chat", "invite": [BOT] }),
        )
        .await;
    alice.wait_for_member(&dm, BOT).await;
    alice.send(&dm, "!help", json!({})).await;
    let help = alice.take_until(&dm, BOT, "!pack get {{pack}}").await;
    assert!(!help.is_empty());

    // A whispered announcement goes to alice's direct chat, not the room.
    sim.announce(
        "chatops",
        json!({ "message": "psst: your token expires soon", "user": ALICE, "whisper": true, "channel": "#ops:example.org" }),
    );
    alice
        .take_until(&dm, BOT, "psst: your token expires soon")
        .await;
    alice.settle().await;
    assert!(
        alice
            .untaken(&ops, BOT)
            .iter()
            .all(|m| !body(m).contains("psst")),
        "a whisper reached the room"
    );

    // The homeserver restarts: the bot reconnects by itself and still answers.
    synapse.restart().await;
    bot.expect_log("matrix: sync failed, reconnecting", WAIT)
        .await;
    alice.send(&ops, "!help packs", json!({})).await;
    alice.take_until(&ops, BOT, "!pack get {{pack}}").await;
}
