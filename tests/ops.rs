//! The operations endpoint of a running bot: `/healthz`, `/readyz` (not ready while the
//! StackStorm stream is down) and `/metrics` (commands, denials, StackStorm calls, stream).

use st2bot_testkit as support;

use std::time::Duration;

use st2_sim::{Sim, SimConfig};
use support::bot::BotProcess;

const WAIT: Duration = Duration::from_secs(15);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn get(url: &str) -> Option<(u16, String)> {
    bot_runtime::http::install_crypto_provider();
    let r = reqwest::get(url).await.ok()?;
    let status = r.status().as_u16();
    Some((status, r.text().await.unwrap_or_default()))
}

async fn wait_status(url: &str, want: u16) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some((status, body)) = get(url).await
            && status == want
        {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{url} never answered {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let sim = Sim::start(SimConfig::demo()).await.unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut bot = BotProcess::start(
        env!("CARGO_BIN_EXE_demo"),
        &[
            "--user",
            "carol",
            "--stackstorm-url",
            &sim.url(),
            "--health-listen",
            &listen,
        ],
        &[("ST2_API_KEY", "sim-api-key")],
    );
    let base = format!("http://{listen}");
    assert_eq!(wait_status(&format!("{base}/healthz"), 200).await, "ok\n");
    let ready = wait_status(&format!("{base}/readyz"), 200).await;
    assert!(ready.contains("\"ready\":true"), "{ready}");

    bot.say("!local date").await;
    bot.expect("carol: running `core.local`", WAIT).await;
    bot.say("!rm /tmp/x on web1").await;
    bot.expect("not allowed", WAIT).await;

    // The stream goes down (StackStorm unavailable): not ready, and it says why.
    sim.set_available(false);
    let down = wait_status(&format!("{base}/readyz"), 503).await;
    assert!(down.contains("stream: down"), "{down}");
    sim.set_available(true);
    wait_status(&format!("{base}/readyz"), 200).await;

    let (_, metrics) = get(&format!("{base}/metrics")).await.unwrap();
    for needle in [
        "st2bot_commands_total{outcome=\"executed\"} 1",
        "st2bot_access_denials_total 1",
        "st2bot_stackstorm_requests_total{call=\"execute\",status=\"201\"} 1",
        "st2bot_stackstorm_request_duration_seconds_count{call=\"execute\"} 1",
        "st2bot_stream_connected 1",
        "st2bot_chat_connected 1",
    ] {
        assert!(metrics.contains(needle), "missing {needle} in\n{metrics}");
    }
    assert!(
        metrics.contains("st2bot_stream_reconnects_total"),
        "{metrics}"
    );
}
