//! Plain values: names, prefixes, URLs, listen addresses, the auth page and the `ha`
//! settings.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::diagnostic::{Diagnostic, DiagnosticId, Diagnostics};
use crate::raw::{AuthPage, Ha};
use crate::source::{SourceFile, Span, Spanned};
use crate::spec::{AuthPageSpec, HaSpec, PgTls};

use super::{durations::duration, secrets::secret};

/// Rule: the bot's name is 1–64 characters of ASCII letters, digits, `-` and `_`,
/// starting with a letter (it names the executable and the session store).
pub(super) fn bot_name(d: &mut Diagnostics, raw: &Spanned<String>) -> String {
    let name = &raw.value;
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        let suggestion: String = name
            .trim()
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        d.push(
            Diagnostic::new(
                DiagnosticId::InvalidBotName,
                Span::of(raw),
                format!("`{name}` is not a valid bot name"),
                "letters, digits, `-` and `_` only, starting with a letter",
            )
            .help(match suggestion.trim_matches('-') {
                s if s.starts_with(|c: char| c.is_ascii_alphabetic()) => format!("try `{s}`"),
                s => format!("try `bot-{s}`"),
            })
            .note("the name is used for the executable and the session store"),
        );
    }
    name.clone()
}

/// Rule: the command prefix is 1–8 characters with no whitespace.
pub(super) fn prefix(d: &mut Diagnostics, raw: &Spanned<String>, file: &SourceFile) -> String {
    let p = &raw.value;
    if p.is_empty() {
        d.push(
            Diagnostic::new(
                DiagnosticId::InvalidPrefix,
                super::key_span(file, Span::of(raw), "prefix"),
                "the command prefix is empty",
                "no prefix here",
            )
            .help("quote the prefix: `prefix: \"!\"` (unquoted, `!`, `&` and `*` mean something else in YAML)"),
        );
    } else if p.chars().count() > 8 || p.chars().any(char::is_whitespace) {
        d.push(
            Diagnostic::new(
                DiagnosticId::InvalidPrefix,
                Span::of(raw),
                format!("`{p}` cannot be a command prefix"),
                "1 to 8 characters, no spaces",
            )
            .help("use a short marker such as `!` or `.`; mentions work without a prefix"),
        );
    }
    p.clone()
}

/// Rule: a chat command name (help, session) is one word of letters, digits, `-`, `_`.
pub(super) fn command_word(d: &mut Diagnostics, raw: &Spanned<String>, key: &str) -> String {
    let w = &raw.value;
    if w.is_empty()
        || !w
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
    {
        d.push(
            Diagnostic::new(
                DiagnosticId::InvalidCommandName,
                Span::of(raw),
                format!("`{key}` must be one word, not `{w}`"),
                "letters, digits, `-` and `_` only",
            )
            .help("for example `help` or `st2help`"),
        );
    }
    w.clone()
}

/// Rule: a URL parses, uses `http` or `https`, has a host, and carries no query, fragment
/// or credentials. Returned without a trailing slash.
pub(super) fn url(d: &mut Diagnostics, raw: &Spanned<String>, key: &str) -> Option<String> {
    let text = raw.value.trim();
    let parsed = match url::Url::parse(text) {
        Ok(u) => u,
        Err(e) => {
            let (message, help) =
                if e == url::ParseError::RelativeUrlWithoutBase && text.starts_with('/') {
                    // A path alone: `https://` in front would give `https:///stream`.
                    (
                        format!("`{key}` is not a URL: it is a path, with no scheme or host"),
                        format!("write the whole URL, e.g. `https://st2.example.com{text}`"),
                    )
                } else if e == url::ParseError::RelativeUrlWithoutBase {
                    (
                        format!("`{key}` is not a URL: it has no scheme"),
                        format!("write `https://{text}`"),
                    )
                } else {
                    (
                        format!("`{key}` is not a URL: {e}"),
                        "write an absolute URL such as `https://st2.example.com`".to_owned(),
                    )
                };
            d.push(
                Diagnostic::new(
                    DiagnosticId::InvalidUrl,
                    Span::of(raw),
                    message,
                    "not a URL",
                )
                .help(help),
            );
            return None;
        }
    };
    if !matches!(parsed.scheme(), "http" | "https") {
        d.push(
            Diagnostic::new(
                DiagnosticId::InvalidUrl,
                Span::of(raw),
                format!(
                    "`{key}` uses `{}`; only `http` and `https` are supported",
                    parsed.scheme()
                ),
                "unsupported scheme",
            )
            .help(format!(
                "write `https://{}`",
                text.split_once("://").map(|(_, r)| r).unwrap_or(text)
            )),
        );
        return None;
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        d.push(
            Diagnostic::new(
                DiagnosticId::InvalidUrl,
                Span::of(raw),
                format!("`{key}` has no host"),
                "no host",
            )
            .help("write an absolute URL such as `https://st2.example.com/api`"),
        );
        return None;
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        d.push(
            Diagnostic::new(
                DiagnosticId::ClearTextSecret,
                Span::of(raw),
                format!("`{key}` carries credentials (`***`)"),
                "user or password inside the URL",
            )
            .help("remove them from the URL and use the `auth` settings with secret references")
            .redacted(),
        );
        return None;
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        d.push(
            Diagnostic::new(
                DiagnosticId::InvalidUrl,
                Span::of(raw),
                format!("`{key}` must not have a query or fragment"),
                "`?…` or `#…` here",
            )
            .help("give the base URL only; the bot appends the paths it calls"),
        );
        return None;
    }
    Some(text.trim_end_matches('/').to_owned())
}

