//! The StackStorm client against the simulator: username+password tokens are renewed on a
//! 401 and the stream reconnects with a fresh token; a chat user's own token is used as is.

use std::time::Duration;

use bot_runtime::secret::Secret;
use bot_runtime::stackstorm::St2Client;
use bot_runtime::stackstorm::stream::{self, StreamEvent, StreamState};
use st2_sim::{Sim, SimConfig};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

fn password_spec(sim: &Sim, dir: &std::path::Path) -> bot_config::StackStormSpec {
    let pw = dir.join("st2-password");
    std::fs::write(&pw, "Ch@ngeMe\n").unwrap();
    let yaml = format!(
        "name: t\nbackend: {{kind: text}}\nstackstorm:\n  url: {}\n  auth: {{username: st2admin, password: \"file:{}\"}}\n",
        sim.url(),
        pw.display()
    );
    bot_config::load(&bot_config::SourceFile::new("t.yaml", yaml))
        .expect("valid")
        .stackstorm
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("st2bot-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test]
async fn a_revoked_token_is_renewed_once_and_the_call_retried() {
    let sim = Sim::start(SimConfig::demo()).await.unwrap();
    let client = St2Client::new(&password_spec(&sim, &temp_dir("renew"))).unwrap();
    assert!(!client.list_aliases().await.unwrap().is_empty());
    assert_eq!(sim.issued_tokens().len(), 1);
    sim.revoke_tokens();
    assert!(!client.list_aliases().await.unwrap().is_empty());
    let tokens = sim.issued_tokens();
    assert_eq!(tokens.len(), 2, "one renewal");
    let last = sim
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path == "/api/v1/actionalias")
        .unwrap();
    assert_eq!(last.credential, Some(("token".into(), tokens[1].clone())));
}

#[tokio::test]
async fn a_user_token_is_not_renewed_and_its_401_is_reported() {
    let sim = Sim::start(SimConfig::demo()).await.unwrap();
    let client = St2Client::new(&password_spec(&sim, &temp_dir("user"))).unwrap();
    let stale = Secret::new("not-a-token");
    let request = bot_runtime::stackstorm::types::ExecuteRequest {
        name: "local",
        format: "local {{cmd}}",
        command: "local date",
        user: "alice",
        source_channel: "ops",
        source_context: &serde_json::Value::Null,
        notification_route: "hubot",
    };
    let err = client.execute(&request, Some(&stale)).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(sim.executions().is_empty());
}

#[tokio::test]
async fn the_stream_reconnects_with_a_renewed_token() {
    let sim = Sim::start(SimConfig::demo()).await.unwrap();
    let client = St2Client::new(&password_spec(&sim, &temp_dir("stream"))).unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    let (state_tx, mut state) = watch::channel(StreamState::Down("start".into()));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(stream::run(client, tx, state_tx, shutdown.clone()));
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap(),
        Some(StreamEvent::Connected)
    );
    assert_eq!(*state.borrow_and_update(), StreamState::Up);
    sim.revoke_tokens();
    sim.drop_stream_clients();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap(),
        Some(StreamEvent::Connected)
    );
    let tokens = sim.issued_tokens();
    assert_eq!(tokens.len(), 2);
    let last_stream = sim
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path == "/stream/v1/stream")
        .unwrap();
    assert_eq!(
        last_stream.credential,
        Some(("token".into(), tokens[1].clone()))
    );
    sim.announce(
        "chatops",
        serde_json::json!({"message": "hello", "channel": "ops"}),
    );
    match tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
    {
        Some(StreamEvent::Announcement(a)) => assert_eq!(a.message.as_deref(), Some("hello")),
        other => panic!("expected an announcement, got {other:?}"),
    }
    shutdown.cancel();
    task.await.unwrap();
}
