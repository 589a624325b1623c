//! The bot definition exactly as written in YAML: serde types with `deny_unknown_fields`,
//! field names equal to YAML keys, and a [`Spanned`] on every value a check may blame.
//!
//! Nothing here is validated; `check/` turns a [`BotFile`] into a [`crate::BotSpec`].
//! Every key is documented with its default in `bots/reference.yaml`. With the `schema`
//! feature the same types derive the JSON Schema for editors (`schema/bot.schema.json`);
//! a `schemars(with)` attribute names the plain type behind each `Spanned` value.

use std::collections::HashMap;

use serde::Deserialize;

use crate::source::Spanned;

/// Deserializes a key that is present as `Some`, even when its value is null (serde's
/// `Option` would read `key: ~` as an absent key).
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// `groups:` as written: group name → members.
pub type Groups = HashMap<Spanned<String>, Spanned<Vec<Spanned<String>>>>;

/// A whole bot definition file.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct BotFile {
    /// The bot's name: letters, digits, `-` and `_` (it names the executable).
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub name: Spanned<String>,
    /// Free text shown by `--help`.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub description: Option<Spanned<String>>,
    /// Which chat service and how to connect to it.
    #[cfg_attr(feature = "schema", schemars(with = "Backend"))]
    pub backend: Spanned<Backend>,
    /// How to reach StackStorm.
    #[cfg_attr(feature = "schema", schemars(with = "StackStorm"))]
    pub stackstorm: Spanned<StackStorm>,
    /// Command recognition and replies.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<Chat>"))]
    pub chat: Option<Spanned<Chat>>,
    /// Who may run what.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<Access>"))]
    pub access: Option<Spanned<Access>>,
    /// Named groups of chat users, referenced as `@name` in access rules.
    #[serde(default)]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<std::collections::HashMap<String, Vec<String>>>")
    )]
    pub groups: Option<Spanned<Groups>>,
    /// Commands that run only once confirmed: by the requester repeating a code (`by:
    /// self`) or approved by another member of a group (`by: "@group"`, four eyes).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<Vec<Confirm>>"))]
    pub confirm: Option<Spanned<Vec<Spanned<Confirm>>>>,
    /// Handlebars templates for the bot's replies, by purpose.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<Templates>"))]
    pub templates: Option<Spanned<Templates>>,
    /// The client-side authentication page (per-user StackStorm identity).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<AuthPage>"))]
    pub auth_page: Option<Spanned<AuthPage>>,
    /// High availability: several instances share a PostgreSQL database that holds the
    /// leadership and the shared state (off when absent: one instance, redb).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<Ha>"))]
    pub ha: Option<Spanned<Ha>>,
    /// Health, readiness and metrics endpoint.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<Health>"))]
    pub health: Option<Spanned<Health>>,
    /// Log output.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<Log>"))]
    pub log: Option<Spanned<Log>>,
}

