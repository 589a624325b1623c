//! Issue 16 item 2: confirmations and four-eyes approval. Commands named by the definition's
//! `confirm:` are held back (nothing reaches StackStorm) until the requester repeats a code
//! (`by: self`) or another member of the group approves (`by: "@group"`, never the
//! requester); rejection, withdrawal and expiry run nothing; the execution that does run
//! carries who confirmed it in its `source_context`; the audit trail has every step.
//!
//! Against the simulator: the demo executable on the Text backend (its definition holds
//! `core.remote` for a code and `packs.*install` for `@oncall`), the dispatcher of a Text
//! definition with an audit trail (several users, expiry at a chosen instant), and the whole
//! bot on the Slack fake (threads).

use st2bot_testkit as support;

use st2bot_testkit::backend as harness;
use st2bot_testkit::fakes::slack as slack_fake;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use st2_sim::{Sim, SimConfig};
use support::bot::BotProcess;

const WAIT: Duration = Duration::from_secs(15);

async fn wait_for_stream(sim: &Sim, clients: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while sim.stream_clients() < clients {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the bot never connected to the stream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The id or code a prompt offers after `word ` (`!confirm k7m2` → `k7m2`).
fn id_after(text: &str, word: &str) -> String {
    text.split(word)
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_alphanumeric()).next())
        .unwrap_or_else(|| panic!("no `{word}` in {text}"))
        .to_owned()
}

/// The demo on the Text backend: `!run … on …` (core.remote) waits for alice's code; a wrong
/// code and an approval instead of the code run nothing; the right code runs it as alice,
/// with `confirmed: self` in the execution's `source_context`; four eyes refuse alice's own
/// approval of her `!pack install`.
#[tokio::test]
async fn on_the_terminal_the_right_code_runs_the_command_and_nothing_else_does() {
    let sim = Sim::start(SimConfig::demo()).await.expect("simulator");
    let url = sim.url();
    let mut bot = BotProcess::start(
        env!("CARGO_BIN_EXE_demo"),
        &["--user", "alice", "--stackstorm-url", url.as_str()],
        &[("ST2_API_KEY", "sim-api-key")],
    );
    wait_for_stream(&sim, 1).await;

    bot.say("!run uptime on web1").await;
    let prompt = bot
        .expect(
            "alice: `run uptime on web1` (core.remote) needs your confirmation. Say `!confirm ",
            WAIT,
        )
        .await;
    assert!(
        prompt.contains("within 1m to run it, or `!reject "),
        "{prompt}"
    );
    let code = id_after(&prompt, "!confirm ");
    assert_eq!(code.len(), 4, "{prompt}");
    assert!(sim.executions().is_empty(), "nothing reached StackStorm");

    let wrong = if code == "zzzz" { "yyyy" } else { "zzzz" };
    bot.say(&format!("!confirm {wrong}")).await;
    bot.expect(
        &format!("alice: `{wrong}` is not a pending confirmation"),
        WAIT,
    )
    .await;
    bot.say(&format!("!approve {code}")).await;
    bot.expect(
        &format!("alice: this one needs your own confirmation: say `!confirm {code}`"),
        WAIT,
    )
    .await;
    bot.say("!confirm").await;
    bot.expect("alice: say which request: `!confirm CODE`", WAIT)
        .await;
    assert!(sim.executions().is_empty(), "nothing reached StackStorm");

    // Codes are read in any case.
    bot.say(&format!("!confirm {}", code.to_ascii_uppercase()))
        .await;
    bot.expect("alice: running `core.remote`", WAIT).await;
    let executions = sim.executions();
    assert_eq!(executions.len(), 1);
    let run = &executions[0];
    assert_eq!(run.alias, "core.remote");
    assert_eq!(run.user, "alice");
    assert_eq!(run.parameters["hosts"], "web1");
    assert_eq!(run.source_context["confirmed"], "self");
    assert_eq!(run.source_context["confirmation"], json!(code));
    assert_eq!(run.source_context["bot"], "demo");
    bot.say(&format!("!confirm {code}")).await;
    bot.expect(
        &format!("alice: confirmation {code} was already confirmed"),
        WAIT,
    )
    .await;

    // Four eyes: alice is in oncall, and still may not approve her own request.
    bot.say("!pack install st2-demo").await;
    let prompt = bot
        .expect(
            "alice: `pack install st2-demo` (packs.pack_install) needs the approval of another member of oncall.",
            WAIT,
        )
        .await;
    let id = id_after(&prompt, "!approve ");
    bot.say(&format!("!approve {id}")).await;
    bot.expect(
        &format!(
            "alice: you cannot approve your own request {id}: another member of oncall must (`!reject {id}` withdraws it)"
        ),
        WAIT,
    )
    .await;
    bot.say(&format!("!reject {id}")).await;
    bot.expect(
        &format!("alice withdrew `pack install st2-demo` (confirmation {id}): nothing was run."),
        WAIT,
    )
    .await;
    assert_eq!(sim.executions().len(), 1, "only the confirmed command ran");
}

