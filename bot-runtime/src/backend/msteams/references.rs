//! Conversation references: what the bot must know to post into a conversation without
//! being spoken to first (announcements to channels, direct messages): the conversation
//! id, the `serviceUrl` that hosts it, its kind and name, the tenant, and for a personal
//! chat the user. Bot Framework calls these "conversation references" ("Send proactive
//! messages", learn.microsoft.com/microsoftteams/platform/bots/how-to/conversations/send-proactive-messages).
//!
//! Every authenticated activity updates the reference of its conversation. With
//! `state_file`, the references are written to that file (JSON, replaced atomically
//! through a temporary file and a rename, mode 0600) whenever one is added or changes, and
//! read back at start, so announcements and direct messages work after a restart before
//! anyone speaks. At most [`MAX_REFERENCES`] are kept; the one seen longest ago goes first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::activity::Activity;
use crate::backend::webapi::lock;

/// The most conversations remembered.
pub const MAX_REFERENCES: usize = 10_000;
/// The largest state file read.
const MAX_FILE: u64 = 32 * 1024 * 1024;
/// The file format's version.
const VERSION: u32 = 1;

/// Where and how to post into one conversation.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct ConversationRef {
    /// Conversation id (without `;messageid=`).
    pub conversation_id: String,
    /// The Connector endpoint that hosts it.
    pub service_url: String,
    /// `personal`, `groupChat` or `channel`.
    pub kind: String,
    /// The room name access rules see (`#ops`), for channels and group chats.
    #[serde(default)]
    pub name: Option<String>,
    /// Tenant id.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Personal chats: the user's id and name.
    #[serde(default)]
    pub user_id: Option<String>,
    /// Personal chats: the user's display name.
    #[serde(default)]
    pub user_name: Option<String>,
    /// The bot's id in this conversation (`28:<app id>`).
    #[serde(default)]
    pub bot_id: String,
    /// Order of last use (larger: more recent).
    #[serde(default)]
    pub seen: u64,
}

impl ConversationRef {
    /// The reference an activity establishes.
    pub fn of(activity: &Activity) -> Option<Self> {
        let (id, _) = activity.base_conversation();
        if id.is_empty() || activity.service_url.is_empty() {
            return None;
        }
        let personal = activity.is_personal();
        let kind = activity
            .conversation
            .conversation_type
            .clone()
            .unwrap_or_else(|| if personal { "personal" } else { "groupChat" }.to_owned());
        Some(Self {
            conversation_id: id.to_owned(),
            service_url: activity.service_url.clone(),
            kind,
            name: (!personal).then(|| activity.room_name()),
            tenant_id: activity.tenant_id().map(str::to_owned),
            user_id: personal.then(|| activity.from.id.clone()),
            user_name: if personal {
                activity.from.name.clone()
            } else {
                None
            },
            bot_id: activity.recipient.id.clone(),
            seen: 0,
        })
    }

    fn same_except_seen(&self, other: &Self) -> bool {
        Self {
            seen: 0,
            ..self.clone()
        } == Self {
            seen: 0,
            ..other.clone()
        }
    }
}

#[derive(Deserialize, Serialize)]
struct StateFile {
    version: u32,
    references: Vec<ConversationRef>,
}

/// Why the state file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write `{path}`: {source}")]
pub struct SaveError {
    path: String,
    #[source]
    source: std::io::Error,
}

#[derive(Debug, Default)]
struct Inner {
    by_conversation: HashMap<String, ConversationRef>,
    clock: u64,
}

/// The references, in memory and (with a path) on disk.
#[derive(Debug)]
pub struct References {
    path: Option<PathBuf>,
    inner: Mutex<Inner>,
}

impl References {
    /// The references kept in `path` (read now; a missing file is an empty store), or in
    /// memory only.
    pub fn load(path: Option<&str>) -> Self {
        let mut inner = Inner::default();
        if let Some(p) = path {
            match read_file(Path::new(p)) {
                Ok(Some(refs)) => {
                    for r in refs {
                        inner.clock = inner.clock.max(r.seen);
                        inner.by_conversation.insert(r.conversation_id.clone(), r);
                    }
                    tracing::info!(
                        file = p,
                        conversations = inner.by_conversation.len(),
                        "msteams: conversation references loaded"
                    );
                }
                Ok(None) => {}
                Err(reason) => tracing::warn!(
                    file = p,
                    reason = %reason,
                    "msteams: conversation references unreadable; starting without them (the file is rewritten on the next change)"
                ),
            }
        }
        Self {
            path: path.map(PathBuf::from),
            inner: Mutex::new(inner),
        }
    }

    /// Records what an activity says about its conversation; writes the file when that is
    /// new or changed.
    pub fn record(&self, reference: ConversationRef) -> Result<(), SaveError> {
        let snapshot = {
            let mut inner = lock(&self.inner);
            inner.clock += 1;
            let seen = inner.clock;
            let changed = inner
                .by_conversation
                .get(&reference.conversation_id)
                .is_none_or(|old| !old.same_except_seen(&reference));
            inner.by_conversation.insert(
                reference.conversation_id.clone(),
                ConversationRef { seen, ..reference },
            );
            if inner.by_conversation.len() > MAX_REFERENCES
                && let Some(oldest) = inner
                    .by_conversation
                    .values()
                    .min_by_key(|r| r.seen)
                    .map(|r| r.conversation_id.clone())
            {
                inner.by_conversation.remove(&oldest);
            }
            if !changed || self.path.is_none() {
                return Ok(());
            }
            let mut all: Vec<ConversationRef> = inner.by_conversation.values().cloned().collect();
            all.sort_by_key(|r| r.seen);
            all
        };
        match &self.path {
            Some(path) => write_file(path, snapshot),
            None => Ok(()),
        }
    }