/// `backend:` — one flat mapping for every kind; which keys a kind takes (and requires) is
/// checked in `check/backend.rs`, so a misplaced key gets a precise message.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Backend {
    /// `text`, `xmpp`, `irc`, `matrix`, `slack`, `mattermost`, `discord`, `rocketchat` or
    /// `msteams`.
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub kind: Spanned<String>,
    /// Text: the chat user you act as (default: `$USER`).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub user: Option<Spanned<String>>,
    /// Text: the room you are in (default: `terminal`).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub room: Option<Spanned<String>>,
    /// Text: demo mode — link the StackStorm simulator in, so `--simulate` runs the bot
    /// without a StackStorm (default false: the executable is smaller without it).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<bool>"))]
    pub simulator: Option<Spanned<bool>>,
    /// XMPP: the bot's JID (`bot@example.org`).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub jid: Option<Spanned<String>>,
    /// IRC/XMPP: server host name (XMPP: defaults to the JID's domain).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub server: Option<Spanned<String>>,
    /// IRC/XMPP: server port.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<u16>"))]
    pub port: Option<Spanned<u16>>,
    /// IRC: use TLS (default true); XMPP: require STARTTLS (default true).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<bool>"))]
    pub tls: Option<Spanned<bool>>,
    /// IRC/XMPP: trust this CA bundle file in addition to the system roots.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub ca_file: Option<Spanned<String>>,
    /// IRC: nick; XMPP: nickname in rooms.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub nickname: Option<Spanned<String>>,
    /// Matrix homeserver, Mattermost or Rocket.Chat server URL; fake/base URL for others.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub url: Option<Spanned<String>>,
    /// Matrix, Rocket.Chat, IRC SASL: the account name.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub username: Option<Spanned<String>>,
    /// Password (secret reference) for XMPP, IRC (SASL/NickServ/server), Matrix, Rocket.Chat.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub password: Option<Spanned<String>>,
    /// Access token (secret reference): Matrix, Mattermost, Discord, Rocket.Chat.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub token: Option<Spanned<String>>,
    /// Rocket.Chat: the user id that goes with `token`.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub user_id: Option<Spanned<String>>,
    /// Slack: app-level token (`xapp-…`) for Socket Mode (secret reference).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub app_token: Option<Spanned<String>>,
    /// Slack: bot token (`xoxb-…`) for the Web API (secret reference).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub bot_token: Option<Spanned<String>>,
    /// IRC: how to authenticate: `none`, `sasl`, `nickserv` or `server`.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub auth: Option<Spanned<String>>,
    /// Rooms/channels to join on start (XMPP MUC JIDs, `#channels`, Matrix room ids/aliases).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<Vec<String>>"))]
    pub rooms: Option<Spanned<Vec<Spanned<String>>>>,
    /// Mattermost: team name (for resolving channel names).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub team: Option<Spanned<String>>,
    /// Mattermost: the URL Mattermost posts button presses to, that is the `listen`
    /// address as the Mattermost server reaches it; with `listen`, turns buttons on.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub actions_url: Option<Spanned<String>>,
    /// Microsoft Teams: the bot's Microsoft App ID (a GUID, from the Azure Bot registration).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub app_id: Option<Spanned<String>>,
    /// Microsoft Teams: the app's client secret (secret reference).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub app_password: Option<Spanned<String>>,
    /// Microsoft Teams: the Entra tenant of a single-tenant app (default `botframework.com`,
    /// multi-tenant).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub tenant: Option<Spanned<String>>,
    /// Microsoft Teams: where the messaging endpoint (`/api/messages`) listens (default
    /// `0.0.0.0:3978`). Mattermost: where the button endpoint listens (with `actions_url`).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub listen: Option<Spanned<String>>,
    /// Microsoft Teams: file that keeps the conversation references across restarts, for
    /// announcements and direct messages (default: kept in memory only).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub state_file: Option<Spanned<String>>,
}

/// `stackstorm:` — addresses, credentials and routes.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct StackStorm {
    /// Base URL behind StackStorm's nginx: derives `{url}/api`, `{url}/auth`, `{url}/stream`.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub url: Option<Spanned<String>>,
    /// API base (`https://host/api` or `http://host:9101`).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub api_url: Option<Spanned<String>>,
    /// Auth base (`https://host/auth` or `http://host:9100`).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub auth_url: Option<Spanned<String>>,
    /// Stream base (`https://host/stream` or `http://host:9102`).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub stream_url: Option<Spanned<String>>,
    /// The bot's service identity.
    #[cfg_attr(feature = "schema", schemars(with = "StackStormAuth"))]
    pub auth: Spanned<StackStormAuth>,
    /// Verify TLS certificates (default true).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<bool>"))]
    pub verify_tls: Option<Spanned<bool>>,
    /// Extra CA bundle (PEM) to trust.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub ca_file: Option<Spanned<String>>,
    /// `notification_route` sent with every execution (default `hubot`).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub notification_route: Option<Spanned<String>>,
    /// Stream events `st2.announcement__<this>` are posted to chat (default `chatops`).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub announcement_route: Option<Spanned<String>>,
    /// StackStorm Web UI base, for execution links in acks.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub webui_url: Option<Spanned<String>>,
    /// Per-request timeout (default `30s`).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub timeout: Option<Spanned<String>>,
    /// Token lifetime requested in username+password mode (default `24h`).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub token_ttl: Option<Spanned<String>>,
    /// Where commands are matched to aliases: `stackstorm` (POST /actionalias/match,
    /// default) or `local` (the built-in matcher, no round trip).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub matcher: Option<Spanned<String>>,
    /// How many commands may be in flight against StackStorm at once (default 16).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<u32>"))]
    pub max_in_flight: Option<Spanned<u32>>,
    /// How often the alias cache is refreshed when the stream sends no alias events
    /// (default `5m`).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub alias_refresh: Option<Spanned<String>>,
    /// How long the bot keeps owing the result of an execution it started (default `1d`):
    /// until then a result lost in a stream gap is recovered; after it the execution is
    /// dropped from the owed list with a log line.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub result_timeout: Option<Spanned<String>>,
    /// File that keeps the executions the bot still owes a result for across restarts, when
    /// the bot has no `auth_page` (whose session store keeps them otherwise). Without either,
    /// the list lives in memory: stream gaps are covered, restarts are not.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub results_store: Option<Spanned<String>>,
    /// The site's StackStorm content (packs and/or `st2 … list -j` exports), read at build
    /// time to check the access rules against the aliases that exist.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<Catalogue>"))]
    pub catalogue: Option<Spanned<Catalogue>>,
}

