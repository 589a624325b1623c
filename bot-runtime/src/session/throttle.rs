//! Token buckets keyed by anything (a source address, a chat user, a StackStorm username):
//! each key may spend `burst` tokens at once, and gets one back every `refill`. The table is
//! bounded without locking anyone out: when it is full, buckets that are full again (idle
//! keys) are forgotten first, then the least recently used eighth of the rest.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// What each key may spend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Budget {
    /// Tokens available at once.
    pub(crate) burst: u32,
    /// Time to earn one token back.
    pub(crate) refill: Duration,
}

impl Budget {
    /// Most tokens a key can spend in `window`: the burst plus what refills meanwhile.
    #[cfg(test)]
    pub(crate) fn most_in(&self, window: Duration) -> u64 {
        let refill = self.refill.max(Duration::from_millis(1));
        u64::from(self.burst) + (window.as_millis() / refill.as_millis()) as u64
    }
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The buckets, behind one lock (each operation is a few map operations).
pub(crate) struct TokenBuckets<K> {
    budget: Budget,
    max_tracked: usize,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> TokenBuckets<K> {
    /// An empty table tracking at most `max_tracked` keys.
    pub(crate) fn new(budget: Budget, max_tracked: usize) -> Self {
        Self {
            budget,
            max_tracked: max_tracked.max(8),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn capacity(&self) -> f64 {
        f64::from(self.budget.burst.max(1))
    }

    fn rate(&self) -> f64 {
        1.0 / self.budget.refill.as_secs_f64().max(1e-3)
    }

    /// Spends one token of `key`; `Err(wait)` (time until one is back) when none is left.
    pub(crate) fn take(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let (capacity, rate) = (self.capacity(), self.rate());
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= self.max_tracked && !buckets.contains_key(key) {
            self.make_room(&mut buckets, now);
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }

    /// Gives back a token spent by [`TokenBuckets::take`] (the attempt did not count).
    pub(crate) fn refund(&self, key: &K) {
        let capacity = self.capacity();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(bucket) = buckets.get_mut(key) {
            bucket.tokens = (bucket.tokens + 1.0).min(capacity);
        }
    }

    /// How many keys are tracked.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Forgets full buckets (their keys start afresh with a full bucket anyway); if that is
    /// not enough, the least recently used eighth of the table.
    fn make_room(&self, buckets: &mut HashMap<K, Bucket>, now: Instant) {
        let (capacity, rate) = (self.capacity(), self.rate());
        buckets.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.updated).as_secs_f64() * rate < capacity
        });
        if buckets.len() < self.max_tracked {
            return;
        }
        let mut ages: Vec<(Instant, K)> = buckets
            .iter()
            .map(|(k, b)| (b.updated, k.clone()))
            .collect();
        let evict = (self.max_tracked / 8).max(1);
        ages.select_nth_unstable_by_key(evict - 1, |(updated, _)| *updated);
        for (_, key) in ages.into_iter().take(evict) {
            buckets.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(burst: u32, refill_ms: u64) -> Budget {
        Budget {
            burst,
            refill: Duration::from_millis(refill_ms),
        }
    }

    #[test]
    fn a_burst_then_refusal_then_refill_and_refund() {
        let table = TokenBuckets::new(budget(3, 1000), 100);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(table.take(&"a", t0).is_ok());
        }
        let wait = table.take(&"a", t0).unwrap_err();
        assert!(wait <= Duration::from_secs(1) && wait > Duration::ZERO);
        assert!(table.take(&"b", t0).is_ok(), "other keys are unaffected");
        let t1 = t0 + Duration::from_millis(1100);
        assert!(table.take(&"a", t1).is_ok());
        assert!(table.take(&"a", t1).is_err());
        table.refund(&"a");
        assert!(
            table.take(&"a", t1).is_ok(),
            "a refunded token can be spent"
        );
    }

    #[test]
    fn a_full_table_of_active_keys_still_admits_newcomers() {
        // Every tracked key is busy (its bucket is not full): the old limiter refused every
        // new key from then on; this one forgets the least recently used ones.
        let table = TokenBuckets::new(budget(1, 60_000), 64);
        let t0 = Instant::now();
        for i in 0..64u32 {
            assert!(
                table
                    .take(&i, t0 + Duration::from_millis(u64::from(i)))
                    .is_ok()
            );
        }
        assert_eq!(table.len(), 64);
        let later = t0 + Duration::from_secs(1);
        for newcomer in 1000..1100u32 {
            assert!(table.take(&newcomer, later).is_ok(), "newcomer {newcomer}");
        }
        assert!(table.len() <= 64);
        // The most recent keys are still limited.
        assert!(table.take(&1099, later).is_err());
    }

    #[test]
    fn the_most_in_a_window_counts_burst_and_refills() {
        let b = Budget {
            burst: 5,
            refill: Duration::from_secs(300),
        };
        assert_eq!(b.most_in(Duration::from_secs(3600)), 17);
    }
}
