//! The persistent session store: sealed records behind the [`SealedStore`] trait, with two
//! implementations — [`RedbStore`] here (one file, the single-instance default) and the
//! PostgreSQL store of `crate::ha::session_store` (shared by the instances of a bot).
//!
//! [`SessionStore`] owns what both share: the record format, the sealing (ChaCha20-Poly1305
//! under a key derived from `encryption_key` and the store's salt), the key check, and the
//! clean-up rules. A store holds:
//!
//! - meta: `salt` (32 random bytes, the HKDF salt of this store) and `key_check` (a known
//!   value sealed with the current key: tells "the key changed" from "a record is damaged");
//! - sessions: chat user id → sealed JSON record (StackStorm user, token, dates). The whole
//!   record is encrypted, with the user id as associated data.
//!
//! - owed (redb only): execution id → JSON [`OwedExecution`] (the results the bot still
//!   owes, see `crate::results`), through [`RedbOwedStore`]. Not encrypted: no secret in it
//!   (room, user and message ids). The same table serves a standalone
//!   `stackstorm.results_store`. The PostgreSQL store has no such table yet: under `ha:` the
//!   owed results live in `results_store` or in memory.
//!
//! Opening with another key than the one the store was written with cannot decrypt anything:
//! the stored sessions are dropped with a warning and the store continues under the new
//! key. Damaged records are dropped one by one. Nothing here panics on bad data.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::FutureExt as _;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use secrecy::zeroize::Zeroizing;
use serde::{Deserialize, Serialize};

use super::crypto::{CryptoError, StoreCipher, random_bytes};
use crate::results::{OwedExecution, OwedStore, OwedStoreError};
use crate::secret::Secret;

const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
const SESSIONS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("sessions");
const OWED: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("owed");
const SALT_KEY: &str = "salt";
const KEY_CHECK_KEY: &str = "key_check";
const KEY_CHECK_CONTEXT: &[u8] = b"key-check";
const KEY_CHECK_VALUE: &[u8] = b"st2bot session store";

/// How a session's StackStorm credential was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginMethod {
    /// Username and password exchanged for a token at `POST /auth/v1/tokens`.
    Password,
    /// An existing token pasted into the page and checked with `GET /api/v1/user`.
    Token,
}

/// What is known about a bound session, without its token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// The chat user's id (the key).
    pub user_id: String,
    /// The chat user's display name when the session was made.
    pub user_name: String,
    /// The StackStorm user the token belongs to.
    pub st2_user: String,
    /// How the credential was obtained.
    pub method: LoginMethod,
    /// When the session was bound.
    pub created: SystemTime,
    /// When it stops being used: the earlier of the session lifetime and the token's expiry.
    pub expires: SystemTime,
}

impl SessionInfo {
    /// Whether `now` is past the expiry.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        now >= self.expires
    }
}

/// A bound session: its description and its StackStorm token.
#[derive(Clone)]
pub(crate) struct Session {
    pub(crate) info: SessionInfo,
    pub(crate) token: Secret,
}