/// A dispatcher over the simulator for a Text definition with `confirm:` and an audit
/// trail; what it says comes back on the receiver.
struct Desk {
    dispatcher: Arc<bot_runtime::dispatch::Dispatcher>,
    replies: tokio::sync::mpsc::Receiver<bot_runtime::backend::Outgoing>,
    trail: std::path::PathBuf,
    _dir: st2bot_testkit::TempDir,
}

impl Desk {
    fn new(sim: &Sim) -> Self {
        use bot_runtime::aliases::AliasCache;
        use bot_runtime::backend::Capabilities;
        use bot_runtime::dispatch::Dispatcher;
        use bot_runtime::stackstorm::St2Client;

        let dir = st2bot_testkit::TempDir::new("confirm-desk");
        let trail = dir.path().join("audit.jsonl");
        let yaml = format!(
            "name: desk\nbackend: {{kind: text}}\nstackstorm:\n  url: {}\n  auth: {{api_key: \"file:{}\"}}\n\
             access:\n  default: deny\n  rules:\n    - allow: {{ users: [\"@oncall\"] }}\n    - allow: {{ commands: [\"bot:confirm\"] }}\n\
             groups:\n  oncall: [alice, bob]\n\
             confirm:\n  - {{ commands: [\"core.remote\"], by: self, within: 60s }}\n  - {{ commands: [\"packs.*install\"], by: \"@oncall\", within: 10m }}\n\
             log:\n  audit_file: {}\n",
            sim.url(),
            dir.file("api_key", "sim-api-key"),
            trail.display()
        );
        bot_runtime::http::install_crypto_provider();
        let spec =
            bot_config::load(&bot_config::SourceFile::new("desk.yaml", yaml)).expect("valid");
        let (tx, replies) = tokio::sync::mpsc::channel(256);
        let dispatcher = Dispatcher::new(
            &spec,
            St2Client::new(&spec.stackstorm).unwrap(),
            Capabilities {
                max_message_len: 4000,
                rich: false,
                threads: false,
                edit: false,
                buttons: false,
            },
            AliasCache::new(),
            tx,
        )
        .expect("dispatcher");
        Self {
            dispatcher: Arc::new(dispatcher),
            replies,
            trail,
            _dir: dir,
        }
    }

    /// `user` says `text` in ops; returns what the bot said.
    async fn say(&mut self, user: &str, text: &str) -> Vec<String> {
        use bot_runtime::backend::{Incoming, Room};
        self.dispatcher
            .clone()
            .handle(Incoming {
                user_id: format!("U-{user}"),
                user: user.to_owned(),
                room: Some(Room {
                    id: "C-ops".into(),
                    name: "ops".into(),
                }),
                text: text.to_owned(),
                mentioned: false,
                thread: None,
                message_id: Some(format!("m-{user}-{}", text.len())),
            })
            .await;
        self.said()
    }

    fn said(&mut self) -> Vec<String> {
        let mut said = Vec::new();
        while let Ok(out) = self.replies.try_recv() {
            said.push(out.text);
        }
        said
    }

