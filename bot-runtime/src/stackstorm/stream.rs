//! The StackStorm event stream: a long-lived `GET {stream_url}/v1/stream` (server-sent
//! events) that delivers announcements and alias changes. [`run`] reconnects forever with
//! exponential backoff and jitter, rebuilding credentials on every attempt, and skips
//! malformed events with a log line; [`SseParser`] is the framing.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::client::St2Client;
use super::types::{Announcement, AnnouncementEvent};

/// What the stream delivered.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamEvent {
    /// `st2.announcement__<route>`: post it.
    Announcement(Announcement),
    /// `st2.actionalias__create|update|delete`: the alias list changed.
    AliasChanged(String),
    /// (Re)connected: anything published while disconnected is lost, so caches refresh.
    Connected,
}

/// Stream connection state, for health checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamState {
    /// Connecting or waiting to reconnect; the last error.
    Down(String),
    /// Connected and reading.
    Up,
}

/// Incremental server-sent-events framing: feed bytes, get `(event, data)` pairs.
#[derive(Debug, Default)]
pub struct SseParser {
    pending: Vec<u8>,
    event: String,
    data: Vec<String>,
}

impl SseParser {
    /// Feeds a chunk; returns every event completed by it.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<(String, String)> {
        self.pending.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n' || b == b'\r') {
            // `\r\n` counts as one line break; a lone `\r` at the end of the chunk may be
            // followed by `\n` in the next one, which then yields an empty line we skip.
            let mut next = end + 1;
            if self.pending[end] == b'\r' && self.pending.get(end + 1) == Some(&b'\n') {
                next += 1;
            }
            let line = String::from_utf8_lossy(&self.pending[..end]).into_owned();
            self.pending.drain(..next);
            self.line(&line, &mut out);
        }
        out
    }

    fn line(&mut self, line: &str, out: &mut Vec<(String, String)>) {
        if line.is_empty() {
            if !self.data.is_empty() || !self.event.is_empty() {
                let event = std::mem::take(&mut self.event);
                let data = std::mem::take(&mut self.data).join("\n");
                out.push((
                    if event.is_empty() {
                        "message".into()
                    } else {
                        event
                    },
                    data,
                ));
            }
            return;
        }
        if line.starts_with(':') {
            return; // comment / heartbeat
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => self.data.push(value.to_owned()),
            _ => {} // id, retry: StackStorm has no replay
        }
    }
}

/// Exponential backoff with jitter: 0.5 s doubling to 30 s, each wait drawn from
/// `[d/2, d]`.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            next: Duration::from_millis(500),
        }
    }
}

impl Backoff {
    /// The next wait.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(30));
        let half = d / 2;
        half + half.mul_f64(jitter())
    }

    /// Back to the shortest wait (after a healthy connection).
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

/// A number in [0, 1) from the standard library's randomly seeded hasher.
pub fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Turns one SSE event into a [`StreamEvent`], or explains why it is skipped.
pub fn decode(route: &str, event: &str, data: &str) -> Result<Option<StreamEvent>, String> {
    let announcement = format!("st2.announcement__{route}");
    if event == announcement {
        let parsed: AnnouncementEvent =
            serde_json::from_str(data).map_err(|e| format!("malformed announcement: {e}"))?;
        return Ok(Some(StreamEvent::Announcement(parsed.payload)));
    }
    if let Some(kind) = event.strip_prefix("st2.actionalias__") {
        return Ok(Some(StreamEvent::AliasChanged(kind.to_owned())));
    }
    Ok(None)
}

/// Reads the stream until `shutdown`, reconnecting forever.
pub async fn run(
    client: St2Client,
    events: mpsc::Sender<StreamEvent>,
    state: watch::Sender<StreamState>,
    shutdown: CancellationToken,
) {
    let route = client.spec().announcement_route.to_string();
    let wanted = format!(
        "st2.announcement__{route},st2.actionalias__create,st2.actionalias__update,st2.actionalias__delete"
    );
    let mut backoff = Backoff::default();
    loop {
        let started = Instant::now();
        let outcome = tokio::select! {
            () = shutdown.cancelled() => return,
            r = read_once(&client, &route, &wanted, &events, &state) => r,
        };
        if events.is_closed() {
            return;
        }
        if started.elapsed() > Duration::from_secs(10) {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        tracing::warn!(reason = %outcome, retry_in_ms = delay.as_millis() as u64, "StackStorm stream disconnected");
        let _ = state.send(StreamState::Down(outcome));
        crate::ops::metrics().stream_state(false);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// One connection: returns why it ended.
async fn read_once(
    client: &St2Client,
    route: &str,
    wanted: &str,
    events: &mpsc::Sender<StreamEvent>,
    state: &watch::Sender<StreamState>,
) -> String {
    let response = match client.open_stream(wanted).await {
        Ok(r) => r,
        Err(e) => return e.to_string(),
    };
    tracing::info!("StackStorm stream connected");
    let _ = state.send(StreamState::Up);
    crate::ops::metrics().stream_state(true);
    if events.send(StreamEvent::Connected).await.is_err() {
        return "bot stopping".into();
    }
    let mut parser = SseParser::default();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => return format!("read error: {e}"),
        };
        for (event, data) in parser.feed(&chunk) {
            match decode(route, &event, &data) {
                Ok(Some(e)) => {
                    if events.send(e).await.is_err() {
                        return "bot stopping".into();
                    }
                }
                Ok(None) => tracing::debug!(event, "ignoring stream event"),
                Err(why) => tracing::warn!(event, reason = %why, "skipping malformed stream event"),
            }
        }
    }
    "the server closed the stream".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_events_across_chunks() {
        let mut p = SseParser::default();
        assert!(
            p.feed(b"event: st2.announcement__chatops\ndata: {\"pay")
                .is_empty()
        );
        let out = p.feed(b"load\": {}}\n\n\n: heartbeat\r\nevent: x\r\ndata: a\r\ndata: b\r\n\r\n");
        assert_eq!(
            out,
            vec![
                (
                    "st2.announcement__chatops".into(),
                    "{\"payload\": {}}".into()
                ),
                ("x".into(), "a\nb".into())
            ]
        );
    }

    #[test]
    fn decodes_and_rejects() {
        let ok = decode(
            "chatops",
            "st2.announcement__chatops",
            r#"{"payload":{"message":"hi","channel":"ops"}}"#,
        )
        .unwrap();
        assert!(
            matches!(ok, Some(StreamEvent::Announcement(a)) if a.message.as_deref() == Some("hi"))
        );
        assert!(decode("chatops", "st2.announcement__chatops", "{not json").is_err());
        assert_eq!(
            decode("chatops", "st2.announcement__other", "{}").unwrap(),
            None
        );
        assert_eq!(
            decode("chatops", "st2.actionalias__update", "{}").unwrap(),
            Some(StreamEvent::AliasChanged("update".into()))
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let mut b = Backoff::default();
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(250) && first <= Duration::from_millis(500));
        for _ in 0..20 {
            assert!(b.next_delay() <= Duration::from_secs(30));
        }
    }
}
