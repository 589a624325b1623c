//! `backend:` — the kind, which keys it takes, which it requires, and their values.

use crate::diagnostic::{Diagnostic, DiagnosticId, Diagnostics};
use crate::raw::Backend;
use crate::source::{SourceFile, Span, Spanned};
use crate::spec::{
    BackendSpec, DiscordSpec, IrcAuth, IrcSpec, List, MatrixLogin, MatrixSpec, MattermostSpec,
    MsTeamsSpec, RocketChatLogin, RocketChatSpec, SecretRef, SlackSpec, Str, TextSpec, XmppSpec,
};
use crate::suggest::{did_you_mean_help, list_words};

use super::{
    secrets::secret,
    values::{listen_address, url},
};

/// Every backend kind, with the keys it takes (besides `kind`) and those it requires.
const KINDS: &[(&str, &[&str], &[&str])] = &[
    ("text", &["user", "room", "simulator"], &[]),
    (
        "xmpp",
        &[
            "jid", "password", "server", "port", "tls", "ca_file", "nickname", "rooms",
        ],
        &["jid", "password"],
    ),
    (
        "irc",
        &[
            "server", "port", "tls", "ca_file", "nickname", "username", "password", "auth", "rooms",
        ],
        &["server", "nickname"],
    ),
    (
        "matrix",
        &["url", "username", "password", "token", "rooms"],
        &["url"],
    ),
    (
        "slack",
        &["app_token", "bot_token", "url"],
        &["app_token", "bot_token"],
    ),
    (
        "mattermost",
        &["url", "token", "team", "listen", "actions_url"],
        &["url", "token"],
    ),
    ("discord", &["token", "url"], &["token"]),
    (
        "rocketchat",
        &["url", "username", "password", "token", "user_id"],
        &["url"],
    ),
    (
        "msteams",
        &[
            "app_id",
            "app_password",
            "tenant",
            "listen",
            "state_file",
            "url",
        ],
        &["app_id", "app_password"],
    ),
];

/// The backend kinds, for notes and the JSON schema.
pub(crate) fn kinds() -> impl Iterator<Item = &'static str> {
    KINDS.iter().map(|k| k.0)
}

/// The keys written under `backend:` (besides `kind`) with their positions.
fn present(b: &Backend) -> Vec<(&'static str, Span)> {
    fn s<T>(v: &Option<Spanned<T>>) -> Option<Span> {
        v.as_ref().map(Span::of)
    }
    let all = [
        ("user", s(&b.user)),
        ("room", s(&b.room)),
        ("simulator", s(&b.simulator)),
        ("jid", s(&b.jid)),
        ("server", s(&b.server)),
        ("port", s(&b.port)),
        ("tls", s(&b.tls)),
        ("ca_file", s(&b.ca_file)),
        ("nickname", s(&b.nickname)),
        ("url", s(&b.url)),
        ("username", s(&b.username)),
        ("password", s(&b.password)),
        ("token", s(&b.token)),
        ("user_id", s(&b.user_id)),
        ("app_token", s(&b.app_token)),
        ("bot_token", s(&b.bot_token)),
        ("auth", s(&b.auth)),
        ("rooms", b.rooms.as_ref().map(Span::start_of)),
        ("team", s(&b.team)),
        ("app_id", s(&b.app_id)),
        ("app_password", s(&b.app_password)),
        ("tenant", s(&b.tenant)),
        ("listen", s(&b.listen)),
        ("actions_url", s(&b.actions_url)),
        ("state_file", s(&b.state_file)),
    ];
    all.into_iter()
        .filter_map(|(k, s)| s.map(|s| (k, s)))
        .collect()
}

