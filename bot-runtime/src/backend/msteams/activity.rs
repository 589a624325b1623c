//! Bot Framework wire types: the parts of an [`Activity`] the bot reads, and how an
//! inbound `message` activity becomes an [`Incoming`].
//!
//! Written from Microsoft's Bot Framework REST API reference ("Bot Framework Activity
//! schema", <https://github.com/microsoft/botframework-sdk/blob/main/specs/botframework-activity/botframework-activity.md>)
//! and the Teams notes on conversations ("Conversation basics", "Channel and group chat
//! conversations with a bot", learn.microsoft.com/microsoftteams/platform/bots/how-to/conversations/):
//! - `conversation.conversationType` is `personal` (a one-to-one chat: a direct message),
//!   `groupChat` or `channel`;
//! - in a channel, the conversation id of a message inside a reply chain ends with
//!   `;messageid=<root activity id>`; the root's own activity id starts that chain;
//! - a mention is `<at>Name</at>` in `text` plus an entity `{"type":"mention",
//!   "text":"<at>Name</at>","mentioned":{"id":…,"name":…}}`; Teams delivers channel
//!   messages to a bot only when they mention it.

use serde::{Deserialize, Serialize};

use crate::backend::{Incoming, Room, rich};

/// The most characters of an inbound `text` the bot reads; the rest is dropped (Teams
/// itself caps a message at about 28 KB).
pub const MAX_INBOUND_TEXT: usize = 32 * 1024;

/// An account on the channel (`from`, `recipient`, `mentioned`, `members`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ChannelAccount {
    /// Channel-specific id (`29:…` for Teams users, `28:<app id>` for bots).
    #[serde(default)]
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Entra object id of a user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aad_object_id: Option<String>,
}

/// The conversation an activity belongs to.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ConversationAccount {
    /// Conversation id (in channels: with `;messageid=…` inside a reply chain).
    #[serde(default)]
    pub id: String,
    /// `personal`, `groupChat` or `channel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_type: Option<String>,
    /// Name, when the channel says it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tenant id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Whether more than two members take part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_group: Option<bool>,
}

/// An `entities` item; only mentions are read.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Entity {
    /// `mention`, `clientInfo`, …
    #[serde(default, rename = "type")]
    pub kind: String,
    /// The mention's markup (`<at>Name</at>`).
    #[serde(default)]
    pub text: Option<String>,
    /// Who is mentioned.
    #[serde(default)]
    pub mentioned: Option<ChannelAccount>,
}

/// An inbound activity (the fields the bot uses; the rest is ignored).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    /// `message`, `conversationUpdate`, `invoke`, …
    #[serde(default, rename = "type")]
    pub kind: String,
    /// Activity id (what replies and edits name).
    #[serde(default)]
    pub id: Option<String>,
    /// `msteams` for Teams (and the Agents Playground in Teams mode).
    #[serde(default)]
    pub channel_id: String,
    /// Where replies to this conversation are posted.
    #[serde(default)]
    pub service_url: String,
    /// Sender.
    #[serde(default)]
    pub from: ChannelAccount,
    /// The bot, as the channel knows it.
    #[serde(default)]
    pub recipient: ChannelAccount,
    /// The conversation.
    #[serde(default)]
    pub conversation: ConversationAccount,
    /// Message text (with `<at>` markup for mentions).
    #[serde(default)]
    pub text: Option<String>,
    /// Mentions and other entities.
    #[serde(default)]
    pub entities: Vec<Entity>,
    /// Teams-specific data (team, channel, tenant).
    #[serde(default)]
    pub channel_data: Option<serde_json::Value>,
    /// The activity this one replies to.
    #[serde(default)]
    pub reply_to_id: Option<String>,
}

impl Activity {
    /// The conversation id without the `;messageid=` of a reply chain, and that message id.
    pub fn base_conversation(&self) -> (&str, Option<&str>) {
        split_conversation_id(&self.conversation.id)
    }

