//! Leadership: one row per bot in `st2bot_leases` (holder, fencing token, expiry), taken
//! and renewed with one statement each time, on a connection used for nothing else.
//!
//! Read [`Leadership`] first. The rules that keep two instances from answering at once:
//!
//! - The database decides: a lease is taken only when it has expired by the database's
//!   clock (`now()`), and each new term increments the fencing token.
//! - The leader renews every third of the lease. It counts its own validity from the
//!   moment it *sent* the renewal, on its monotonic clock, less a tenth of the lease: that
//!   instant is always before the database's expiry, so the leader has stopped answering
//!   before any standby can take over, even when it cannot reach the database at all (a
//!   network partition) or was frozen (SIGSTOP, a VM pause: the monotonic clock runs on).
//! - [`Leadership::is_leader`] compares that instant with the clock at every call; nothing
//!   has to wake up for a leader to stop answering.
//! - Writes to the shared state carry the fencing token and are refused by the database
//!   once another term has begun (`session_store`).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use super::db::Database;

/// This instance's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Holds the lease: answers commands and posts announcements.
    Leader,
    /// Does not hold the lease: connected and ready, silent.
    Standby,
}

impl Role {
    /// `leader` or `standby`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Standby => "standby",
        }
    }
}

/// What `/readyz`, `/metrics` and the logs say about the leadership.
#[derive(Clone, Debug)]
pub struct LeaseStatus {
    /// This instance's name.
    pub instance: String,
    /// This instance's role.
    pub role: Role,
    /// Why this instance is a standby (empty for the leader).
    pub reason: String,
    /// The holder of the lease as last seen, when known.
    pub holder: Option<String>,
    /// The fencing token of the current term, when this instance leads.
    pub token: Option<i64>,
    /// When the lease was last renewed (by this instance, or as last seen of the leader).
    pub renewed_at: Option<Instant>,
    /// Times this instance took the lease over from another instance.
    pub failovers: u64,
}

impl LeaseStatus {
    /// Seconds since the lease was last renewed, when known.
    pub fn lease_age(&self) -> Option<Duration> {
        self.renewed_at.map(|t| t.elapsed())
    }
}

/// Whether this instance may answer now; shared by everything that speaks in chat.
#[derive(Clone, Debug)]
pub struct Leadership {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// `None`: no `ha:` in the definition; the only instance always leads.
    lease: Option<LeaseState>,
}

#[derive(Debug)]
struct LeaseState {
    /// Until when this instance may act as leader, and its fencing token.
    valid_until: Mutex<Option<(Instant, i64)>>,
    status: watch::Sender<LeaseStatus>,
}

impl Leadership {
    /// A single instance (no `ha:`): always the leader.
    pub fn single() -> Self {
        Self {
            inner: Arc::new(Inner { lease: None }),
        }
    }

    /// A standby that has not yet asked the database.
    pub(crate) fn new_standby(instance: String) -> Self {
        let (status, _) = watch::channel(LeaseStatus {
            instance,
            role: Role::Standby,
            reason: "starting".to_owned(),
            holder: None,
            token: None,
            renewed_at: None,
            failovers: 0,
        });
        Self {
            inner: Arc::new(Inner {
                lease: Some(LeaseState {
                    valid_until: Mutex::new(None),
                    status,
                }),
            }),
        }
    }

    /// Whether this instance leads at this instant (always, without `ha:`).
    pub fn is_leader(&self) -> bool {
        self.fencing_token().is_some() || self.inner.lease.is_none()
    }

    /// The fencing token of the current term while this instance leads (`None` without
    /// `ha:` and on a standby).
    pub fn fencing_token(&self) -> Option<i64> {
        let lease = self.inner.lease.as_ref()?;
        let valid = *lease
            .valid_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        valid
            .filter(|(until, _)| Instant::now() < *until)
            .map(|(_, token)| token)
    }

    /// The leadership status, when `ha:` is configured; it changes on every role change.
    pub fn status(&self) -> Option<watch::Receiver<LeaseStatus>> {
        self.inner.lease.as_ref().map(|l| l.status.subscribe())
    }

    /// Makes this instance lead (for a lease) or stand by, as the lease loop would (tests
    /// of what follows the role, without a database).
    #[cfg(test)]
    pub(crate) fn set_role_for_test(&self, leader: bool) {
        if leader {
            self.set_valid(Some((Instant::now() + Duration::from_secs(60), 1)));
        } else {
            self.set_valid(None);
        }
        self.update(|s| {
            s.role = if leader { Role::Leader } else { Role::Standby };
            s.holder = Some(s.instance.clone());
        });
    }