    /// The conversation a room target names: its id, or its name (`#ops` or `ops`).
    pub fn room(&self, id_or_name: &str) -> Option<ConversationRef> {
        let inner = lock(&self.inner);
        if let Some(r) = inner.by_conversation.get(id_or_name) {
            return Some(r.clone());
        }
        let wanted = id_or_name.trim_start_matches('#');
        inner
            .by_conversation
            .values()
            .filter(|r| r.kind != "personal")
            .filter(|r| {
                r.name
                    .as_deref()
                    .is_some_and(|n| n.trim_start_matches('#').eq_ignore_ascii_case(wanted))
            })
            .max_by_key(|r| r.seen)
            .cloned()
    }

    /// The personal chat with a user, by id or display name.
    pub fn personal(&self, user: &str) -> Option<ConversationRef> {
        let inner = lock(&self.inner);
        inner
            .by_conversation
            .values()
            .filter(|r| r.kind == "personal")
            .filter(|r| {
                r.user_id.as_deref() == Some(user)
                    || r.user_name
                        .as_deref()
                        .is_some_and(|n| n.eq_ignore_ascii_case(user.trim_start_matches('@')))
            })
            .max_by_key(|r| r.seen)
            .cloned()
    }

    /// The most recently used reference, for its `serviceUrl`, tenant and bot id when a
    /// conversation must be created.
    pub fn latest(&self) -> Option<ConversationRef> {
        let inner = lock(&self.inner);
        inner
            .by_conversation
            .values()
            .max_by_key(|r| r.seen)
            .cloned()
    }

    /// How many conversations are known.
    pub fn len(&self) -> usize {
        lock(&self.inner).by_conversation.len()
    }

    /// Whether none is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn read_file(path: &Path) -> Result<Option<Vec<ConversationRef>>, String> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    if meta.len() > MAX_FILE {
        return Err(format!("larger than {MAX_FILE} bytes"));
    }
    let text = std::fs::read(path).map_err(|e| e.to_string())?;
    let file: StateFile = serde_json::from_slice(&text).map_err(|e| e.to_string())?;
    if file.version != VERSION {
        return Err(format!("unknown version {}", file.version));
    }
    Ok(Some(file.references))
}

fn write_file(path: &Path, references: Vec<ConversationRef>) -> Result<(), SaveError> {
    let fail = |source| SaveError {
        path: path.display().to_string(),
        source,
    };
    let body = serde_json::to_vec_pretty(&StateFile {
        version: VERSION,
        references,
    })
    .map_err(|e| fail(std::io::Error::other(e)))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(&tmp).map_err(fail)?;
        f.write_all(&body).map_err(fail)?;
        f.sync_all().map_err(fail)?;
    }
    std::fs::rename(&tmp, path).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn activity(v: serde_json::Value) -> Activity {
        serde_json::from_value(v).unwrap()
    }

    fn channel() -> Activity {
        activity(json!({
            "type": "message", "id": "1", "serviceUrl": "https://smba.example/emea/",
            "from": {"id": "29:alice", "name": "Alice"}, "recipient": {"id": "28:bot"},
            "conversation": {"id": "19:ops@thread.tacv2;messageid=1", "conversationType": "channel", "tenantId": "t1"},
            "channelData": {"channel": {"name": "ops"}}
        }))
    }

    fn personal() -> Activity {
        activity(json!({
            "type": "message", "id": "2", "serviceUrl": "https://smba.example/emea/",
            "from": {"id": "29:bob", "name": "Bob"}, "recipient": {"id": "28:bot"},
            "conversation": {"id": "a:bob-chat", "conversationType": "personal"}
        }))
    }

    #[test]
    fn references_survive_a_restart_through_the_file() {
        let dir = std::env::temp_dir().join(format!(
            "st2bot-msteams-refs-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("state.json");
        let path = file.to_str().unwrap();
        let refs = References::load(Some(path));
        assert!(refs.is_empty());
        refs.record(ConversationRef::of(&channel()).unwrap())
            .unwrap();
        refs.record(ConversationRef::of(&personal()).unwrap())
            .unwrap();
        drop(refs);

        let again = References::load(Some(path));
        assert_eq!(again.len(), 2);
        let room = again.room("#ops").unwrap();
        assert_eq!(room.conversation_id, "19:ops@thread.tacv2");
        assert_eq!(room.tenant_id.as_deref(), Some("t1"));
        assert_eq!(again.room("19:ops@thread.tacv2").unwrap(), room);
        assert_eq!(again.room("OPS").unwrap(), room);
        let dm = again.personal("Bob").unwrap();
        assert_eq!(dm.conversation_id, "a:bob-chat");
        assert_eq!(again.personal("29:bob").unwrap(), dm);
        assert!(
            again.personal("alice").is_none(),
            "no personal chat with Alice"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unreadable_file_starts_empty_and_is_replaced() {
        let dir = std::env::temp_dir().join(format!(
            "st2bot-msteams-refs-bad-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("state.json");
        std::fs::write(&file, "{not json").unwrap();
        let refs = References::load(file.to_str());
        assert!(refs.is_empty());
        refs.record(ConversationRef::of(&personal()).unwrap())
            .unwrap();
        assert_eq!(References::load(file.to_str()).len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_oldest_goes_first_past_the_cap() {
        let refs = References::load(None);
        let base = ConversationRef::of(&personal()).unwrap();
        for i in 0..=MAX_REFERENCES {
            refs.record(ConversationRef {
                conversation_id: format!("a:{i}"),
                ..base.clone()
            })
            .unwrap();
        }
        assert_eq!(refs.len(), MAX_REFERENCES);
        assert!(refs.room("a:0").is_none());
        assert!(refs.room(&format!("a:{MAX_REFERENCES}")).is_some());
    }
}
