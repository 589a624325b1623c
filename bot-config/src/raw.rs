//! The bot definition exactly as written in YAML: serde types with `deny_unknown_fields`,
//! field names equal to YAML keys, and a [`Spanned`] on every value a check may blame.
//!
//! Nothing here is validated; `check/` turns a [`BotFile`] into a [`crate::BotSpec`].
//! Every key is documented with its default in `bots/reference.yaml`.

use std::collections::HashMap;

use serde::Deserialize;

use crate::source::Spanned;

/// `groups:` as written: group name → members.
pub type Groups = HashMap<Spanned<String>, Spanned<Vec<Spanned<String>>>>;

/// A whole bot definition file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotFile {
    /// The bot's name: letters, digits, `-` and `_` (it names the executable).
    pub name: Spanned<String>,
    /// Free text shown by `--help`.
    #[serde(default)]
    pub description: Option<Spanned<String>>,
    /// Which chat service and how to connect to it.
    pub backend: Spanned<Backend>,
    /// How to reach StackStorm.
    pub stackstorm: Spanned<StackStorm>,
    /// Command recognition and replies.
    #[serde(default)]
    pub chat: Option<Spanned<Chat>>,
    /// Who may run what.
    #[serde(default)]
    pub access: Option<Spanned<Access>>,
    /// Named groups of chat users, referenced as `@name` in access rules.
    #[serde(default)]
    pub groups: Option<Spanned<Groups>>,
    /// Handlebars templates for the bot's replies, by purpose.
    #[serde(default)]
    pub templates: Option<Spanned<Templates>>,
    /// The client-side authentication page (per-user StackStorm identity).
    #[serde(default)]
    pub auth_page: Option<Spanned<AuthPage>>,
    /// Health, readiness and metrics endpoint.
    #[serde(default)]
    pub health: Option<Spanned<Health>>,
    /// Log output.
    #[serde(default)]
    pub log: Option<Spanned<Log>>,
}

/// `backend:` — one flat mapping for every kind; which keys a kind takes (and requires) is
/// checked in `check/backend.rs`, so a misplaced key gets a precise message.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    /// `text`, `xmpp`, `irc`, `matrix`, `slack`, `mattermost`, `discord` or `rocketchat`.
    pub kind: Spanned<String>,
    /// Text: the chat user you act as (default: `$USER`).
    #[serde(default)]
    pub user: Option<Spanned<String>>,
    /// Text: the room you are in (default: `terminal`).
    #[serde(default)]
    pub room: Option<Spanned<String>>,
    /// XMPP: the bot's JID (`bot@example.org`).
    #[serde(default)]
    pub jid: Option<Spanned<String>>,
    /// IRC/XMPP: server host name (XMPP: defaults to the JID's domain).
    #[serde(default)]
    pub server: Option<Spanned<String>>,
    /// IRC/XMPP: server port.
    #[serde(default)]
    pub port: Option<Spanned<u16>>,
    /// IRC: use TLS (default true); XMPP: require STARTTLS (default true).
    #[serde(default)]
    pub tls: Option<Spanned<bool>>,
    /// IRC/XMPP: trust this CA bundle file in addition to the system roots.
    #[serde(default)]
    pub ca_file: Option<Spanned<String>>,
    /// IRC: nick; XMPP: nickname in rooms.
    #[serde(default)]
    pub nickname: Option<Spanned<String>>,
    /// Matrix homeserver, Mattermost or Rocket.Chat server URL; fake/base URL for others.
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    /// Matrix, Rocket.Chat, IRC SASL: the account name.
    #[serde(default)]
    pub username: Option<Spanned<String>>,
    /// Password (secret reference) for XMPP, IRC (SASL/NickServ/server), Matrix, Rocket.Chat.
    #[serde(default)]
    pub password: Option<Spanned<String>>,
    /// Access token (secret reference): Matrix, Mattermost, Discord, Rocket.Chat.
    #[serde(default)]
    pub token: Option<Spanned<String>>,
    /// Rocket.Chat: the user id that goes with `token`.
    #[serde(default)]
    pub user_id: Option<Spanned<String>>,
    /// Slack: app-level token (`xapp-…`) for Socket Mode (secret reference).
    #[serde(default)]
    pub app_token: Option<Spanned<String>>,
    /// Slack: bot token (`xoxb-…`) for the Web API (secret reference).
    #[serde(default)]
    pub bot_token: Option<Spanned<String>>,
    /// IRC: how to authenticate: `none`, `sasl`, `nickserv` or `server`.
    #[serde(default)]
    pub auth: Option<Spanned<String>>,
    /// Rooms/channels to join on start (XMPP MUC JIDs, `#channels`, Matrix room ids/aliases).
    #[serde(default)]
    pub rooms: Option<Spanned<Vec<Spanned<String>>>>,
    /// Mattermost: team name (for resolving channel names).
    #[serde(default)]
    pub team: Option<Spanned<String>>,
}

