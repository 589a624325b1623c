//! Multi-user chat (XEP-0045) state and incoming message classification, free of I/O:
//! which rooms the bot is in and under which nick, who the occupants really are (their JIDs
//! when the room shows them), and which `<message/>` stanzas are commands for the bot —
//! not the room's history replay (`<delay/>`, XEP-0203), not the bot's own echoes, not
//! offline messages delivered late, not chat states without a body.

use std::collections::BTreeMap;

use tokio_xmpp::jid::{BareJid, Jid};
use tokio_xmpp::parsers::message::{Message, MessageType};
use tokio_xmpp::parsers::muc::Muc;
use tokio_xmpp::parsers::muc::muc::History;
use tokio_xmpp::parsers::muc::user::{MucUser, Status};
use tokio_xmpp::parsers::ns;
use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};
use tokio_xmpp::parsers::stanza_error::{DefinedCondition, StanzaError};

use crate::backend::{Incoming, Room, mention};

/// Nick-conflict retries (`bot_`, `bot__`, …) before giving up on a room.
const MAX_NICK_ATTEMPTS: usize = 8;

/// Where the bot stands in one room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Joined {
    /// Join presence sent (or not yet: offline).
    Pending,
    /// The room confirmed our presence (status 110).
    Yes,
    /// The room refused us; the reason.
    Refused(String),
}

/// One room.
#[derive(Debug)]
struct RoomState {
    jid: BareJid,
    nick: String,
    nick_attempts: usize,
    joined: Joined,
    /// Occupant nick → real bare JID (when the room shows it).
    occupants: BTreeMap<String, BareJid>,
}

/// What a presence stanza means for the bot.
#[derive(Debug, PartialEq)]
pub(crate) enum PresenceOutcome {
    /// Now in this room.
    Joined(BareJid),
    /// Send this presence (a new join attempt).
    Send(Presence),
    /// Cannot be in this room.
    Refused(BareJid, String),
}

/// The bot's rooms.
#[derive(Debug)]
pub(crate) struct Rooms {
    rooms: Vec<RoomState>,
    base_nick: String,
}

impl Rooms {
    /// The configured rooms (bare JIDs), none joined yet.
    pub(crate) fn new(rooms: Vec<BareJid>, nick: &str) -> Self {
        Self {
            rooms: rooms
                .into_iter()
                .map(|jid| RoomState {
                    jid,
                    nick: nick.to_owned(),
                    nick_attempts: 0,
                    joined: Joined::Pending,
                    occupants: BTreeMap::new(),
                })
                .collect(),
            base_nick: nick.to_owned(),
        }
    }

    fn get(&self, jid: &BareJid) -> Option<&RoomState> {
        self.rooms.iter().find(|r| &r.jid == jid)
    }

    fn get_mut(&mut self, jid: &BareJid) -> Option<&mut RoomState> {
        self.rooms.iter_mut().find(|r| &r.jid == jid)
    }

    /// Forgets every join (the stream was reset) and returns the join presences to send.
    pub(crate) fn join_all(&mut self) -> Vec<Presence> {
        let base = self.base_nick.clone();
        self.rooms
            .iter_mut()
            .filter_map(|room| {
                room.nick = base.clone();
                room.nick_attempts = 0;
                room.joined = Joined::Pending;
                room.occupants.clear();
                join_presence(&room.jid, &room.nick)
            })
            .collect()
    }

    /// Marks every room as left (the connection is suspended).
    pub(crate) fn suspend(&mut self) {
        for room in &mut self.rooms {
            if room.joined == Joined::Yes {
                room.joined = Joined::Pending;
            }
        }
    }

    /// Marks every room as joined again (the stream resumed without loss).
    pub(crate) fn resume(&mut self) {
        for room in &mut self.rooms {
            if room.joined == Joined::Pending {
                room.joined = Joined::Yes;
            }
        }
    }

    /// Whether this room is one the bot joins.
    pub(crate) fn knows(&self, jid: &BareJid) -> bool {
        self.get(jid).is_some()
    }

    /// Whether the bot is in this room now.
    pub(crate) fn is_joined(&self, jid: &BareJid) -> bool {
        self.get(jid).is_some_and(|r| r.joined == Joined::Yes)
    }

    /// Whether every room is joined or refused.
    pub(crate) fn settled(&self) -> bool {
        self.rooms.iter().all(|r| r.joined != Joined::Pending)
    }