/// The stored form, serialized then sealed. Private to the store.
#[derive(Serialize, Deserialize)]
struct Record {
    user_name: String,
    st2_user: String,
    method: LoginMethod,
    created_unix: u64,
    expires_unix: u64,
    token: String,
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The file could not be created, opened or written.
    #[error("session store `{path}`: {source}")]
    Database {
        /// The store's path.
        path: String,
        /// The database error (boxed: only the store that fails names its type, so a bot
        /// without a session file does not link redb for this enum).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A record could not be encrypted (random source failure).
    #[error("session store: {0}")]
    Crypto(#[from] CryptoError),
    /// A record could not be serialized.
    #[error("session store: cannot encode a record: {0}")]
    Encode(#[from] serde_json::Error),
    /// The PostgreSQL store failed.
    #[error("session store in PostgreSQL: {0}")]
    Postgres(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The PostgreSQL store did not answer in time.
    #[error("session store in PostgreSQL: no answer within {0:?}")]
    Timeout(Duration),
    /// A write was refused because this instance no longer leads (another term began).
    #[error("session store: this instance is not the leader; the write was refused")]
    NotLeader,
    /// Other instances kept changing the store's key check while this one opened it.
    #[error(
        "session store: the key check kept changing while opening (do all instances use the same encryption key?)"
    )]
    Contended,
    /// The store's writer stopped (the bot is shutting down).
    #[error("session store: the writer has stopped")]
    WriterGone,
    /// A store that must answer at once did not (a bug, reported rather than a hang).
    #[error("session store `{0}` did not complete synchronously")]
    NotSynchronous(String),
}

/// A store's salt and key check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredMeta {
    /// HKDF salt.
    pub(crate) salt: Vec<u8>,
    /// [`KEY_CHECK_VALUE`] sealed under the current key.
    pub(crate) key_check: Vec<u8>,
}

/// What a store operation returns.
pub(crate) type StoreFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Where sealed session records are kept. Implementations only move bytes; sealing, the
/// key check and the clean-up rules are [`SessionStore`]'s.
///
/// Writes (`put`, `remove`) take effect in the order they are *called*, even when their
/// futures are polled later or dropped: callers that cannot wait (an expired session
/// found during a lookup) drop the future, and a later write must not overtake them.
pub(crate) trait SealedStore: Send + Sync {
    /// Where the store is, for logs (a path, or the database's hosts).
    fn describe(&self) -> String;
    /// The salt and key check, when the store has them.
    fn meta(&self) -> StoreFuture<'_, Option<StoredMeta>>;
    /// Deletes every record and sets `new`, provided the meta is still `previous`; `false`
    /// when another instance changed it first (read it again).
    fn reset<'a>(
        &'a self,
        previous: Option<&'a StoredMeta>,
        new: &'a StoredMeta,
    ) -> StoreFuture<'a, bool>;
    /// Every record: chat user id and sealed bytes.
    fn all(&self) -> StoreFuture<'_, Vec<(String, Vec<u8>)>>;
    /// Writes (or replaces) one record.
    fn put<'a>(&'a self, user_id: &'a str, sealed: Vec<u8>) -> StoreFuture<'a, ()>;
    /// Deletes these records; how many existed.
    fn remove<'a>(&'a self, user_ids: &'a [&'a str]) -> StoreFuture<'a, usize>;
    /// Deletes records found expired or unreadable while loading (housekeeping that any
    /// instance may do, unlike `remove`, which may be reserved to the leader).
    fn clean(&self, user_ids: Vec<String>) -> StoreFuture<'_, usize>;
    /// The owed-results table in the same place, where the store has one.
    fn owed_store(&self) -> Option<RedbOwedStore> {
        None
    }
}

/// What [`SessionStore::open`] found in the store.
#[derive(Default)]
pub(crate) struct Loaded {
    /// Live sessions, by chat user id.
    pub(crate) sessions: HashMap<String, Session>,
    /// Sessions dropped because the key changed.
    pub(crate) dropped_for_key: usize,
    /// Sessions dropped because their record could not be read.
    pub(crate) dropped_damaged: usize,
    /// Sessions dropped because they had expired.
    pub(crate) dropped_expired: usize,
}

/// Sealed sessions in a [`SealedStore`].
pub(crate) struct SessionStore {
    backend: Arc<dyn SealedStore>,
    cipher: StoreCipher,
}

impl SessionStore {
    /// The owed-results table in the same place, where the store has one (redb).
    pub(crate) fn owed(&self) -> Option<RedbOwedStore> {
        self.backend.owed_store()
    }

    /// Opens (creating if needed) the redb store at `path`: see [`SessionStore::open`].
    /// The redb store never waits, so this completes at once.
    pub(crate) fn open_file(path: &Path, key: &Secret) -> Result<(Self, Loaded), StoreError> {
        let backend: Arc<dyn SealedStore> = Arc::new(RedbStore::open(path)?);
        Self::open(backend, key)
            .now_or_never()
            .unwrap_or_else(|| Err(StoreError::NotSynchronous(path.display().to_string())))
    }

