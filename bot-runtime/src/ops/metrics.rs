//! Process-wide metrics, exposed in the OpenMetrics text format on `/metrics`.
//!
//! One registry per process (the bot is one process): [`metrics`] returns it, and the code
//! that sees an event records it — the dispatcher (commands by outcome, denials), the
//! StackStorm client (latency by call, errors by status), the stream (state, reconnects),
//! the announcement path, the owed results (`crate::results`: recovered, duplicates dropped,
//! expired), the chat backend state, the reply queue ([`super::reply_queue`]) and, with
//! `ha:`, the leadership (`crate::ha`: role, lease age, failovers, step-downs; exposed only
//! when `ha:` is configured).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// The bot's metrics.
pub struct Metrics {
    registry: Registry,
    commands: Family<Labels, Counter>,
    denials: Counter,
    st2_requests: Family<Labels, Counter>,
    st2_latency: Family<Labels, Histogram, fn() -> Histogram>,
    stream_up: Gauge,
    stream_reconnects: Counter,
    announcements: Counter,
    results_recovered: Counter,
    results_duplicates: Counter,
    results_expired: Counter,
    chat_up: Gauge,
    chat_reconnects: Counter,
    reply_queue_length: Gauge,
    reply_queue_oldest: Gauge<f64, AtomicU64>,
    reply_queue_stalls: Counter,
    reply_queue_stalled: AtomicBool,
    last_st2_failure: Mutex<Option<Instant>>,
    last_st2_success: Mutex<Option<Instant>>,
    started: Instant,
    ready_after_ms: AtomicU64,
    ha: HaMetrics,
}

/// The leadership metrics, in their own registry: encoded only once `ha:` is in use.
struct HaMetrics {
    registry: Registry,
    enabled: AtomicBool,
    leader: Gauge,
    lease_age: Gauge<f64, AtomicU64>,
    renewed_at: Mutex<Option<Instant>>,
    failovers: Counter,
    step_downs: Counter,
}

impl HaMetrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("st2bot_ha");
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this instance holds the lease (answers commands), 0 on a standby",
            leader.clone(),
        );
        let lease_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "lease_age_seconds",
            "Time since the lease was last renewed (by this instance, or as last seen of the leader)",
            lease_age.clone(),
        );
        let failovers = Counter::default();
        registry.register(
            "failovers",
            "Times this instance took the lease over from another instance",
            failovers.clone(),
        );
        let step_downs = Counter::default();
        registry.register(
            "step_downs",
            "Times this instance stopped leading (lease lost, database unreachable)",
            step_downs.clone(),
        );
        Self {
            registry,
            enabled: AtomicBool::new(false),
            leader,
            lease_age,
            renewed_at: Mutex::new(None),
            failovers,
            step_downs,
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ])
}