/// `stackstorm:` — addresses, credentials and routes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackStorm {
    /// Base URL behind StackStorm's nginx: derives `{url}/api`, `{url}/auth`, `{url}/stream`.
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    /// API base (`https://host/api` or `http://host:9101`).
    #[serde(default)]
    pub api_url: Option<Spanned<String>>,
    /// Auth base (`https://host/auth` or `http://host:9100`).
    #[serde(default)]
    pub auth_url: Option<Spanned<String>>,
    /// Stream base (`https://host/stream` or `http://host:9102`).
    #[serde(default)]
    pub stream_url: Option<Spanned<String>>,
    /// The bot's service identity.
    pub auth: Spanned<StackStormAuth>,
    /// Verify TLS certificates (default true).
    #[serde(default)]
    pub verify_tls: Option<Spanned<bool>>,
    /// Extra CA bundle (PEM) to trust.
    #[serde(default)]
    pub ca_file: Option<Spanned<String>>,
    /// `notification_route` sent with every execution (default `hubot`).
    #[serde(default)]
    pub notification_route: Option<Spanned<String>>,
    /// Stream events `st2.announcement__<this>` are posted to chat (default `chatops`).
    #[serde(default)]
    pub announcement_route: Option<Spanned<String>>,
    /// StackStorm Web UI base, for execution links in acks.
    #[serde(default)]
    pub webui_url: Option<Spanned<String>>,
    /// Per-request timeout (default `30s`).
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
    /// Token lifetime requested in username+password mode (default `24h`).
    #[serde(default)]
    pub token_ttl: Option<Spanned<String>>,
    /// Where commands are matched to aliases: `stackstorm` (POST /actionalias/match,
    /// default) or `local` (the built-in matcher, no round trip).
    #[serde(default)]
    pub matcher: Option<Spanned<String>>,
    /// How many commands may be in flight against StackStorm at once (default 16).
    #[serde(default)]
    pub max_in_flight: Option<Spanned<u32>>,
    /// How often the alias cache is refreshed when the stream sends no alias events
    /// (default `5m`).
    #[serde(default)]
    pub alias_refresh: Option<Spanned<String>>,
}

/// `stackstorm.auth:` — exactly one of `api_key`, `token`, or `username` + `password`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackStormAuth {
    /// API key (secret reference), sent as `St2-Api-Key`.
    #[serde(default)]
    pub api_key: Option<Spanned<String>>,
    /// Token (secret reference), sent as `X-Auth-Token`.
    #[serde(default)]
    pub token: Option<Spanned<String>>,
    /// StackStorm user name (renewing tokens from `auth_url`).
    #[serde(default)]
    pub username: Option<Spanned<String>>,
    /// Its password (secret reference).
    #[serde(default)]
    pub password: Option<Spanned<String>>,
}

/// `chat:` — command recognition and acknowledgements.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chat {
    /// Command prefix (default `!`).
    #[serde(default)]
    pub prefix: Option<Spanned<String>>,
    /// Also answer messages that mention the bot (default true).
    #[serde(default)]
    pub mention: Option<Spanned<bool>>,
    /// The help command's name (default `help`).
    #[serde(default)]
    pub help_command: Option<Spanned<String>>,
    /// The session command's name (default `session`).
    #[serde(default)]
    pub session_command: Option<Spanned<String>>,
    /// Acknowledgements.
    #[serde(default)]
    pub ack: Option<Spanned<Ack>>,
    /// Longest message the bot sends in one piece; longer output is split (default: the
    /// backend's own limit).
    #[serde(default)]
    pub max_message_len: Option<Spanned<u32>>,
}