/// Rule: a listen address is `IP:port` (`127.0.0.1:8765`, `[::1]:8765`).
pub(super) fn listen_address(d: &mut Diagnostics, raw: &Spanned<String>) -> Option<String> {
    match raw.value.trim().parse::<SocketAddr>() {
        Ok(a) => Some(a.to_string()),
        Err(_) => {
            d.push(
                Diagnostic::new(
                    DiagnosticId::InvalidListenAddress,
                    Span::of(raw),
                    format!("`{}` is not a listen address", raw.value),
                    "expected IP:port",
                )
                .help("write an IP address and a port, e.g. `127.0.0.1:8765`"),
            );
            None
        }
    }
}

/// Rule: each `trusted_proxies` entry is an IP address or a CIDR range (`10.0.0.0/8`,
/// `fd00::/8`) with a prefix no longer than the address; entries are normalised to
/// `address/prefix` with the host bits cleared.
fn trusted_proxies(
    d: &mut Diagnostics,
    raw: &Spanned<Vec<Spanned<String>>>,
) -> Option<Vec<String>> {
    let mut out = Vec::with_capacity(raw.value.len());
    let mut ok = true;
    for entry in &raw.value {
        match cidr(entry.value.trim()) {
            Some(c) => out.push(c),
            None => {
                ok = false;
                d.push(
                    Diagnostic::new(
                        DiagnosticId::InvalidTrustedProxy,
                        Span::of(entry),
                        format!("`{}` is not an IP address or a CIDR range", entry.value),
                        "expected an address such as `127.0.0.1` or a range such as `10.0.0.0/8`",
                    )
                    .help("list the addresses your reverse proxy connects from, e.g. `trusted_proxies: [127.0.0.1, \"::1\"]`"),
                );
            }
        }
    }
    ok.then_some(out)
}

