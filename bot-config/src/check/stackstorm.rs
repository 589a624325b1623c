//! `stackstorm:` — addresses, the service identity, routes and tuning.

use std::time::Duration;

use crate::diagnostic::{Diagnostic, DiagnosticId, Diagnostics};
use crate::raw::StackStorm;
use crate::source::{SourceFile, Span, Spanned};
use crate::spec::{MatcherKind, St2AuthSpec, StackStormSpec};
use crate::suggest::did_you_mean_help;

use super::{durations::duration, secrets::secret, values::url};

pub(super) fn check(
    d: &mut Diagnostics,
    raw: &Spanned<StackStorm>,
    file: &SourceFile,
) -> Option<StackStormSpec> {
    let s = &raw.value;
    let (api_url, auth_url, stream_url) = addresses(d, raw, file);
    let auth = auth(d, s);
    let notification_route = s
        .notification_route
        .as_ref()
        .map(|r| route(d, r, "notification_route"))
        .unwrap_or_else(|| "hubot".to_owned());
    let announcement_route = s
        .announcement_route
        .as_ref()
        .map(|r| route(d, r, "announcement_route"))
        .unwrap_or_else(|| "chatops".to_owned());
    let webui_url = match &s.webui_url {
        Some(w) => url(d, w, "webui_url").map(Some),
        None => Some(None),
    };
    let timeout = s
        .timeout
        .as_ref()
        .map(|t| duration(d, t, "timeout", Duration::from_secs(600)))
        .unwrap_or(Some(Duration::from_secs(30)));
    let token_ttl = s
        .token_ttl
        .as_ref()
        .map(|t| duration(d, t, "token_ttl", Duration::from_secs(365 * 86_400)))
        .unwrap_or(Some(Duration::from_secs(86_400)));
    let alias_refresh = s
        .alias_refresh
        .as_ref()
        .map(|t| duration(d, t, "alias_refresh", Duration::from_secs(86_400)))
        .unwrap_or(Some(Duration::from_secs(300)));
    let result_timeout = s
        .result_timeout
        .as_ref()
        .map(|t| duration(d, t, "result_timeout", Duration::from_secs(30 * 86_400)))
        .unwrap_or(Some(Duration::from_secs(86_400)));
    let matcher = matcher(d, s.matcher.as_ref());
    let max_in_flight = match &s.max_in_flight {
        Some(m) if m.value == 0 => {
            d.push(
                Diagnostic::new(
                    DiagnosticId::InvalidNumber,
                    Span::of(m),
                    "`max_in_flight` must be at least 1",
                    "zero would stop every command",
                )
                .help("leave it out for the default, 16"),
            );
            None
        }
        Some(m) => Some(m.value),
        None => Some(16),
    };
    Some(StackStormSpec {
        api_url: api_url?.into(),
        auth_url: auth_url?.into(),
        stream_url: stream_url?.into(),
        auth: auth?,
        verify_tls: s.verify_tls.as_ref().map(|v| v.value).unwrap_or(true),
        ca_file: s.ca_file.as_ref().map(|c| c.value.clone().into()),
        notification_route: notification_route.into(),
        announcement_route: announcement_route.into(),
        webui_url: webui_url?.map(Into::into),
        timeout: timeout?,
        token_ttl: token_ttl?,
        matcher: matcher?,
        max_in_flight: max_in_flight?,
        alias_refresh: alias_refresh?,
        result_timeout: result_timeout?,
        results_store: s.results_store.as_ref().map(|p| p.value.clone().into()),
    })
}

/// Rule: either `url` (StackStorm behind its nginx: `/api`, `/auth`, `/stream` are derived)
/// or `api_url` and `stream_url` (and `auth_url` when tokens come from username+password);
/// explicit keys override derived ones.
fn addresses(
    d: &mut Diagnostics,
    raw: &Spanned<StackStorm>,
    file: &SourceFile,
) -> (Option<String>, Option<String>, Option<String>) {
    let s = &raw.value;
    let section = super::key_span(file, Span::start_of(raw), "stackstorm");
    let base = s.url.as_ref().and_then(|u| url(d, u, "url"));
    let base_failed = s.url.is_some() && base.is_none();
    let mut one = |key: &str, given: &Option<Spanned<String>>, suffix: &str, required: bool| {
        match given {
            Some(v) => url(d, v, key),
            None => match &base {
                Some(b) => Some(format!("{b}{suffix}")),
                None if base_failed => None,
                None if required => {
                    d.push(
                        Diagnostic::new(
                            DiagnosticId::MissingUrl,
                            section,
                            format!("`stackstorm` needs `{key}` or `url`"),
                            format!("no `{key}` or `url` under this key"),
                        )
                        .help(format!(
                            "add `url: https://st2.example.com` (StackStorm behind its nginx) or `{key}:`"
                        )),
                    );
                    None
                }
                None => Some(String::new()),
            },
        }
    };
    let needs_auth = s.auth.value.username.is_some() || s.auth.value.password.is_some();
    let paths = crate::spec::STACKSTORM_PATHS;
    let api = one("api_url", &s.api_url, paths.api, true);
    let auth = one("auth_url", &s.auth_url, paths.auth, needs_auth);
    let stream = one("stream_url", &s.stream_url, paths.stream, true);
    (api, auth, stream)
}

