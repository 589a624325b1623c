//! The reply queue between the dispatcher and the chat backend, watched: a relay task takes
//! replies as the dispatcher sends them, stamps each with the time it was queued, and hands
//! them to the backend as fast as the backend takes them. When the oldest reply has waited
//! longer than a bound (the backend is wedged: a hung connection, a splitter that never
//! returns, a rate limit that never lifts), `/readyz` says so and the metrics show it:
//! `st2bot_reply_queue_oldest_seconds`, `st2bot_reply_queue_length` and
//! `st2bot_reply_queue_stalls_total` (times the queue went over the bound).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::metrics::metrics;
use crate::backend::Outgoing;

/// Replies queued longer than this without reaching the backend mean it is wedged.
pub const STALL_AFTER: Duration = Duration::from_secs(60);
/// Replies the relay holds at most (the dispatcher waits beyond that).
const CAPACITY: usize = 1024;
/// How often the queue's age is re-measured while nothing else happens.
const MEASURE_EVERY: Duration = Duration::from_secs(1);

/// Relays replies from `from` (the dispatcher's side) to `to` (the backend's) until `from`
/// is closed and everything was handed over, or the backend goes away. Records the queue's
/// age and length, and whether it is stalled (oldest reply older than `stall_after`).
pub async fn relay(
    mut from: mpsc::Receiver<Outgoing>,
    to: mpsc::Sender<Outgoing>,
    stall_after: Duration,
) {
    let mut queue: VecDeque<(Instant, Outgoing)> = VecDeque::new();
    let mut open = true;
    let mut measure = tokio::time::interval(MEASURE_EVERY);
    measure.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stalled = false;
    while open || !queue.is_empty() {
        tokio::select! {
            reply = from.recv(), if open && queue.len() < CAPACITY => match reply {
                Some(reply) => queue.push_back((Instant::now(), reply)),
                None => open = false,
            },
            permit = to.reserve(), if !queue.is_empty() => match (permit, queue.pop_front()) {
                (Ok(permit), Some((_, reply))) => permit.send(reply),
                _ => {
                    tracing::warn!(dropped = queue.len() + 1, "chat backend stopped; dropping queued replies");
                    break;
                }
            },
            _ = measure.tick() => {}
        }
        let oldest = queue
            .front()
            .map(|(queued, _)| queued.elapsed())
            .unwrap_or_default();
        let now_stalled = oldest > stall_after;
        if now_stalled && !stalled {
            tracing::warn!(
                queued = queue.len(),
                waited_s = oldest.as_secs(),
                "replies are not reaching the chat backend"
            );
        } else if stalled && !now_stalled {
            tracing::info!("replies reach the chat backend again");
        }
        stalled = now_stalled;
        metrics().reply_queue(queue.len(), oldest, stalled);
    }
    metrics().reply_queue(0, Duration::ZERO, false);
}

#[cfg(test)]
mod tests {
    use tokio::sync::watch;

    use super::*;
    use crate::backend::{ConnState, Target};
    use crate::ops::health::Readiness;
    use crate::stackstorm::stream::StreamState;

    fn reply(n: usize) -> Outgoing {
        Outgoing::text(
            Target::Room {
                id: "ops".into(),
                thread: None,
            },
            format!("reply {n}"),
        )
    }

    /// Issue 12 item 2: a backend that stops taking replies shows as not ready, with the
    /// queue's age and a stall counted in the metrics; it recovers when replies flow again.
    #[tokio::test(start_paused = true)]
    async fn a_wedged_backend_makes_the_bot_unready_and_shows_in_the_metrics() {
        let (dispatcher, from) = mpsc::channel(16);
        let (to, mut backend) = mpsc::channel(1);
        let relay = tokio::spawn(relay(from, to, Duration::from_secs(60)));
        let (_chat_tx, chat) = watch::channel(ConnState::Connected);
        let (_stream_tx, stream) = watch::channel(StreamState::Up);
        let readiness = Readiness {
            chat,
            stream,
            leadership: crate::ha::Leadership::single(),
        };
        for n in 0..3 {
            dispatcher.send(reply(n)).await.unwrap();
        }
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(readiness.check().is_ok(), "30 s is within the bound");
        tokio::time::sleep(Duration::from_secs(32)).await;
        let down = readiness
            .check()
            .expect_err("stalled replies make the bot unready");
        assert!(
            down.iter()
                .any(|d| d.starts_with("chat: replies not delivered for 6")),
            "{down:?}"
        );
        let text = metrics().encode();
        assert!(text.contains("st2bot_reply_queue_length 2"), "{text}");
        assert!(text.contains("st2bot_reply_queue_stalls_total 1"), "{text}");
        assert!(
            text.contains("st2bot_reply_queue_oldest_seconds 6"),
            "{text}"
        );
        // The backend takes replies again: ready.
        for n in 0..3 {
            assert_eq!(backend.recv().await.unwrap().text, format!("reply {n}"));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(readiness.check().is_ok());
        drop(dispatcher);
        relay.await.unwrap();
    }
}
