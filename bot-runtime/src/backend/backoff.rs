//! Reconnect pacing for every network connection (chat backends and the StackStorm
//! stream): exponential backoff with jitter, reset after a connection that stayed up, and
//! a sleep that gives way to shutdown. The one owner of retry pacing in the runtime.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// How long a connection must stay up before [`Backoff::reset_if_stable`] counts it as
/// healthy, unless [`Backoff::stable_after`] says otherwise.
pub const STABLE_AFTER: Duration = Duration::from_secs(60);

/// Exponential backoff: each failure doubles the ceiling (from `min` up to `max`); the
/// actual wait is drawn uniformly between half the ceiling and the ceiling ("equal
/// jitter": never faster than half the ceiling, never in lockstep with other clients).
#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    ceiling: Duration,
    stable_after: Duration,
}

impl Backoff {
    /// A backoff between `min` and `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            ceiling: min,
            stable_after: STABLE_AFTER,
        }
    }

    /// The same backoff, counting a connection as healthy after `uptime` instead of
    /// [`STABLE_AFTER`].
    #[must_use]
    pub fn stable_after(mut self, uptime: Duration) -> Self {
        self.stable_after = uptime;
        self
    }

    /// The wait before the next attempt; grows the ceiling for the one after.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling;
        self.ceiling = (self.ceiling * 2).min(self.max);
        let half = ceiling / 2;
        half + jitter(ceiling - half)
    }

    /// Back to the shortest wait (after a connection that worked).
    pub fn reset(&mut self) {
        self.ceiling = self.min;
    }

    /// Resets when a connection that started at `since` lasted long enough to count as
    /// healthy (a minute unless [`Backoff::stable_after`] says otherwise), so a server that
    /// accepts and drops at once is still paced.
    pub fn reset_if_stable(&mut self, since: Instant) {
        if since.elapsed() >= self.stable_after {
            self.reset();
        }
    }
}

/// A random duration in `[0, max]` (no crate needed: `RandomState` keys are random).
pub fn jitter(max: Duration) -> Duration {
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(nanos);
    Duration::from_nanos(hasher.finish() % (nanos + 1))
}

/// A random number in `[0, 1)`.
pub fn fraction() -> f64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u8(0);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Sleeps for `delay` unless `shutdown` fires first; returns `false` when it did.
pub async fn sleep_or_shutdown(delay: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = shutdown.cancelled() => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let delays: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(50) && delays[0] <= Duration::from_millis(100));
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(1000)));
        assert!(delays[7] >= Duration::from_millis(500));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn jitter_stays_in_range_and_varies() {
        let max = Duration::from_millis(10);
        let draws: Vec<Duration> = (0..64).map(|_| jitter(max)).collect();
        assert!(draws.iter().all(|d| *d <= max));
        assert!(draws.iter().any(|d| *d != draws[0]));
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
        let fractions: Vec<f64> = (0..64).map(|_| fraction()).collect();
        assert!(fractions.iter().all(|f| (0.0..1.0).contains(f)));
        assert!(fractions.iter().any(|f| *f != fractions[0]));
    }

    #[test]
    fn ceiling_reaches_the_cap_after_doublings() {
        // 1 s doubling to 8 s: the fifth wait onwards is drawn from [4 s, 8 s].
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1));
        for _ in 0..3 {
            b.next_delay();
        }
        for _ in 0..10 {
            let d = b.next_delay();
            assert!(
                d >= Duration::from_secs(4) && d <= Duration::from_secs(8),
                "{d:?}"
            );
        }
    }

    #[test]
    fn stability_threshold_is_a_parameter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(10))
            .stable_after(Duration::ZERO);
        for _ in 0..5 {
            b.next_delay();
        }
        b.reset_if_stable(Instant::now());
        assert!(b.next_delay() <= Duration::from_millis(100));

        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        for _ in 0..5 {
            b.next_delay();
        }
        b.reset_if_stable(Instant::now());
        assert!(b.next_delay() >= Duration::from_millis(1600));
    }
}