    /// Derives the record key from `key` and the store's salt, and loads every live
    /// session, dropping (with a log line) those it cannot read. A new store, or one
    /// written under another key, is reset: its salt and key check are written and its
    /// records (unreadable under this key) deleted.
    pub(crate) async fn open(
        backend: Arc<dyn SealedStore>,
        key: &Secret,
    ) -> Result<(Self, Loaded), StoreError> {
        let place = backend.describe();
        // Two instances may open a new shared store together: the second one's reset is
        // refused and it reads the first one's salt. Three rounds are plenty.
        for _ in 0..3 {
            let meta = backend.meta().await?;
            let salt = match &meta {
                Some(m) if !m.salt.is_empty() => m.salt.clone(),
                _ => random_bytes::<32>()?.to_vec(),
            };
            let cipher = StoreCipher::derive(key, &salt)?;
            let key_matches = meta
                .as_ref()
                .map(|m| cipher.open(KEY_CHECK_CONTEXT, &m.key_check).is_ok());
            let store = Self {
                backend: backend.clone(),
                cipher,
            };
            if key_matches == Some(true) {
                let loaded = store.load().await?;
                return Ok((store, loaded));
            }
            // New store, or one written under another key: nothing in it is readable.
            let stale = backend.all().await?.len();
            let new_meta = StoredMeta {
                salt,
                key_check: store.cipher.seal(KEY_CHECK_CONTEXT, KEY_CHECK_VALUE)?,
            };
            if !backend.reset(meta.as_ref(), &new_meta).await? {
                continue;
            }
            let mut loaded = Loaded::default();
            if key_matches == Some(false) {
                loaded.dropped_for_key = stale;
                tracing::warn!(
                    store = %place,
                    dropped = stale,
                    "the session store was written with another encryption key; its sessions cannot be read and were dropped (users must log in again)"
                );
            } else if stale > 0 {
                loaded.dropped_damaged = stale;
                tracing::warn!(
                    store = %place,
                    dropped = stale,
                    "the session store has no key check; its sessions were dropped"
                );
            }
            return Ok((store, loaded));
        }
        Err(StoreError::Contended)
    }

    /// Reads every session again (a standby that becomes the leader), dropping expired
    /// and unreadable records.
    pub(crate) async fn load(&self) -> Result<Loaded, StoreError> {
        let now = SystemTime::now();
        let mut loaded = Loaded::default();
        let mut remove = Vec::new();
        for (user_id, sealed) in self.backend.all().await? {
            match self.decode(&user_id, &sealed) {
                Some(session) if session.info.is_expired(now) => {
                    loaded.dropped_expired += 1;
                    remove.push(user_id);
                }
                Some(session) => {
                    loaded.sessions.insert(user_id, session);
                }
                None => {
                    loaded.dropped_damaged += 1;
                    tracing::warn!(store = %self.backend.describe(), user_id = %user_id, "a stored session cannot be decrypted or decoded; dropped (the user must log in again)");
                    remove.push(user_id);
                }
            }
        }
        if !remove.is_empty() {
            self.backend.clean(remove).await?;
        }
        Ok(loaded)
    }

    /// Writes (or replaces) a session. The write is ordered when this is called.
    pub(crate) fn put(&self, session: &Session) -> StoreFuture<'_, ()> {
        let sealed = match self.seal(session) {
            Ok(s) => s,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let user_id = session.info.user_id.clone();
        let backend = self.backend.clone();
        Box::pin(async move { backend.put(&user_id, sealed).await })
    }

