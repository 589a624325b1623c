//! PostgreSQL connections and the schema migrations.
//!
//! [`Database`] holds the parsed connection settings (never the URL text: it holds a
//! password) and opens connections, each driven by its own task. [`migrate`] brings the
//! schema up to date at start-up; every migration is additive, so instances of an older
//! executable keep working during a rolling upgrade.

use std::time::Duration;

use bot_config::{HaSpec, PgTls};
use tokio_postgres::Client;
use tokio_postgres::config::{Host, SslMode};

use super::HaError;
use super::pg_tls::RustlsConnect;
use crate::secret;

/// Serialises concurrent migrations (two instances starting together): the key of the
/// transaction-level advisory lock taken while migrating.
const MIGRATION_LOCK: i64 = 0x5354_3242_4f54; // "ST2BOT"

/// One schema change, applied once, in order, inside the migration transaction.
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

/// The schema, as a list of changes. Append; never edit an applied one.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "leadership lease, shared sessions",
        sql: "
        CREATE TABLE st2bot_leases (
            bot         text PRIMARY KEY,
            holder      text NOT NULL,
            token       bigint NOT NULL,
            acquired_at timestamptz NOT NULL,
            renewed_at  timestamptz NOT NULL,
            expires_at  timestamptz NOT NULL
        );
        CREATE TABLE st2bot_session_meta (
            bot       text PRIMARY KEY,
            salt      bytea NOT NULL,
            key_check bytea NOT NULL
        );
        CREATE TABLE st2bot_sessions (
            bot        text NOT NULL,
            user_id    text NOT NULL,
            sealed     bytea NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (bot, user_id)
        );
    ",
    },
    Migration {
        version: 2,
        name: "owed results shared by the instances",
        sql: "
        CREATE TABLE st2bot_owed_results (
            bot          text NOT NULL,
            execution_id text NOT NULL,
            record       jsonb NOT NULL,
            updated_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (bot, execution_id)
        );
    ",
    },
    Migration {
        version: 3,
        name: "the audit trail shared by the instances",
        sql: "
        CREATE TABLE st2bot_audit (
            id        bigserial PRIMARY KEY,
            bot       text NOT NULL,
            instance  text NOT NULL,
            logged_at timestamptz NOT NULL DEFAULT now(),
            line      jsonb NOT NULL
        );
        CREATE INDEX st2bot_audit_bot_logged_at ON st2bot_audit (bot, logged_at);
    ",
    },
];

/// The latest schema version this executable knows.
pub(crate) fn schema_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// How to reach the database.
#[derive(Clone)]
pub(crate) struct Database {
    config: tokio_postgres::Config,
    tls: Option<RustlsConnect>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config holds the password: show where, never how.
        f.debug_struct("Database")
            .field("hosts", &self.describe())
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Resolves the URL secret and prepares TLS. Every connection attempt is bounded by
    /// `connect_timeout`.
    pub(crate) fn from_spec(
        spec: &HaSpec,
        application: &str,
        connect_timeout: Duration,
    ) -> Result<Self, HaError> {
        let url = secret::resolve(&spec.database_url).map_err(HaError::Url)?;
        let mut config: tokio_postgres::Config =
            url.expose()
                .parse()
                .map_err(|e: tokio_postgres::Error| HaError::BadUrl {
                    reason: e.to_string(),
                })?;
        drop(url);
        config
            .application_name(application)
            .connect_timeout(connect_timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30));
        let tls = match spec.tls {
            PgTls::Disable => {
                config.ssl_mode(SslMode::Disable);
                let remote = config.get_hosts().iter().any(|h| match h {
                    Host::Tcp(name) => !is_loopback_name(name),
                    Host::Unix(_) => false,
                });
                if remote {
                    tracing::warn!(hosts = %describe_hosts(&config), "ha.tls is `disable`: the database password and the session records cross the network without TLS");
                }
                None
            }
            PgTls::VerifyFull => {
                config.ssl_mode(SslMode::Require);
                let client = crate::tls::client_config(spec.ca_file.as_deref())
                    .map_err(|e| HaError::Tls(e.to_string()))?;
                Some(RustlsConnect::new(client))
            }
        };
        Ok(Self { config, tls })
    }

    /// Host names and ports, for logs and errors (no user, no password).
    pub(crate) fn describe(&self) -> String {
        describe_hosts(&self.config)
    }

    /// Opens a connection; its driver runs as a task until the client is dropped or the
    /// connection breaks. `purpose` names it in logs.
    pub(crate) async fn connect(
        &self,
        purpose: &'static str,
    ) -> Result<Client, tokio_postgres::Error> {
        let client = match &self.tls {
            Some(tls) => {
                let (client, connection) = self.config.connect(tls.clone()).await?;
                tokio::spawn(drive(connection, purpose));
                client
            }
            None => {
                let (client, connection) = self.config.connect(tokio_postgres::NoTls).await?;
                tokio::spawn(drive(connection, purpose));
                client
            }
        };
        Ok(client)
    }
}

