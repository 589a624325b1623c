//! What the bot knows about its rooms, built from `/sync`: canonical aliases (the names
//! access rules match), member counts (a room with exactly two joined members is a direct
//! chat), members seen so far with their display names, and which room is the direct chat
//! with which user (from `m.direct` account data, rooms the bot created, and direct chats
//! people started).
//!
//! Membership comes from the sync `summary` when the homeserver sends one (it does when
//! members are lazy-loaded, which keeps big rooms such as Gitter's cheap), and from the
//! member events seen otherwise.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::api::{Event, RoomSummary};

/// One room's tracked state.
#[derive(Debug, Default)]
pub(crate) struct RoomState {
    /// `m.room.canonical_alias` `alias`, when set.
    pub(crate) canonical_alias: Option<String>,
    /// Members whose membership is `join`, as far as the bot has seen them.
    joined: HashSet<String>,
    /// Members whose membership is `invite`, as far as the bot has seen them.
    invited: HashSet<String>,
    /// Display names by user id.
    display_names: HashMap<String, String>,
    /// Joined count from the latest `summary` that had one.
    joined_count: Option<u64>,
    /// Invited count from the latest `summary` that had one.
    invited_count: Option<u64>,
    /// Heroes from the latest `summary` that had them.
    heroes: Vec<String>,
    /// Whether a sync has reported this room yet (a room the bot just joined or created has
    /// not been, and its first report may carry history from before the bot's join).
    pub(crate) synced: bool,
}

impl RoomState {
    /// Joined members: the homeserver's count when known, else the members seen.
    pub(crate) fn joined_count(&self) -> u64 {
        self.joined_count.unwrap_or(self.joined.len() as u64)
    }

    fn invited_count(&self) -> u64 {
        self.invited_count.unwrap_or(self.invited.len() as u64)
    }

    /// Applies a state event (member or canonical alias); other events are ignored.
    pub(crate) fn apply(&mut self, event: &Event) {
        let Some(state_key) = &event.state_key else {
            return;
        };
        match event.kind.as_str() {
            "m.room.member" => {
                let membership = event.content.get("membership").and_then(Value::as_str);
                self.joined.remove(state_key);
                self.invited.remove(state_key);
                match membership {
                    Some("join") => {
                        self.joined.insert(state_key.clone());
                    }
                    Some("invite") => {
                        self.invited.insert(state_key.clone());
                    }
                    _ => {}
                }
                match event.content.get("displayname").and_then(Value::as_str) {
                    Some(name) if !name.is_empty() => {
                        self.display_names
                            .insert(state_key.clone(), name.to_owned());
                    }
                    _ => {
                        self.display_names.remove(state_key);
                    }
                }
            }
            "m.room.canonical_alias" if state_key.is_empty() => {
                self.canonical_alias = event
                    .content
                    .get("alias")
                    .and_then(Value::as_str)
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned);
            }
            _ => {}
        }
    }

    /// Takes the counts and heroes a sync `summary` carries (each only when present).
    pub(crate) fn apply_summary(&mut self, summary: &RoomSummary) {
        if let Some(n) = summary.joined_member_count {
            self.joined_count = Some(n);
        }
        if let Some(n) = summary.invited_member_count {
            self.invited_count = Some(n);
        }
        if let Some(heroes) = &summary.heroes {
            self.heroes.clone_from(heroes);
        }
    }

    /// The user's display name in this room, when the bot has seen it.
    pub(crate) fn display_name(&self, user_id: &str) -> Option<&str> {
        self.display_names.get(user_id).map(String::as_str)
    }

    /// Whether this room holds exactly the bot and `user_id` (joined or invited).
    fn is_pair_with(&self, me: &str, user_id: &str) -> bool {
        if self.joined_count() + self.invited_count() != 2 {
            return false;
        }
        let seen = |u: &str| {
            self.joined.contains(u)
                || self.invited.contains(u)
                || self.heroes.iter().any(|h| h == u)
        };
        user_id != me && seen(user_id)
    }
}

/// All rooms the bot is in, plus its direct-chat bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct Rooms {
    rooms: HashMap<String, RoomState>,
    /// Direct chat room per user id, most recently used first in effect (last write wins).
    direct: HashMap<String, String>,
    /// The `m.direct` account data as last seen (user id → room ids).
    m_direct: HashMap<String, Vec<String>>,
}

impl Rooms {
    /// The room, created empty on first sight.
    pub(crate) fn entry(&mut self, room_id: &str) -> &mut RoomState {
        self.rooms.entry(room_id.to_owned()).or_default()
    }

    /// The room, if the bot is in it.
    pub(crate) fn get(&self, room_id: &str) -> Option<&RoomState> {
        self.rooms.get(room_id)
    }

    /// Forgets a room the bot left or was removed from.
    pub(crate) fn remove(&mut self, room_id: &str) {
        self.rooms.remove(room_id);
        self.direct.retain(|_, r| r != room_id);
    }

    /// The name access rules match: the canonical alias when set, else the room id.
    pub(crate) fn name(&self, room_id: &str) -> String {
        self.rooms
            .get(room_id)
            .and_then(|r| r.canonical_alias.clone())
            .unwrap_or_else(|| room_id.to_owned())
    }

    /// The joined room whose canonical alias is `alias`.
    pub(crate) fn by_alias(&self, alias: &str) -> Option<&str> {
        self.rooms
            .iter()
            .find(|(_, r)| r.canonical_alias.as_deref() == Some(alias))
            .map(|(id, _)| id.as_str())
    }