    /// The tenant from `conversation.tenantId` or `channelData.tenant.id`.
    pub fn tenant_id(&self) -> Option<&str> {
        self.conversation
            .tenant_id
            .as_deref()
            .or_else(|| self.channel_data.as_ref()?.pointer("/tenant/id")?.as_str())
    }

    /// Whether this conversation is a one-to-one chat with the bot.
    pub fn is_personal(&self) -> bool {
        match self.conversation.conversation_type.as_deref() {
            Some(kind) => kind == "personal",
            None => self.conversation.is_group != Some(true),
        }
    }

    /// Whether this is a channel (threads exist there).
    pub fn is_channel(&self) -> bool {
        self.conversation.conversation_type.as_deref() == Some("channel")
    }

    /// The room's name for access rules: `#<channel name>` when Teams says it, the chat's
    /// name, else the conversation id.
    pub fn room_name(&self) -> String {
        let channel_name = self
            .channel_data
            .as_ref()
            .and_then(|d| d.pointer("/channel/name"))
            .and_then(serde_json::Value::as_str)
            .filter(|n| !n.is_empty());
        match channel_name.or(self.conversation.name.as_deref().filter(|n| !n.is_empty())) {
            Some(name) => format!("#{name}"),
            None => self.base_conversation().0.to_owned(),
        }
    }

    /// The message for the dispatcher, when this is a `message` from someone else with
    /// text: mentions of the bot removed (`mentioned` set), rooms for channels and group
    /// chats, the reply chain's root as the thread in channels.
    pub fn to_incoming(&self) -> Option<Incoming> {
        if self.kind != "message" || self.from.id.is_empty() || self.from.id == self.recipient.id {
            return None;
        }
        let raw = self.text.as_deref()?;
        let raw = truncate_chars(raw, MAX_INBOUND_TEXT);
        let (text, mentioned) = strip_bot_mentions(raw, &self.entities, &self.recipient.id);
        let text = rich::normalize_typography(decode_entities(&text).trim());
        let (base, chain_root) = self.base_conversation();
        let room = (!self.is_personal()).then(|| Room {
            id: base.to_owned(),
            name: self.room_name(),
        });
        let thread = if self.is_channel() {
            chain_root.map(str::to_owned).or_else(|| self.id.clone())
        } else {
            None
        };
        Some(Incoming {
            user_id: self.from.id.clone(),
            user: self
                .from
                .name
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| self.from.id.clone()),
            room,
            text,
            mentioned,
            thread,
            message_id: self.id.clone(),
        })
    }
}

/// `19:abc@thread.tacv2;messageid=123` → (`19:abc@thread.tacv2`, `Some("123")`).
pub fn split_conversation_id(id: &str) -> (&str, Option<&str>) {
    match id.split_once(";messageid=") {
        Some((base, root)) if !root.is_empty() => (base, Some(root)),
        Some((base, _)) => (base, None),
        None => (id, None),
    }
}

/// `text` without the `<at>…</at>` markup of every mention of `bot_id` (whitespace around
/// it collapsed), and whether there was one. Mentions of other people stay as their name.
pub fn strip_bot_mentions(text: &str, entities: &[Entity], bot_id: &str) -> (String, bool) {
    let mut out = text.to_owned();
    let mut mentioned = false;
    for entity in entities.iter().filter(|e| e.kind == "mention") {
        let (Some(markup), Some(who)) = (&entity.text, &entity.mentioned) else {
            continue;
        };
        if markup.is_empty() {
            continue;
        }
        if !bot_id.is_empty() && who.id == bot_id {
            if out.contains(markup.as_str()) {
                mentioned = true;
                out = out.replace(markup.as_str(), " ");
            }
        } else {
            let name = markup
                .trim_start_matches("<at>")
                .trim_end_matches("</at>")
                .to_owned();
            out = out.replace(markup.as_str(), &name);
        }
    }
    let collapsed = out.split_whitespace().collect::<Vec<_>>().join(" ");
    (collapsed, mentioned)
}

