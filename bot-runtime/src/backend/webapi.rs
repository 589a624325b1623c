//! Small helpers the web-API backends (Slack, Mattermost, …) share: rate-limit headers,
//! a window of recently seen ids for deduplicating redelivered events, JSON field access,
//! bounded response bodies.

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::Value;

/// The longest server-requested wait honoured at once.
pub const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(300);

/// `Retry-After` (seconds) from a response, when present and sane.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    seconds_header(headers, reqwest::header::RETRY_AFTER.as_str())
}

/// A header holding a number of seconds (`Retry-After`, `X-Ratelimit-Reset`).
pub fn seconds_header(headers: &reqwest::header::HeaderMap, name: &str) -> Option<Duration> {
    let value = headers.get(name)?.to_str().ok()?;
    let secs = value.trim().parse::<f64>().ok()?;
    (secs.is_finite() && secs >= 0.0)
        .then(|| Duration::from_secs_f64(secs).min(MAX_RATE_LIMIT_WAIT))
}

/// A response body of at most `max` bytes (read chunk by chunk, so a larger one is refused
/// without being held); the error says why, without the URL.
pub async fn bounded_body(mut response: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err(format!("response larger than {max} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| e.without_url().to_string())?
    {
        if body.len() + chunk.len() > max {
            return Err(format!("response larger than {max} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A string field of a JSON object.
pub fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Locks a cache mutex; a panic elsewhere does not poison a cache for good.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Recently seen keys, forgetting the oldest past a capacity.
#[derive(Debug)]
pub struct Seen {
    order: VecDeque<String>,
    set: HashSet<String>,
    capacity: usize,
}

impl Seen {
    /// A window of `capacity` keys.
    pub fn new(capacity: usize) -> Self {
        Self {
            order: VecDeque::new(),
            set: HashSet::new(),
            capacity: capacity.max(1),
        }
    }

    /// `true` when `key` is new (and remembers it).
    pub fn insert(&mut self, key: &str) -> bool {
        if self.set.contains(key) {
            return false;
        }
        if self.order.len() == self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.order.push_back(key.to_owned());
        self.set.insert(key.to_owned());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_window() {
        let mut seen = Seen::new(2);
        assert!(seen.insert("a"));
        assert!(!seen.insert("a"));
        assert!(seen.insert("b"));
        assert!(seen.insert("c"));
        assert!(seen.insert("a"), "oldest forgotten past capacity");
    }

    #[test]
    fn rate_limit_headers() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "2".parse().unwrap());
        h.insert("x-ratelimit-reset", "0.5".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        assert_eq!(
            seconds_header(&h, "x-ratelimit-reset"),
            Some(Duration::from_millis(500))
        );
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", "99999".parse().unwrap());
        assert_eq!(retry_after(&h), Some(MAX_RATE_LIMIT_WAIT));
    }
}
