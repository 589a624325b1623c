//! High availability (`ha:` in the definition): several instances of one bot share a
//! PostgreSQL database that holds the leadership and the shared state. Only the leader
//! answers commands and posts announcements; standbys stay connected to StackStorm (alias
//! cache warm) and, where the chat service allows it, to chat. `docs/operations.md`
//! ("High availability") is the operator's guide.
//!
//! Read [`start`] first, then [`Leadership`] (`lease.rs`), which everything that speaks in
//! chat consults. `session_store` keeps the login sessions in the database, sealed as in
//! the redb store; `owed_store` the results the leader still owes (`crate::results`), so a
//! standby that takes over posts them. The client is tokio-postgres (see `db.rs` for the schema and its
//! migrations, `pg_tls.rs` for TLS through rustls).

pub(crate) mod audit_store;
mod db;
mod lease;
pub(crate) mod owed_store;
mod pg_tls;
pub(crate) mod session_store;

use std::time::Duration;

use bot_config::HaSpec;
use tokio_util::sync::CancellationToken;

pub use lease::{Leadership, LeaseStatus, Role};

pub(crate) use db::Database;

/// Why high availability could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HaError {
    /// The database URL's secret reference could not be resolved.
    #[error("ha.database_url: {0}")]
    Url(#[source] crate::secret::SecretError),
    /// The database URL does not parse (the URL itself is never shown: it holds a password).
    #[error("ha.database_url is not a PostgreSQL connection string: {reason}")]
    BadUrl {
        /// What the parser said.
        reason: String,
    },
    /// TLS could not be set up (CA bundle).
    #[error("ha TLS: {0}")]
    Tls(String),
    /// The database could not be reached or refused the migrations.
    #[error("PostgreSQL at {hosts}: {}", with_causes(.source))]
    Database {
        /// Where (host:port, no credentials).
        hosts: String,
        /// Why.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The database did not answer in time at start-up.
    #[error("PostgreSQL at {hosts} did not answer within {seconds}s")]
    Timeout {
        /// Where.
        hosts: String,
        /// The bound.
        seconds: u64,
    },
}

/// An error and its causes on one line (`error performing TLS handshake: invalid peer
/// certificate: UnknownIssuer`): tokio-postgres puts the reason in the causes.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let next = c.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = c.source();
    }
    text
}

/// What [`start`] hands to the rest of the bot.
#[derive(Debug)]
pub struct Ha {
    /// Whether this instance leads; consulted before anything is said in chat.
    pub leadership: Leadership,
    /// The lease loop.
    pub task: tokio::task::JoinHandle<()>,
    /// The shared stores, reached through a trait object so that only [`start`] names the
    /// PostgreSQL code (a bot without `ha:` does not link it: `crate::linked`).
    pub(crate) stores: Box<dyn SharedStores>,
}

impl Ha {
    /// The owed-results list shared by the instances (`crate::results`).
    pub(crate) fn owed_store(&self) -> Box<dyn crate::results::OwedStore> {
        self.stores.owed_store()
    }

    /// The login sessions shared by the instances (`crate::session`).
    pub(crate) fn session_store(&self) -> std::sync::Arc<dyn crate::session::SealedStore> {
        self.stores.session_store()
    }

    /// The queue of audit lines for the shared copy of the audit trail.
    pub(crate) fn audit_lines(&self) -> tokio::sync::mpsc::Sender<String> {
        self.stores.audit_lines()
    }
}

/// The state the instances share, as the rest of the bot uses it. Each call starts the
/// store's writer task.
pub(crate) trait SharedStores: Send + Sync + std::fmt::Debug {
    /// The owed-results list.
    fn owed_store(&self) -> Box<dyn crate::results::OwedStore>;
    /// The login sessions.
    fn session_store(&self) -> std::sync::Arc<dyn crate::session::SealedStore>;
    /// The audit trail's copy.
    fn audit_lines(&self) -> tokio::sync::mpsc::Sender<String>;
}

