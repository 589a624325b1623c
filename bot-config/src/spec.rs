//! The validated bot definition: [`BotSpec`], the only configuration the runtime sees.
//!
//! Every string and list is a `Cow<'static, _>` so the same types serve a spec parsed at
//! run time (owned) and one the `bot!` macro wrote into the executable as a `static`
//! (borrowed), as sqlx's `Migrator` does. No secret value lives here: only
//! [`SecretRef`]s, resolved by the runtime.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// A string that is borrowed in generated code and owned when parsed at run time.
pub type Str = Cow<'static, str>;
/// A list that is borrowed in generated code and owned when parsed at run time.
pub type List<T> = Cow<'static, [T]>;

/// A validated bot definition.
#[derive(Clone, Debug, PartialEq)]
pub struct BotSpec {
    /// The bot's name.
    pub name: Str,
    /// Free text from `description`.
    pub description: Str,
    /// Where the definition came from (`bots/demo.yaml`), for logs and `--help`.
    pub source: Str,
    /// The chat backend and its settings.
    pub backend: BackendSpec,
    /// StackStorm connection.
    pub stackstorm: StackStormSpec,
    /// Command recognition.
    pub chat: ChatSpec,
    /// Access rules.
    pub access: AccessSpec,
    /// Commands that need a confirmation before they run, in order (first match applies).
    pub confirm: List<ConfirmSpec>,
    /// Reply templates, defaults filled in.
    pub templates: TemplatesSpec,
    /// Client-side authentication page, when configured.
    pub auth_page: Option<AuthPageSpec>,
    /// High availability through PostgreSQL, when configured.
    pub ha: Option<HaSpec>,
    /// Health endpoint address, when configured.
    pub health_listen: Option<Str>,
    /// Log settings.
    pub log: LogSpec,
}

/// Where a secret comes from. Its value is read at run time and never compiled in.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// `${NAME}`: the environment variable `NAME`.
    Env(Str),
    /// `file:/path`: the file's contents, trailing newline removed.
    File(Str),
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A reference is not a secret, but keep the shape obvious in logs.
        match self {
            SecretRef::Env(name) => write!(f, "${{{name}}}"),
            SecretRef::File(path) => write!(f, "file:{path}"),
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The chat backend, one variant per kind, each with only its own settings.
#[derive(Clone, Debug, PartialEq)]
pub enum BackendSpec {
    /// The terminal.
    Text(TextSpec),
    /// XMPP client-to-server.
    Xmpp(XmppSpec),
    /// IRC.
    Irc(IrcSpec),
    /// Matrix client-server API (also Gitter rooms).
    Matrix(MatrixSpec),
    /// Slack Socket Mode + Web API.
    Slack(SlackSpec),
    /// Mattermost REST + WebSocket.
    Mattermost(MattermostSpec),
    /// Discord Gateway + REST.
    Discord(DiscordSpec),
    /// Rocket.Chat REST + realtime API.
    RocketChat(RocketChatSpec),
    /// Microsoft Teams through the Bot Framework (messaging endpoint + connector).
    MsTeams(MsTeamsSpec),
}

impl StackStormSpec {
    /// Points the API, auth and stream addresses at the StackStorm behind `base` (its
    /// nginx, no trailing slash), as `stackstorm.url` does.
    pub fn use_base_url(&mut self, base: &str) {
        self.api_url = format!("{base}{}", STACKSTORM_PATHS.api).into();
        self.auth_url = format!("{base}{}", STACKSTORM_PATHS.auth).into();
        self.stream_url = format!("{base}{}", STACKSTORM_PATHS.stream).into();
    }
}

impl BackendSpec {
    /// The `kind:` name.
    pub fn kind(&self) -> &'static str {
        match self {
            BackendSpec::Text(_) => "text",
            BackendSpec::Xmpp(_) => "xmpp",
            BackendSpec::Irc(_) => "irc",
            BackendSpec::Matrix(_) => "matrix",
            BackendSpec::Slack(_) => "slack",
            BackendSpec::Mattermost(_) => "mattermost",
            BackendSpec::Discord(_) => "discord",
            BackendSpec::RocketChat(_) => "rocketchat",
            BackendSpec::MsTeams(_) => "msteams",
        }
    }

    /// Whether the service can edit a message the bot posted (live acks, a result replacing
    /// its ack). The runtime's `Capabilities::edit` of each backend says the same.
    pub fn can_edit(&self) -> bool {
        !matches!(
            self,
            BackendSpec::Text(_) | BackendSpec::Xmpp(_) | BackendSpec::Irc(_)
        )
    }

    /// Every secret this backend needs at run time, with the key it came from.
    pub fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        let mut out = Vec::new();
        match self {
            BackendSpec::Text(_) => {}
            BackendSpec::Xmpp(x) => out.push(("backend.password", &x.password)),
            BackendSpec::Irc(x) => {
                if let Some(p) = &x.password {
                    out.push(("backend.password", p));
                }
            }
            BackendSpec::Matrix(x) => match &x.login {
                MatrixLogin::Password { password, .. } => out.push(("backend.password", password)),
                MatrixLogin::Token(t) => out.push(("backend.token", t)),
            },
            BackendSpec::Slack(x) => {
                out.push(("backend.app_token", &x.app_token));
                out.push(("backend.bot_token", &x.bot_token));
            }
            BackendSpec::Mattermost(x) => out.push(("backend.token", &x.token)),
            BackendSpec::Discord(x) => out.push(("backend.token", &x.token)),
            BackendSpec::RocketChat(x) => match &x.login {
                RocketChatLogin::Password { password, .. } => {
                    out.push(("backend.password", password))
                }
                RocketChatLogin::Token { token, .. } => out.push(("backend.token", token)),
            },
            BackendSpec::MsTeams(x) => out.push(("backend.app_password", &x.app_password)),
        }
        out
    }
}