    /// Reacts to a presence from a room (others are ignored).
    pub(crate) fn on_presence(&mut self, presence: &Presence) -> Option<PresenceOutcome> {
        let from = presence.from.as_ref()?;
        let room_jid = from.to_bare();
        let nick = from.resource()?.as_str().to_owned();
        let room = self.get_mut(&room_jid)?;
        let muc_user = presence
            .payloads
            .iter()
            .find(|p| p.is("x", ns::MUC_USER))
            .and_then(|p| MucUser::try_from(p.clone()).ok());
        let statuses = muc_user
            .as_ref()
            .map(|m| m.status.as_slice())
            .unwrap_or(&[]);
        let is_self = statuses.contains(&Status::SelfPresence);
        if presence.type_ == PresenceType::Error {
            let error = presence
                .payloads
                .iter()
                .find(|p| p.name() == "error")
                .and_then(|p| StanzaError::try_from(p.clone()).ok());
            let condition = error.as_ref().map(|e| e.defined_condition.clone());
            if condition == Some(DefinedCondition::Conflict)
                && room.nick_attempts < MAX_NICK_ATTEMPTS
            {
                room.nick_attempts += 1;
                room.nick.push('_');
                tracing::info!(room = %room.jid, nick = %room.nick, "room nick taken; trying another");
                return join_presence(&room.jid, &room.nick).map(PresenceOutcome::Send);
            }
            let reason = match (
                &condition,
                error.as_ref().and_then(|e| e.texts.values().next()),
            ) {
                (Some(c), Some(text)) => format!("{c:?}: {text}"),
                (Some(c), None) => format!("{c:?}"),
                (None, _) => "unspecified error".to_owned(),
            };
            room.joined = Joined::Refused(reason.clone());
            return Some(PresenceOutcome::Refused(room_jid, reason));
        }
        let item = muc_user.as_ref().and_then(|m| m.items.first());
        if is_self {
            if presence.type_ == PresenceType::Unavailable {
                if statuses.contains(&Status::NewNick) {
                    if let Some(new) = item.and_then(|i| i.nick.clone()) {
                        room.nick = new;
                    }
                    return None;
                }
                room.joined = Joined::Pending;
                if statuses.contains(&Status::Kicked) {
                    tracing::warn!(room = %room.jid, "kicked from the room; rejoining");
                    return join_presence(&room.jid, &room.nick).map(PresenceOutcome::Send);
                }
                let reason = if statuses.contains(&Status::Banned) {
                    "banned from the room".to_owned()
                } else {
                    "removed from the room".to_owned()
                };
                room.joined = Joined::Refused(reason.clone());
                return Some(PresenceOutcome::Refused(room_jid, reason));
            }
            room.nick = nick;
            if room.joined != Joined::Yes {
                room.joined = Joined::Yes;
                return Some(PresenceOutcome::Joined(room_jid));
            }
            return None;
        }
        match presence.type_ {
            PresenceType::Unavailable => {
                let real = room.occupants.remove(&nick);
                if statuses.contains(&Status::NewNick)
                    && let (Some(new), Some(real)) = (item.and_then(|i| i.nick.clone()), real)
                {
                    room.occupants.insert(new, real);
                }
            }
            PresenceType::None => {
                if let Some(real) = item.and_then(|i| i.jid.as_ref()) {
                    room.occupants.insert(nick, real.to_bare());
                }
            }
            _ => {}
        }
        None
    }

    /// The command in a message, when it is one for the bot; `own` is the bot's bare JID.
    pub(crate) fn classify(&self, message: &Message, own: &BareJid) -> Option<Incoming> {
        let from = message.from.as_ref()?;
        let (_, body) = message.get_best_body(vec![])?;
        let delayed = message.payloads.iter().any(|p| p.is("delay", ns::DELAY));
        let message_id = message.id.as_ref().map(|id| id.0.clone());
        let thread = message.thread.as_ref().map(|t| t.id.clone());
        let from_bare = from.to_bare();
        match message.type_ {
            MessageType::Groupchat => {
                let room = self.get(&from_bare)?;
                let nick = from.resource()?.as_str();
                if nick == room.nick || room.joined != Joined::Yes || delayed {
                    return None;
                }
                let (user_id, user) = match room.occupants.get(nick) {
                    Some(real) => (real.to_string(), real.to_string()),
                    None => (from.to_string(), nick.to_owned()),
                };
                let (mentioned, text) = match strip_mention(body, &room.nick) {
                    Some(rest) => (true, rest.to_owned()),
                    None => (false, body.trim().to_owned()),
                };
                (!text.is_empty()).then(|| Incoming {
                    user_id,
                    user,
                    room: Some(Room {
                        id: room.jid.to_string(),
                        name: room.jid.to_string(),
                    }),
                    text,
                    mentioned,
                    thread,
                    message_id,
                })
            }
            MessageType::Chat | MessageType::Normal => {
                if &from_bare == own {
                    return None;
                }
                if delayed {
                    tracing::info!(from = %from, "ignoring a message delivered late (sent while the bot was offline)");
                    return None;
                }
                let (user_id, user, own_nick) = match self.get(&from_bare) {
                    // A private message from a room occupant.
                    Some(room) => {
                        let nick = from.resource()?.as_str();
                        match room.occupants.get(nick) {
                            Some(real) => (from.to_string(), real.to_string(), room.nick.as_str()),
                            None => (from.to_string(), nick.to_owned(), room.nick.as_str()),
                        }
                    }
                    None => (
                        from_bare.to_string(),
                        from_bare.to_string(),
                        own.node().map(|n| n.as_str()).unwrap_or(""),
                    ),
                };
                let (mentioned, text) = match strip_mention(body, own_nick) {
                    Some(rest) => (true, rest.to_owned()),
                    None => (false, body.trim().to_owned()),
                };
                (!text.is_empty()).then_some(Incoming {
                    user_id,
                    user,
                    room: None,
                    text,
                    mentioned,
                    thread,
                    message_id,
                })
            }
            MessageType::Error | MessageType::Headline => None,
        }
    }
}

