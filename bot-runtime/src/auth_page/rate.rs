//! Per-source-address token buckets for the login page: every request costs one token; a
//! bucket holds `burst` tokens and refills at `per_minute`. IPv6 clients are grouped by /64
//! (one host usually owns a whole /64). The table is bounded: when full, full buckets (idle
//! clients) are forgotten first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Most addresses tracked at once.
const MAX_TRACKED: usize = 10_000;

/// Request budget per source address.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct AddressLimit {
    /// Requests allowed in a burst.
    pub(crate) burst: u32,
    /// Sustained requests per minute.
    pub(crate) per_minute: u32,
}

impl Default for AddressLimit {
    /// 20 requests at once, then 10 a minute: a person logging in needs two or three.
    fn default() -> Self {
        Self {
            burst: 20,
            per_minute: 10,
        }
    }
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The buckets.
pub(crate) struct AddressLimiter {
    limit: AddressLimit,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl AddressLimiter {
    pub(crate) fn new(limit: AddressLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `addr`; `Err(wait)` when the bucket is empty.
    pub(crate) fn take(&self, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        let key = bucket_key(addr);
        let capacity = f64::from(self.limit.burst.max(1));
        let rate = f64::from(self.limit.per_minute.max(1)) / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&key) {
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.updated).as_secs_f64() * rate < capacity
            });
            if buckets.len() >= MAX_TRACKED {
                // Everyone tracked is active: refuse newcomers rather than grow without bound.
                return Err(Duration::from_secs(60));
            }
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
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
}

/// IPv4 addresses as they are; IPv6 addresses reduced to their /64 (IPv4-mapped ones to
/// their IPv4 address).
fn bucket_key(addr: IpAddr) -> IpAddr {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusal_then_refill() {
        let limiter = AddressLimiter::new(AddressLimit {
            burst: 3,
            per_minute: 60,
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
        let limiter = AddressLimiter::new(AddressLimit {
            burst: 1,
            per_minute: 1,
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
}