/// Text backend settings.
#[derive(Clone, Debug, PartialEq)]
pub struct TextSpec {
    /// The chat user typed lines come from (empty: `$USER`).
    pub user: Str,
    /// The room typed lines are said in.
    pub room: Str,
    /// Demo mode: the executable carries the StackStorm simulator (`--simulate`).
    pub simulator: bool,
}

/// XMPP settings.
#[derive(Clone, Debug, PartialEq)]
pub struct XmppSpec {
    /// The bot's JID.
    pub jid: Str,
    /// Its password.
    pub password: SecretRef,
    /// Server host (empty: the JID's domain).
    pub server: Str,
    /// Server port.
    pub port: u16,
    /// Require STARTTLS.
    pub tls: bool,
    /// Extra CA bundle.
    pub ca_file: Option<Str>,
    /// Nickname in MUC rooms.
    pub nickname: Str,
    /// MUC rooms to join.
    pub rooms: List<Str>,
}

/// How the IRC backend authenticates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrcAuth {
    /// No authentication.
    None,
    /// SASL PLAIN during registration.
    Sasl,
    /// `PRIVMSG NickServ :IDENTIFY` after registration.
    NickServ,
    /// Server password (`PASS`).
    Server,
}

/// IRC settings.
#[derive(Clone, Debug, PartialEq)]
pub struct IrcSpec {
    /// Server host.
    pub server: Str,
    /// Server port.
    pub port: u16,
    /// Use TLS.
    pub tls: bool,
    /// Extra CA bundle.
    pub ca_file: Option<Str>,
    /// Nick.
    pub nickname: Str,
    /// Account for SASL/NickServ (empty: the nick).
    pub username: Str,
    /// Password for `auth`.
    pub password: Option<SecretRef>,
    /// Authentication method.
    pub auth: IrcAuth,
    /// Channels to join.
    pub rooms: List<Str>,
}

/// How the Matrix backend logs in.
#[derive(Clone, Debug, PartialEq)]
pub enum MatrixLogin {
    /// `m.login.password`.
    Password {
        /// Localpart or full user id.
        username: Str,
        /// Password.
        password: SecretRef,
    },
    /// An existing access token.
    Token(SecretRef),
}