    fn lease(&self) -> &LeaseState {
        self.inner
            .lease
            .as_ref()
            .expect("the lease loop runs only with `ha:`")
    }

    fn set_valid(&self, valid: Option<(Instant, i64)>) {
        *self
            .lease()
            .valid_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = valid;
    }

    fn valid_until(&self) -> Option<(Instant, i64)> {
        *self
            .lease()
            .valid_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, f: impl FnOnce(&mut LeaseStatus)) {
        self.lease().status.send_modify(f);
        let status = self.lease().status.borrow().clone();
        let metrics = crate::ops::metrics();
        metrics.ha_role(status.role == Role::Leader);
        metrics.ha_lease_renewed(status.renewed_at.map(Instant::into_std));
    }
}

/// Settings of the lease loop.
#[derive(Clone, Debug)]
pub(crate) struct LeaseSettings {
    /// The bot's name: the lease row's key.
    pub(crate) bot: String,
    /// This instance's name.
    pub(crate) instance: String,
    /// Lease duration.
    pub(crate) lease: Duration,
}

impl LeaseSettings {
    /// How often the leader renews (and a standby polls at most): a third of the lease.
    pub(crate) fn renew_every(&self) -> Duration {
        self.lease / 3
    }

    /// Taken off the leader's own validity: a tenth of the lease.
    fn margin(&self) -> Duration {
        self.lease / 10
    }
}

/// What one attempt on the lease row found.
enum Attempt {
    /// This instance holds the lease, term `token`; `previous` held the row before.
    Held {
        token: i64,
        previous: Option<String>,
    },
    /// Another instance holds it for `remaining` more, renewed `age` ago.
    Taken {
        holder: String,
        remaining: Duration,
        age: Duration,
    },
}

const TAKE_OR_RENEW: &str = "
    WITH previous AS (SELECT holder FROM st2bot_leases WHERE bot = $1)
    INSERT INTO st2bot_leases AS l (bot, holder, token, acquired_at, renewed_at, expires_at)
    VALUES ($1, $2, 1, now(), now(), now() + $3::bigint * interval '1 millisecond')
    ON CONFLICT (bot) DO UPDATE SET
        holder = EXCLUDED.holder,
        token = CASE WHEN l.holder = EXCLUDED.holder AND l.token = $4 AND l.expires_at > now()
                     THEN l.token ELSE l.token + 1 END,
        acquired_at = CASE WHEN l.holder = EXCLUDED.holder AND l.token = $4 AND l.expires_at > now()
                           THEN l.acquired_at ELSE now() END,
        renewed_at = now(),
        expires_at = EXCLUDED.expires_at
    WHERE (l.holder = EXCLUDED.holder AND l.token = $4) OR l.expires_at <= now()
    RETURNING token, (SELECT holder FROM previous)";

const CURRENT_HOLDER: &str = "
    SELECT holder,
           GREATEST((EXTRACT(EPOCH FROM expires_at - now()) * 1000)::bigint, 0),
           GREATEST((EXTRACT(EPOCH FROM now() - renewed_at) * 1000)::bigint, 0)
    FROM st2bot_leases WHERE bot = $1";

const RELEASE: &str =
    "UPDATE st2bot_leases SET expires_at = now() WHERE bot = $1 AND holder = $2 AND token = $3";

/// Tries to take or renew the lease once.
async fn attempt(
    client: &Client,
    settings: &LeaseSettings,
    current: Option<i64>,
) -> Result<Attempt, tokio_postgres::Error> {
    let lease_ms = i64::try_from(settings.lease.as_millis()).unwrap_or(i64::MAX);
    let token = current.unwrap_or(0);
    let rows = client
        .query(
            TAKE_OR_RENEW,
            &[&settings.bot, &settings.instance, &lease_ms, &token],
        )
        .await?;
    if let Some(row) = rows.first() {
        return Ok(Attempt::Held {
            token: row.get(0),
            previous: row.get(1),
        });
    }
    let row = client.query_one(CURRENT_HOLDER, &[&settings.bot]).await?;
    let millis = |v: i64| Duration::from_millis(u64::try_from(v).unwrap_or(0));
    Ok(Attempt::Taken {
        holder: row.get(0),
        remaining: millis(row.get(1)),
        age: millis(row.get(2)),
    })
}