    /// The audit trail, each line reduced to the fields this test pins.
    fn trail(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.trail).unwrap();
        assert!(!text.contains("sim-api-key"), "a credential in the trail");
        text.lines()
            .map(|l| {
                let l: Value = serde_json::from_str(l).expect("one JSON object per line");
                assert_eq!(l["bot"], "desk");
                let mut b = json!({"event": l["event"], "user": l["user"]});
                for k in [
                    "decision",
                    "command",
                    "confirmation",
                    "by",
                    "requester",
                    "reason",
                    "withdrawn",
                    "execution",
                ] {
                    if !l[k].is_null() {
                        b[k] = l[k].clone();
                    }
                }
                b
            })
            .collect()
    }
}

/// Four eyes on the dispatcher of a Text definition: the requester and a non-member are
/// refused, another member's approval runs the command as the requester with `approved_by`;
/// a rejection and an expiry run nothing and a late approval is told it expired; another
/// user cannot use someone's code. The audit trail, line by line.
#[tokio::test]
async fn four_eyes_refuses_the_requester_and_outsiders_and_runs_on_a_members_approval() {
    let sim = Sim::start(SimConfig::demo()).await.expect("simulator");
    let mut desk = Desk::new(&sim);

    let said = desk.say("alice", "!pack install st2-demo").await;
    assert_eq!(said.len(), 1, "{said:?}");
    let id = id_after(&said[0], "!approve ");
    assert_eq!(
        said[0],
        format!(
            "alice: `pack install st2-demo` (packs.pack_install) needs the approval of another member of oncall. oncall: say `!approve {id}` within 10m to run it, or `!reject {id}` to refuse it (confirmation {id})."
        )
    );
    assert_eq!(
        desk.say("alice", &format!("!approve {id}")).await,
        [format!(
            "alice: you cannot approve your own request {id}: another member of oncall must (`!reject {id}` withdraws it)"
        )]
    );
    assert_eq!(
        desk.say("carol", &format!("!approve {id}")).await,
        [format!(
            "carol: you may not answer confirmation {id}: only members of oncall other than alice may"
        )]
    );
    assert!(sim.executions().is_empty(), "nothing reached StackStorm");
    let said = desk
        .say("bob", &format!("!approve {}", id.to_ascii_uppercase()))
        .await;
    assert_eq!(
        said[0],
        format!("bob approved alice's `pack install st2-demo` (confirmation {id}): running it.")
    );
    assert!(
        said[1].starts_with("alice: running `packs.pack_install`"),
        "{said:?}"
    );
    let executions = sim.executions();
    assert_eq!(executions.len(), 1);
    let run = &executions[0];
    assert_eq!(run.user, "alice", "runs as the requester");
    assert_eq!(run.source_channel, "C-ops");
    assert_eq!(run.source_context["approved_by"], "bob");
    assert_eq!(run.source_context["confirmed"], "@oncall");
    assert_eq!(run.source_context["user_id"], "U-alice");
    assert_eq!(
        desk.say("bob", &format!("!approve {id}")).await,
        [format!(
            "bob: confirmation {id} was already approved by bob"
        )]
    );

    // Rejected by another member: nothing runs.
    let said = desk.say("alice", "!pack install st2-other").await;
    let rejected = id_after(&said[0], "!approve ");
    assert_eq!(
        desk.say("bob", &format!("!reject {rejected}")).await,
        [format!(
            "bob rejected alice's `pack install st2-other` (confirmation {rejected}): nothing was run."
        )]
    );
    assert_eq!(
        desk.say("bob", &format!("!approve {rejected}")).await,
        [format!(
            "bob: confirmation {rejected} was rejected by bob: nothing was run"
        )]
    );

    // Nobody answers in time: expired, nothing runs, a late approval says so.
    let said = desk.say("alice", "!pack install st2-late").await;
    let late = id_after(&said[0], "!approve ");
    desk.dispatcher
        .expire_confirmations(Instant::now() + Duration::from_secs(5 * 60))
        .await;
    assert!(desk.said().is_empty(), "not yet expired");
    desk.dispatcher
        .expire_confirmations(Instant::now() + Duration::from_secs(10 * 60 + 1))
        .await;
    assert_eq!(
        desk.said(),
        [format!(
            "⌛ alice: confirmation {late} of `pack install st2-late` expired: nothing was run."
        )]
    );
    assert_eq!(
        desk.say("bob", &format!("!approve {late}")).await,
        [format!(
            "bob: confirmation {late} has expired: nothing was run (run the command again to ask anew)"
        )]
    );

    // A code is its requester's alone.
    let said = desk.say("alice", "!run uptime on web1").await;
    let code = id_after(&said[0], "!confirm ");
    assert_eq!(
        desk.say("bob", &format!("!confirm {code}")).await,
        [format!(
            "bob: confirmation {code} is alice's: only they can answer it"
        )]
    );
    assert_eq!(sim.executions().len(), 1, "only the approved command ran");

    let c = |s: &str| json!(s);
    let expected = vec![
        json!({"event": "access", "user": "alice", "decision": "allow", "command": "packs.pack_install"}),
        json!({"event": "confirmation_requested", "user": "alice", "command": "packs.pack_install", "confirmation": id, "by": "@oncall", "requester": "alice"}),
        json!({"event": "access", "user": "alice", "decision": "allow", "command": "bot:confirm"}),
        json!({"event": "confirmation_refused", "user": "alice", "command": "packs.pack_install", "confirmation": id, "by": "@oncall", "requester": "alice",
               "reason": format!("you cannot approve your own request {id}: another member of oncall must (`!reject {id}` withdraws it)")}),
        json!({"event": "access", "user": "carol", "decision": "allow", "command": "bot:confirm"}),
        json!({"event": "confirmation_refused", "user": "carol", "command": "packs.pack_install", "confirmation": id, "by": "@oncall", "requester": "alice",
               "reason": format!("you may not answer confirmation {id}: only members of oncall other than alice may")}),
        json!({"event": "access", "user": "bob", "decision": "allow", "command": "bot:confirm"}),
        json!({"event": "approved", "user": "bob", "command": "packs.pack_install", "confirmation": id, "by": "@oncall", "requester": "alice"}),
        json!({"event": "execution", "user": "alice", "command": "packs.pack_install", "execution": c(&run.id)}),
        json!({"event": "access", "user": "bob", "decision": "allow", "command": "bot:confirm"}),
        json!({"event": "access", "user": "alice", "decision": "allow", "command": "packs.pack_install"}),
        json!({"event": "confirmation_requested", "user": "alice", "command": "packs.pack_install", "confirmation": rejected, "by": "@oncall", "requester": "alice"}),
        json!({"event": "access", "user": "bob", "decision": "allow", "command": "bot:confirm"}),
        json!({"event": "rejected", "user": "bob", "command": "packs.pack_install", "confirmation": rejected, "by": "@oncall", "requester": "alice", "withdrawn": false}),
        json!({"event": "access", "user": "bob", "decision": "allow", "command": "bot:confirm"}),
        json!({"event": "access", "user": "alice", "decision": "allow", "command": "packs.pack_install"}),
        json!({"event": "confirmation_requested", "user": "alice", "command": "packs.pack_install", "confirmation": late, "by": "@oncall", "requester": "alice"}),
        json!({"event": "confirmation_expired", "user": "alice", "command": "packs.pack_install", "confirmation": late, "by": "@oncall", "requester": "alice"}),
        json!({"event": "access", "user": "bob", "decision": "allow", "command": "bot:confirm"}),
        json!({"event": "access", "user": "alice", "decision": "allow", "command": "core.remote"}),
        json!({"event": "confirmation_requested", "user": "alice", "command": "core.remote", "confirmation": code, "by": "self", "requester": "alice"}),
        json!({"event": "access", "user": "bob", "decision": "allow", "command": "bot:confirm"}),
        json!({"event": "confirmation_refused", "user": "bob", "command": "core.remote", "confirmation": code, "by": "self", "requester": "alice",
               "reason": format!("confirmation {code} is alice's: only they can answer it")}),
    ];
    let got = desk.trail();
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    for (i, (got, want)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "audit line {}", i + 1);
    }
}

