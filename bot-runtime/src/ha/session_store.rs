//! Login sessions in PostgreSQL: the [`SealedStore`] that the instances of one bot share.
//!
//! Records are sealed by `session::store` exactly as in the redb file (same key handling,
//! same key check); this module only moves the bytes. Tables `st2bot_session_meta` and
//! `st2bot_sessions`, keyed by the bot's name, so several bots may share a database.
//!
//! Writes are fenced: each carries the fencing token of the leader's term, and the
//! database applies it only while that term's lease is live. A leader cut off from the
//! database, or frozen past its lease, cannot overwrite what its successor wrote. Writes go
//! through one task in the order they were made (a logout followed by a login never ends
//! with the logout applied last).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_postgres::Client;

use super::Leadership;
use super::db::{CallError, Connection};
use crate::session::{SealedStore, StoreError, StoreFuture, StoredMeta};

/// How long one database call of the store may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

const PUT: &str = "
    INSERT INTO st2bot_sessions (bot, user_id, sealed, updated_at)
    SELECT $1, $2, $3, now()
    WHERE EXISTS (SELECT 1 FROM st2bot_leases WHERE bot = $1 AND token = $4 AND expires_at > now())
    ON CONFLICT (bot, user_id) DO UPDATE SET sealed = EXCLUDED.sealed, updated_at = now()";

const REMOVE: &str = "
    WITH fence AS (
        SELECT 1 FROM st2bot_leases WHERE bot = $1 AND token = $3 AND expires_at > now()
    ), removed AS (
        DELETE FROM st2bot_sessions
        WHERE bot = $1 AND user_id = ANY($2) AND EXISTS (SELECT 1 FROM fence)
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM fence), (SELECT count(*) FROM removed)";

/// One queued write.
enum WriteOp {
    Put { user_id: String, sealed: Vec<u8> },
    Remove { user_ids: Vec<String> },
}

struct Write {
    op: WriteOp,
    token: i64,
    done: oneshot::Sender<Result<usize, StoreError>>,
}

/// The shared session store.
pub(crate) struct PgSessionStore {
    bot: String,
    hosts: String,
    leadership: Leadership,
    reader: Mutex<Connection>,
    writes: mpsc::UnboundedSender<Write>,
}

impl PgSessionStore {
    /// The store of `bot`; starts its writer task.
    pub(crate) fn new(ha: &super::PgShared) -> Arc<Self> {
        let (writes, queue) = mpsc::unbounded_channel();
        tokio::spawn(writer(ha.db.clone(), ha.bot.clone(), queue));
        Arc::new(Self {
            bot: ha.bot.clone(),
            hosts: ha.db.describe(),
            leadership: ha.leadership.clone(),
            reader: Mutex::new(Connection::new(ha.db.clone(), "sessions", CALL_TIMEOUT)),
            writes,
        })
    }

    /// Queues a write under the current term; refused at once on a standby.
    fn write(&self, op: WriteOp) -> StoreFuture<'static, usize> {
        let Some(token) = self.leadership.fencing_token() else {
            return Box::pin(std::future::ready(Err(StoreError::NotLeader)));
        };
        let (done, result) = oneshot::channel();
        if self.writes.send(Write { op, token, done }).is_err() {
            return Box::pin(std::future::ready(Err(StoreError::WriterGone)));
        }
        Box::pin(async move { result.await.unwrap_or(Err(StoreError::WriterGone)) })
    }

    /// Runs `f` on the reading connection (connecting when needed), within the timeout.
    async fn read<T>(
        &self,
        f: impl AsyncFnOnce(&mut Client) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, StoreError> {
        self.reader.lock().await.call(f).await.map_err(store_error)
    }
}

/// A failed database call, as the session store reports it.
fn store_error(e: CallError) -> StoreError {
    match e {
        CallError::Postgres(e) => StoreError::Postgres(Box::new(e)),
        CallError::Timeout(t) => StoreError::Timeout(t),
    }
}

impl SealedStore for PgSessionStore {
    fn describe(&self) -> String {
        format!("postgresql://{}", self.hosts)
    }

