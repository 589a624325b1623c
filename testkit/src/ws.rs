//! WebSocket support for the in-repo fakes: answers an HTTP/1.1 upgrade request inside an
//! axum handler (RFC 6455 §4.2.2: `101 Switching Protocols` with `Sec-WebSocket-Accept`)
//! and hands the upgraded connection to tokio-tungstenite as a server-side socket, so the
//! fakes speak real WebSocket frames on the same port as their REST API. [`Served`] runs a
//! fake's router on a 127.0.0.1 port (every fake serves through it). This is the one way
//! the fakes serve WebSockets: a route whose handler calls [`upgrade`].

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

/// A server-side WebSocket on an upgraded HTTP connection.
pub type ServerSocket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Whether the request asks for a WebSocket upgrade.
pub fn is_upgrade(request: &Request) -> bool {
    request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Answers the upgrade and runs `on_open` with the socket once the switch is done. A
/// request that is not a valid upgrade gets `400`.
pub fn upgrade<F, Fut>(mut request: Request, on_open: F) -> Response
where
    F: FnOnce(ServerSocket) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let key = request
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| derive_accept_key(k.as_bytes()));
    let (Some(accept), true) = (key, is_upgrade(&request)) else {
        return Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(Body::from("not a websocket upgrade"))
            .expect("static response");
    };
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let socket =
                WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
            on_open(socket).await;
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(Body::empty())
        .expect("static response")
}

/// A fake's server on a 127.0.0.1 port; stops accepting when dropped.
pub struct Served {
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Served {
    /// Binds a free 127.0.0.1 port (a fake whose responses name its own address binds
    /// first, then builds its router and calls [`Served::serve`]).
    pub async fn bind() -> TcpListener {
        TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1")
    }

    /// Serves `router` on `listener`: REST routes, and WebSocket routes whose handlers
    /// answer with [`upgrade`].
    pub fn serve(listener: TcpListener, router: Router) -> Self {
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { addr, task }
    }

    /// [`Served::serve`] on a free port.
    pub async fn start(router: Router) -> Self {
        Self::serve(Self::bind().await, router)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}
