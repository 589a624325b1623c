//! The operations endpoint: `/healthz` (the process answers), `/readyz` (chat connected,
//! stream connected, StackStorm answering, replies reaching the chat backend, and with
//! `ha:` this instance the leader — 503 with the reason otherwise, because that is when
//! results silently vanish; with `ha:` the answer also carries the role, the lease age and
//! the failovers) and `/metrics`. Loopback by default.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::metrics::metrics;
use crate::backend::ConnState;
use crate::ha::{Leadership, Role};
use crate::stackstorm::stream::StreamState;

/// What readiness is computed from.
#[derive(Clone, Debug)]
pub struct Readiness {
    /// Chat backend state.
    pub chat: watch::Receiver<ConnState>,
    /// Stream state.
    pub stream: watch::Receiver<StreamState>,
    /// Whether this instance leads (always, without `ha:`).
    pub leadership: Leadership,
}

impl Readiness {
    /// `Ok` when ready, else each part that is down and why.
    pub fn check(&self) -> Result<(), Vec<String>> {
        let mut down = Vec::new();
        if let Some(status) = self.leadership.status()
            && !self.leadership.is_leader()
        {
            let status = status.borrow();
            down.push(format!("ha: standby: {}", status.reason));
        }
        match &*self.chat.borrow() {
            ConnState::Connected => {}
            ConnState::Connecting => down.push("chat: connecting".to_owned()),
            ConnState::Failed(why) => down.push(format!("chat: failed: {why}")),
        }
        if let StreamState::Down(why) = &*self.stream.borrow() {
            down.push(format!("stream: down: {why}"));
        }
        if let Some(waited) = metrics().replies_stalled_for() {
            down.push(format!(
                "chat: replies not delivered for {}s",
                waited.as_secs()
            ));
        }
        if metrics().st2_failing() {
            down.push("stackstorm: the last call failed".to_owned());
        }
        if down.is_empty() {
            metrics().mark_ready();
            Ok(())
        } else {
            Err(down)
        }
    }
}

/// The endpoint's routes.
pub fn router(readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics_text))
        .with_state(readiness)
}

async fn ready(State(r): State<Readiness>) -> Response {
    let (status, mut body) = match r.check() {
        Ok(()) => (StatusCode::OK, json!({"ready": true})),
        Err(down) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"ready": false, "down": down}),
        ),
    };
    if let Some(lease) = r.leadership.status() {
        let lease = lease.borrow();
        // The role at this instant: a leader past its validity is already a standby.
        let role = if r.leadership.is_leader() {
            Role::Leader
        } else {
            Role::Standby
        };
        body["ha"] = json!({
            "role": role.as_str(),
            "instance": lease.instance,
            "leader": lease.holder,
            "lease_age_seconds": lease.lease_age().map(|a| a.as_secs_f64()),
            "failovers": lease.failovers,
        });
    }
    (status, axum::Json(body)).into_response()
}

async fn metrics_text() -> Response {
    (
        [(
            "Content-Type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics().encode(),
    )
        .into_response()
}

/// Serves until `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "health endpoint listening");
    axum::serve(listener, router(readiness))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