/// Matrix settings.
#[derive(Clone, Debug, PartialEq)]
pub struct MatrixSpec {
    /// Homeserver base URL.
    pub url: Str,
    /// Login.
    pub login: MatrixLogin,
    /// Rooms to join (ids or aliases).
    pub rooms: List<Str>,
}

/// Slack settings.
#[derive(Clone, Debug, PartialEq)]
pub struct SlackSpec {
    /// App-level token for Socket Mode.
    pub app_token: SecretRef,
    /// Bot token for the Web API.
    pub bot_token: SecretRef,
    /// Web API base (default `https://slack.com/api`).
    pub url: Str,
}

/// Mattermost settings.
#[derive(Clone, Debug, PartialEq)]
pub struct MattermostSpec {
    /// Server base URL.
    pub url: Str,
    /// Personal access or bot token.
    pub token: SecretRef,
    /// Team name (optional).
    pub team: Str,
    /// Where the endpoint for button presses listens (`IP:port`); `None`: no buttons.
    pub listen: Option<Str>,
    /// The URL Mattermost posts button presses to (the `listen` address as the server
    /// reaches it); set exactly when `listen` is.
    pub actions_url: Option<Str>,
}

/// Discord settings.
#[derive(Clone, Debug, PartialEq)]
pub struct DiscordSpec {
    /// Bot token.
    pub token: SecretRef,
    /// REST API base (default `https://discord.com/api/v10`).
    pub url: Str,
}

/// How the Rocket.Chat backend logs in.
#[derive(Clone, Debug, PartialEq)]
pub enum RocketChatLogin {
    /// `POST /api/v1/login`.
    Password {
        /// User name.
        username: Str,
        /// Password.
        password: SecretRef,
    },
    /// Personal access token and its user id.
    Token {
        /// User id.
        user_id: Str,
        /// Token.
        token: SecretRef,
    },
}

/// Rocket.Chat settings.
#[derive(Clone, Debug, PartialEq)]
pub struct RocketChatSpec {
    /// Server base URL.
    pub url: Str,
    /// Login.
    pub login: RocketChatLogin,
}

/// Microsoft Teams (Bot Framework) settings.
#[derive(Clone, Debug, PartialEq)]
pub struct MsTeamsSpec {
    /// The Microsoft App ID of the Azure Bot registration (a GUID): the audience of inbound
    /// tokens and the client id of outbound ones.
    pub app_id: Str,
    /// The app's client secret.
    pub app_password: SecretRef,
    /// Entra tenant that issues outbound tokens (`botframework.com` for multi-tenant apps).
    pub tenant: Str,
    /// Messaging endpoint listen address (`IP:port`); the path is `/api/messages`.
    pub listen: Str,
    /// File keeping conversation references across restarts; `None`: memory only.
    pub state_file: Option<Str>,
    /// Login base for client-credential tokens (default `https://login.microsoftonline.com`).
    pub url: Str,
}

/// The bot's StackStorm service identity.
#[derive(Clone, Debug, PartialEq)]
pub enum St2AuthSpec {
    /// `St2-Api-Key`.
    ApiKey(SecretRef),
    /// `X-Auth-Token`, fixed.
    Token(SecretRef),
    /// Tokens from `POST {auth_url}/tokens`, renewed before expiry.
    Password {
        /// StackStorm user.
        username: Str,
        /// Password.
        password: SecretRef,
    },
}

/// Where commands are matched to aliases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatcherKind {
    /// `POST /v1/actionalias/match` (StackStorm decides).
    StackStorm,
    /// The built-in matcher over the cached aliases.
    Local,
}

/// Where StackStorm serves each part behind its nginx, under `stackstorm.url`: the one
/// place this rule is written (the definition check, `--stackstorm-url` and demo mode all
/// derive the three addresses through it).
pub const STACKSTORM_PATHS: StackStormPaths = StackStormPaths {
    api: "/api",
    auth: "/auth",
    stream: "/stream",
};

/// The paths of [`STACKSTORM_PATHS`].
#[derive(Clone, Copy, Debug)]
pub struct StackStormPaths {
    /// The API (`/api`).
    pub api: &'static str,
    /// The auth service (`/auth`).
    pub auth: &'static str,
    /// The stream (`/stream`).
    pub stream: &'static str,
}

