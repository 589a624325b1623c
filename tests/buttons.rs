//! Issue 16 item 4: Approve/Reject buttons under a yes/no inquiry, on the services that
//! have them. The whole bot runs against the StackStorm simulator (a workflow that pauses
//! on a `core.ask` of the `oncall` role) and a fake service: the question carries the
//! buttons as the vendor documents them (the fakes refuse what the vendor refuses); a press
//! is acknowledged in time and runs the button's command as the user who pressed, so a
//! user outside the inquiry's roles is refused and nothing is answered, a member's press
//! answers and the workflow resumes, and a button id the bot never handed out (forged, or
//! a command where the id should be) runs nothing.

use st2bot_testkit::backend as harness;
use st2bot_testkit::fakes::discord as discord_fake;
use st2bot_testkit::fakes::mattermost as mattermost_fake;
use st2bot_testkit::fakes::slack as slack_fake;

use std::time::Duration;

use serde_json::{Value, json};
use st2_sim::{Sim, SimConfig};

const WAIT: Duration = Duration::from_secs(15);

/// The demo data set plus `ops.gated_deploy`, which asks the `oncall` role one yes/no
/// question; its inquiry is announced on the bot's route.
fn config() -> SimConfig {
    let mut config = SimConfig::demo();
    config.aliases.push(json!({
        "id": "000000000000000000000016", "uid": "action:ops:gated_deploy",
        "ref": "ops.gated_deploy", "name": "gated_deploy", "pack": "ops",
        "description": "deploy, after a human says yes", "enabled": true,
        "action_ref": "ops.gated_deploy", "formats": ["gated deploy {{service}}"],
        "ack": {"enabled": true, "append_url": true}, "result": {"enabled": true},
    }));
    config.workflows = vec![(
        "ops.gated_deploy".into(),
        json!({"roles": ["oncall"], "ttl": 60, "schema": {"type": "object", "properties": {
            "approve": {"type": "boolean", "description": "Deploy to production?", "required": true}}}}),
    )];
    config.inquiry_rules = vec!["chatops".into()];
    config
}

/// Everyone may run commands; only bob is on call.
const RULES: &str = "access:\n  default: allow\ngroups:\n  oncall: [bob]\n";