/// The whole bot on the Slack fake: the prompt, the refusals, the approval and the outcome
/// are in the thread of the command; the approved command runs as the requester with
/// `approved_by` in its `source_context`; a code typed by someone else is refused and the
/// requester's own runs the command.
#[tokio::test]
async fn on_slack_the_request_is_answered_in_its_thread() {
    use slack_fake::{ALICE, APP_TOKEN, BOB, BOT_TOKEN, OPS, SlackFake};
    const DAVE: &str = "U0DAVE001";

    let sim = Sim::start(SimConfig::demo()).await.expect("simulator");
    let fake = SlackFake::start().await;
    fake.add_user(DAVE, "dave");
    let dir = st2bot_testkit::TempDir::new("confirm-slack");
    let yaml = format!(
        "name: slack-confirm\nbackend:\n  kind: slack\n  app_token: \"file:{}\"\n  bot_token: \"file:{}\"\n  url: {}\n\
         stackstorm:\n  url: {}\n  auth: {{api_key: \"file:{}\"}}\n\
         access:\n  default: deny\n  rules:\n    - allow: {{ users: [\"@oncall\"] }}\n    - allow: {{ commands: [\"bot:confirm\"] }}\n\
         groups:\n  oncall: [alice, bob]\n\
         confirm:\n  - {{ commands: [\"core.remote\"], by: self, within: 60s }}\n  - {{ commands: [\"packs.*install\"], by: \"@oncall\", within: 10m }}\n",
        dir.file("app_token", APP_TOKEN),
        dir.file("bot_token", BOT_TOKEN),
        fake.api_url(),
        sim.url(),
        dir.file("api_key", "sim-api-key"),
    );
    let bot = harness::WholeBot::run(&yaml);
    wait_for_stream(&sim, 1).await;
    fake.wait_until("the bot's socket", WAIT, |f| f.open_sockets() >= 1)
        .await;
    let posted = |needle: &str| {
        let needle = needle.to_owned();
        move |f: &SlackFake| {
            f.posts()
                .iter()
                .any(|p| p.text.as_deref().is_some_and(|t| t.contains(&needle)))
        }
    };
    let post_of = |needle: &str| {
        fake.posts()
            .into_iter()
            .find(|p| p.text.as_deref().is_some_and(|t| t.contains(needle)))
            .expect("posted")
    };

    let ts = fake.user_says(ALICE, OPS, "!pack install st2-demo", None);
    fake.wait_until("the prompt", WAIT, posted("needs the approval of"))
        .await;
    let prompt = post_of("needs the approval of");
    assert_eq!(prompt.channel, OPS);
    assert_eq!(
        prompt.thread_ts.as_deref(),
        Some(ts.as_str()),
        "in the thread"
    );
    let id = id_after(prompt.text.as_deref().unwrap(), "!approve ");

    fake.user_says(ALICE, OPS, &format!("!approve {id}"), Some(&ts));
    fake.wait_until(
        "the requester refused",
        WAIT,
        posted(&format!("alice: you cannot approve your own request {id}")),
    )
    .await;
    fake.user_says(DAVE, OPS, &format!("!approve {id}"), Some(&ts));
    fake.wait_until(
        "dave refused",
        WAIT,
        posted(&format!(
            "dave: you may not answer confirmation {id}: only members of oncall other than alice may"
        )),
    )
    .await;
    assert!(sim.executions().is_empty(), "nothing reached StackStorm");

    // bob approves with the prompt's Approve button: the press is his `!approve ID`.
    assert!(
        fake.press(BOB, &prompt, "Approve").await,
        "the press was acknowledged"
    );
    fake.wait_until(
        "the approval",
        WAIT,
        posted(&format!(
            "bob approved alice's `pack install st2-demo` (confirmation {id}): running it."
        )),
    )
    .await;
    let approval = post_of("bob approved alice's");
    assert_eq!(approval.thread_ts.as_deref(), Some(ts.as_str()));
    fake.wait_until(
        "the ack",
        WAIT,
        posted("alice: running `packs.pack_install`"),
    )
    .await;
    let executions = sim.executions();
    assert_eq!(executions.len(), 1);
    assert_eq!(executions[0].user, "alice");
    assert_eq!(executions[0].source_channel, OPS);
    assert_eq!(executions[0].source_context["approved_by"], "bob");
    assert_eq!(executions[0].source_context["message_id"], json!(ts));

    // A code: bob cannot use alice's; alice's own runs the command.
    let ts = fake.user_says(ALICE, OPS, "!run uptime on web1", None);
    fake.wait_until("the code", WAIT, posted("needs your confirmation"))
        .await;
    let prompt = post_of("needs your confirmation");
    assert_eq!(prompt.thread_ts.as_deref(), Some(ts.as_str()));
    let code = id_after(prompt.text.as_deref().unwrap(), "!confirm ");
    fake.user_says(BOB, OPS, &format!("!confirm {code}"), Some(&ts));
    fake.wait_until(
        "bob refused",
        WAIT,
        posted(&format!(
            "bob: confirmation {code} is alice's: only they can answer it"
        )),
    )
    .await;
    assert_eq!(sim.executions().len(), 1);
    fake.user_says(ALICE, OPS, &format!("!confirm {code}"), Some(&ts));
    fake.wait_until("the run", WAIT, posted("alice: running `core.remote`"))
        .await;
    let executions = sim.executions();
    assert_eq!(executions.len(), 2);
    assert_eq!(executions[1].alias, "core.remote");
    assert_eq!(executions[1].source_context["confirmed"], "self");
    drop(bot);
}