/// StackStorm connection.
#[derive(Clone, Debug, PartialEq)]
pub struct StackStormSpec {
    /// API base, no trailing slash (`…/api`); the client appends `/v1/…`.
    pub api_url: Str,
    /// Auth base, no trailing slash; the client appends `/tokens`.
    pub auth_url: Str,
    /// Stream base, no trailing slash; the client appends `/v1/stream`.
    pub stream_url: Str,
    /// Service identity.
    pub auth: St2AuthSpec,
    /// Verify TLS certificates.
    pub verify_tls: bool,
    /// Extra CA bundle.
    pub ca_file: Option<Str>,
    /// Sent as `notification_route`.
    pub notification_route: Str,
    /// Announcements heard: `st2.announcement__<this>`.
    pub announcement_route: Str,
    /// Web UI base, no trailing slash.
    pub webui_url: Option<Str>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Requested token lifetime.
    pub token_ttl: Duration,
    /// Where commands are matched.
    pub matcher: MatcherKind,
    /// Commands in flight at once.
    pub max_in_flight: u32,
    /// Alias cache refresh period.
    pub alias_refresh: Duration,
    /// How long a started execution's result stays owed (recoverable after a stream gap).
    pub result_timeout: Duration,
    /// File for the owed-results list when there is no session store (`None`: memory).
    pub results_store: Option<Str>,
}

/// Command recognition.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatSpec {
    /// Command prefix.
    pub prefix: Str,
    /// Answer mentions.
    pub mention: bool,
    /// Help command name.
    pub help_command: Str,
    /// Session command name.
    pub session_command: Str,
    /// Post acknowledgements.
    pub ack: bool,
    /// Edit acks in place from the execution's updates, where the service can edit.
    pub live_ack: bool,
    /// The result replaces the ack (edited in place) instead of following it, where the
    /// service can edit (checked at build time) and the result fits one message.
    pub replace_ack: bool,
    /// Split replies longer than this (0: the backend's limit).
    pub max_message_len: u32,
}

/// Allow or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Let the command through.
    Allow,
    /// Refuse it.
    Deny,
}

impl Decision {
    /// `allow` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        }
    }
}

/// Access rules.
#[derive(Clone, Debug, PartialEq)]
pub struct AccessSpec {
    /// Decision when no rule matches.
    pub default: Decision,
    /// Rules in order; first match wins.
    pub rules: List<RuleSpec>,
    /// Groups referenced by rules.
    pub groups: List<GroupSpec>,
}

/// One access rule.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleSpec {
    /// What happens when it matches.
    pub decision: Decision,
    /// User patterns (`@group` for groups); `None` matches everyone.
    pub users: Option<List<Str>>,
    /// Command patterns; `None` matches every command.
    pub commands: Option<List<Str>>,
    /// Room patterns; `None` matches every room and DMs (unless `direct` says otherwise).
    pub rooms: Option<List<Str>>,
    /// `Some(true)`: only DMs; `Some(false)`: only rooms.
    pub direct: Option<bool>,
    /// Line of the rule in the definition, for logs.
    pub line: u32,
}

/// A named group of chat users.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupSpec {
    /// Name without `@`.
    pub name: Str,
    /// Members (user names or globs).
    pub members: List<Str>,
}

/// One `confirm:` rule.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfirmSpec {
    /// Alias ref patterns (globs, as access rules' `commands`).
    pub commands: List<Str>,
    /// Who confirms.
    pub by: ConfirmBy,
    /// How long the request waits.
    pub within: Duration,
    /// Line of the rule in the definition, for logs.
    pub line: u32,
}

/// Who confirms a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfirmBy {
    /// The requester, by repeating a short code.
    Requester,
    /// Another member of this group (name without `@`); never the requester.
    Group(Str),
}

/// Reply templates (handlebars), defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct TemplatesSpec {
    /// Acknowledgement.
    pub ack: Str,
    /// Result / announcement.
    pub result: Str,
    /// StackStorm error.
    pub error: Str,
    /// One help line.
    pub help: Str,
    /// Access denied.
    pub denied: Str,
    /// No alias matched.
    pub no_match: Str,
    /// Several aliases matched.
    pub ambiguous: Str,
}