/// Runs the lease loop until `shutdown`, then gives the lease up (so a standby takes over
/// at once rather than after the lease).
pub(crate) async fn run(
    leadership: Leadership,
    db: Database,
    settings: LeaseSettings,
    shutdown: CancellationToken,
) {
    let renew_every = settings.renew_every();
    let mut client: Option<Client> = None;
    loop {
        let sent = Instant::now();
        let held = leadership.valid_until();
        // While leading, never wait past the end of our validity for an answer.
        let bound = match held {
            Some((until, _)) => until.saturating_duration_since(sent).min(renew_every),
            None => renew_every,
        }
        .max(Duration::from_millis(50));
        let result = tokio::time::timeout(bound, async {
            if client.as_ref().is_none_or(Client::is_closed) {
                client = Some(db.connect("lease").await?);
            }
            let c = client.as_ref().expect("connected above");
            attempt(c, &settings, held.map(|(_, t)| t)).await
        })
        .await;
        let next = match result {
            Ok(Ok(Attempt::Held { token, previous })) => {
                let until = sent + settings.lease - settings.margin();
                leadership.set_valid(Some((until, token)));
                let newly = held.map(|(_, t)| t) != Some(token);
                if newly {
                    let took_over = previous.filter(|p| *p != settings.instance);
                    if let Some(from) = &took_over {
                        crate::ops::metrics().ha_failover();
                        tracing::warn!(instance = %settings.instance, token, previous = %from, "took over the leadership");
                    } else {
                        tracing::info!(instance = %settings.instance, token, "became the leader");
                    }
                    leadership.update(|s| {
                        s.role = Role::Leader;
                        s.reason.clear();
                        s.holder = Some(settings.instance.clone());
                        s.token = Some(token);
                        if took_over.is_some() {
                            s.failovers += 1;
                        }
                    });
                }
                leadership.update(|s| s.renewed_at = Some(sent));
                sent + renew_every
            }
            Ok(Ok(Attempt::Taken {
                holder,
                remaining,
                age,
            })) => {
                let reason = format!("`{holder}` holds the lease");
                step_down(&leadership, &reason);
                leadership.update(|s| {
                    s.holder = Some(holder);
                    s.reason = reason;
                    s.renewed_at = Instant::now().checked_sub(age);
                });
                // Ask again just after it expires (a dead leader is replaced at once),
                // and at least every third of the lease.
                Instant::now()
                    + (remaining + Duration::from_millis(20))
                        .clamp(Duration::from_millis(50), renew_every)
            }
            Ok(Err(e)) => {
                client = None;
                unreachable(&leadership, &settings, format!("database unreachable: {e}"))
            }
            Err(_) => {
                client = None;
                unreachable(
                    &leadership,
                    &settings,
                    format!("database did not answer within {}ms", bound.as_millis()),
                )
            }
        };
        // Wake no later than the end of our validity, to report the step-down on time.
        let next = match leadership.valid_until() {
            Some((until, _)) => next.min(until),
            None => next,
        };
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            () = shutdown.cancelled() => break,
        }
    }
    if let (Some((_, token)), Some(c)) = (leadership.valid_until(), client.as_ref()) {
        leadership.set_valid(None);
        let released = tokio::time::timeout(
            Duration::from_secs(2),
            c.execute(RELEASE, &[&settings.bot, &settings.instance, &token]),
        )
        .await;
        match released {
            Ok(Ok(_)) => tracing::info!(token, "leadership released"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot release the lease; a standby takes over when it expires")
            }
            Err(_) => tracing::warn!(
                "releasing the lease timed out; a standby takes over when it expires"
            ),
        }
    }
}

/// The database could not be asked: a leader keeps leading until its validity ends (the
/// database cannot have given the lease to anyone before), then steps down. Returns when
/// to try again.
fn unreachable(leadership: &Leadership, settings: &LeaseSettings, reason: String) -> Instant {
    let now = Instant::now();
    match leadership.valid_until() {
        Some((until, _)) if now < until => {
            tracing::warn!(reason = %reason, remaining_ms = until.duration_since(now).as_millis() as u64, "cannot renew the lease; still leading until it runs out");
        }
        _ => {
            step_down(leadership, &reason);
            leadership.update(|s| s.reason = reason);
        }
    }
    // Retry soon: a leader has little time left, a standby wants to be ready.
    now + (settings.renew_every() / 2).max(Duration::from_millis(100))
}

/// Stops leading, if this instance led.
fn step_down(leadership: &Leadership, reason: &str) {
    let was = leadership.valid_until();
    leadership.set_valid(None);
    let was_leader = leadership.lease().status.borrow().role == Role::Leader;
    if was.is_some() || was_leader {
        crate::ops::metrics().ha_step_down();
        tracing::warn!(reason, "stepped down: no longer the leader");
    }
    leadership.update(|s| {
        s.role = Role::Standby;
        s.token = None;
        reason.clone_into(&mut s.reason);
    });
}
