//! The audit trail in PostgreSQL under `ha:`: every line [`crate::audit::AuditTrail`]
//! writes to its file or standard output is also appended to table `st2bot_audit` (bot,
//! instance, time, the line as `jsonb`), so the trail of a pair of instances is one
//! sequence whichever of them led, and survives the machine that wrote it.
//!
//! Recording never waits on the network: a line goes into a bounded queue and one writer
//! task inserts the queue in order. When the database is away the lines still reach the
//! file or standard output; those that cannot be inserted are counted and the loss is
//! logged once per outage (a standby records nothing: only the leader answers).

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::Client;

use super::db::Connection;

/// How long one insert may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Lines waiting for the database, at most (past it, new ones skip the database).
pub(crate) const MAX_QUEUED: usize = 4096;

const INSERT: &str =
    "INSERT INTO st2bot_audit (bot, instance, line) VALUES ($1, $2, $3::text::jsonb)";

/// Starts the writer task of bot `ha` runs; lines sent to the returned queue are inserted.
pub(crate) fn start(ha: &super::PgShared) -> mpsc::Sender<String> {
    let (lines, queue) = mpsc::channel(MAX_QUEUED);
    tokio::spawn(writer(
        Connection::new(ha.db.clone(), "audit trail", CALL_TIMEOUT),
        ha.bot.clone(),
        ha.instance.clone(),
        queue,
    ));
    lines
}

/// Inserts the queued lines in order; a line the database refuses or cannot take in time
/// is dropped (it is in the file or on standard output) and the outage logged once.
async fn writer(
    mut connection: Connection,
    bot: String,
    instance: String,
    mut queue: mpsc::Receiver<String>,
) {
    let mut lost = 0u64;
    while let Some(line) = queue.recv().await {
        let inserted = connection
            .call(async |c: &mut Client| c.execute(INSERT, &[&bot, &instance, &line]).await)
            .await;
        match inserted {
            Ok(_) if lost > 0 => {
                tracing::warn!(
                    lost,
                    "audit trail: the database is back; lines written meanwhile are only in the file or on standard output"
                );
                lost = 0;
            }
            Ok(_) => {}
            Err(e) => {
                if lost == 0 {
                    tracing::warn!(error = ?e, "audit trail: cannot write to the database; lines go to the file or standard output only until it is back");
                }
                lost += 1;
            }
        }
    }
}