/// The presence that joins `room` as `nick`, asking for no history.
pub(crate) fn join_presence(room: &BareJid, nick: &str) -> Option<Presence> {
    let to = match room.with_resource_str(nick) {
        Ok(full) => full,
        Err(error) => {
            tracing::error!(room = %room, nick, %error, "cannot build the room address");
            return None;
        }
    };
    let muc = Muc::new().with_history(History::new().with_maxstanzas(0));
    Some(
        Presence::available()
            .with_to(Jid::from(to))
            .with_payload(muc),
    )
}

/// `nick: text`, `nick, text`, `@nick text` → `text` (nick compared case-insensitively).
pub(crate) fn strip_mention<'a>(text: &'a str, nick: &str) -> Option<&'a str> {
    mention::strip(text, &[nick], &mention::XMPP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_xmpp::minidom::Element;

    fn parse<T: TryFrom<Element>>(xml: &str) -> T
    where
        T::Error: std::fmt::Debug,
    {
        let element: Element = xml.parse().expect("well-formed test XML");
        T::try_from(element).expect("valid stanza")
    }

    fn bare(s: &str) -> BareJid {
        BareJid::new(s).unwrap()
    }

    fn rooms() -> Rooms {
        Rooms::new(vec![bare("ops@conference.localhost")], "st2bot")
    }

    const SELF_PRESENCE: &str = "<presence xmlns='jabber:client' from='ops@conference.localhost/st2bot' to='bot@localhost/r'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant'/><status code='110'/></x></presence>";

    fn joined() -> Rooms {
        let mut r = rooms();
        r.join_all();
        let alice = "<presence xmlns='jabber:client' from='ops@conference.localhost/alice'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant' jid='alice@localhost/phone'/></x></presence>";
        assert_eq!(r.on_presence(&parse(alice)), None);
        assert_eq!(
            r.on_presence(&parse(SELF_PRESENCE)),
            Some(PresenceOutcome::Joined(bare("ops@conference.localhost")))
        );
        r
    }

    #[test]
    fn join_presence_asks_for_no_history() {
        let p = join_presence(&bare("ops@conference.localhost"), "st2bot").unwrap();
        assert_eq!(
            p.to.as_ref().map(|j| j.to_string()).as_deref(),
            Some("ops@conference.localhost/st2bot")
        );
        let x = p.payloads.iter().find(|e| e.is("x", ns::MUC)).unwrap();
        let history = x.get_child("history", ns::MUC).unwrap();
        assert_eq!(history.attr("maxstanzas"), Some("0"));
    }

    #[test]
    fn nick_conflict_retries_with_underscore() {
        let mut r = rooms();
        r.join_all();
        let conflict = "<presence xmlns='jabber:client' type='error' from='ops@conference.localhost/st2bot'><error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>";
        let Some(PresenceOutcome::Send(p)) = r.on_presence(&parse(conflict)) else {
            panic!("expected a new join attempt");
        };
        assert_eq!(
            p.to.map(|j| j.to_string()).as_deref(),
            Some("ops@conference.localhost/st2bot_")
        );
        let forbidden = "<presence xmlns='jabber:client' type='error' from='ops@conference.localhost/st2bot_'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>";
        assert!(matches!(
            r.on_presence(&parse(forbidden)),
            Some(PresenceOutcome::Refused(_, reason)) if reason.contains("Forbidden")
        ));
        assert!(r.settled());
    }

    #[test]
    fn groupchat_commands_skip_history_and_echoes() {
        let r = joined();
        let own = bare("bot@localhost");
        let msg = |from: &str, body: &str, extra: &str| -> Message {
            parse(&format!(
                "<message xmlns='jabber:client' type='groupchat' id='m1' from='{from}'><body>{body}</body>{extra}</message>"
            ))
        };
        let got = r
            .classify(&msg("ops@conference.localhost/alice", "!help", ""), &own)
            .unwrap();
        assert_eq!(
            got,
            Incoming {
                user_id: "alice@localhost".into(),
                user: "alice@localhost".into(),
                room: Some(Room {
                    id: "ops@conference.localhost".into(),
                    name: "ops@conference.localhost".into()
                }),
                text: "!help".into(),
                mentioned: false,
                thread: None,
                message_id: Some("m1".into()),
            }
        );
        let mention = r
            .classify(
                &msg("ops@conference.localhost/carol", "St2Bot: pack list", ""),
                &own,
            )
            .unwrap();
        assert_eq!(
            (
                mention.text.as_str(),
                mention.mentioned,
                mention.user.as_str()
            ),
            ("pack list", true, "carol")
        );
        assert_eq!(mention.user_id, "ops@conference.localhost/carol");
        let history = "<delay xmlns='urn:xmpp:delay' stamp='2026-01-01T00:00:00Z'/>";
        assert_eq!(
            r.classify(
                &msg("ops@conference.localhost/alice", "!help", history),
                &own
            ),
            None
        );
        assert_eq!(
            r.classify(&msg("ops@conference.localhost/st2bot", "!help", ""), &own),
            None
        );
        assert_eq!(
            r.classify(&msg("other@conference.localhost/alice", "!help", ""), &own),
            None
        );
        let subject: Message = parse(
            "<message xmlns='jabber:client' type='groupchat' from='ops@conference.localhost'><subject>x</subject></message>",
        );
        assert_eq!(r.classify(&subject, &own), None);
        // Before the self-presence, nothing counts.
        let mut fresh = rooms();
        fresh.join_all();
        assert_eq!(
            fresh.classify(&msg("ops@conference.localhost/alice", "!help", ""), &own),
            None
        );
    }

    #[test]
    fn direct_messages() {
        let r = joined();
        let own = bare("bot@localhost");
        let dm: Message = parse(
            "<message xmlns='jabber:client' type='chat' from='alice@localhost/phone'><body>bot: !help</body></message>",
        );
        let got = r.classify(&dm, &own).unwrap();
        assert_eq!(
            (
                got.user_id.as_str(),
                got.user.as_str(),
                got.room.clone(),
                got.text.as_str(),
                got.mentioned
            ),
            ("alice@localhost", "alice@localhost", None, "!help", true)
        );
        let from_room: Message = parse(
            "<message xmlns='jabber:client' type='chat' from='ops@conference.localhost/alice'><body>!help</body></message>",
        );
        let got = r.classify(&from_room, &own).unwrap();
        assert_eq!(
            (got.user_id.as_str(), got.user.as_str()),
            ("ops@conference.localhost/alice", "alice@localhost")
        );
        let offline: Message = parse(
            "<message xmlns='jabber:client' type='chat' from='alice@localhost/phone'><body>!help</body><delay xmlns='urn:xmpp:delay' stamp='2026-01-01T00:00:00Z'/></message>",
        );
        assert_eq!(r.classify(&offline, &own), None);
        let state: Message = parse(
            "<message xmlns='jabber:client' type='chat' from='alice@localhost/phone'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
        );
        assert_eq!(r.classify(&state, &own), None);
        let mine: Message = parse(
            "<message xmlns='jabber:client' type='chat' from='bot@localhost/other'><body>!help</body></message>",
        );
        assert_eq!(r.classify(&mine, &own), None);
    }

    #[test]
    fn kicks_rejoin_and_suspension_forgets_joins() {
        let mut r = joined();
        let room = bare("ops@conference.localhost");
        let kicked = "<presence xmlns='jabber:client' type='unavailable' from='ops@conference.localhost/st2bot'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'/><status code='307'/><status code='110'/></x></presence>";
        assert!(matches!(
            r.on_presence(&parse(kicked)),
            Some(PresenceOutcome::Send(_))
        ));
        assert!(!r.is_joined(&room));
        assert!(matches!(
            r.on_presence(&parse(SELF_PRESENCE)),
            Some(PresenceOutcome::Joined(_))
        ));
        r.suspend();
        assert!(!r.is_joined(&room) && !r.settled());
        r.resume();
        assert!(r.is_joined(&room));
        assert_eq!(r.join_all().len(), 1);
        assert!(!r.is_joined(&room));
    }

    #[test]
    fn mentions() {
        assert_eq!(strip_mention("bot: hi", "bot"), Some("hi"));
        assert_eq!(strip_mention("@Bot hi", "bot"), Some("hi"));
        assert_eq!(strip_mention("bot hi", "bot"), None);
        assert_eq!(strip_mention("anything", ""), None);
    }
}
