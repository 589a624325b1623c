//! High availability end to end (issue 18): two instances of one bot executable
//! (`bots/demo-ha.yaml`, Text backend, lease 3 s) against the StackStorm simulator and a
//! real PostgreSQL from Debian's packages, started by the test on 127.0.0.1.
//!
//! The "chat" is this test: every line is typed into every live instance, as a chat
//! service delivers a room's messages to every connection; an answer is whatever an
//! instance prints. So "answered once" means: printed by one instance, once.
//!
//! - kill -9 of the leader while a command is in flight: the standby takes over within the
//!   lease + 2 s, posts the result the dead leader was waiting for, and knows the session
//!   the user made through the dead leader;
//! - the same with the result published while no instance leads: the new leader finds it
//!   in the owed list in PostgreSQL and posts it once;
//! - PostgreSQL stopped: the leader steps down within the lease, `/readyz` says why, and it
//!   leads again when the database is back;
//! - a leader frozen (SIGSTOP) past its lease and then resumed (SIGCONT) does not answer;
//! - `tls: verify-full`: the lease is taken over TLS (rustls) with the database's
//!   certificate checked against `ca_file`, and refused without it.

use st2bot_testkit as support;

use std::time::{Duration, Instant};

use serde_json::Value;
use st2_sim::{Sim, SimConfig};
use support::bot::BotProcess;
use support::postgres::Postgres;
use support::{TempDir, free_port, self_signed_cert};

const WAIT: Duration = Duration::from_secs(20);
/// `ha.lease` in bots/demo-ha.yaml.
const LEASE: Duration = Duration::from_secs(3);
/// What the issue allows a take-over: the lease plus two seconds.
const TAKEOVER_BOUND: Duration = Duration::from_secs(5);
const KEY: &str = "0123456789abcdef0123456789abcdef-test-only";
/// The login page address compiled into bots/demo-ha.yaml (each instance is told its own).
const COMPILED_PAGE: &str = "127.0.0.1:18767";

/// One instance of the bot.
struct Instance {
    name: &'static str,
    bot: BotProcess,
    health: u16,
    page: u16,
}

impl Instance {
    fn start(name: &'static str, sim: &Sim, pg: &Postgres) -> Self {
        let (health, page) = (free_port(), free_port());
        let bot = BotProcess::start(
            env!("CARGO_BIN_EXE_demo-ha"),
            &[
                "--user",
                "alice",
                "--stackstorm-url",
                &sim.url(),
                "--health-listen",
                &format!("127.0.0.1:{health}"),
                "--auth-page-listen",
                &format!("127.0.0.1:{page}"),
                "--log-level",
                "info",
            ],
            &[
                ("ST2_API_KEY", "sim-api-key"),
                ("ST2BOT_SESSION_KEY", KEY),
                ("ST2BOT_DATABASE_URL", &pg.url()),
                ("ST2BOT_INSTANCE", name),
            ],
        );
        Self {
            name,
            bot,
            health,
            page,
        }
    }

    /// `/readyz`: status code and body, or `None` when it does not answer.
    async fn readyz(&self) -> Option<(u16, Value)> {
        let url = format!("http://127.0.0.1:{}/readyz", self.health);
        let response = reqwest::Client::new()
            .get(url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.json().await.ok()?))
    }

    async fn metrics(&self) -> String {
        let url = format!("http://127.0.0.1:{}/metrics", self.health);
        reqwest::get(url).await.unwrap().text().await.unwrap()
    }

    /// Waits until `/readyz` reports `role` and a lease holder (the instance has asked the
    /// database at least once); returns the body.
    async fn wait_role(&self, role: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        let mut last = None;
        while Instant::now() < deadline {
            if let Some((_, body)) = self.readyz().await {
                if body["ha"]["role"] == role && !body["ha"]["leader"].is_null() {
                    return body;
                }
                last = Some(body);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "{} did not become {role} within {within:?}; last /readyz: {last:?}\n--- logs ---\n{}",
            self.name,
            self.bot.logs.lock().unwrap()
        );
    }
}