/// Why a [`Connection::call`] failed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The database (or the connection to it) failed.
    Postgres(tokio_postgres::Error),
    /// No answer within the bound.
    Timeout(Duration),
}

/// One lazily opened connection used for a sequence of calls (a store's reads, a store's
/// writer): connects when it has none or the previous one broke, bounds every call, and
/// drops the connection after a failure so the next call starts afresh.
pub(crate) struct Connection {
    db: Database,
    purpose: &'static str,
    timeout: Duration,
    client: Option<Client>,
}

impl Connection {
    /// Not connected yet; `purpose` names it in logs.
    pub(crate) fn new(db: Database, purpose: &'static str, timeout: Duration) -> Self {
        Self {
            db,
            purpose,
            timeout,
            client: None,
        }
    }

    /// Runs `f` on the connection (connecting first when needed), within the timeout.
    pub(crate) async fn call<T>(
        &mut self,
        f: impl AsyncFnOnce(&mut Client) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, CallError> {
        let result = tokio::time::timeout(self.timeout, async {
            if self.client.as_ref().is_none_or(Client::is_closed) {
                self.client = Some(self.db.connect(self.purpose).await?);
            }
            f(self.client.as_mut().expect("connected above")).await
        })
        .await;
        match result {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                self.client = None;
                Err(CallError::Postgres(e))
            }
            Err(_) => {
                self.client = None;
                Err(CallError::Timeout(self.timeout))
            }
        }
    }
}

/// Runs a connection until it ends, logging why it broke.
async fn drive<F>(connection: F, purpose: &'static str)
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>>,
{
    if let Err(e) = connection.await {
        tracing::warn!(connection = purpose, error = %e, "PostgreSQL connection lost");
    }
}

fn describe_hosts(config: &tokio_postgres::Config) -> String {
    let ports = config.get_ports();
    config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match h {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn is_loopback_name(name: &str) -> bool {
    name == "localhost"
        || name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Applies the migrations this database lacks, in one transaction under an advisory lock
/// (concurrent starts wait for each other). A database migrated by a newer executable is
/// used as it is, with a warning: migrations only add.
pub(crate) async fn migrate(client: &mut Client) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS st2bot_migrations (
            version    integer PRIMARY KEY,
            name       text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await?;
    let applied: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM st2bot_migrations",
            &[],
        )
        .await?
        .get(0);
    for m in MIGRATIONS.iter().filter(|m| m.version > applied) {
        tx.batch_execute(m.sql).await?;
        tx.execute(
            "INSERT INTO st2bot_migrations (version, name) VALUES ($1, $2)",
            &[&m.version, &m.name],
        )
        .await?;
        tracing::info!(
            version = m.version,
            name = m.name,
            "database migration applied"
        );
    }
    tx.commit().await?;
    if applied > schema_version() {
        tracing::warn!(
            database = applied,
            executable = schema_version(),
            "the database schema is newer than this executable; upgrade this instance"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1, "{}", m.name);
        }
    }

    #[test]
    fn loopback_names() {
        assert!(is_loopback_name("localhost"));
        assert!(is_loopback_name("127.0.0.1"));
        assert!(is_loopback_name("[::1]"));
        assert!(!is_loopback_name("db.example.com"));
        assert!(!is_loopback_name("10.0.0.5"));
    }
}