    /// Whether messages in the room count as direct: exactly two joined members, unless
    /// the room is one of the configured rooms (those are always rooms).
    pub(crate) fn is_direct(&self, room_id: &str, configured: &HashSet<String>) -> bool {
        let Some(room) = self.rooms.get(room_id) else {
            return false;
        };
        let listed = configured.contains(room_id)
            || room
                .canonical_alias
                .as_ref()
                .is_some_and(|a| configured.contains(a));
        !listed && room.joined_count() == 2
    }

    /// Remembers `room_id` as the direct chat with `user_id`.
    pub(crate) fn set_direct(&mut self, user_id: &str, room_id: &str) {
        self.direct.insert(user_id.to_owned(), room_id.to_owned());
    }

    /// The direct chat with `user_id`: the one last used, else one listed in `m.direct`
    /// that the bot is in, else any room holding exactly the two of them.
    pub(crate) fn direct_room(&self, me: &str, user_id: &str) -> Option<String> {
        if let Some(room) = self.direct.get(user_id)
            && self.rooms.contains_key(room)
        {
            return Some(room.clone());
        }
        if let Some(listed) = self.m_direct.get(user_id)
            && let Some(room) = listed.iter().find(|r| self.rooms.contains_key(*r))
        {
            return Some(room.clone());
        }
        let mut candidates: Vec<&String> = self
            .rooms
            .iter()
            .filter(|(_, r)| r.canonical_alias.is_none() && r.is_pair_with(me, user_id))
            .map(|(id, _)| id)
            .collect();
        candidates.sort();
        candidates.first().map(|r| (*r).clone())
    }

    /// Takes new `m.direct` account data.
    pub(crate) fn set_m_direct(&mut self, content: &Value) {
        let Some(map) = content.as_object() else {
            return;
        };
        self.m_direct = map
            .iter()
            .map(|(user, rooms)| {
                let rooms = rooms
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                (user.clone(), rooms)
            })
            .collect();
    }

    /// `m.direct` with `room_id` added for `user_id`, to store on the homeserver.
    pub(crate) fn m_direct_with(&mut self, user_id: &str, room_id: &str) -> Value {
        let rooms = self.m_direct.entry(user_id.to_owned()).or_default();
        if !rooms.iter().any(|r| r == room_id) {
            rooms.push(room_id.to_owned());
        }
        serde_json::to_value(&self.m_direct).unwrap_or(Value::Null)
    }

    /// A user's display name: in `room_id` if known there, else in any room.
    pub(crate) fn display_name(&self, room_id: Option<&str>, user_id: &str) -> Option<String> {
        room_id
            .and_then(|r| self.rooms.get(r))
            .and_then(|r| r.display_name(user_id))
            .or_else(|| self.rooms.values().find_map(|r| r.display_name(user_id)))
            .map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn member(user: &str, membership: &str, name: Option<&str>) -> Event {
        let mut content = json!({ "membership": membership });
        if let Some(n) = name {
            content["displayname"] = json!(n);
        }
        Event {
            kind: "m.room.member".into(),
            sender: user.into(),
            state_key: Some(user.into()),
            event_id: None,
            content,
        }
    }

    #[test]
    fn two_joined_members_make_a_direct_chat_unless_configured() {
        let mut rooms = Rooms::default();
        let r = rooms.entry("!dm:x");
        r.apply(&member("@bot:x", "join", Some("Bot")));
        r.apply(&member("@alice:x", "invite", None));
        let configured = HashSet::new();
        assert!(!rooms.is_direct("!dm:x", &configured));
        assert_eq!(
            rooms.direct_room("@bot:x", "@alice:x").as_deref(),
            Some("!dm:x")
        );
        rooms
            .entry("!dm:x")
            .apply(&member("@alice:x", "join", Some("Alice")));
        assert!(rooms.is_direct("!dm:x", &configured));
        assert_eq!(
            rooms.display_name(None, "@alice:x").as_deref(),
            Some("Alice")
        );
        rooms.entry("!dm:x").apply(&Event {
            kind: "m.room.canonical_alias".into(),
            state_key: Some(String::new()),
            content: json!({ "alias": "#ops:x" }),
            ..Event::default()
        });
        assert_eq!(rooms.name("!dm:x"), "#ops:x");
        assert_eq!(rooms.by_alias("#ops:x"), Some("!dm:x"));
        let configured: HashSet<String> = ["#ops:x".to_owned()].into();
        assert!(!rooms.is_direct("!dm:x", &configured));
        rooms.remove("!dm:x");
        assert_eq!(rooms.name("!dm:x"), "!dm:x");
    }

    #[test]
    fn summary_counts_win_over_members_seen() {
        let mut rooms = Rooms::default();
        let r = rooms.entry("!big:x");
        r.apply(&member("@bot:x", "join", None));
        r.apply(&member("@alice:x", "join", None));
        r.apply_summary(&RoomSummary {
            heroes: Some(vec!["@alice:x".into(), "@bob:x".into()]),
            joined_member_count: Some(2000),
            invited_member_count: Some(0),
        });
        assert!(!rooms.is_direct("!big:x", &HashSet::new()));
        assert_eq!(rooms.direct_room("@bot:x", "@alice:x"), None);
    }

    #[test]
    fn m_direct_is_read_and_extended() {
        let mut rooms = Rooms::default();
        rooms.entry("!a:x");
        rooms.set_m_direct(&json!({ "@alice:x": ["!gone:x", "!a:x"] }));
        assert_eq!(
            rooms.direct_room("@bot:x", "@alice:x").as_deref(),
            Some("!a:x")
        );
        let updated = rooms.m_direct_with("@bob:x", "!b:x");
        assert_eq!(updated["@bob:x"], json!(["!b:x"]));
        assert_eq!(updated["@alice:x"], json!(["!gone:x", "!a:x"]));
    }
}