/// Types a line into every instance, as a chat room delivers it to every connection.
async fn say(instances: &mut [&mut Instance], line: &str) {
    for i in instances.iter_mut() {
        i.bot.say(line).await;
    }
}

/// Logs alice in through `leader`'s login page (the test plays the load balancer that
/// sends `public_url` to the ready instance).
async fn log_in(leader: &mut Instance, others: &mut [&mut Instance]) {
    leader.bot.say("!session login").await;
    for other in others.iter_mut() {
        other.bot.say("!session login").await;
    }
    let line = leader
        .bot
        .expect("[to alice] Log in to StackStorm here: ", WAIT)
        .await;
    let link = line
        .split("here: ")
        .nth(1)
        .unwrap()
        .trim()
        .replace(COMPILED_PAGE, &format!("127.0.0.1:{}", leader.page));
    assert_eq!(
        support::login_page::submit_password(&link, "st2admin", "Ch@ngeMe").await,
        200
    );
    leader
        .bot
        .expect("[to alice] You are now logged in to StackStorm", WAIT)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_is_replaced_within_the_lease_and_every_command_is_answered_once() {
    bot_runtime::http::install_crypto_provider();
    let pg = Postgres::start();
    // Results come 6 s after the execution starts: after the take-over.
    let sim = Sim::start(SimConfig {
        result_delay: Duration::from_secs(6),
        ..SimConfig::demo()
    })
    .await
    .unwrap();
    let mut a = Instance::start("a", &sim, &pg);
    a.wait_role("leader", WAIT).await;
    let mut b = Instance::start("b", &sim, &pg);
    let standby = b.wait_role("standby", WAIT).await;
    assert_eq!(standby["ha"]["leader"], "a", "{standby}");
    assert_eq!(b.readyz().await.unwrap().0, 503, "a standby is not ready");

    log_in(&mut a, &mut [&mut b]).await;
    say(&mut [&mut a, &mut b], "!session status").await;
    a.bot
        .expect("alice: your commands run as StackStorm user st2admin", WAIT)
        .await;

    // A command in flight: acknowledged, its result still to come.
    say(&mut [&mut a, &mut b], "!local date").await;
    a.bot
        .expect("alice: running `core.local`, execution", WAIT)
        .await;
    a.bot.signal("KILL");
    let killed = Instant::now();
    let body = b
        .wait_role("leader", TAKEOVER_BOUND + Duration::from_secs(1))
        .await;
    let takeover = killed.elapsed();
    assert!(
        takeover <= TAKEOVER_BOUND,
        "take-over took {takeover:?}, more than the lease + 2 s"
    );
    assert_eq!(body["ha"]["failovers"], 1, "{body}");
    let executions = sim.executions();
    assert_eq!(executions.len(), 1, "the command ran once");
    let id = executions[0].id.clone();
    // The dead leader's result is posted by the new leader, once.
    b.bot
        .expect(&format!("@alice: Execution {id} succeeded:"), WAIT)
        .await;

    // The session made through the dead leader is the new leader's too.
    b.bot.say("!session status").await;
    b.bot
        .expect("alice: your commands run as StackStorm user st2admin", WAIT)
        .await;
    b.bot.say("!local uptime").await;
    b.bot
        .expect("alice: running `core.local`, execution", WAIT)
        .await;
    let executions = sim.executions();
    assert_eq!(executions.len(), 2);
    assert_eq!(
        executions[1].credential.as_ref().map(|c| c.0.as_str()),
        Some("token"),
        "the new leader runs alice's command with her session's token"
    );
    let second = executions[1].id.clone();
    b.bot
        .expect(&format!("@alice: Execution {second} succeeded:"), WAIT)
        .await;

    // Exactly once, across both instances.
    let answers = |needle: &str| a.bot.printed(needle).len() + b.bot.printed(needle).len();
    assert_eq!(answers("running `core.local`"), 2, "two commands, two acks");
    assert_eq!(answers(&format!("Execution {id} succeeded")), 1);
    assert_eq!(answers(&format!("Execution {second} succeeded")), 1);
    assert_eq!(answers("Log in to StackStorm here"), 1);
    assert_eq!(answers("your commands run as StackStorm user"), 2);
    assert!(b.bot.printed("running `core.local`, execution ").len() == 1);

    let metrics = b.metrics().await;
    assert!(metrics.contains("st2bot_ha_leader 1"), "{metrics}");
    assert!(metrics.contains("st2bot_ha_failovers_total 1"), "{metrics}");
    assert!(
        metrics.contains("st2bot_ha_lease_age_seconds "),
        "{metrics}"
    );
    let logs = b.bot.logs.lock().unwrap().clone();
    assert!(
        !logs.contains("Ch@ngeMe") && !logs.contains(KEY),
        "a secret reached the logs"
    );
}

/// Waits until `psql` answers `sql` with `expected`.
async fn wait_sql(pg: &Postgres, sql: &str, expected: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = pg.psql(sql);
        if got == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sql} gave {got:?}, not {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Issues 18 and 19: the results the leader owes are in PostgreSQL. The leader dies with an
/// execution running; its result is published while no instance leads (the standby drops
/// the announcement: it is not its to post, and StackStorm does not replay it); the new
/// leader reads the owed list from the database on promotion, asks StackStorm to announce
/// the result again, and posts it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_published_while_no_instance_leads_is_posted_once_by_the_new_leader() {
    bot_runtime::http::install_crypto_provider();
    let pg = Postgres::start();
    let sim = Sim::start(SimConfig::demo()).await.unwrap();
    let mut a = Instance::start("a", &sim, &pg);
    a.wait_role("leader", WAIT).await;
    let mut b = Instance::start("b", &sim, &pg);
    b.wait_role("standby", WAIT).await;

    sim.hold_results(true);
    say(&mut [&mut a, &mut b], "!local date").await;
    a.bot
        .expect("alice: running `core.local`, execution", WAIT)
        .await;
    let id = sim.executions()[0].id.clone();
    let status = format!(
        "SELECT record->'state'->>'state' FROM st2bot_owed_results WHERE bot = 'demo-ha' AND execution_id = '{id}'"
    );
    wait_sql(&pg, &status, "awaiting").await;
    let deadline = Instant::now() + WAIT;
    while sim.execution_document(&id).unwrap()["status"] != "running" {
        assert!(Instant::now() < deadline, "the execution never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    a.bot.signal("KILL");
    let killed = Instant::now();
    sim.release_results();
    assert_eq!(sim.execution_document(&id).unwrap()["status"], "succeeded");
    // Announced now, while the dead leader's lease still runs: nobody posts it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, body) = b.readyz().await.expect("/readyz answers");
    assert_eq!(body["ha"]["role"], "standby", "{body}");
    assert!(
        killed.elapsed() < LEASE,
        "the lease ran out before the check"
    );
    assert!(b.bot.printed(&format!("Execution {id}")).is_empty());

    b.wait_role("leader", TAKEOVER_BOUND + Duration::from_secs(1))
        .await;
    b.bot
        .expect(&format!("@alice: Execution {id} succeeded:"), WAIT)
        .await;
    b.bot.expect_log("recovered=1", WAIT).await;
    wait_sql(&pg, &status, "delivered").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let posted = a.bot.printed(&format!("Execution {id} succeeded")).len()
        + b.bot.printed(&format!("Execution {id} succeeded")).len();
    assert_eq!(posted, 1, "the result is posted exactly once");
    let asked = sim
        .requests()
        .into_iter()
        .filter(|r| {
            r.method == "POST"
                && r.path == "/api/v1/executions"
                && r.body
                    .as_ref()
                    .is_some_and(|b| b["action"] == "chatops.post_result")
        })
        .count();
    assert_eq!(asked, 1, "StackStorm was asked once to announce it again");
    let metrics = b.metrics().await;
    assert!(
        metrics.contains("st2bot_results_recovered_total 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_without_its_database_steps_down_within_the_lease_and_leads_again() {
    bot_runtime::http::install_crypto_provider();
    let mut pg = Postgres::start();
    let sim = Sim::start(SimConfig::demo()).await.unwrap();
    let mut a = Instance::start("a", &sim, &pg);
    a.wait_role("leader", WAIT).await;
    a.bot.say("!local date").await;
    a.bot.expect("alice: running `core.local`", WAIT).await;

    pg.stop();
    let stopped = Instant::now();
    a.wait_role("standby", LEASE + Duration::from_secs(1)).await;
    let stepped_down = stopped.elapsed();
    assert!(
        stepped_down <= LEASE + Duration::from_millis(300),
        "stepped down {stepped_down:?} after the database stopped; the lease is {LEASE:?}"
    );
    let (status, body) = a.readyz().await.expect("/readyz answers");
    assert_eq!(status, 503);
    let why = body["down"].to_string();
    assert!(why.contains("ha: standby: database"), "{body}");

    // Nothing is answered while no instance leads.
    a.bot.say("!local uptime").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(a.bot.printed("running `core.local`").len(), 1, "no answer");
    assert_eq!(sim.executions().len(), 1);

    pg.resume();
    let back = Instant::now();
    a.wait_role("leader", WAIT).await;
    eprintln!(
        "leading again {:?} after the database returned",
        back.elapsed()
    );
    a.bot.say("!local hostname").await;
    a.bot
        .expect("alice: running `core.local`, execution", WAIT)
        .await;
    assert_eq!(sim.executions().len(), 2);
    assert_eq!(
        sim.executions()[1].parameters["cmd"],
        "hostname",
        "the command typed during the outage was not replayed"
    );
    let metrics = a.metrics().await;
    assert!(
        metrics.contains("st2bot_ha_step_downs_total 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_leader_resumed_after_its_lease_does_not_answer() {
    bot_runtime::http::install_crypto_provider();
    let pg = Postgres::start();
    let sim = Sim::start(SimConfig::demo()).await.unwrap();
    let mut a = Instance::start("a", &sim, &pg);
    a.wait_role("leader", WAIT).await;
    let mut b = Instance::start("b", &sim, &pg);
    b.wait_role("standby", WAIT).await;

    // Partition the leader: frozen, it cannot renew, and it cannot know.
    a.bot.signal("STOP");
    let frozen = Instant::now();
    b.wait_role("leader", TAKEOVER_BOUND + Duration::from_secs(1))
        .await;
    assert!(frozen.elapsed() <= TAKEOVER_BOUND, "{:?}", frozen.elapsed());
    // The message reaches both; the frozen one reads it only when it runs again.
    say(&mut [&mut a, &mut b], "!local date").await;
    b.bot
        .expect("alice: running `core.local`, execution", WAIT)
        .await;
    a.bot.signal("CONT");
    a.wait_role("standby", WAIT).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        a.bot.printed("core.local").is_empty(),
        "the old leader answered after its lease: {:?}",
        a.bot.transcript.lock().unwrap()
    );
    assert_eq!(sim.executions().len(), 1, "the command ran once");
    let logs = a.bot.logs.lock().unwrap().clone();
    assert!(logs.contains("stepped down"), "{logs}");
    // Its lease is over in the database too: the new leader holds a later term.
    let terms = pg.psql("SELECT holder, token FROM st2bot_leases WHERE bot = 'demo-ha'");
    assert_eq!(terms, "b|2", "{terms}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_over_tls_checks_the_database_certificate() {
    bot_runtime::http::install_crypto_provider();
    let certs = TempDir::new("pg-tls");
    let cert = self_signed_cert(certs.path(), "db", &["localhost"]);
    let pg = Postgres::start_tls(&cert);
    let url = certs.file(
        "database-url",
        &format!("postgres://st2bot@localhost:{}/postgres", pg.port()),
    );
    let spec = bot_config::HaSpec {
        database_url: bot_config::SecretRef::File(url.into()),
        tls: bot_config::PgTls::VerifyFull,
        ca_file: Some(cert.cert.to_string_lossy().into_owned().into()),
        lease: LEASE,
        instance_env: "ST2BOT_HA_TLS_TEST_INSTANCE".into(),
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let ha = bot_runtime::ha::start(&spec, "tls-bot", shutdown.clone())
        .await
        .expect("connects and migrates over TLS");
    let deadline = Instant::now() + WAIT;
    while !ha.leadership.is_leader() {
        assert!(Instant::now() < deadline, "never led over TLS");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let encrypted = pg.psql(
        "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name = 'st2bot-tls-bot'",
    );
    assert_eq!(encrypted, "t", "the bot's connections use TLS");

    // Without `ca_file` the self-signed certificate is not trusted: no connection.
    let untrusted = bot_config::HaSpec {
        ca_file: None,
        ..spec.clone()
    };
    let err = bot_runtime::ha::start(&untrusted, "tls-bot-untrusted", shutdown.clone())
        .await
        .expect_err("an untrusted certificate is refused");
    let text = err.to_string();
    assert!(
        text.contains("localhost:") && text.contains("certificate"),
        "{text}"
    );
    eprintln!("without ca_file: {text}");
    assert!(
        !text.contains("st2bot@"),
        "no credentials in errors: {text}"
    );
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), ha.task).await;
}

/// Issue 18 item 3, the audit trail: under `ha:` every line the trail writes to its file
/// also lands in PostgreSQL (`st2bot_audit`), the same JSON, with the instance that wrote
/// it, so a pair's trail is one sequence whichever instance led.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_is_also_kept_in_postgresql() {
    use st2bot::runtime::aliases::AliasCache;
    use st2bot::runtime::backend::{Capabilities, Incoming, Room};
    use st2bot::runtime::dispatch::Dispatcher;
    use st2bot::runtime::stackstorm::St2Client;
    use std::sync::Arc;

    let pg = Postgres::start();
    let sim = Sim::start(SimConfig::demo()).await.expect("simulator");
    let dir = TempDir::new("ha-audit");
    let api_key = dir.file("api-key", "sim-api-key");
    let database_url = dir.file("database-url", &pg.url());
    let trail = dir.join("audit.jsonl");
    let yaml = format!(
        "name: audited-ha\nbackend: {{kind: text}}\nstackstorm:\n  url: {}\n  auth: {{api_key: \"file:{api_key}\"}}\n\
         access:\n  default: allow\nlog:\n  audit_file: {}\n\
         ha:\n  database_url: \"file:{database_url}\"\n  tls: disable\n  instance_env: ST2BOT_AUDIT_TEST_INSTANCE\n",
        sim.url(),
        trail.display()
    );
    st2bot::runtime::http::install_crypto_provider();
    let spec = st2bot::config::load(&st2bot::config::SourceFile::new("audited-ha.yaml", yaml))
        .expect("valid definition");
    let stop = tokio_util::sync::CancellationToken::new();
    let ha = st2bot::runtime::ha::start(spec.ha.as_ref().expect("ha:"), &spec.name, stop.clone())
        .await
        .expect("high availability starts");
    let (tx, _replies) = tokio::sync::mpsc::channel(256);
    let dispatcher = Arc::new(
        Dispatcher::new(
            &spec,
            St2Client::new(&spec.stackstorm).expect("client"),
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
        .expect("dispatcher")
        .with_shared_audit(&ha),
    );
    dispatcher
        .clone()
        .handle(Incoming {
            user_id: "U-alice".into(),
            user: "alice".into(),
            room: Some(Room {
                id: "C-ops".into(),
                name: "ops".into(),
            }),
            text: "!local date".into(),
            mentioned: false,
            thread: None,
            message_id: Some("m-1".into()),
        })
        .await;

    let from_file: Vec<Value> = std::fs::read_to_string(&trail)
        .expect("the audit file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert!(
        from_file.iter().any(|l| l["event"] == "execution"),
        "{from_file:#?}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let from_database: Vec<Value> = loop {
        let rows =
            pg.psql("SELECT line::text FROM st2bot_audit WHERE bot = 'audited-ha' ORDER BY id");
        let rows: Vec<Value> = rows
            .lines()
            .map(|l| serde_json::from_str(l).expect("jsonb as text"))
            .collect();
        if rows.len() >= from_file.len() || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(from_database, from_file);
    let instances = pg.psql("SELECT DISTINCT instance FROM st2bot_audit");
    assert!(
        !instances.is_empty() && !instances.contains('\n'),
        "{instances}"
    );
    stop.cancel();
}