/// `stackstorm.catalogue:` — paths relative to the definition file.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    /// Directories of packs (`<pack>/aliases/*.yaml`, `<pack>/actions/*.yaml`, as in
    /// `/opt/stackstorm/packs`), or single pack directories (with a `pack.yaml`).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<Vec<String>>"))]
    pub packs: Option<Spanned<Vec<Spanned<String>>>>,
    /// JSON exports: `st2 action-alias list -j` and/or `st2 action list -j` output files.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<Vec<String>>"))]
    pub exports: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `stackstorm.auth:` — exactly one of `api_key`, `token`, or `username` + `password`.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct StackStormAuth {
    /// API key (secret reference), sent as `St2-Api-Key`.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub api_key: Option<Spanned<String>>,
    /// Token (secret reference), sent as `X-Auth-Token`.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub token: Option<Spanned<String>>,
    /// StackStorm user name (renewing tokens from `auth_url`).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub username: Option<Spanned<String>>,
    /// Its password (secret reference).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub password: Option<Spanned<String>>,
}

/// `chat:` — command recognition and acknowledgements.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Chat {
    /// Command prefix (default `!`). `prefix: ~` (YAML null) is kept as `Some(None)` so the
    /// check can say it is not a prefix, rather than silently using the default.
    #[serde(default, deserialize_with = "present")]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub prefix: Option<Spanned<Option<String>>>,
    /// Also answer messages that mention the bot (default true).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<bool>"))]
    pub mention: Option<Spanned<bool>>,
    /// The help command's name (default `help`).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub help_command: Option<Spanned<String>>,
    /// The session command's name (default `session`).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub session_command: Option<Spanned<String>>,
    /// Acknowledgements.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<Ack>"))]
    pub ack: Option<Spanned<Ack>>,
    /// Longest message the bot sends in one piece; longer output is split (default: the
    /// backend's own limit).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<u32>"))]
    pub max_message_len: Option<Spanned<u32>>,
}

/// `chat.ack:`.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Ack {
    /// Post an acknowledgement when an execution starts (default true; an alias's own
    /// `ack.enabled: false` still wins).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<bool>"))]
    pub enabled: Option<Spanned<bool>>,
    /// Edit the ack in place as the execution runs and ends (running, then succeeded or
    /// failed with its duration), on services that can edit messages (default true; the
    /// full result still follows as the notify rule sends it).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<bool>"))]
    pub live: Option<Spanned<bool>>,
    /// The result replaces the ack (the ack message is edited into the result) instead of
    /// following it as a new message, on services that can edit messages (default false). A
    /// result too long for one message still follows as new messages.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<bool>"))]
    pub replace: Option<Spanned<bool>>,
}

/// `access:` — ordered rules, first match wins.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Access {
    /// `allow` or `deny` when no rule matches (default `deny`).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub default: Option<Spanned<String>>,
    /// The rules, in order.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<Vec<Rule>>"))]
    pub rules: Option<Spanned<Vec<Spanned<Rule>>>>,
}

/// One access rule: `- allow: {…}` or `- deny: {…}`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub enum Rule {
    /// Allow what the scope matches.
    #[serde(rename = "allow")]
    Allow(#[cfg_attr(feature = "schema", schemars(with = "Scope"))] Spanned<Scope>),
    /// Deny what the scope matches.
    #[serde(rename = "deny")]
    Deny(#[cfg_attr(feature = "schema", schemars(with = "Scope"))] Spanned<Scope>),
}

/// What a rule matches; an absent key matches everything.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Chat users: names, globs, or `@group`.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<Vec<String>>"))]
    pub users: Option<Spanned<Vec<Spanned<String>>>>,
    /// Commands: alias refs (`pack.name`), globs (`packs.*`), or the bot's own
    /// (`bot:help`, `bot:session`).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<Vec<String>>"))]
    pub commands: Option<Spanned<Vec<Spanned<String>>>>,
    /// Rooms: names or globs (a message in a room).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<Vec<String>>"))]
    pub rooms: Option<Spanned<Vec<Spanned<String>>>>,
    /// `true`: only direct messages; `false`: only rooms.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<bool>"))]
    pub direct: Option<Spanned<bool>>,
}