/// The HTML entities Teams puts into message text.
fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    text.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn truncate_chars(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn activity(v: serde_json::Value) -> Activity {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_channel_mention_is_stripped_and_the_chain_root_is_the_thread() {
        let a = activity(json!({
            "type": "message", "id": "1700000000002", "channelId": "msteams",
            "serviceUrl": "https://smba.trafficmanager.net/emea/",
            "from": {"id": "29:alice", "name": "Alice"},
            "recipient": {"id": "28:bot", "name": "st2bot"},
            "conversation": {"id": "19:ops@thread.tacv2;messageid=1700000000001", "conversationType": "channel"},
            "text": "<at>st2bot</at> run  pack.action &amp; more",
            "entities": [{"type": "mention", "text": "<at>st2bot</at>", "mentioned": {"id": "28:bot", "name": "st2bot"}}],
            "channelData": {"channel": {"id": "19:ops@thread.tacv2", "name": "ops"}}
        }));
        let m = a.to_incoming().unwrap();
        assert_eq!(m.text, "run pack.action & more");
        assert!(m.mentioned);
        assert_eq!(
            m.room,
            Some(Room {
                id: "19:ops@thread.tacv2".into(),
                name: "#ops".into()
            })
        );
        assert_eq!(m.thread.as_deref(), Some("1700000000001"));
        assert_eq!(m.message_id.as_deref(), Some("1700000000002"));
        assert_eq!(m.user, "Alice");
    }

    #[test]
    fn a_top_level_channel_message_starts_its_own_thread() {
        let a = activity(json!({
            "type": "message", "id": "42",
            "from": {"id": "29:alice"}, "recipient": {"id": "28:bot"},
            "conversation": {"id": "19:ops@thread.tacv2", "conversationType": "channel"},
            "text": "help"
        }));
        let m = a.to_incoming().unwrap();
        assert_eq!(m.thread.as_deref(), Some("42"));
        assert!(!m.mentioned);
        assert_eq!(m.room.unwrap().name, "19:ops@thread.tacv2");
        assert_eq!(m.user, "29:alice", "no name: the id");
    }

    #[test]
    fn personal_chats_are_direct_and_other_mentions_keep_the_name() {
        let a = activity(json!({
            "type": "message", "id": "7",
            "from": {"id": "29:alice", "name": "Alice"}, "recipient": {"id": "28:bot"},
            "conversation": {"id": "a:1", "conversationType": "personal"},
            "text": "tell <at>Bob</at> hi",
            "entities": [{"type": "mention", "text": "<at>Bob</at>", "mentioned": {"id": "29:bob"}}]
        }));
        let m = a.to_incoming().unwrap();
        assert_eq!(m.room, None);
        assert_eq!(m.thread, None);
        assert_eq!(m.text, "tell Bob hi");
        assert!(!m.mentioned);
    }

    #[test]
    fn the_bots_own_messages_and_other_types_are_not_commands() {
        let own = activity(json!({
            "type": "message", "from": {"id": "28:bot"}, "recipient": {"id": "28:bot"},
            "conversation": {"id": "a:1"}, "text": "hello"
        }));
        assert_eq!(own.to_incoming(), None);
        let update = activity(json!({
            "type": "conversationUpdate", "from": {"id": "29:alice"}, "recipient": {"id": "28:bot"},
            "conversation": {"id": "a:1"}
        }));
        assert_eq!(update.to_incoming(), None);
    }

    #[test]
    fn long_text_is_cut() {
        let a = activity(json!({
            "type": "message", "from": {"id": "29:a"}, "recipient": {"id": "28:bot"},
            "conversation": {"id": "a:1", "conversationType": "personal"},
            "text": "é".repeat(MAX_INBOUND_TEXT + 10)
        }));
        assert_eq!(
            a.to_incoming().unwrap().text.chars().count(),
            MAX_INBOUND_TEXT
        );
    }

    #[test]
    fn conversation_ids_split() {
        assert_eq!(
            split_conversation_id("19:x;messageid=5"),
            ("19:x", Some("5"))
        );
        assert_eq!(split_conversation_id("a:1"), ("a:1", None));
        assert_eq!(split_conversation_id("19:x;messageid="), ("19:x", None));
    }
}