/// Expiry in the whole bot (the sweep `app::run` starts): with the shortest `within`, 10s,
/// nobody answers; the bot posts in the thread that nothing was run, a late approval is
/// told it expired, and nothing reached StackStorm. About 11 seconds: the floor of
/// `within` is what a person needs to answer.
#[tokio::test]
async fn on_slack_an_unanswered_request_expires_and_nothing_runs() {
    use slack_fake::{ALICE, APP_TOKEN, BOB, BOT_TOKEN, OPS, SlackFake};

    let sim = Sim::start(SimConfig::demo()).await.expect("simulator");
    let fake = SlackFake::start().await;
    let dir = st2bot_testkit::TempDir::new("confirm-expiry");
    let yaml = format!(
        "name: slack-expiry\nbackend:\n  kind: slack\n  app_token: \"file:{}\"\n  bot_token: \"file:{}\"\n  url: {}\n\
         stackstorm:\n  url: {}\n  auth: {{api_key: \"file:{}\"}}\n\
         access:\n  default: allow\n\
         groups:\n  oncall: [alice, bob]\n\
         confirm:\n  - {{ commands: [\"packs.*\"], by: \"@oncall\", within: 10s }}\n",
        dir.file("app_token", APP_TOKEN),
        dir.file("bot_token", BOT_TOKEN),
        fake.api_url(),
        sim.url(),
        dir.file("api_key", "sim-api-key"),
    );
    let bot = harness::WholeBot::run(&yaml);
    wait_for_stream(&sim, 1).await;
    fake.wait_until("the bot's socket", WAIT, |f| f.open_sockets() >= 1)
        .await;
    let posted = |needle: &str| {
        let needle = needle.to_owned();
        move |f: &SlackFake| {
            f.posts()
                .iter()
                .any(|p| p.text.as_deref().is_some_and(|t| t.contains(&needle)))
        }
    };

    let asked = Instant::now();
    let ts = fake.user_says(ALICE, OPS, "!pack get st2", None);
    fake.wait_until("the prompt", WAIT, posted("within 10s to run it"))
        .await;
    let prompt = fake
        .posts()
        .into_iter()
        .find(|p| p.text.as_deref().is_some_and(|t| t.contains("within 10s")))
        .unwrap();
    let id = id_after(prompt.text.as_deref().unwrap(), "!approve ");
    fake.wait_until(
        "the expiry",
        Duration::from_secs(20),
        posted(&format!(
            "⌛ alice: confirmation {id} of `pack get st2` expired: nothing was run."
        )),
    )
    .await;
    assert!(
        asked.elapsed() >= Duration::from_secs(10),
        "expired early: {:?}",
        asked.elapsed()
    );
    let expired = fake
        .posts()
        .into_iter()
        .find(|p| {
            p.text
                .as_deref()
                .is_some_and(|t| t.contains("expired: nothing was run"))
        })
        .unwrap();
    assert_eq!(expired.thread_ts.as_deref(), Some(ts.as_str()));
    fake.user_says(BOB, OPS, &format!("!approve {id}"), Some(&ts));
    fake.wait_until(
        "the late approval",
        WAIT,
        posted(&format!(
            "bob: confirmation {id} has expired: nothing was run"
        )),
    )
    .await;
    assert!(sim.executions().is_empty(), "nothing reached StackStorm");
    drop(bot);
}