    /// Deletes the sessions of these users; how many existed. The delete is ordered when
    /// this is called.
    pub(crate) fn remove<'a>(&'a self, user_ids: &'a [&'a str]) -> StoreFuture<'a, usize> {
        self.backend.remove(user_ids)
    }

    fn seal(&self, session: &Session) -> Result<Vec<u8>, StoreError> {
        let record = Record {
            user_name: session.info.user_name.clone(),
            st2_user: session.info.st2_user.clone(),
            method: session.info.method,
            created_unix: unix_seconds(session.info.created),
            expires_unix: unix_seconds(session.info.expires),
            token: session.token.expose().to_owned(),
        };
        let plain = Zeroizing::new(serde_json::to_vec(&record)?);
        drop(Zeroizing::new(record.token));
        Ok(self.cipher.seal(session.info.user_id.as_bytes(), &plain)?)
    }

    /// Decrypts and decodes one record; `None` when it cannot be read.
    fn decode(&self, user_id: &str, sealed: &[u8]) -> Option<Session> {
        let plain = self.cipher.open(user_id.as_bytes(), sealed).ok()?;
        let record: Record = serde_json::from_slice(&plain).ok()?;
        Some(Session {
            info: SessionInfo {
                user_id: user_id.to_owned(),
                user_name: record.user_name,
                st2_user: record.st2_user,
                method: record.method,
                created: from_unix_seconds(record.created_unix),
                expires: from_unix_seconds(record.expires_unix),
            },
            token: Secret::new(record.token),
        })
    }

    /// Reads one session back (tests; the manager serves from memory).
    #[cfg(test)]
    fn get(&self, user_id: &str) -> Option<Session> {
        let all = self.backend.all().now_or_never()?.ok()?;
        let (_, sealed) = all.into_iter().find(|(id, _)| id == user_id)?;
        self.decode(user_id, &sealed)
    }
}

/// The single-instance store: one redb file (pure Rust, no C, single-file, crash-safe
/// transactions) with the tables `meta` and `sessions`. Every operation completes before
/// its future is returned.
pub(crate) struct RedbStore {
    db: Arc<Database>,
    path: PathBuf,
}

impl RedbStore {
    /// Opens (creating, readable by its owner only) the file at `path`.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let db_err = |e: redb::Error| StoreError::Database {
            path: path.display().to_string(),
            source: Box::new(e),
        };
        prepare_file(path).map_err(|e| db_err(e.into()))?;
        let db = Arc::new(Database::create(path).map_err(|e| db_err(e.into()))?);
        Ok(Self {
            db,
            path: path.to_owned(),
        })
    }

    fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        let e: redb::Error = e.into();
        StoreError::Database {
            path: self.path.display().to_string(),
            source: Box::new(e),
        }
    }

    fn read_meta(&self) -> Result<Option<StoredMeta>, StoreError> {
        let read = self.db.begin_read().map_err(|e| self.err(e))?;
        let meta = match read.open_table(META) {
            Ok(meta) => meta,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.err(e)),
        };
        let get = |key| -> Result<Option<Vec<u8>>, StoreError> {
            Ok(meta
                .get(key)
                .map_err(|e| self.err(e))?
                .map(|v| v.value().to_vec()))
        };
        Ok(match (get(SALT_KEY)?, get(KEY_CHECK_KEY)?) {
            (Some(salt), Some(key_check)) => Some(StoredMeta { salt, key_check }),
            (Some(salt), None) => Some(StoredMeta {
                salt,
                key_check: Vec::new(),
            }),
            _ => None,
        })
    }

    fn write_reset(
        &self,
        previous: Option<&StoredMeta>,
        new: &StoredMeta,
    ) -> Result<bool, StoreError> {
        // redb locks the file: no other process changes it between read and write.
        if self.read_meta()?.as_ref() != previous {
            return Ok(false);
        }
        let write = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut meta = write.open_table(META).map_err(|e| self.err(e))?;
            let mut sessions = write.open_table(SESSIONS).map_err(|e| self.err(e))?;
            let stale: Vec<String> = sessions
                .iter()
                .map_err(|e| self.err(e))?
                .filter_map(|entry| entry.ok().map(|(k, _)| k.value().to_owned()))
                .collect();
            for user_id in &stale {
                sessions.remove(user_id.as_str()).map_err(|e| self.err(e))?;
            }
            meta.insert(SALT_KEY, new.salt.as_slice())
                .map_err(|e| self.err(e))?;
            meta.insert(KEY_CHECK_KEY, new.key_check.as_slice())
                .map_err(|e| self.err(e))?;
        }
        write.commit().map_err(|e| self.err(e))?;
        Ok(true)
    }

    fn read_all(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let read = self.db.begin_read().map_err(|e| self.err(e))?;
        let sessions = match read.open_table(SESSIONS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.err(e)),
        };
        let mut out = Vec::new();
        for entry in sessions.iter().map_err(|e| self.err(e))? {
            match entry {
                Ok((k, v)) => out.push((k.value().to_owned(), v.value().to_vec())),
                Err(e) => {
                    tracing::warn!(store = %self.path.display(), error = %e, "skipping an unreadable session entry");
                }
            }
        }
        Ok(out)
    }

    fn write_put(&self, user_id: &str, sealed: &[u8]) -> Result<(), StoreError> {
        let write = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut sessions = write.open_table(SESSIONS).map_err(|e| self.err(e))?;
            sessions.insert(user_id, sealed).map_err(|e| self.err(e))?;
        }
        write.commit().map_err(|e| self.err(e))?;
        Ok(())
    }

    fn write_remove(&self, user_ids: &[&str]) -> Result<usize, StoreError> {
        let write = self.db.begin_write().map_err(|e| self.err(e))?;
        let mut removed = 0;
        {
            let mut sessions = write.open_table(SESSIONS).map_err(|e| self.err(e))?;
            for user_id in user_ids {
                if sessions
                    .remove(*user_id)
                    .map_err(|e| self.err(e))?
                    .is_some()
                {
                    removed += 1;
                }
            }
        }
        write.commit().map_err(|e| self.err(e))?;
        Ok(removed)
    }
}