/// The process's metrics registry.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("st2bot");
        let commands = Family::<Labels, Counter>::default();
        registry.register(
            "commands",
            "Chat commands handled, by outcome",
            commands.clone(),
        );
        let denials = Counter::default();
        registry.register(
            "access_denials",
            "Commands refused by the access rules",
            denials.clone(),
        );
        let st2_requests = Family::<Labels, Counter>::default();
        registry.register(
            "stackstorm_requests",
            "StackStorm API calls by call and HTTP status (0: no answer)",
            st2_requests.clone(),
        );
        let st2_latency =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "stackstorm_request_duration_seconds",
            "StackStorm API call latency by call",
            st2_latency.clone(),
        );
        let stream_up = Gauge::default();
        registry.register(
            "stream_connected",
            "1 while the StackStorm stream is connected",
            stream_up.clone(),
        );
        let stream_reconnects = Counter::default();
        registry.register(
            "stream_reconnects",
            "StackStorm stream disconnections",
            stream_reconnects.clone(),
        );
        let announcements = Counter::default();
        registry.register(
            "announcements_posted",
            "Stream announcements posted to chat",
            announcements.clone(),
        );
        let results_recovered = Counter::default();
        registry.register(
            "results_recovered",
            "Results published during a stream gap, asked for again and posted",
            results_recovered.clone(),
        );
        let results_duplicates = Counter::default();
        registry.register(
            "results_duplicates_dropped",
            "Announcements dropped because the execution's result was posted already",
            results_duplicates.clone(),
        );
        let results_expired = Counter::default();
        registry.register(
            "results_expired",
            "Executions no longer awaited: no result within stackstorm.result_timeout",
            results_expired.clone(),
        );
        let chat_up = Gauge::default();
        registry.register(
            "chat_connected",
            "1 while the chat backend is connected",
            chat_up.clone(),
        );
        let chat_reconnects = Counter::default();
        registry.register(
            "chat_reconnects",
            "Chat backend disconnections",
            chat_reconnects.clone(),
        );
        let reply_queue_length = Gauge::default();
        registry.register(
            "reply_queue_length",
            "Replies waiting for the chat backend",
            reply_queue_length.clone(),
        );
        let reply_queue_oldest = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "reply_queue_oldest_seconds",
            "How long the oldest reply waiting for the chat backend has waited",
            reply_queue_oldest.clone(),
        );
        let reply_queue_stalls = Counter::default();
        registry.register(
            "reply_queue_stalls",
            "Times replies waited for the chat backend longer than the bound (60 s)",
            reply_queue_stalls.clone(),
        );
        Self {
            registry,
            reply_queue_length,
            reply_queue_oldest,
            reply_queue_stalls,
            reply_queue_stalled: AtomicBool::new(false),
            commands,
            denials,
            st2_requests,
            st2_latency,
            stream_up,
            stream_reconnects,
            announcements,
            results_recovered,
            results_duplicates,
            results_expired,
            chat_up,
            chat_reconnects,
            last_st2_failure: Mutex::new(None),
            last_st2_success: Mutex::new(None),
            started: Instant::now(),
            ready_after_ms: AtomicU64::new(0),
            ha: HaMetrics::new(),
        }
    }

    /// This instance leads (`true`) or stands by (`false`); the first call turns the
    /// leadership metrics on.
    pub fn ha_role(&self, leader: bool) {
        self.ha.enabled.store(true, Ordering::Relaxed);
        self.ha.leader.set(i64::from(leader));
    }

    /// When the lease was last renewed, if known (the age is computed at each scrape).
    pub fn ha_lease_renewed(&self, at: Option<Instant>) {
        if let Ok(mut g) = self.ha.renewed_at.lock() {
            *g = at;
        }
    }

    /// This instance took the lease over from another one.
    pub fn ha_failover(&self) {
        self.ha.failovers.inc();
    }

    /// This instance stopped leading.
    pub fn ha_step_down(&self) {
        self.ha.step_downs.inc();
    }

    /// A command was handled with `outcome` (`executed`, `denied`, `no_match`, …).
    pub fn command(&self, outcome: &'static str) {
        self.commands
            .get_or_create(&vec![("outcome", outcome.to_owned())])
            .inc();
    }

    /// The access rules refused a command.
    pub fn denied(&self) {
        self.denials.inc();
    }

    /// A StackStorm call finished (`status` None: no HTTP answer).
    pub fn st2_call(&self, call: &'static str, elapsed: Duration, status: Option<u16>) {
        let status_label = status.map(|s| s.to_string()).unwrap_or_else(|| "0".into());
        self.st2_requests
            .get_or_create(&vec![("call", call.to_owned()), ("status", status_label)])
            .inc();
        self.st2_latency
            .get_or_create(&vec![("call", call.to_owned())])
            .observe(elapsed.as_secs_f64());
        let failed = status.is_none_or(|s| s >= 500);
        let slot = if failed {
            &self.last_st2_failure
        } else {
            &self.last_st2_success
        };
        if let Ok(mut g) = slot.lock() {
            *g = Some(Instant::now());
        }
    }

    /// Whether the last StackStorm call failed (no answer or 5xx) with no success since.
    pub fn st2_failing(&self) -> bool {
        let failure = self.last_st2_failure.lock().ok().and_then(|g| *g);
        let success = self.last_st2_success.lock().ok().and_then(|g| *g);
        match (failure, success) {
            (Some(f), Some(s)) => f > s,
            (Some(_), None) => true,
            _ => false,
        }
    }

    /// The stream connected (`true`) or dropped (`false`).
    pub fn stream_state(&self, up: bool) {
        if !up && self.stream_up.get() == 1 {
            self.stream_reconnects.inc();
        }
        self.stream_up.set(i64::from(up));
    }

    /// An announcement was posted.
    pub fn announcement(&self) {
        self.announcements.inc();
    }

    /// A result missed during a stream gap was posted after all.
    pub fn result_recovered(&self) {
        self.results_recovered.inc();
    }

    /// A duplicate announcement of a result already posted was dropped.
    pub fn result_duplicate(&self) {
        self.results_duplicates.inc();
    }

    /// `n` executions stopped being awaited (no result within the bound).
    pub fn results_expired(&self, n: u64) {
        self.results_expired.inc_by(n);
    }

    /// The chat backend connected (`true`) or dropped (`false`).
    pub fn chat_state(&self, up: bool) {
        if !up && self.chat_up.get() == 1 {
            self.chat_reconnects.inc();
        }
        self.chat_up.set(i64::from(up));
    }

    /// The reply queue holds `length` replies, the oldest queued `oldest` ago; `stalled`
    /// when that is over the bound (counted once per stall).
    pub fn reply_queue(&self, length: usize, oldest: Duration, stalled: bool) {
        self.reply_queue_length
            .set(i64::try_from(length).unwrap_or(i64::MAX));
        self.reply_queue_oldest.set(oldest.as_secs_f64());
        if stalled && !self.reply_queue_stalled.swap(true, Ordering::Relaxed) {
            self.reply_queue_stalls.inc();
        } else if !stalled {
            self.reply_queue_stalled.store(false, Ordering::Relaxed);
        }
    }

    /// How long the oldest undelivered reply has waited, when that is over the bound.
    pub fn replies_stalled_for(&self) -> Option<Duration> {
        self.reply_queue_stalled
            .load(Ordering::Relaxed)
            .then(|| Duration::from_secs_f64(self.reply_queue_oldest.get()))
    }

    /// Records the first time the bot became ready (chat and stream up).
    pub fn mark_ready(&self) {
        let ms = self.started.elapsed().as_millis().max(1) as u64;
        let _ = self
            .ready_after_ms
            .compare_exchange(0, ms, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Milliseconds from process start to first readiness (0: not yet).
    pub fn ready_after_ms(&self) -> u64 {
        self.ready_after_ms.load(Ordering::Relaxed)
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let ha = self.ha.enabled.load(Ordering::Relaxed);
        if ha {
            let age = self.ha.renewed_at.lock().ok().and_then(|g| *g);
            self.ha
                .lease_age
                .set(age.map_or(f64::NAN, |t| t.elapsed().as_secs_f64()));
        }
        let encoded = encode_registry(&mut out, &self.registry)
            .and_then(|()| {
                if ha {
                    encode_registry(&mut out, &self.ha.registry)
                } else {
                    Ok(())
                }
            })
            .and_then(|()| encode_eof(&mut out));
        if encoded.is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_encodes() {
        let m = Metrics::new();
        m.command("executed");
        m.denied();
        m.st2_call("execute", Duration::from_millis(20), Some(201));
        m.st2_call("match", Duration::from_millis(5), None);
        assert!(m.st2_failing());
        m.st2_call("match", Duration::from_millis(5), Some(200));
        assert!(!m.st2_failing());
        m.stream_state(true);
        m.stream_state(false);
        let text = m.encode();
        assert!(
            text.contains("st2bot_commands_total{outcome=\"executed\"} 1"),
            "{text}"
        );
        assert!(text.contains("st2bot_access_denials_total 1"), "{text}");
        assert!(
            text.contains("st2bot_stackstorm_requests_total{call=\"match\",status=\"0\"} 1"),
            "{text}"
        );
        assert!(text.contains("st2bot_stream_reconnects_total 1"), "{text}");
        assert!(
            text.contains("st2bot_stackstorm_request_duration_seconds_bucket"),
            "{text}"
        );
        assert!(
            !text.contains("st2bot_ha_"),
            "no ha metrics without ha: {text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn leadership_metrics_appear_with_ha() {
        let m = Metrics::new();
        m.ha_role(true);
        m.ha_lease_renewed(Some(Instant::now()));
        m.ha_failover();
        m.ha_step_down();
        m.ha_role(false);
        let text = m.encode();
        assert!(text.contains("st2bot_ha_leader 0"), "{text}");
        assert!(text.contains("st2bot_ha_failovers_total 1"), "{text}");
        assert!(text.contains("st2bot_ha_step_downs_total 1"), "{text}");
        assert!(text.contains("st2bot_ha_lease_age_seconds 0."), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
    }
}