/// `chat.ack:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    /// Post an acknowledgement when an execution starts (default true; an alias's own
    /// `ack.enabled: false` still wins).
    #[serde(default)]
    pub enabled: Option<Spanned<bool>>,
}

/// `access:` — ordered rules, first match wins.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Access {
    /// `allow` or `deny` when no rule matches (default `deny`).
    #[serde(default)]
    pub default: Option<Spanned<String>>,
    /// The rules, in order.
    #[serde(default)]
    pub rules: Option<Spanned<Vec<Spanned<Rule>>>>,
}

/// One access rule: `- allow: {…}` or `- deny: {…}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Rule {
    /// Allow what the scope matches.
    #[serde(rename = "allow")]
    Allow(Spanned<Scope>),
    /// Deny what the scope matches.
    #[serde(rename = "deny")]
    Deny(Spanned<Scope>),
}

/// What a rule matches; an absent key matches everything.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Chat users: names, globs, or `@group`.
    #[serde(default)]
    pub users: Option<Spanned<Vec<Spanned<String>>>>,
    /// Commands: alias refs (`pack.name`), globs (`packs.*`), or the bot's own
    /// (`bot:help`, `bot:session`).
    #[serde(default)]
    pub commands: Option<Spanned<Vec<Spanned<String>>>>,
    /// Rooms: names or globs (a message in a room).
    #[serde(default)]
    pub rooms: Option<Spanned<Vec<Spanned<String>>>>,
    /// `true`: only direct messages; `false`: only rooms.
    #[serde(default)]
    pub direct: Option<Spanned<bool>>,
}

/// `templates:` — one optional handlebars template per purpose.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Templates {
    /// Acknowledgement of a started execution.
    #[serde(default)]
    pub ack: Option<Spanned<String>>,
    /// A result or announcement from the stream.
    #[serde(default)]
    pub result: Option<Spanned<String>>,
    /// A StackStorm error reply.
    #[serde(default)]
    pub error: Option<Spanned<String>>,
    /// One line of help.
    #[serde(default)]
    pub help: Option<Spanned<String>>,
    /// The reply to a command the access rules deny.
    #[serde(default)]
    pub denied: Option<Spanned<String>>,
    /// The reply when no alias matches.
    #[serde(default)]
    pub no_match: Option<Spanned<String>>,
    /// The reply when several aliases match.
    #[serde(default)]
    pub ambiguous: Option<Spanned<String>>,
}

/// `auth_page:` — the client-side authentication web page.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthPage {
    /// Listen address (default `127.0.0.1:8765`).
    #[serde(default)]
    pub listen: Option<Spanned<String>>,
    /// The URL users open (what the bot puts in the one-time link).
    pub public_url: Spanned<String>,
    /// How long a bound session lasts (default `12h`).
    #[serde(default)]
    pub session_ttl: Option<Spanned<String>>,
    /// How long a login link is valid (default `5m`).
    #[serde(default)]
    pub link_ttl: Option<Spanned<String>>,
    /// Refuse commands from users without a session (default false: they use the bot's
    /// own identity).
    #[serde(default)]
    pub required: Option<Spanned<bool>>,
    /// Where sessions are stored (default `st2bot-<name>-sessions.redb`).
    #[serde(default)]
    pub store: Option<Spanned<String>>,
    /// Key that encrypts stored tokens (secret reference).
    pub encryption_key: Spanned<String>,
    /// TLS certificate (PEM file) for serving HTTPS directly.
    #[serde(default)]
    pub tls_cert: Option<Spanned<String>>,
    /// TLS private key (PEM file).
    #[serde(default)]
    pub tls_key: Option<Spanned<String>>,
    /// Allow a non-loopback listen address without TLS (behind a TLS proxy).
    #[serde(default)]
    pub allow_plain_http: Option<Spanned<bool>>,
}

/// `health:` — operations endpoint.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Listen address for `/healthz`, `/readyz` and `/metrics` (off when absent).
    #[serde(default)]
    pub listen: Option<Spanned<String>>,
}

/// `log:` — log output.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    /// `text` (default) or `json`.
    #[serde(default)]
    pub format: Option<Spanned<String>>,
    /// Default filter (`info`; `RUST_LOG` overrides).
    #[serde(default)]
    pub level: Option<Spanned<String>>,
}