    fn meta(&self) -> StoreFuture<'_, Option<StoredMeta>> {
        Box::pin(self.read(async |c: &mut Client| {
            let row = c
                .query_opt(
                    "SELECT salt, key_check FROM st2bot_session_meta WHERE bot = $1",
                    &[&self.bot],
                )
                .await?;
            Ok(row.map(|r| StoredMeta {
                salt: r.get(0),
                key_check: r.get(1),
            }))
        }))
    }

    fn reset<'a>(
        &'a self,
        previous: Option<&'a StoredMeta>,
        new: &'a StoredMeta,
    ) -> StoreFuture<'a, bool> {
        Box::pin(self.read(async move |c: &mut Client| {
            let tx = c.transaction().await?;
            let current = tx
                .query_opt(
                    "SELECT salt, key_check FROM st2bot_session_meta WHERE bot = $1 FOR UPDATE",
                    &[&self.bot],
                )
                .await?
                .map(|r| StoredMeta {
                    salt: r.get(0),
                    key_check: r.get(1),
                });
            if current.as_ref() != previous {
                return Ok(false);
            }
            let written = if current.is_none() {
                tx.execute(
                    "INSERT INTO st2bot_session_meta (bot, salt, key_check) VALUES ($1, $2, $3)
                     ON CONFLICT (bot) DO NOTHING",
                    &[&self.bot, &new.salt, &new.key_check],
                )
                .await?
            } else {
                tx.execute(
                    "UPDATE st2bot_session_meta SET salt = $2, key_check = $3 WHERE bot = $1",
                    &[&self.bot, &new.salt, &new.key_check],
                )
                .await?
            };
            if written != 1 {
                // Another instance created it meanwhile.
                return Ok(false);
            }
            tx.execute("DELETE FROM st2bot_sessions WHERE bot = $1", &[&self.bot])
                .await?;
            tx.commit().await?;
            Ok(true)
        }))
    }

    fn all(&self) -> StoreFuture<'_, Vec<(String, Vec<u8>)>> {
        Box::pin(self.read(async |c: &mut Client| {
            let rows = c
                .query(
                    "SELECT user_id, sealed FROM st2bot_sessions WHERE bot = $1",
                    &[&self.bot],
                )
                .await?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        }))
    }

    fn put<'a>(&'a self, user_id: &'a str, sealed: Vec<u8>) -> StoreFuture<'a, ()> {
        let written = self.write(WriteOp::Put {
            user_id: user_id.to_owned(),
            sealed,
        });
        Box::pin(async move { written.await.map(|_| ()) })
    }

    fn remove<'a>(&'a self, user_ids: &'a [&'a str]) -> StoreFuture<'a, usize> {
        self.write(WriteOp::Remove {
            user_ids: user_ids.iter().map(|s| (*s).to_owned()).collect(),
        })
    }

    fn clean(&self, user_ids: Vec<String>) -> StoreFuture<'_, usize> {
        Box::pin(self.read(async move |c: &mut Client| {
            let n = c
                .execute(
                    "DELETE FROM st2bot_sessions WHERE bot = $1 AND user_id = ANY($2)",
                    &[&self.bot, &user_ids],
                )
                .await?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        }))
    }
}

/// Applies the queued writes in order, each fenced by its term's token.
async fn writer(db: super::Database, bot: String, mut queue: mpsc::UnboundedReceiver<Write>) {
    let mut connection = Connection::new(db, "session writes", CALL_TIMEOUT);
    while let Some(write) = queue.recv().await {
        let result = connection
            .call(async |c: &mut Client| match &write.op {
                WriteOp::Put { user_id, sealed } => {
                    let n = c
                        .execute(PUT, &[&bot, user_id, sealed, &write.token])
                        .await?;
                    Ok(if n == 1 { Some(1) } else { None })
                }
                WriteOp::Remove { user_ids } => {
                    let row = c.query_one(REMOVE, &[&bot, user_ids, &write.token]).await?;
                    let fenced: i64 = row.get(0);
                    let removed: i64 = row.get(1);
                    Ok((fenced == 1).then(|| usize::try_from(removed).unwrap_or(0)))
                }
            })
            .await;
        let result = match result {
            Ok(Some(n)) => Ok(n),
            Ok(None) => Err(StoreError::NotLeader),
            Err(e) => Err(store_error(e)),
        };
        if let Err(e) = &result {
            tracing::error!(error = %e, "cannot write a session to the shared store");
        }
        // The caller may have stopped waiting (a delete made in passing): fine.
        let _ = write.done.send(result);
    }
}