/// One `confirm:` entry; the first whose `commands` match the resolved alias applies.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Confirm {
    /// Alias refs (`pack.name`) or globs over them (`core.remote*`), as in access rules.
    #[cfg_attr(feature = "schema", schemars(with = "Vec<String>"))]
    pub commands: Spanned<Vec<Spanned<String>>>,
    /// `self` (the requester repeats a code) or `@group` (another member approves).
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub by: Spanned<String>,
    /// How long the confirmation waits before nothing is run (`10s` to `24h`, default `5m`).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub within: Option<Spanned<String>>,
}

/// `templates:` — one optional handlebars template per purpose.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Templates {
    /// Acknowledgement of a started execution.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub ack: Option<Spanned<String>>,
    /// A result or announcement from the stream.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub result: Option<Spanned<String>>,
    /// A StackStorm error reply.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub error: Option<Spanned<String>>,
    /// One line of help.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub help: Option<Spanned<String>>,
    /// The reply to a command the access rules deny.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub denied: Option<Spanned<String>>,
    /// The reply when no alias matches.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub no_match: Option<Spanned<String>>,
    /// The reply when several aliases match.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub ambiguous: Option<Spanned<String>>,
}

/// `auth_page:` — the client-side authentication web page.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AuthPage {
    /// Listen address (default `127.0.0.1:8765`).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub listen: Option<Spanned<String>>,
    /// The URL users open (what the bot puts in the one-time link).
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub public_url: Spanned<String>,
    /// How long a bound session lasts (default `12h`).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub session_ttl: Option<Spanned<String>>,
    /// How long a login link is valid (default `5m`).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub link_ttl: Option<Spanned<String>>,
    /// Refuse commands from users without a session (default false: they use the bot's
    /// own identity).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<bool>"))]
    pub required: Option<Spanned<bool>>,
    /// Where sessions are stored (default `st2bot-<name>-sessions.redb`).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub store: Option<Spanned<String>>,
    /// Key that encrypts stored tokens (secret reference).
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub encryption_key: Spanned<String>,
    /// TLS certificate (PEM file) for serving HTTPS directly.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub tls_cert: Option<Spanned<String>>,
    /// TLS private key (PEM file).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub tls_key: Option<Spanned<String>>,
    /// Allow a non-loopback listen address without TLS (behind a TLS proxy).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<bool>"))]
    pub allow_plain_http: Option<Spanned<bool>>,
    /// Reverse proxies (IP addresses or CIDR ranges) whose `X-Forwarded-For` is believed.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<Vec<String>>"))]
    pub trusted_proxies: Option<Spanned<Vec<Spanned<String>>>>,
    /// Who may list and revoke everyone's sessions (`session list`, `session revoke`):
    /// names, patterns or `@group`, as in access rules (default: nobody).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<Vec<String>>"))]
    pub admins: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `ha:` — high availability through PostgreSQL.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Ha {
    /// PostgreSQL connection URL, `postgres://user:password@host:5432/db` (secret reference).
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub database_url: Spanned<String>,
    /// `verify-full` (default: TLS, certificate and host name checked) or `disable`.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub tls: Option<Spanned<String>>,
    /// Trust this CA bundle (PEM file) in addition to the system roots.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub ca_file: Option<Spanned<String>>,
    /// How long a leader's lease lasts without renewal (default `10s`, from `2s` to `5m`).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub lease: Option<Spanned<String>>,
    /// The environment variable naming this instance (default `ST2BOT_INSTANCE`; unset:
    /// host name and process id).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub instance_env: Option<Spanned<String>>,
}

/// `health:` — operations endpoint.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Listen address for `/healthz`, `/readyz` and `/metrics` (off when absent).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub listen: Option<Spanned<String>>,
}

/// `log:` — log output.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Log {
    /// `text` (default) or `json`.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub format: Option<Spanned<String>>,
    /// Default filter (`info`; `RUST_LOG` overrides).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub level: Option<Spanned<String>>,
    /// Audit trail file: one JSON line per access decision, execution started and inquiry
    /// answer, appended (rotation is the platform's: logrotate `copytruncate`).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub audit_file: Option<Spanned<String>>,
    /// Also write the audit trail to standard output (for journald and containers).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<bool>"))]
    pub audit_stdout: Option<Spanned<bool>>,
}