/// The shared stores in PostgreSQL.
#[derive(Debug)]
pub(crate) struct PgShared {
    pub(crate) leadership: Leadership,
    pub(crate) db: Database,
    pub(crate) bot: String,
    /// This instance's identity (`instance_env`, or host name and pid).
    pub(crate) instance: String,
}

impl SharedStores for PgShared {
    fn owed_store(&self) -> Box<dyn crate::results::OwedStore> {
        Box::new(owed_store::PgOwedStore::new(self))
    }

    fn session_store(&self) -> std::sync::Arc<dyn crate::session::SealedStore> {
        session_store::PgSessionStore::new(self)
    }

    fn audit_lines(&self) -> tokio::sync::mpsc::Sender<String> {
        audit_store::start(self)
    }
}

/// [`start`] as a [`crate::linked::HaStart`], for [`crate::linked::HA`].
pub(crate) fn start_boxed<'a>(
    spec: &'a HaSpec,
    bot: &'a str,
    shutdown: CancellationToken,
) -> crate::backend::BoxFuture<'a, Result<Ha, crate::linked::StartError>> {
    Box::pin(async move { Ok(start(spec, bot, shutdown).await?) })
}

/// How long start-up waits for the database (connection and migrations).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Connects, migrates the schema, and starts the lease loop (as a standby; it leads once
/// the database gives it the lease). Runs until `shutdown`, then releases the lease.
pub async fn start(spec: &HaSpec, bot: &str, shutdown: CancellationToken) -> Result<Ha, HaError> {
    let instance = instance_name(&spec.instance_env);
    let connect_timeout = (spec.lease / 3).max(Duration::from_secs(1));
    let db = Database::from_spec(spec, &format!("st2bot-{bot}"), connect_timeout)?;
    let hosts = db.describe();
    let database = |source| HaError::Database {
        hosts: hosts.clone(),
        source,
    };
    tokio::time::timeout(START_TIMEOUT, async {
        let mut client = db.connect("migrations").await.map_err(database)?;
        db::migrate(&mut client).await.map_err(database)
    })
    .await
    .map_err(|_| HaError::Timeout {
        hosts: hosts.clone(),
        seconds: START_TIMEOUT.as_secs(),
    })??;
    tracing::info!(instance = %instance, database = %hosts, lease_ms = spec.lease.as_millis() as u64, schema = db::schema_version(), "high availability: standing by for the lease");
    let leadership = Leadership::new_standby(instance.clone());
    let task = tokio::spawn(lease::run(
        leadership.clone(),
        db.clone(),
        lease::LeaseSettings {
            bot: bot.to_owned(),
            instance: instance.clone(),
            lease: spec.lease,
        },
        shutdown,
    ));
    Ok(Ha {
        leadership: leadership.clone(),
        task,
        stores: Box::new(PgShared {
            leadership,
            db,
            bot: bot.to_owned(),
            instance,
        }),
    })
}

/// The instance's name: the variable `env` when set and not empty, else
/// `<hostname>-<pid>`.
fn instance_name(env: &str) -> String {
    if let Ok(name) = std::env::var(env) {
        let name = name.trim();
        if !name.is_empty() {
            return name.chars().take(200).collect();
        }
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".to_owned());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_name_defaults_to_host_and_pid() {
        let name = instance_name("ST2BOT_TEST_INSTANCE_THAT_IS_NEVER_SET");
        assert!(
            name.ends_with(&format!("-{}", std::process::id())),
            "{name}"
        );
        assert!(name.len() > format!("-{}", std::process::id()).len());
    }

    #[test]
    fn a_single_instance_always_leads() {
        let single = Leadership::single();
        assert!(single.is_leader());
        assert_eq!(single.fencing_token(), None);
        assert!(single.status().is_none());
        let standby = Leadership::new_standby("a".into());
        assert!(!standby.is_leader());
    }
}