/// `addr` or `addr/prefix` → `network/prefix`.
fn cidr(text: &str) -> Option<String> {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?))
        }
        Some(_) => return None,
        None => (text.parse::<IpAddr>().ok()?, None),
    };
    let bits = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = prefix.unwrap_or(bits);
    if prefix > bits {
        return None;
    }
    let network = match addr {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(u32::from(32 - prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(u32::from(128 - prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    };
    Some(format!("{network}/{prefix}"))
}

/// Rules for `auth_page`: valid listen address and public URL; durations; an encryption
/// key reference; `tls_cert` and `tls_key` together; a non-loopback address needs TLS or
/// `allow_plain_http: true` (a password form must not cross a network in clear).
pub(super) fn auth_page(
    d: &mut Diagnostics,
    raw: &Spanned<AuthPage>,
    bot_name: &str,
) -> Option<AuthPageSpec> {
    let a = &raw.value;
    let listen = match &a.listen {
        Some(l) => listen_address(d, l),
        None => Some("127.0.0.1:8765".to_owned()),
    };
    let public_url = url(d, &a.public_url, "public_url");
    let session_ttl = a
        .session_ttl
        .as_ref()
        .map(|t| duration(d, t, "session_ttl", Duration::from_secs(90 * 86_400)))
        .unwrap_or(Some(Duration::from_secs(12 * 3600)));
    let link_ttl = a
        .link_ttl
        .as_ref()
        .map(|t| duration(d, t, "link_ttl", Duration::from_secs(3600)))
        .unwrap_or(Some(Duration::from_secs(300)));
    let key = secret(d, &a.encryption_key, "encryption_key");
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => Some((c.value.clone().into(), k.value.clone().into())),
        (None, None) => None,
        (Some(c), None) | (None, Some(c)) => {
            let (have, missing) = if a.tls_cert.is_some() {
                ("tls_cert", "tls_key")
            } else {
                ("tls_key", "tls_cert")
            };
            d.push(
                Diagnostic::new(
                    DiagnosticId::IncompleteTls,
                    Span::of(c),
                    format!("`{have}` is given without `{missing}`"),
                    format!("needs `{missing}` too"),
                )
                .help(format!("add `{missing}:` with the path of the PEM file")),
            );
            None
        }
    };
    let allow_plain_http = a
        .allow_plain_http
        .as_ref()
        .map(|v| v.value)
        .unwrap_or(false);
    if let Some(l) = &listen {
        let loopback = l
            .parse::<SocketAddr>()
            .map(|s| s.ip().is_loopback())
            .unwrap_or(true);
        if !loopback && tls.is_none() && !allow_plain_http {
            let span = a
                .listen
                .as_ref()
                .map(Span::of)
                .unwrap_or(Span::start_of(raw));
            d.push(
                Diagnostic::new(
                    DiagnosticId::PlainHttpOnNetwork,
                    span,
                    format!("the login page would serve passwords over plain HTTP on `{l}`"),
                    "not a loopback address",
                )
                .help("add `tls_cert` and `tls_key`, listen on 127.0.0.1 behind a TLS proxy, or set `allow_plain_http: true` if a proxy terminates TLS on this host"),
            );
        }
    }
    let proxies = match &a.trusted_proxies {
        Some(list) => trusted_proxies(d, list),
        None => Some(Vec::new()),
    };
    Some(AuthPageSpec {
        trusted_proxies: proxies?.into_iter().map(Into::into).collect(),
        // Checked against `groups:` with the access rules (`check::mod`).
        admins: a
            .admins
            .as_ref()
            .map(|l| l.value.iter().map(|u| u.value.clone().into()).collect())
            .unwrap_or_default(),
        listen: listen?.into(),
        public_url: public_url?.into(),
        session_ttl: session_ttl?,
        link_ttl: link_ttl?,
        required: a.required.as_ref().map(|r| r.value).unwrap_or(false),
        store: a
            .store
            .as_ref()
            .map(|s| s.value.clone())
            .unwrap_or_else(|| format!("st2bot-{bot_name}-sessions.redb"))
            .into(),
        encryption_key: key?,
        tls,
        allow_plain_http,
    })
}

/// Shortest lease: renewals go every third of it, and each needs a database round trip.
const MIN_LEASE: Duration = Duration::from_secs(2);
/// Longest lease: a dead leader leaves the bot silent this long.
const MAX_LEASE: Duration = Duration::from_secs(300);

/// Rules for `ha`: `database_url` is a secret reference (it usually holds a password);
/// `tls` is `verify-full` or `disable`, and `ca_file` only goes with TLS; `lease` is a
/// duration from 2s to 5m; `instance_env` is an environment variable's name.
pub(super) fn ha(d: &mut Diagnostics, raw: &Spanned<Ha>) -> Option<HaSpec> {
    let h = &raw.value;
    let database_url = secret(d, &h.database_url, "database_url");
    let tls = match &h.tls {
        None => Some(PgTls::VerifyFull),
        Some(t) => {
            let word = t.value.trim();
            let tls = PgTls::from_word(word);
            if tls.is_none() {
                d.push(
                    Diagnostic::new(
                        DiagnosticId::UnknownHaTls,
                        Span::of(t),
                        format!("unknown `tls` mode `{word}`"),
                        "not a TLS mode",
                    )
                    .maybe_help(crate::suggest::did_you_mean_help(word, PgTls::WORDS))
                    .note("`verify-full` checks the server's certificate and host name; `disable` sends everything in clear"),
                );
            }
            tls
        }
    };
    if let (Some(PgTls::Disable), Some(ca)) = (tls, &h.ca_file) {
        d.push(
            Diagnostic::new(
                DiagnosticId::CaFileWithoutTls,
                Span::of(ca),
                "`ca_file` is given but `tls` is `disable`",
                "never used",
            )
            .help("remove `ca_file`, or remove `tls: disable` to use TLS"),
        );
    }
    let lease = match &h.lease {
        None => Some(Duration::from_secs(10)),
        Some(l) => duration(d, l, "lease", MAX_LEASE).and_then(|lease| {
            if lease < MIN_LEASE {
                d.push(
                    Diagnostic::new(
                        DiagnosticId::LeaseTooShort,
                        Span::of(l),
                        format!("`lease` must be at least {}s", MIN_LEASE.as_secs()),
                        "too short",
                    )
                    .help("use `lease: 10s` (renewed every third of the lease)")
                    .note("the leader renews its lease every third of it; a shorter lease would make a slow database round trip a failover"),
                );
                None
            } else {
                Some(lease)
            }
        }),
    };
    let instance_env = match &h.instance_env {
        None => Some("ST2BOT_INSTANCE".to_owned()),
        Some(e) => {
            let name = e.value.trim();
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if valid {
                Some(name.to_owned())
            } else {
                d.push(
                    Diagnostic::new(
                        DiagnosticId::InvalidInstanceEnv,
                        Span::of(e),
                        format!("`instance_env` `{name}` is not an environment variable name"),
                        "not a variable name",
                    )
                    .help(
                        "write the variable's name, e.g. `instance_env: ST2BOT_INSTANCE` (no `$`)",
                    ),
                );
                None
            }
        }
    };
    Some(HaSpec {
        database_url: database_url?,
        tls: tls?,
        ca_file: h.ca_file.as_ref().map(|c| c.value.clone().into()),
        lease: lease?,
        instance_env: instance_env?.into(),
    })
}

/// Rule: a plain (unquoted) text value is not cut short by a YAML comment. In YAML ` #`
/// starts a comment, so `description: ChatOps in #ops` reads `ChatOps in` and drops the
/// rest without a word. A comment written straight after the value with no space after its
/// `#` (`#ops`, `#123`) is almost always part of the text, so it is an error that says what
/// was read and asks for quotes; `value # a comment` (space after `#`) is an ordinary
/// comment and passes.
pub(super) fn not_cut_by_comment(
    d: &mut Diagnostics,
    file: &SourceFile,
    raw: &Spanned<String>,
    key: &str,
) {
    let span = Span::of(raw);
    let line: Vec<char> = file.line_text(span.line).chars().collect();
    let start = span.column.saturating_sub(1) as usize;
    // Quoted, block and flow-collection values cannot be cut this way.
    if line
        .get(start)
        .is_none_or(|c| matches!(c, '"' | '\'' | '|' | '>' | '[' | '{'))
    {
        return;
    }
    let Some(hash) = (start + 1..line.len()).find(|&i| line[i] == '#' && line[i - 1] == ' ') else {
        return;
    };
    let read: String = line[start..hash].iter().collect();
    if read.trim_end() != raw.value {
        // Not a one-line plain scalar as read (folded over lines, or written elsewhere).
        return;
    }
    let word: String = line[hash + 1..]
        .iter()
        .take_while(|c| !c.is_whitespace())
        .collect();
    if word.is_empty() || word.starts_with('#') {
        return;
    }
    let column = u32::try_from(hash + 1).unwrap_or(u32::MAX);
    let rest: String = line[start..].iter().collect();
    d.push(
        Diagnostic::new(
            DiagnosticId::CommentInValue,
            Span::new(span.line, column, 1 + u32::try_from(word.chars().count()).unwrap_or(1)),
            format!("`{key}` is cut short: ` #` starts a YAML comment"),
            format!("from here on the line is a comment, so `{key}` reads `{}`", raw.value),
        )
        .help(format!(
            "quote the whole value: `{key}: \"{}\"` (or write `# ` with a space if it is a comment)",
            rest.trim_end().replace('"', "\\\"")
        )),
    );
}

#[cfg(test)]
mod tests {
    use super::cidr;

    #[test]
    fn trusted_proxies_are_addresses_or_ranges() {
        assert_eq!(cidr("127.0.0.1").as_deref(), Some("127.0.0.1/32"));
        assert_eq!(cidr("10.1.2.3/8").as_deref(), Some("10.0.0.0/8"));
        assert_eq!(cidr("::1").as_deref(), Some("::1/128"));
        assert_eq!(cidr("fd00:1::5/16").as_deref(), Some("fd00::/16"));
        assert_eq!(cidr("0.0.0.0/0").as_deref(), Some("0.0.0.0/0"));
        for bad in [
            "localhost",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "1.2.3.4/x",
            "1.2.3.4/-1",
            "",
        ] {
            assert_eq!(cidr(bad), None, "{bad}");
        }
    }
}
