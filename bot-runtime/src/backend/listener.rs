//! The HTTP listener of the backends that take requests from their service (the Teams
//! messaging endpoint, the Mattermost button endpoint): [`serve`] runs an axum router on a
//! bound socket with the limits every such endpoint needs.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Connections served at once.
const MAX_CONNECTIONS: usize = 256;
/// Time to send request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a connection stays open (requests, bodies and keep-alive included).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);

/// Serves the endpoint until `shutdown`: HTTP/1.1, at most [`MAX_CONNECTIONS`] at once,
/// headers within [`HEADER_TIMEOUT`], each connection closed after [`CONNECTION_LIFETIME`].
pub(crate) async fn serve(
    service: &'static str,
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(service, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                    tracing::warn!(service, source = %peer.ip(), "too many connections; refused");
                    continue;
                };
                let app = app.clone();
                let watcher = graceful.watcher();
                tasks.spawn(async move {
                    let _slot = slot;
                    let handler = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                        app.clone().oneshot(request)
                    });
                    let mut builder = hyper::server::conn::http1::Builder::new();
                    builder.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
                    let connection = builder.serve_connection(TokioIo::new(stream), handler);
                    if tokio::time::timeout(CONNECTION_LIFETIME, watcher.watch(connection)).await.is_err() {
                        tracing::debug!(service, source = %peer.ip(), "connection open too long; closed");
                    }
                });
            }
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(5)) => {}
    }
    tasks.shutdown().await;
}
