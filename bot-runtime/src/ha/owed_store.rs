//! The results the leader still owes, in PostgreSQL: the [`OwedStore`] that the instances
//! of one bot share (table `st2bot_owed_results`, keyed by bot and execution id, the record
//! as `jsonb` in [`OwedExecution`]'s serde form). A standby that takes over reloads the list
//! ([`crate::results::Ledger::reload`]) and runs a recovery pass, so it posts the results the
//! dead leader was waiting for, once.
//!
//! [`OwedStore`]'s writes are synchronous calls made from async code; this store never
//! waits on the network in them. A write takes the fencing token of the current term and
//! goes into a bounded queue; one writer task applies the queue in order (a record is never
//! overwritten by an older state of itself), each write fenced as the session store's are:
//! the database applies it only while that term's lease is live, so a deposed leader (cut
//! off, or frozen past its lease) cannot write. A write refused, failed or dropped because
//! the queue is full is logged; the record stays in the leader's memory, and the next write
//! of the same record carries it whole. A standby does not write at all.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::Client;

use super::Leadership;
use super::db::{CallError, Connection};
use crate::results::{OwedExecution, OwedLoad, OwedStore, OwedStoreError};

/// How long one database call of the store may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Writes waiting for the database, at most (past it, new ones are dropped and logged).
const MAX_QUEUED: usize = 4096;

const PUT: &str = "
    INSERT INTO st2bot_owed_results (bot, execution_id, record, updated_at)
    SELECT $1, $2, $3::text::jsonb, now()
    WHERE EXISTS (SELECT 1 FROM st2bot_leases WHERE bot = $1 AND token = $4 AND expires_at > now())
    ON CONFLICT (bot, execution_id) DO UPDATE SET record = EXCLUDED.record, updated_at = now()";

const REMOVE: &str = "
    WITH fence AS (
        SELECT 1 FROM st2bot_leases WHERE bot = $1 AND token = $3 AND expires_at > now()
    ), removed AS (
        DELETE FROM st2bot_owed_results
        WHERE bot = $1 AND execution_id = ANY($2) AND EXISTS (SELECT 1 FROM fence)
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM fence)";

const LOAD: &str = "SELECT execution_id, record::text FROM st2bot_owed_results WHERE bot = $1";

/// One queued write, with the fencing token of the term that made it.
#[derive(Debug)]
enum Write {
    Put {
        execution_id: String,
        record: String,
        token: i64,
    },
    Remove {
        execution_ids: Vec<String>,
        token: i64,
    },
}

/// The shared owed-results store.
pub(crate) struct PgOwedStore {
    bot: String,
    hosts: String,
    leadership: Leadership,
    reader: Arc<tokio::sync::Mutex<Connection>>,
    writes: mpsc::Sender<Write>,
}

impl std::fmt::Debug for PgOwedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOwedStore")
            .field("bot", &self.bot)
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

impl PgOwedStore {
    /// The store of the bot `ha` runs; starts its writer task.
    pub(crate) fn new(ha: &super::PgShared) -> Self {
        let (writes, queue) = mpsc::channel(MAX_QUEUED);
        tokio::spawn(writer(ha.db.clone(), ha.bot.clone(), queue));
        Self {
            bot: ha.bot.clone(),
            hosts: ha.db.describe(),
            leadership: ha.leadership.clone(),
            reader: Arc::new(tokio::sync::Mutex::new(Connection::new(
                ha.db.clone(),
                "owed results",
                CALL_TIMEOUT,
            ))),
            writes,
        }
    }

    fn error(&self, e: CallError) -> OwedStoreError {
        let source: Box<dyn std::error::Error + Send + Sync> = match e {
            CallError::Postgres(e) => Box::new(e),
            CallError::Timeout(t) => format!("no answer within {}s", t.as_secs()).into(),
        };
        OwedStoreError::Database {
            path: format!("postgresql://{}", self.hosts),
            source,
        }
    }

    /// Queues a write made under the current term.
    fn queue(&self, write: impl FnOnce(i64) -> Write) -> Result<(), OwedStoreError> {
        let token = self
            .leadership
            .fencing_token()
            .ok_or(OwedStoreError::NotLeader)?;
        self.writes.try_send(write(token)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => OwedStoreError::QueueFull(MAX_QUEUED),
            mpsc::error::TrySendError::Closed(_) => OwedStoreError::Database {
                path: format!("postgresql://{}", self.hosts),
                source: "the writer task has stopped".into(),
            },
        })
    }
}

impl OwedStore for PgOwedStore {
    fn put(&self, record: &OwedExecution) -> Result<(), OwedStoreError> {
        let json = serde_json::to_string(record)?;
        self.queue(|token| Write::Put {
            execution_id: record.execution_id.clone(),
            record: json,
            token,
        })
    }

    fn remove(&self, execution_ids: &[&str]) -> Result<(), OwedStoreError> {
        self.queue(|token| Write::Remove {
            execution_ids: execution_ids.iter().map(|s| (*s).to_owned()).collect(),
            token,
        })
    }

    fn load(&self) -> OwedLoad<'_> {
        Box::pin(async move {
            let rows = self
                .reader
                .lock()
                .await
                .call(async |c: &mut Client| c.query(LOAD, &[&self.bot]).await)
                .await
                .map_err(|e| self.error(e))?;
            let mut records = Vec::with_capacity(rows.len());
            for row in rows {
                let execution_id: String = row.get(0);
                let json: String = row.get(1);
                match serde_json::from_str::<OwedExecution>(&json) {
                    Ok(record) => records.push(record),
                    Err(e) => tracing::warn!(
                        execution = %execution_id,
                        error = %e,
                        "an owed-result record in the database cannot be decoded; skipped"
                    ),
                }
            }
            Ok(records)
        })
    }
}

/// Applies the queued writes in order, each fenced by its term's token.
async fn writer(db: super::Database, bot: String, mut queue: mpsc::Receiver<Write>) {
    let mut connection = Connection::new(db, "owed-result writes", CALL_TIMEOUT);
    while let Some(write) = queue.recv().await {
        let applied = connection
            .call(async |c: &mut Client| match &write {
                Write::Put {
                    execution_id,
                    record,
                    token,
                } => Ok(c.execute(PUT, &[&bot, execution_id, record, token]).await? == 1),
                Write::Remove {
                    execution_ids,
                    token,
                } => {
                    let fenced: i64 = c
                        .query_one(REMOVE, &[&bot, execution_ids, token])
                        .await?
                        .get(0);
                    Ok(fenced == 1)
                }
            })
            .await;
        match applied {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                "the leadership term that made an owed-result write is over; the write was refused"
            ),
            Err(CallError::Postgres(e)) => {
                tracing::error!(error = %e, "cannot write an owed result to the shared store")
            }
            Err(CallError::Timeout(t)) => tracing::error!(
                seconds = t.as_secs(),
                "cannot write an owed result to the shared store: no answer in time"
            ),
        }
    }
}
