//! Test support shared by the web-service fakes: serves an axum router and WebSocket
//! upgrades on one 127.0.0.1 port (Rocket.Chat answers REST and `/websocket` on the same
//! origin), with tokio-tungstenite 0.30 for the WebSocket side (the version the bot uses;
//! axum's own `ws` feature would pull a second tungstenite). Each accepted connection is
//! peeked: a `GET <ws_path>` with `Upgrade: websocket` goes to the WebSocket handler,
//! everything else to axum. Dropping [`Served`] stops accepting.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;

/// A WebSocket connection handler.
pub type WsHandler = Arc<
    dyn Fn(WebSocketStream<TcpStream>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync,
>;

/// A running server; stops accepting when dropped.
pub struct Served {
    /// Where it listens.
    pub addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

struct ChannelListener {
    rx: mpsc::Receiver<(TcpStream, SocketAddr)>,
    addr: SocketAddr,
}

impl axum::serve::Listener for ChannelListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

/// Serves `router` and, for `GET ws_path` upgrades, `ws`, on a free 127.0.0.1 port.
pub async fn serve(router: Router, ws_path: Option<&'static str>, ws: Option<WsHandler>) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local addr");
    let (tx, rx) = mpsc::channel(64);
    let http = tokio::spawn(async move {
        let _ = axum::serve(ChannelListener { rx, addr }, router).await;
    });
    let accept = tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let tx = tx.clone();
            let ws = ws.clone();
            tokio::spawn(async move {
                if let (Some(path), Some(handler)) = (ws_path, ws)
                    && is_upgrade(&stream, path).await
                {
                    if let Ok(socket) = tokio_tungstenite::accept_async(stream).await {
                        handler(socket).await;
                    }
                    return;
                }
                let _ = tx.send((stream, peer)).await;
            });
        }
    });
    Served {
        addr,
        tasks: vec![http, accept],
    }
}

/// Whether the request waiting on `stream` is a WebSocket upgrade of `path` (peeks only).
async fn is_upgrade(stream: &TcpStream, path: &str) -> bool {
    let mut buf = vec![0u8; 4096];
    for _ in 0..200 {
        let Ok(n) = stream.peek(&mut buf).await else {
            return false;
        };
        if n == 0 {
            return false;
        }
        let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
        if head.contains("\r\n\r\n") || n == buf.len() {
            let target = head.split_whitespace().nth(1).unwrap_or("");
            let target = target.split('?').next().unwrap_or("");
            return head.starts_with("get ")
                && target == path.to_ascii_lowercase()
                && head.contains("upgrade: websocket");
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    false
}