pub(super) fn check(
    d: &mut Diagnostics,
    raw: &Spanned<Backend>,
    file: &SourceFile,
) -> Option<BackendSpec> {
    let b = &raw.value;
    let kind = b.kind.value.as_str();
    // Rule: `kind` is one of the known backends.
    let Some((_, allowed, required)) = KINDS.iter().find(|k| k.0 == kind) else {
        d.push(
            Diagnostic::new(
                DiagnosticId::UnknownBackend,
                Span::of(&b.kind),
                format!("unknown backend `{kind}`"),
                "not a backend",
            )
            .maybe_help(did_you_mean_help(kind, kinds()))
            .note(format!("backends are {}", list_words(kinds()))),
        );
        return None;
    };
    let present = present(b);
    // Rule: only the keys of this kind.
    for (key, span) in &present {
        if !allowed.contains(key) {
            let mut diag = Diagnostic::new(
                DiagnosticId::BackendKeyNotApplicable,
                super::key_span(file, *span, key),
                format!("`{key}` is not a setting of the `{kind}` backend"),
                format!("not used by `{kind}`"),
            );
            let users: Vec<&str> = KINDS
                .iter()
                .filter(|k| k.1.contains(key))
                .map(|k| k.0)
                .collect();
            diag = diag.help(format!(
                "remove it, or change `kind`: `{key}` is a setting of {}",
                list_words(users.iter().copied())
            ));
            diag = if allowed.is_empty() {
                diag.note(format!("the `{kind}` backend takes no settings"))
            } else {
                diag.note(format!(
                    "`{kind}` takes {}",
                    list_words(allowed.iter().copied())
                ))
            };
            d.push(diag);
        }
    }
    // Rule: every key this kind requires is there.
    let mut missing = false;
    for key in required.iter() {
        if !present.iter().any(|(k, _)| k == key) {
            missing = true;
            d.push(
                Diagnostic::new(
                    DiagnosticId::MissingBackendSetting,
                    Span::of(&b.kind),
                    format!("the `{kind}` backend needs `{key}`"),
                    format!("`{key}` missing under this backend"),
                )
                .help(format!(
                    "add `{key}:` under `backend:` (see bots/{kind}.yaml)"
                )),
            );
        }
    }
    if missing {
        return None;
    }
    let text =
        |v: &Option<Spanned<String>>| v.as_ref().map(|s| s.value.clone()).unwrap_or_default();
    let sec = |d: &mut Diagnostics, v: &Option<Spanned<String>>, key: &str| -> Option<SecretRef> {
        v.as_ref().and_then(|s| secret(d, s, key))
    };
    let rooms = |v: &Option<Spanned<Vec<Spanned<String>>>>| -> List<Str> {
        v.as_ref()
            .map(|r| {
                r.value
                    .iter()
                    .map(|s| Str::from(s.value.clone()))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
            .into()
    };
    let base_url = |d: &mut Diagnostics, default: &str| -> Option<String> {
        match &b.url {
            Some(u) => url(d, u, "url"),
            None => Some(default.to_owned()),
        }
    };
    match kind {
        "text" => Some(BackendSpec::Text(TextSpec {
            user: text(&b.user).into(),
            room: b
                .room
                .as_ref()
                .map(|r| r.value.clone())
                .unwrap_or_else(|| "terminal".to_owned())
                .into(),
            simulator: b.simulator.as_ref().is_some_and(|s| s.value),
        })),
        "xmpp" => {
            let jid = b.jid.as_ref()?;
            if !valid_jid(&jid.value) {
                d.push(
                    Diagnostic::new(
                        DiagnosticId::InvalidJid,
                        Span::of(jid),
                        format!("`{}` is not a bare JID", jid.value),
                        "expected user@domain",
                    )
                    .help("write the bot's account as `bot@example.org`"),
                );
            }
            let password = sec(d, &b.password, "password");
            let nickname = b
                .nickname
                .as_ref()
                .map(|n| n.value.clone())
                .unwrap_or_else(|| jid.value.split('@').next().unwrap_or("st2bot").to_owned());
            Some(BackendSpec::Xmpp(XmppSpec {
                jid: jid.value.clone().into(),
                password: password?,
                server: text(&b.server).into(),
                port: b.port.as_ref().map(|p| p.value).unwrap_or(5222),
                tls: b.tls.as_ref().map(|t| t.value).unwrap_or(true),
                ca_file: b.ca_file.as_ref().map(|c| c.value.clone().into()),
                nickname: nickname.into(),
                rooms: rooms(&b.rooms),
            }))
        }
        "irc" => {
            let tls = b.tls.as_ref().map(|t| t.value).unwrap_or(true);
            let auth = irc_auth(d, b)?;
            let password = sec(d, &b.password, "password");
            if auth != IrcAuth::None && b.password.is_none() {
                d.push(
                    Diagnostic::new(
                        DiagnosticId::MissingBackendSetting,
                        b.auth.as_ref().map(Span::of).unwrap_or(Span::of(&b.kind)),
                        "IRC authentication needs `password`",
                        "this method needs a password",
                    )
                    .help("add `password: ${IRC_PASSWORD}` under `backend:`"),
                );
                return None;
            }
            if let Some(r) = &b.rooms {
                for room in &r.value {
                    if !room.value.starts_with(['#', '&', '+', '!']) {
                        d.push(
                            Diagnostic::new(
                                DiagnosticId::InvalidRoom,
                                Span::of(room),
                                format!("`{}` is not an IRC channel", room.value),
                                "channels start with `#`",
                            )
                            .help(format!(
                                "write `\"#{}\"` (quoted: `#` starts a YAML comment)",
                                room.value
                            )),
                        );
                    }
                }
            }
            let nickname = text(&b.nickname);
            Some(BackendSpec::Irc(IrcSpec {
                server: text(&b.server).into(),
                port: b
                    .port
                    .as_ref()
                    .map(|p| p.value)
                    .unwrap_or(if tls { 6697 } else { 6667 }),
                tls,
                ca_file: b.ca_file.as_ref().map(|c| c.value.clone().into()),
                username: b
                    .username
                    .as_ref()
                    .map(|u| u.value.clone())
                    .unwrap_or_else(|| nickname.clone())
                    .into(),
                nickname: nickname.into(),
                password: if b.password.is_some() {
                    Some(password?)
                } else {
                    None
                },
                auth,
                rooms: rooms(&b.rooms),
            }))
        }
        "matrix" => {
            let url = base_url(d, "")?;
            let login = match (&b.username, &b.password, &b.token) {
                (None, None, Some(_)) => MatrixLogin::Token(sec(d, &b.token, "token")?),
                (Some(u), Some(_), None) => MatrixLogin::Password {
                    username: u.value.clone().into(),
                    password: sec(d, &b.password, "password")?,
                },
                _ => {
                    login_shape(d, raw, "matrix", "`token`, or `username` and `password`");
                    return None;
                }
            };
            Some(BackendSpec::Matrix(MatrixSpec {
                url: url.into(),
                login,
                rooms: rooms(&b.rooms),
            }))
        }
        "slack" => {
            let app_token = sec(d, &b.app_token, "app_token");
            let bot_token = sec(d, &b.bot_token, "bot_token");
            let url = base_url(d, "https://slack.com/api")?;
            Some(BackendSpec::Slack(SlackSpec {
                app_token: app_token?,
                bot_token: bot_token?,
                url: url.into(),
            }))
        }
        "mattermost" => {
            let token = sec(d, &b.token, "token");
            let actions = mattermost_actions(d, b);
            let url = base_url(d, "")?;
            let (listen, actions_url) = actions?;
            Some(BackendSpec::Mattermost(MattermostSpec {
                url: url.into(),
                token: token?,
                team: text(&b.team).into(),
                listen: listen.map(Str::from),
                actions_url: actions_url.map(Str::from),
            }))
        }
        "discord" => {
            let token = sec(d, &b.token, "token");
            let url = base_url(d, "https://discord.com/api/v10")?;
            Some(BackendSpec::Discord(DiscordSpec {
                token: token?,
                url: url.into(),
            }))
        }
        "rocketchat" => {
            let url = base_url(d, "")?;
            let login = match (&b.username, &b.password, &b.user_id, &b.token) {
                (Some(u), Some(_), None, None) => RocketChatLogin::Password {
                    username: u.value.clone().into(),
                    password: sec(d, &b.password, "password")?,
                },
                (None, None, Some(id), Some(_)) => RocketChatLogin::Token {
                    user_id: id.value.clone().into(),
                    token: sec(d, &b.token, "token")?,
                },
                _ => {
                    login_shape(
                        d,
                        raw,
                        "rocketchat",
                        "`username` and `password`, or `user_id` and `token`",
                    );
                    return None;
                }
            };
            Some(BackendSpec::RocketChat(RocketChatSpec {
                url: url.into(),
                login,
            }))
        }
        "msteams" => msteams(d, b),
        _ => None,
    }
}

/// Rule: backends that can log in two ways get exactly one complete way.
fn login_shape(d: &mut Diagnostics, raw: &Spanned<Backend>, kind: &str, ways: &str) {
    d.push(
        Diagnostic::new(
            DiagnosticId::MissingBackendSetting,
            Span::of(&raw.value.kind),
            format!("the `{kind}` backend needs exactly one login: {ways}"),
            "incomplete or conflicting login",
        )
        .help(format!("see bots/{kind}.yaml for both forms")),
    );
}

/// Rule: IRC `auth` is `none`, `sasl`, `nickserv` or `server` (default: `sasl` when a
/// password is given, else `none`).
fn irc_auth(d: &mut Diagnostics, b: &Backend) -> Option<IrcAuth> {
    const METHODS: [&str; 4] = ["none", "sasl", "nickserv", "server"];
    match b.auth.as_ref() {
        None => Some(if b.password.is_some() {
            IrcAuth::Sasl
        } else {
            IrcAuth::None
        }),
        Some(a) => match a.value.as_str() {
            "none" => Some(IrcAuth::None),
            "sasl" => Some(IrcAuth::Sasl),
            "nickserv" => Some(IrcAuth::NickServ),
            "server" => Some(IrcAuth::Server),
            other => {
                d.push(
                    Diagnostic::new(
                        DiagnosticId::UnknownIrcAuth,
                        Span::of(a),
                        format!("unknown IRC authentication `{other}`"),
                        "not a method",
                    )
                    .maybe_help(did_you_mean_help(other, METHODS))
                    .note(format!("methods are {}", list_words(METHODS))),
                );
                None
            }
        },
    }
}

/// `kind: msteams`: an App ID that is a GUID, a secret password, a tenant that can name an
/// Entra tenant, a listen address, a login base URL.
fn msteams(d: &mut Diagnostics, b: &Backend) -> Option<BackendSpec> {
    let app_id = b.app_id.as_ref()?;
    // Rule: the App ID is the registration's GUID (the audience of every inbound token).
    let app_id_ok = is_guid(&app_id.value);
    if !app_id_ok {
        d.push(
            Diagnostic::new(
                DiagnosticId::InvalidAppId,
                Span::of(app_id),
                format!("`{}` is not a Microsoft App ID", app_id.value),
                "expected a GUID",
            )
            .help(
                "copy the \"Microsoft App ID\" from the Azure Bot's Configuration page \
                 (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`)",
            ),
        );
    }
    let app_password = b
        .app_password
        .as_ref()
        .and_then(|s| secret(d, s, "app_password"));
    // Rule: a tenant is a GUID or a domain name (it goes into the token endpoint's path).
    let tenant = match &b.tenant {
        Some(t) if is_guid(&t.value) || is_domain(&t.value) => Some(t.value.clone()),
        Some(t) => {
            d.push(
                Diagnostic::new(
                    DiagnosticId::InvalidTenant,
                    Span::of(t),
                    format!("`{}` is not an Entra tenant", t.value),
                    "expected a tenant id (GUID) or a domain",
                )
                .help(
                    "write the Directory (tenant) ID of a single-tenant app, or leave `tenant` \
                     out for a multi-tenant one (`botframework.com`)",
                ),
            );
            None
        }
        None => Some(DEFAULT_MSTEAMS_TENANT.to_owned()),
    };
    let listen = match &b.listen {
        Some(l) => listen_address(d, l),
        None => Some(DEFAULT_MSTEAMS_LISTEN.to_owned()),
    };
    let login_url = match &b.url {
        Some(u) => url(d, u, "url"),
        None => Some(DEFAULT_MSTEAMS_LOGIN_URL.to_owned()),
    };
    let state_file = b.state_file.as_ref().map(|s| Str::from(s.value.clone()));
    if !app_id_ok {
        return None;
    }
    Some(BackendSpec::MsTeams(MsTeamsSpec {
        app_id: app_id.value.clone().into(),
        app_password: app_password?,
        tenant: tenant?.into(),
        listen: listen?.into(),
        state_file,
        url: login_url?.into(),
    }))
}

/// Mattermost buttons: `listen` (where the bot takes presses) and `actions_url` (where
/// Mattermost sends them), both or neither. `None` after a diagnostic.
#[allow(clippy::type_complexity)]
fn mattermost_actions(
    d: &mut Diagnostics,
    b: &Backend,
) -> Option<(Option<String>, Option<String>)> {
    // Rule: `listen` and `actions_url` come together (one without the other cannot work:
    // nowhere to listen, or no address to give Mattermost).
    let (listen, actions_url) = match (&b.listen, &b.actions_url) {
        (None, None) => return Some((None, None)),
        (Some(l), Some(u)) => (l, u),
        (Some(given), None) | (None, Some(given)) => {
            let (has, lacks) = if b.listen.is_some() {
                ("listen", "actions_url")
            } else {
                ("actions_url", "listen")
            };
            d.push(
                Diagnostic::new(
                    DiagnosticId::MissingBackendSetting,
                    Span::of(given),
                    format!("Mattermost buttons need both `listen` and `actions_url`; `{lacks}` is missing"),
                    format!("`{has}` without `{lacks}`"),
                )
                .help(
                    "`listen: 127.0.0.1:8090` is where the bot takes button presses, \
                     `actions_url: https://bot.example.com/mattermost/actions` the URL Mattermost \
                     posts them to; remove both to go without buttons",
                ),
            );
            return None;
        }
    };
    let listen = listen_address(d, listen);
    let actions_url = url(d, actions_url, "actions_url");
    Some((Some(listen?), Some(actions_url?)))
}

/// Multi-tenant apps get their outbound tokens from this tenant.
const DEFAULT_MSTEAMS_TENANT: &str = "botframework.com";
/// Where the messaging endpoint listens unless `listen` says otherwise (the port of
/// Microsoft's samples and of the Agents Playground's default endpoint).
const DEFAULT_MSTEAMS_LISTEN: &str = "0.0.0.0:3978";
/// Microsoft identity platform, for client-credential tokens.
const DEFAULT_MSTEAMS_LOGIN_URL: &str = "https://login.microsoftonline.com";

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, hexadecimal.
fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A DNS name with at least one dot (`contoso.onmicrosoft.com`).
fn is_domain(s: &str) -> bool {
    s.contains('.')
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A bare JID: `local@domain`, both parts non-empty, no resource, no spaces.
fn valid_jid(jid: &str) -> bool {
    match jid.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains(['@', '/'])
                && !jid.contains(char::is_whitespace)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use crate::diagnostic::DiagnosticId;
    use crate::source::SourceFile;
    use crate::spec::BackendSpec;

    fn mattermost(extra: &str) -> Result<crate::BotSpec, Vec<crate::Diagnostic>> {
        let yaml = format!(
            "name: acme\nbackend:\n  kind: mattermost\n  url: https://chat.example.com\n  token: ${{MM_TOKEN}}\n{extra}\
             stackstorm:\n  url: https://st2.example.com\n  auth: {{ api_key: \"${{ST2_API_KEY}}\" }}\n"
        );
        crate::load(&SourceFile::new("acme.yaml", yaml))
    }

    #[test]
    fn mattermost_buttons_take_listen_and_actions_url_together() {
        let spec = mattermost("").expect("no buttons is fine");
        let BackendSpec::Mattermost(m) = &spec.backend else {
            panic!("{:?}", spec.backend)
        };
        assert_eq!(
            (m.listen.as_deref(), m.actions_url.as_deref()),
            (None, None)
        );

        let spec = mattermost(
            "  listen: 127.0.0.1:8090\n  actions_url: https://bot.example.com/mm/actions/\n",
        )
        .expect("both given");
        let BackendSpec::Mattermost(m) = &spec.backend else {
            panic!("{:?}", spec.backend)
        };
        assert_eq!(
            (m.listen.as_deref(), m.actions_url.as_deref()),
            (
                Some("127.0.0.1:8090"),
                Some("https://bot.example.com/mm/actions")
            )
        );

        for (extra, wanted) in [
            (
                "  listen: 127.0.0.1:8090\n",
                DiagnosticId::MissingBackendSetting,
            ),
            (
                "  actions_url: https://bot.example.com/a\n",
                DiagnosticId::MissingBackendSetting,
            ),
            (
                "  listen: localhost\n  actions_url: https://bot.example.com/a\n",
                DiagnosticId::InvalidListenAddress,
            ),
            (
                "  listen: 127.0.0.1:8090\n  actions_url: bot.example.com/a\n",
                DiagnosticId::InvalidUrl,
            ),
        ] {
            let errors = mattermost(extra).expect_err(extra);
            assert_eq!(
                errors.iter().map(|d| d.id).collect::<Vec<_>>(),
                vec![wanted],
                "{extra}"
            );
        }
    }
}
