//! Limits per source address for the login page:
//!
//! - [`AddressLimiter`]: request budget (token buckets, [`crate::session`]'s throttle):
//!   20 at once, then 10 a minute. IPv6 clients are grouped by /64 (one host usually owns a
//!   whole /64). The table is bounded; when full, idle then least recently seen addresses
//!   are forgotten, so new clients are never locked out.
//! - [`ConnectionCounts`]: open connections per TCP peer, so one address cannot hold every
//!   connection slot with slow requests.
//! - [`RefusalLog`]: refusals are logged in aggregate, the first one at once, then one line
//!   per address and minute with the count, so a flood does not flood the log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::session::throttle::{Budget, TokenBuckets};

/// Most addresses tracked at once by each table.
const MAX_TRACKED: usize = 10_000;
/// How long refusals from one address are counted before their count is logged.
pub(crate) const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(60);

/// Request budget per source address: 20 requests at once, then 10 a minute (a person
/// logging in needs two or three).
pub(crate) const ADDRESS_BUDGET: Budget = Budget {
    burst: 20,
    refill: Duration::from_secs(6),
};

/// The request buckets.
pub(crate) struct AddressLimiter {
    buckets: TokenBuckets<IpAddr>,
}

impl AddressLimiter {
    pub(crate) fn new(budget: Budget) -> Self {
        Self {
            buckets: TokenBuckets::new(budget, MAX_TRACKED),
        }
    }

    /// Takes one token for `addr`; `Err(wait)` when the bucket is empty.
    pub(crate) fn take(&self, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        self.buckets.take(&bucket_key(addr), now)
    }
}

/// IPv4 addresses as they are; IPv6 addresses reduced to their /64 (IPv4-mapped ones to
/// their IPv4 address).
pub(crate) fn bucket_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

/// Open connections per TCP peer (grouped as [`bucket_key`] groups them).
pub(crate) struct ConnectionCounts {
    per_address: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One open connection; dropping it frees its place.
pub(crate) struct ConnectionPlace {
    key: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl ConnectionCounts {
    /// At most `per_address` connections at once from one address.
    pub(crate) fn new(per_address: usize) -> Self {
        Self {
            per_address: per_address.max(1),
            open: Arc::default(),
        }
    }

    /// A place for a new connection from `peer`, or `None` when it has too many open.
    pub(crate) fn admit(&self, peer: IpAddr) -> Option<ConnectionPlace> {
        let key = bucket_key(peer);
        let mut open = lock(&self.open);
        let count = open.entry(key).or_insert(0);
        if *count >= self.per_address {
            return None;
        }
        *count += 1;
        Some(ConnectionPlace {
            key,
            open: Arc::clone(&self.open),
        })
    }
}

impl Drop for ConnectionPlace {
    fn drop(&mut self) {
        let mut open = lock(&self.open);
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

struct Refusals {
    since: Instant,
    count: u64,
}

/// Counts refusals per address and reports them in aggregate.
#[derive(Default)]
pub(crate) struct RefusalLog {
    entries: Mutex<HashMap<IpAddr, Refusals>>,
    /// Refusals from addresses that found the table full.
    untracked: Mutex<u64>,
}

/// A line to log about one address (or about all untracked ones when `source` is `None`).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RefusalReport {
    /// The first refusal of an address after a quiet minute.
    First {
        /// The address.
        source: IpAddr,
    },
    /// Refusals counted since the last report.
    Since {
        /// The address, or `None` for addresses the table could not track.
        source: Option<IpAddr>,
        /// How many.
        count: u64,
    },
}

impl RefusalLog {
    /// Notes one refusal; returns the line to log now, if any (only the first).
    pub(crate) fn refused(&self, source: IpAddr, now: Instant) -> Option<RefusalReport> {
        let key = bucket_key(source);
        let mut entries = lock(&self.entries);
        if let Some(e) = entries.get_mut(&key) {
            e.count += 1;
            return None;
        }
        if entries.len() >= MAX_TRACKED {
            *lock(&self.untracked) += 1;
            return None;
        }
        entries.insert(
            key,
            Refusals {
                since: now,
                count: 0,
            },
        );
        Some(RefusalReport::First { source: key })
    }

    /// The counts of addresses whose minute is over; addresses quiet for a whole minute
    /// are forgotten (their next refusal is reported at once again).
    pub(crate) fn due(&self, now: Instant) -> Vec<RefusalReport> {
        let mut reports = Vec::new();
        let mut entries = lock(&self.entries);
        entries.retain(|source, e| {
            if now.saturating_duration_since(e.since) < REFUSAL_LOG_EVERY {
                return true;
            }
            if e.count == 0 {
                return false;
            }
            reports.push(RefusalReport::Since {
                source: Some(*source),
                count: e.count,
            });
            e.since = now;
            e.count = 0;
            true
        });
        let mut untracked = lock(&self.untracked);
        if *untracked > 0 {
            reports.push(RefusalReport::Since {
                source: None,
                count: *untracked,
            });
            *untracked = 0;
        }
        reports
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusal_then_refill() {
        let limiter = AddressLimiter::new(Budget {
            burst: 3,
            refill: Duration::from_secs(1),
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take(a, t0).is_ok());
        }
        let wait = limiter.take(a, t0).unwrap_err();
        assert!(wait <= Duration::from_secs(1) && wait > Duration::ZERO);
        assert!(
            limiter.take(b, t0).is_ok(),
            "other addresses are unaffected"
        );
        assert!(limiter.take(a, t0 + Duration::from_millis(1100)).is_ok());
        assert!(limiter.take(a, t0 + Duration::from_millis(1100)).is_err());
    }

    #[test]
    fn ipv6_hosts_share_their_slash_64() {
        let limiter = AddressLimiter::new(Budget {
            burst: 1,
            refill: Duration::from_secs(60),
        });
        let t0 = Instant::now();
        assert!(limiter.take("2001:db8::1".parse().unwrap(), t0).is_ok());
        assert!(
            limiter
                .take("2001:db8::ffff:1234".parse().unwrap(), t0)
                .is_err()
        );
        assert!(limiter.take("2001:db8:0:1::1".parse().unwrap(), t0).is_ok());
        assert_eq!(
            bucket_key("::ffff:192.0.2.7".parse().unwrap()),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn connections_are_capped_per_address_and_freed_on_drop() {
        let counts = ConnectionCounts::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let first = counts.admit(a).unwrap();
        let _second = counts.admit(a).unwrap();
        assert!(counts.admit(a).is_none());
        assert!(counts.admit("192.0.2.9".parse().unwrap()).is_some());
        drop(first);
        assert!(counts.admit(a).is_some());
    }

    #[test]
    fn refusals_are_reported_once_then_counted_per_minute() {
        let log = RefusalLog::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        assert_eq!(log.refused(a, t0), Some(RefusalReport::First { source: a }));
        for _ in 0..999 {
            assert_eq!(log.refused(a, t0 + Duration::from_secs(1)), None);
        }
        assert!(log.due(t0 + Duration::from_secs(30)).is_empty());
        assert_eq!(
            log.due(t0 + REFUSAL_LOG_EVERY),
            vec![RefusalReport::Since {
                source: Some(a),
                count: 999
            }]
        );
        // A quiet minute: forgotten, and the next refusal is reported at once.
        assert!(log.due(t0 + REFUSAL_LOG_EVERY * 2).is_empty());
        assert_eq!(
            log.refused(a, t0 + REFUSAL_LOG_EVERY * 2),
            Some(RefusalReport::First { source: a })
        );
    }
}