/// Client-side authentication page.
#[derive(Clone, Debug, PartialEq)]
pub struct AuthPageSpec {
    /// Listen address.
    pub listen: Str,
    /// Public URL of the page.
    pub public_url: Str,
    /// Session lifetime.
    pub session_ttl: Duration,
    /// Login link lifetime.
    pub link_ttl: Duration,
    /// Refuse users without a session.
    pub required: bool,
    /// Session store path.
    pub store: Str,
    /// Token encryption key.
    pub encryption_key: SecretRef,
    /// TLS certificate and key files.
    pub tls: Option<(Str, Str)>,
    /// Serve plain HTTP on a non-loopback address.
    pub allow_plain_http: bool,
    /// Proxies whose `X-Forwarded-For` is believed, as `address/prefix` (CIDR, normalised).
    pub trusted_proxies: List<Str>,
    /// Session admins (`session list`/`revoke`): names, globs or `@group`.
    pub admins: List<Str>,
}

/// High availability: leadership and shared state in PostgreSQL.
#[derive(Clone, Debug, PartialEq)]
pub struct HaSpec {
    /// PostgreSQL connection URL (it usually holds a password).
    pub database_url: SecretRef,
    /// TLS to PostgreSQL.
    pub tls: PgTls,
    /// Extra CA bundle (PEM) for the database's certificate.
    pub ca_file: Option<Str>,
    /// Lease duration: a leader that cannot renew within it stops answering.
    pub lease: Duration,
    /// Environment variable naming the instance.
    pub instance_env: Str,
}

/// TLS to PostgreSQL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PgTls {
    /// TLS required; certificate chain and host name verified.
    VerifyFull,
    /// Plain TCP (a loopback or otherwise protected network only).
    Disable,
}

impl PgTls {
    /// The words a definition may write, in the order of the variants.
    pub const WORDS: [&'static str; 2] = ["verify-full", "disable"];

    /// The mode a definition's word names.
    pub fn from_word(word: &str) -> Option<PgTls> {
        match word {
            "verify-full" => Some(PgTls::VerifyFull),
            "disable" => Some(PgTls::Disable),
            _ => None,
        }
    }

    /// The word a definition writes for this mode.
    pub fn word(self) -> &'static str {
        match self {
            PgTls::VerifyFull => Self::WORDS[0],
            PgTls::Disable => Self::WORDS[1],
        }
    }
}

/// Log format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Log settings.
#[derive(Clone, Debug, PartialEq)]
pub struct LogSpec {
    /// Format.
    pub format: LogFormat,
    /// Default filter directive.
    pub level: Str,
    /// Audit trail file (JSON lines, appended), when configured.
    pub audit_file: Option<Str>,
    /// Whether the audit trail also goes to standard output.
    pub audit_stdout: bool,
}

#[cfg(test)]
mod tests {
    /// `use_base_url` (for `--stackstorm-url` and demo mode) and `stackstorm.url` in a
    /// definition derive the same three addresses.
    #[test]
    fn a_base_url_gives_the_same_addresses_at_run_time_as_in_the_definition() {
        let yaml = "name: acme\nbackend: { kind: text }\nstackstorm:\n  url: https://st2.example.com\n  auth: { api_key: \"${ST2_API_KEY}\" }\n";
        let spec = crate::load(&crate::SourceFile::new("acme.yaml", yaml)).expect("valid");
        let mut moved = spec.stackstorm.clone();
        moved.use_base_url("http://127.0.0.1:9101");
        let mut back = moved.clone();
        back.use_base_url("https://st2.example.com");
        assert_eq!(back, spec.stackstorm);
        assert_eq!(&*moved.api_url, "http://127.0.0.1:9101/api");
        assert_eq!(&*moved.auth_url, "http://127.0.0.1:9101/auth");
        assert_eq!(&*moved.stream_url, "http://127.0.0.1:9101/stream");
    }
}