/// A finished result as a store future.
fn done<'a, T: Send + 'a>(result: Result<T, StoreError>) -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(result))
}

impl SealedStore for RedbStore {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn meta(&self) -> StoreFuture<'_, Option<StoredMeta>> {
        done(self.read_meta())
    }

    fn reset<'a>(
        &'a self,
        previous: Option<&'a StoredMeta>,
        new: &'a StoredMeta,
    ) -> StoreFuture<'a, bool> {
        done(self.write_reset(previous, new))
    }

    fn all(&self) -> StoreFuture<'_, Vec<(String, Vec<u8>)>> {
        done(self.read_all())
    }

    fn put<'a>(&'a self, user_id: &'a str, sealed: Vec<u8>) -> StoreFuture<'a, ()> {
        done(self.write_put(user_id, &sealed))
    }

    fn remove<'a>(&'a self, user_ids: &'a [&'a str]) -> StoreFuture<'a, usize> {
        done(self.write_remove(user_ids))
    }

    fn clean(&self, user_ids: Vec<String>) -> StoreFuture<'_, usize> {
        let ids: Vec<&str> = user_ids.iter().map(String::as_str).collect();
        done(self.write_remove(&ids))
    }

    fn owed_store(&self) -> Option<RedbOwedStore> {
        Some(RedbOwedStore {
            db: self.db.clone(),
            path: self.path.clone(),
        })
    }
}

/// The `owed` table: the results a bot still owes, in the session store's file or in a file
/// of its own (`stackstorm.results_store`).
pub struct RedbOwedStore {
    db: Arc<Database>,
    path: PathBuf,
}

impl std::fmt::Debug for RedbOwedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbOwedStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RedbOwedStore {
    /// Opens (creating if needed, owner-readable only) a file of its own.
    pub fn open(path: &Path) -> Result<Self, OwedStoreError> {
        let err = |e: redb::Error| OwedStoreError::Database {
            path: path.display().to_string(),
            source: Box::new(e),
        };
        prepare_file(path).map_err(|e| err(e.into()))?;
        let db = Database::create(path).map_err(|e| err(e.into()))?;
        Ok(Self {
            db: Arc::new(db),
            path: path.to_owned(),
        })
    }

    fn err(&self, e: impl Into<redb::Error>) -> OwedStoreError {
        let e: redb::Error = e.into();
        OwedStoreError::Database {
            path: self.path.display().to_string(),
            source: Box::new(e),
        }
    }
}

impl OwedStore for RedbOwedStore {
    fn put(&self, record: &OwedExecution) -> Result<(), OwedStoreError> {
        let bytes = serde_json::to_vec(record)?;
        let write = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut owed = write.open_table(OWED).map_err(|e| self.err(e))?;
            owed.insert(record.execution_id.as_str(), bytes.as_slice())
                .map_err(|e| self.err(e))?;
        }
        write.commit().map_err(|e| self.err(e))
    }

    fn remove(&self, execution_ids: &[&str]) -> Result<(), OwedStoreError> {
        let write = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut owed = write.open_table(OWED).map_err(|e| self.err(e))?;
            for id in execution_ids {
                owed.remove(*id).map_err(|e| self.err(e))?;
            }
        }
        write.commit().map_err(|e| self.err(e))
    }

    fn load(&self) -> crate::results::OwedLoad<'_> {
        Box::pin(std::future::ready(self.load_now()))
    }
}

