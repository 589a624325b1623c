//! `GET /stream/v1/stream`: server-sent events, filtered by `events=` (comma list, globs),
//! heartbeats as bare newlines like st2stream, no replay; answers 503 while cut.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State as AxState};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

use crate::api::admit;
use crate::state::{Client, State};

pub(crate) async fn stream(
    AxState(state): AxState<Arc<State>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = admit(&state, &method, &uri, &headers, &query, None, true) {
        return r;
    }
    if state.stream_cut() {
        // st2stream down behind nginx (`Sim::cut_stream`).
        return crate::api::unavailable();
    }
    let filter = query.get("events").filter(|e| !e.is_empty()).map(|events| {
        let mut b = globset::GlobSetBuilder::new();
        for pattern in events.split(',') {
            if let Ok(g) = globset::Glob::new(pattern.trim()) {
                b.add(g);
            }
        }
        b.build().unwrap_or_else(|_| globset::GlobSet::empty())
    });
    let (tx, rx) = mpsc::unbounded_channel::<(String, String)>();
    state.add_client(Client { filter, tx });
    let heartbeat = state.config.heartbeat;
    let body = futures_util::stream::unfold(rx, move |mut rx| async move {
        {
            let frame = match tokio::time::timeout(heartbeat, rx.recv()).await {
                Ok(Some((event, data))) => {
                    let mut frame = format!("event: {event}\n");
                    for line in data.split('\n') {
                        frame.push_str(&format!("data: {line}\n"));
                    }
                    frame.push('\n');
                    frame
                }
                Ok(None) => return None,
                Err(_) => "\n".to_owned(),
            };
            Some((Ok::<_, Infallible>(Bytes::from(frame)), rx))
        }
    });
    (
        [
            ("Content-Type", "text/event-stream; charset=UTF-8"),
            ("Cache-Control", "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}