/// Rule: exactly one identity: `api_key`, `token`, or `username` with `password`.
fn auth(d: &mut Diagnostics, s: &StackStorm) -> Option<St2AuthSpec> {
    let a = &s.auth.value;
    let span = Span::start_of(&s.auth);
    let methods = [
        a.api_key.as_ref().map(|_| "api_key"),
        a.token.as_ref().map(|_| "token"),
        a.username
            .as_ref()
            .or(a.password.as_ref())
            .map(|_| "username and password"),
    ];
    let given: Vec<&str> = methods.iter().flatten().copied().collect();
    match given.as_slice() {
        [] => {
            d.push(
                Diagnostic::new(
                    DiagnosticId::MissingAuth,
                    span,
                    "`stackstorm.auth` names no credential",
                    "empty",
                )
                .help("add `api_key: \"${ST2_API_KEY}\"`, or `token:`, or `username:` and `password:`"),
            );
            None
        }
        [_, second, ..] => {
            let blame = match *second {
                "token" => a.token.as_ref(),
                _ => a.username.as_ref().or(a.password.as_ref()),
            };
            d.push(
                Diagnostic::new(
                    DiagnosticId::ConflictingAuth,
                    blame.map(Span::of).unwrap_or(span),
                    format!(
                        "`stackstorm.auth` gives both {} and {}",
                        given[0]
                            .split(" and ")
                            .map(|w| format!("`{w}`"))
                            .collect::<Vec<_>>()
                            .join(" and "),
                        given[1]
                            .split(" and ")
                            .map(|w| format!("`{w}`"))
                            .collect::<Vec<_>>()
                            .join(" and ")
                    ),
                    "second credential",
                )
                .help("keep exactly one way for the bot to authenticate"),
            );
            None
        }
        ["api_key"] => a
            .api_key
            .as_ref()
            .and_then(|k| secret(d, k, "api_key"))
            .map(St2AuthSpec::ApiKey),
        ["token"] => a
            .token
            .as_ref()
            .and_then(|k| secret(d, k, "token"))
            .map(St2AuthSpec::Token),
        _ => match (&a.username, &a.password) {
            (Some(u), Some(p)) => {
                let password = secret(d, p, "password");
                if u.value.trim().is_empty() {
                    d.push(
                        Diagnostic::new(
                            DiagnosticId::MissingAuth,
                            Span::of(u),
                            "`username` is empty",
                            "empty",
                        )
                        .help("write the StackStorm user the bot runs as"),
                    );
                    return None;
                }
                Some(St2AuthSpec::Password {
                    username: u.value.clone().into(),
                    password: password?,
                })
            }
            (Some(u), None) => {
                d.push(
                    Diagnostic::new(
                        DiagnosticId::MissingAuth,
                        Span::of(u),
                        "`username` is given without `password`",
                        "needs `password` too",
                    )
                    .help("add `password: ${ST2_PASSWORD}`"),
                );
                None
            }
            (None, Some(p)) => {
                d.push(
                    Diagnostic::new(
                        DiagnosticId::MissingAuth,
                        Span::of(p),
                        "`password` is given without `username`",
                        "needs `username` too",
                    )
                    .help("add `username:` with the StackStorm user"),
                );
                None
            }
            (None, None) => None,
        },
    }
}

/// Rule: a route is what StackStorm puts in an event name: letters, digits, `_` and `-`.
fn route(d: &mut Diagnostics, raw: &Spanned<String>, key: &str) -> String {
    let r = &raw.value;
    if r.is_empty()
        || !r
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        d.push(
            Diagnostic::new(
                DiagnosticId::InvalidRoute,
                Span::of(raw),
                format!("`{r}` is not a valid `{key}`"),
                "letters, digits, `_` and `-` only",
            )
            .help("the stock pairs are `hubot` → `chatops` and `errbot` → `errbot`"),
        );
    }
    r.clone()
}

/// Rule: `matcher` is `stackstorm` or `local`.
fn matcher(d: &mut Diagnostics, raw: Option<&Spanned<String>>) -> Option<MatcherKind> {
    let Some(raw) = raw else {
        return Some(MatcherKind::StackStorm);
    };
    match raw.value.as_str() {
        "stackstorm" => Some(MatcherKind::StackStorm),
        "local" => Some(MatcherKind::Local),
        other => {
            d.push(
                Diagnostic::new(
                    DiagnosticId::UnknownMatcher,
                    Span::of(raw),
                    format!("unknown matcher `{other}`"),
                    "not a matcher",
                )
                .maybe_help(did_you_mean_help(other, ["stackstorm", "local"]))
                .note("matchers are `stackstorm` (POST /actionalias/match) and `local`"),
            );
            None
        }
    }
}