impl RedbOwedStore {
    /// Every record in the table (one short read transaction).
    fn load_now(&self) -> Result<Vec<OwedExecution>, OwedStoreError> {
        let read = self.db.begin_read().map_err(|e| self.err(e))?;
        let owed = match read.open_table(OWED) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.err(e)),
        };
        let mut out = Vec::new();
        for entry in owed.iter().map_err(|e| self.err(e))? {
            let Ok((key, value)) = entry else {
                tracing::warn!(store = %self.path.display(), "skipping an unreadable owed-result entry");
                continue;
            };
            match serde_json::from_slice::<OwedExecution>(value.value()) {
                Ok(record) => out.push(record),
                Err(e) => tracing::warn!(
                    store = %self.path.display(),
                    execution = key.value(),
                    error = %e,
                    "an owed-result record cannot be decoded; skipped"
                ),
            }
        }
        Ok(out)
    }
}

/// Creates the file readable by its owner only (before redb initialises it), and warns
/// when an existing one is readable by others.
fn prepare_file(path: &Path) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                let mode = std::fs::metadata(path)?.permissions().mode();
                if mode & 0o077 != 0 {
                    tracing::warn!(store = %path.display(), mode = format!("{:o}", mode & 0o777), "the session store is readable by other users; consider chmod 600");
                }
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn from_unix_seconds(s: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_secs(s))
        .unwrap_or(UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "st2bot-store-{}-{}-{}",
            std::process::id(),
            name,
            crate::session::crypto::to_hex(&random_bytes::<4>().unwrap())
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("sessions.redb")
    }

    fn session(user_id: &str, token: &str, expires_in: Duration) -> Session {
        let now = SystemTime::now();
        Session {
            info: SessionInfo {
                user_id: user_id.to_owned(),
                user_name: format!("{user_id}-name"),
                st2_user: "st2admin".to_owned(),
                method: LoginMethod::Password,
                created: from_unix_seconds(unix_seconds(now)),
                expires: from_unix_seconds(unix_seconds(now + expires_in)),
            },
            token: Secret::new(token),
        }
    }

    const KEY: &str = "correct horse battery staple";

    fn put(store: &SessionStore, session: &Session) {
        store
            .put(session)
            .now_or_never()
            .expect("redb completes at once")
            .expect("written");
    }

    #[test]
    fn sessions_survive_reopening_and_are_encrypted_on_disk() {
        let path = temp_path("reopen");
        {
            let (store, loaded) = SessionStore::open_file(&path, &Secret::new(KEY)).unwrap();
            assert!(loaded.sessions.is_empty());
            put(
                &store,
                &session("U1", "tok-aaaaaaaaaaaaaaaa", Duration::from_secs(600)),
            );
            put(
                &store,
                &session("U2", "tok-bbbbbbbbbbbbbbbb", Duration::from_secs(600)),
            );
            assert_eq!(
                store.get("U1").unwrap().token.expose(),
                "tok-aaaaaaaaaaaaaaaa"
            );
        }
        let bytes = std::fs::read(&path).unwrap();
        for needle in [&b"tok-aaaaaaaaaaaaaaaa"[..], b"st2admin", b"U1-name"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} found in clear in the store file",
                String::from_utf8_lossy(needle)
            );
        }
        let (store, loaded) = SessionStore::open_file(&path, &Secret::new(KEY)).unwrap();
        assert_eq!(loaded.sessions.len(), 2);
        let u1 = &loaded.sessions["U1"];
        assert_eq!(u1.token.expose(), "tok-aaaaaaaaaaaaaaaa");
        assert_eq!(u1.info.st2_user, "st2admin");
        assert_eq!(u1.info.user_name, "U1-name");
        assert_eq!(
            store
                .remove(&["U1", "nobody"])
                .now_or_never()
                .unwrap()
                .unwrap(),
            1
        );
        assert!(store.get("U1").is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "store file readable by others: {mode:o}");
        }
    }

    #[test]
    fn another_key_drops_every_session_and_the_store_keeps_working() {
        let path = temp_path("rekey");
        {
            let (store, _) = SessionStore::open_file(&path, &Secret::new(KEY)).unwrap();
            put(&store, &session("U1", "tok-1", Duration::from_secs(600)));
        }
        let (store, loaded) =
            SessionStore::open_file(&path, &Secret::new("a different key entirely")).unwrap();
        assert!(loaded.sessions.is_empty());
        assert_eq!(loaded.dropped_for_key, 1);
        put(&store, &session("U2", "tok-2", Duration::from_secs(600)));
        drop(store);
        // The new key is now the store's key; the old one no longer reads it.
        let (_, again) =
            SessionStore::open_file(&path, &Secret::new("a different key entirely")).unwrap();
        assert_eq!(again.sessions.len(), 1);
        assert_eq!(again.dropped_for_key, 0);
    }

    #[test]
    fn expired_and_damaged_records_are_dropped_on_open() {
        let path = temp_path("damaged");
        {
            let (store, _) = SessionStore::open_file(&path, &Secret::new(KEY)).unwrap();
            put(&store, &session("old", "tok-old", Duration::ZERO));
            put(
                &store,
                &session("live", "tok-live", Duration::from_secs(600)),
            );
            // A record sealed for another user id (moved between keys) must not be accepted.
            let moved = store.cipher.seal(b"someone-else", b"{}").unwrap();
            drop(store);
            let raw = RedbStore::open(&path).unwrap();
            raw.write_put("moved", &moved).unwrap();
            raw.write_put("garbage", b"\x01not a sealed record at all")
                .unwrap();
        }
        let (store, loaded) = SessionStore::open_file(&path, &Secret::new(KEY)).unwrap();
        assert_eq!(
            loaded.sessions.keys().collect::<Vec<_>>(),
            vec![&"live".to_owned()]
        );
        assert_eq!(loaded.dropped_expired, 1);
        assert_eq!(loaded.dropped_damaged, 2);
        assert!(store.get("garbage").is_none());
    }

    #[test]
    fn owed_results_share_the_file_and_survive_reopening() {
        let path = temp_path("owed");
        let key = Secret::new("k".repeat(32));
        let record = OwedExecution {
            execution_id: "5f5e00000000000000000001".into(),
            request: "r1".into(),
            source_channel: "ops".into(),
            room: Some("ops".into()),
            thread: Some("t1".into()),
            user: "alice".into(),
            user_id: "U1".into(),
            message_id: Some("m1".into()),
            started_unix: 1_700_000_000,
            context: serde_json::json!({"bot": "demo", "request": "r1"}),
            state: crate::results::OwedState::Awaiting,
            ack: Some(crate::results::AckMessage {
                text: "alice: running".into(),
                handle: Some(r#"["C1","1.2"]"#.into()),
            }),
        };
        {
            let (store, _) = SessionStore::open_file(&path, &key).unwrap();
            let owed = store.owed().expect("a redb store has the owed table");
            owed.put(&record).unwrap();
            let mut second = record.clone();
            second.execution_id = "5f5e00000000000000000002".into();
            owed.put(&second).unwrap();
            owed.remove(&["5f5e00000000000000000002"]).unwrap();
        }
        let (store, loaded) = SessionStore::open_file(&path, &key).unwrap();
        assert!(loaded.sessions.is_empty());
        assert_eq!(
            store.owed().expect("owed table").load_now().unwrap(),
            vec![record]
        );
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_file_that_is_not_a_store_is_an_error_not_a_panic() {
        let path = temp_path("notredb");
        std::fs::write(&path, b"this is not a redb file, just some text").unwrap();
        let err = SessionStore::open_file(&path, &Secret::new(KEY))
            .err()
            .expect("must fail");
        assert!(err.to_string().contains("session store"), "{err}");
    }
}
