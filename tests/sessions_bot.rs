//! Per-user identity through the whole bot (`bots/demo-sessions.yaml`, Text backend, the
//! simulator): `!session login` DMs a one-time link, the page binds the user's StackStorm
//! token, commands then run with that token (the simulator records which), a revoked token
//! asks the user to log in again, and users without a session are refused (`required`).

use st2bot_testkit as support;

use std::time::Duration;

use st2_sim::{Sim, SimConfig};
use support::bot::BotProcess;

const WAIT: Duration = Duration::from_secs(15);
const KEY: &str = "0123456789abcdef0123456789abcdef-test-only";

#[tokio::test]
async fn commands_run_as_the_logged_in_user() {
    bot_runtime::http::install_crypto_provider();
    let sim = Sim::start(SimConfig::demo()).await.unwrap();
    let dir = std::env::temp_dir().join(format!("st2bot-sessions-bot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut bot = BotProcess::start_in(
        env!("CARGO_BIN_EXE_demo-sessions"),
        &["--user", "alice", "--stackstorm-url", &sim.url()],
        &[("ST2_API_KEY", "sim-api-key"), ("ST2BOT_SESSION_KEY", KEY)],
        Some(&dir),
    );

    bot.say("!local date").await;
    bot.expect("log in first with `!session login`", WAIT).await;
    assert!(sim.executions().is_empty());

    bot.say("!session login").await;
    let line = bot
        .expect("[to alice] Log in to StackStorm here: ", WAIT)
        .await;
    bot.expect(
        "alice: I sent you a StackStorm login link in a private message.",
        WAIT,
    )
    .await;
    let link = line.split("here: ").nth(1).unwrap().trim().to_owned();
    assert!(
        link.starts_with("http://127.0.0.1:18765/login?id="),
        "{link}"
    );

    assert_eq!(
        support::login_page::submit_password(&link, "st2admin", "Ch@ngeMe").await,
        200
    );
    bot.expect("[to alice]", WAIT).await;

    // alice is a session admin through `auth_page.admins: ["@admins"]`.
    bot.say("!session list").await;
    bot.expect("[to alice] 1 StackStorm session(s):", WAIT)
        .await;
    bot.expect(
        "alice: I sent you the session list in a private message.",
        WAIT,
    )
    .await;

    bot.say("!local date").await;
    bot.expect("alice: running `core.local`", WAIT).await;
    let token = sim
        .issued_tokens()
        .last()
        .cloned()
        .expect("a token was issued");
    assert_eq!(
        sim.executions()[0].credential,
        Some(("token".into(), token))
    );

    sim.revoke_tokens();
    bot.say("!local uptime").await;
    bot.expect("StackStorm no longer accepts your session", WAIT)
        .await;
    bot.say("!local uptime").await;
    bot.expect("log in first", WAIT).await;
    let logs = bot.logs.lock().unwrap().clone();
    assert!(
        !logs.contains("Ch@ngeMe") && !logs.contains(KEY),
        "a secret reached the logs"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