fn answers_sent(sim: &Sim) -> Vec<Value> {
    sim.requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path.starts_with("/api/v1/inquiries/"))
        .map(|r| r.body.unwrap_or_default())
        .collect()
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The inquiry id in a posted question.
fn inquiry_id(text: &str) -> String {
    text.split("Inquiry ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("an inquiry id")
        .to_owned()
}

/// A well-formed id the bot never handed out.
const FORGED: &str = "st2bot-00000000000000000000000000000000";

#[tokio::test]
async fn on_slack_approve_and_reject_buttons_answer_as_the_user_who_pressed() {
    use slack_fake::{ALICE, APP_TOKEN, BOB, BOT_TOKEN, OPS, SlackFake};

    let sim = Sim::start(config()).await.expect("simulator");
    let fake = SlackFake::start().await;
    let dir = st2bot_testkit::TempDir::new("buttons-slack");
    let yaml = format!(
        "name: slack-buttons\nbackend:\n  kind: slack\n  app_token: \"file:{}\"\n  bot_token: \"file:{}\"\n  url: {}\n\
         stackstorm:\n  url: {}\n  auth: {{api_key: \"file:{}\"}}\n{RULES}",
        dir.file("app_token", APP_TOKEN),
        dir.file("bot_token", BOT_TOKEN),
        fake.api_url(),
        sim.url(),
        dir.file("api_key", "sim-api-key"),
    );
    let bot = harness::WholeBot::run(&yaml);
    eventually("the stream and the socket", || {
        sim.stream_clients() >= 1 && fake.open_sockets() >= 1
    })
    .await;
    let said = |needle: &str| {
        fake.posts()
            .into_iter()
            .find(|p| p.text.as_deref().is_some_and(|t| t.contains(needle)))
    };

    fake.user_says(ALICE, OPS, "!gated deploy web", None);
    eventually("the question", || said("❓ Inquiry ").is_some()).await;
    let question = said("❓ Inquiry ").expect("posted");
    let id = inquiry_id(question.text.as_deref().unwrap_or_default());
    let workflow = sim.executions().last().expect("an execution").id.clone();
    // Block Kit: the question as a section (Slack shows blocks, not `text`), then the
    // buttons; Slack took them (the fake refuses what Slack refuses).
    let blocks = question.blocks.clone().expect("blocks");
    assert_eq!(blocks[0]["type"], "section");
    assert!(
        blocks[0]["text"]["text"]
            .as_str()
            .is_some_and(|t| t.contains(&format!("Inquiry {id}"))),
        "{blocks:#}"
    );
    let buttons = &blocks.as_array().unwrap().last().unwrap()["elements"];
    assert_eq!(buttons[0]["text"]["text"], "Approve");
    assert_eq!(buttons[0]["style"], "primary");
    assert_eq!(buttons[1]["text"]["text"], "Reject");
    assert_eq!(buttons[1]["style"], "danger");
    assert!(
        !buttons.to_string().contains("approve") && !buttons.to_string().contains(&id),
        "only opaque ids go to Slack: {buttons:#}"
    );
    assert!(fake.rejections().is_empty(), "{:?}", fake.rejections());

    // Alice is not on call: her press is acknowledged, refused by the inquiry's roles.
    assert!(
        fake.press(ALICE, &question, "Approve").await,
        "envelope acked"
    );
    eventually("alice's refusal", || {
        said(&format!(
            "you may not answer inquiry {id}: only members of oncall may answer it"
        ))
        .is_some()
    })
    .await;
    let refusal = said("you may not answer inquiry").unwrap();
    assert_eq!(refusal.channel, OPS);
    assert!(
        refusal
            .text
            .as_deref()
            .unwrap_or_default()
            .starts_with("alice: "),
        "{refusal:?}"
    );

    // Forged presses: an id the bot never posted, and a command where the id goes.
    let posts_before = fake.posts().len();
    assert!(fake.press_forged(BOB, &question, FORGED).await);
    assert!(
        fake.press_forged(BOB, &question, &format!("!approve {id}"))
            .await
    );
    eventually("the notes to bob", || fake.ephemerals().len() == 2).await;
    assert!(
        fake.ephemerals()
            .iter()
            .all(|e| e.user == BOB && e.channel == OPS && e.text.contains("no longer active"))
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.posts().len(), posts_before, "nothing was run");
    assert!(answers_sent(&sim).is_empty(), "nothing reached StackStorm");

    // Bob is on call: his press answers, and the workflow resumes.
    assert!(fake.press(BOB, &question, "Approve").await);
    eventually("bob's answer", || {
        said(&format!("bob: inquiry {id} answered with")).is_some()
    })
    .await;
    assert_eq!(
        answers_sent(&sim),
        vec![json!({"id": id, "response": {"approve": true}})]
    );
    eventually("the workflow's result", || {
        fake.posts().iter().any(|p| {
            p.body
                .to_string()
                .contains(&format!("Execution {workflow} succeeded"))
        })
    })
    .await;
    // Every envelope the fake sent was acknowledged.
    assert_eq!(fake.unacked(), 0);
    drop(bot);
}

#[tokio::test]
async fn on_discord_approve_and_reject_buttons_answer_as_the_user_who_pressed() {
    use discord_fake::{FakeDiscord, OPS, USERS};
    const TOKEN: &str = "MTA0.fake.bot-token";

    let sim = Sim::start(config()).await.expect("simulator");
    let fake = FakeDiscord::start(TOKEN, Duration::from_millis(800)).await;
    let dir = st2bot_testkit::TempDir::new("buttons-discord");
    let yaml = format!(
        "name: discord-buttons\nbackend:\n  kind: discord\n  token: \"file:{}\"\n  url: {}\n\
         stackstorm:\n  url: {}\n  auth: {{api_key: \"file:{}\"}}\n{RULES}",
        dir.file("token", TOKEN),
        fake.api_url,
        sim.url(),
        dir.file("api_key", "sim-api-key"),
    );
    let bot = harness::WholeBot::run(&yaml);
    eventually("the stream and the gateway", || {
        sim.stream_clients() >= 1 && fake.counters().identifies >= 1
    })
    .await;
    // Let READY reach the bot.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let said = |needle: &str| {
        fake.posted()
            .into_iter()
            .find(|p| p.content().contains(needle))
    };

    fake.say(OPS, "alice", "!gated deploy web");
    eventually("the question", || said("❓ Inquiry ").is_some()).await;
    let question = said("❓ Inquiry ").expect("posted");
    let id = inquiry_id(question.content());
    let workflow = sim.executions().last().expect("an execution").id.clone();
    let rows = question.body["components"].clone();
    assert_eq!(rows[0]["type"], 1, "an action row: {rows:#}");
    let buttons = &rows[0]["components"];
    assert_eq!(
        (
            buttons[0]["label"].clone(),
            buttons[0]["style"].clone(),
            buttons[1]["label"].clone(),
            buttons[1]["style"].clone()
        ),
        (json!("Approve"), json!(3), json!("Reject"), json!(4))
    );
    assert!(
        !rows.to_string().contains("approve") && !rows.to_string().contains(&id),
        "only opaque ids go to Discord: {rows:#}"
    );
    assert_eq!(fake.counters().invalid_form_bodies, 0);

    // Alice is not on call: the press is acknowledged (deferred update), then refused.
    assert_eq!(
        fake.press("alice", &question, "Approve").await,
        Some(json!({"type": 6}))
    );
    eventually("alice's refusal", || {
        said(&format!(
            "you may not answer inquiry {id}: only members of oncall may answer it"
        ))
        .is_some()
    })
    .await;
    assert_eq!(
        said("you may not answer").unwrap().channel_id,
        OPS,
        "answered where the button is"
    );

    // Forged presses are answered privately and run nothing.
    let posts_before = fake.posted().len();
    for forged in [FORGED.to_owned(), format!("!approve {id}")] {
        let callback = fake
            .press_forged("bob", &question, &forged)
            .await
            .expect("answered in time");
        assert_eq!(callback["type"], 4);
        assert_eq!(callback["data"]["flags"], 64, "ephemeral");
        assert!(
            callback["data"]["content"]
                .as_str()
                .is_some_and(|c| c.contains("no longer active"))
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.posted().len(), posts_before, "nothing was run");
    assert!(answers_sent(&sim).is_empty(), "nothing reached StackStorm");

    // Bob is on call: his press answers, and the workflow resumes.
    assert_eq!(
        fake.press("bob", &question, "Approve").await,
        Some(json!({"type": 6}))
    );
    eventually("bob's answer", || {
        said(&format!("inquiry {id} answered with")).is_some()
    })
    .await;
    let answer = said(&format!("inquiry {id} answered with")).unwrap();
    assert!(
        answer.content().starts_with(&format!("<@{}>", USERS[1].0))
            || answer.content().starts_with("bob: "),
        "{answer:?}"
    );
    assert_eq!(
        answers_sent(&sim),
        vec![json!({"id": id, "response": {"approve": true}})]
    );
    eventually("the workflow's result", || {
        fake.posted().iter().any(|p| {
            p.body
                .to_string()
                .contains(&format!("Execution {workflow} succeeded"))
        })
    })
    .await;

    // Reject answers no.
    fake.say(OPS, "alice", "!gated deploy api");
    eventually("the second question", || {
        fake.posted()
            .iter()
            .filter(|p| p.content().contains("❓ Inquiry "))
            .count()
            == 2
    })
    .await;
    let second = fake
        .posted()
        .into_iter()
        .filter(|p| p.content().contains("❓ Inquiry "))
        .nth(1)
        .expect("posted");
    let second_id = inquiry_id(second.content());
    assert_ne!(second_id, id);
    assert_eq!(
        fake.press("bob", &second, "Reject").await,
        Some(json!({"type": 6}))
    );
    eventually("bob's no", || answers_sent(&sim).len() == 2).await;
    assert_eq!(
        answers_sent(&sim)[1],
        json!({"id": second_id, "response": {"approve": false}})
    );
    drop(bot);
}

#[tokio::test]
async fn on_mattermost_approve_and_reject_buttons_answer_as_the_user_who_pressed() {
    use mattermost_fake::{ALICE, BOB, MattermostFake, OPS, TEAM, TOKEN};

    let sim = Sim::start(config()).await.expect("simulator");
    let fake = MattermostFake::start().await;
    let dir = st2bot_testkit::TempDir::new("buttons-mattermost");
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        probe.local_addr().expect("its address").port()
    };
    let yaml = format!(
        "name: mattermost-buttons\nbackend:\n  kind: mattermost\n  url: {}\n  token: \"file:{}\"\n  team: {TEAM}\n\
         \x20 listen: 127.0.0.1:{port}\n  actions_url: http://127.0.0.1:{port}/mattermost/actions\n\
         stackstorm:\n  url: {}\n  auth: {{api_key: \"file:{}\"}}\n{RULES}",
        fake.url(),
        dir.file("token", TOKEN),
        sim.url(),
        dir.file("api_key", "sim-api-key"),
    );
    let bot = harness::WholeBot::run(&yaml);
    eventually("the stream and the socket", || {
        sim.stream_clients() >= 1 && fake.live_sockets() >= 1
    })
    .await;
    let said = |needle: &str| {
        fake.posts()
            .into_iter()
            .find(|p| p.message.contains(needle))
    };

    fake.user_says(ALICE, OPS, "!gated deploy web", None);
    eventually("the question", || said("❓ Inquiry ").is_some()).await;
    let question = said("❓ Inquiry ").expect("posted");
    let id = inquiry_id(&question.message);
    let workflow = sim.executions().last().expect("an execution").id.clone();
    let actions: Vec<Value> = question.props["attachments"]
        .as_array()
        .expect("attachments")
        .iter()
        .flat_map(|a| a["actions"].as_array().cloned().unwrap_or_default())
        .collect();
    assert_eq!(
        actions
            .iter()
            .map(|a| (a["name"].clone(), a["style"].clone()))
            .collect::<Vec<_>>(),
        vec![
            (json!("Approve"), json!("good")),
            (json!("Reject"), json!("danger"))
        ]
    );
    let shown = serde_json::to_string(&actions).unwrap();
    assert!(
        !shown.contains("approve") && !shown.contains(&id),
        "only opaque ids go to Mattermost: {shown}"
    );
    assert!(fake.rejections().is_empty(), "{:?}", fake.rejections());

    // Alice is not on call: the press is answered, then refused by the inquiry's roles.
    assert_eq!(
        fake.press(ALICE, &question, "Approve").await,
        (200, json!({}))
    );
    eventually("alice's refusal", || {
        said(&format!(
            "you may not answer inquiry {id}: only members of oncall may answer it"
        ))
        .is_some()
    })
    .await;
    assert_eq!(said("you may not answer").unwrap().channel_id, OPS);

    // A press without the endpoint's secret is refused; an unknown id runs nothing.
    let posts_before = fake.posts().len();
    let context = actions[0]["integration"]["context"].clone();
    let (status, _) = fake
        .press_forged(BOB, &question, json!({"action": context["action"]}))
        .await;
    assert_eq!(status, 403);
    let (status, _) = fake
        .press_forged(
            BOB,
            &question,
            json!({"action": context["action"], "secret": "0".repeat(32)}),
        )
        .await;
    assert_eq!(status, 403);
    for forged in [FORGED.to_owned(), format!("!approve {id}")] {
        let (status, answer) = fake
            .press_forged(
                BOB,
                &question,
                json!({"action": forged, "secret": context["secret"]}),
            )
            .await;
        assert_eq!(status, 200);
        assert!(
            answer["ephemeral_text"]
                .as_str()
                .is_some_and(|t| t.contains("no longer active")),
            "{answer}"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.posts().len(), posts_before, "nothing was run");
    assert!(answers_sent(&sim).is_empty(), "nothing reached StackStorm");

    // Bob is on call: his press answers, and the workflow resumes.
    assert_eq!(
        fake.press(BOB, &question, "Approve").await,
        (200, json!({}))
    );
    eventually("bob's answer", || {
        said(&format!("bob: inquiry {id} answered with")).is_some()
    })
    .await;
    assert_eq!(
        answers_sent(&sim),
        vec![json!({"id": id, "response": {"approve": true}})]
    );
    eventually("the workflow's result", || {
        fake.posts().iter().any(|p| {
            p.props
                .to_string()
                .contains(&format!("Execution {workflow} succeeded"))
                || p.message
                    .contains(&format!("Execution {workflow} succeeded"))
        })
    })
    .await;
    drop(bot);
}

/// The fakes refuse the buttons the services refuse, so the tests above would catch a
/// renderer that oversteps a limit.
#[tokio::test]
async fn the_fakes_refuse_buttons_the_services_refuse() {
    use discord_fake::{FakeDiscord, OPS as DISCORD_OPS};
    use slack_fake::{BOT_TOKEN, OPS as SLACK_OPS, SlackFake};

    let http = st2bot::runtime::http::client(true, None, Some(Duration::from_secs(10)))
        .expect("HTTP client");

    // Slack: a button needs `action_id`; its text is at most 75 characters, its value 2000.
    let slack = SlackFake::start().await;
    let button = |action_id: Option<&str>, text: usize, value: usize| {
        let mut b = json!({"type": "button", "text": {"type": "plain_text", "text": "x".repeat(text)},
                           "value": "v".repeat(value)});
        if let Some(id) = action_id {
            b["action_id"] = json!(id);
        }
        b
    };
    for (element, ok) in [
        (button(Some("a1"), 75, 2000), true),
        (button(None, 7, 1), false),
        (button(Some("a1"), 76, 1), false),
        (button(Some("a1"), 7, 2001), false),
    ] {
        let answer: Value = http
            .post(format!("{}/chat.postMessage", slack.api_url()))
            .bearer_auth(BOT_TOKEN)
            .json(&json!({"channel": SLACK_OPS, "text": "t",
                          "blocks": [{"type": "actions", "elements": [element]}]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer["ok"], ok, "{answer}");
        if !ok {
            assert_eq!(answer["error"], "invalid_blocks");
        }
    }

    // Discord: at most 5 buttons a row, labels up to 80, custom ids up to 100 and unique.
    const TOKEN: &str = "MTA0.fake.bot-token";
    let discord = FakeDiscord::start(TOKEN, Duration::from_millis(800)).await;
    let row = |n: usize, label: usize, id_len: usize| {
        let buttons: Vec<Value> = (0..n)
            .map(|i| {
                json!({"type": 2, "style": 3, "label": "l".repeat(label),
                            "custom_id": format!("{i}{}", "c".repeat(id_len - 1))})
            })
            .collect();
        json!([{"type": 1, "components": buttons}])
    };
    for (components, ok) in [
        (row(5, 80, 100), true),
        (row(6, 5, 5), false),
        (row(1, 81, 5), false),
        (row(1, 5, 101), false),
        (
            json!([{"type": 1, "components": [
                {"type": 2, "style": 4, "label": "a", "custom_id": "same"},
                {"type": 2, "style": 4, "label": "b", "custom_id": "same"}]}]),
            false,
        ),
    ] {
        let status = http
            .post(format!(
                "{}/channels/{DISCORD_OPS}/messages",
                discord.api_url
            ))
            .header("authorization", format!("Bot {TOKEN}"))
            .json(&json!({"content": "t", "components": components}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        assert_eq!(status == 200, ok, "{components}: {status}");
    }
    // Refusals are Discord's invalid form body.
    assert_eq!(discord.counters().invalid_form_bodies, 4);
}
