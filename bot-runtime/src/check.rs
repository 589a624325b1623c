//! `--check`: validates the run-time environment of a compiled bot — every secret it names is
//! present, and StackStorm's API, auth and stream endpoints answer — one line per check,
//! exit status 1 if any fails.
//!
//! Credentials are checked with the client the bot itself would use (in demo mode the
//! simulator's): an endpoint that refuses them is a failure, "refuses the bot's credentials
//! (HTTP 401)". Only when no credential could be had at all (a secret is missing) are the
//! endpoints asked without one, and then the line says the credentials were not checked and
//! why; the missing secret has failed the check already.

use std::fmt::Write as _;
use std::time::Duration;

use bot_config::{BotSpec, SecretRef, St2AuthSpec};

use crate::secret;
use crate::stackstorm::{St2Client, St2Error};

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLine {
    /// Passed?
    pub ok: bool,
    /// What was checked.
    pub what: String,
    /// Details or the fix.
    pub detail: String,
}

/// Every secret the definition names, with the key it belongs to.
pub fn secret_refs(spec: &BotSpec) -> Vec<(String, SecretRef)> {
    let mut out: Vec<(String, SecretRef)> = spec
        .backend
        .secrets()
        .into_iter()
        .map(|(k, r)| (k.to_owned(), r.clone()))
        .collect();
    match &spec.stackstorm.auth {
        St2AuthSpec::ApiKey(r) => out.push(("stackstorm.auth.api_key".into(), r.clone())),
        St2AuthSpec::Token(r) => out.push(("stackstorm.auth.token".into(), r.clone())),
        St2AuthSpec::Password { password, .. } => {
            out.push(("stackstorm.auth.password".into(), password.clone()))
        }
    }
    if let Some(a) = &spec.auth_page {
        out.push(("auth_page.encryption_key".into(), a.encryption_key.clone()));
    }
    out
}

/// Runs the checks and returns their lines. `client` is the StackStorm client the bot would
/// run with (or why there is none). With `simulated`, the StackStorm secrets are the
/// simulator's and are not looked up.
pub async fn run(
    spec: &BotSpec,
    client: Result<&St2Client, &St2Error>,
    simulated: bool,
) -> Vec<CheckLine> {
    let mut lines = Vec::new();
    for (key, reference) in secret_refs(spec) {
        if simulated && key.starts_with("stackstorm.") {
            lines.push(CheckLine {
                ok: true,
                what: format!("secret {key}"),
                detail: "not needed: demo mode uses the simulator's credentials".into(),
            });
            continue;
        }
        match secret::resolve(&reference) {
            Ok(_) => lines.push(CheckLine {
                ok: true,
                what: format!("secret {key}"),
                detail: format!("{reference} is set"),
            }),
            Err(e) => lines.push(CheckLine {
                ok: false,
                what: format!("secret {key}"),
                detail: format!("{e}; set it before starting the bot"),
            }),
        }
    }
    let st2 = &spec.stackstorm;
    let http = match crate::http::client(
        st2.verify_tls,
        st2.ca_file.as_deref(),
        Some(Duration::from_secs(10).min(st2.timeout)),
    ) {
        Ok(c) => c,
        Err(e) => {
            lines.push(CheckLine {
                ok: false,
                what: "HTTP client".into(),
                detail: e.to_string(),
            });
            return lines;
        }
    };
    // With the service credential when there is one (so a refused key is caught too);
    // otherwise reachability only, and each line says why the credentials went unchecked.
    let (credential, unchecked_because) = match client {
        Ok(c) => match c.service_credential().await {
            Ok(cred) => (Some(cred), String::new()),
            Err(e) => {
                lines.push(CheckLine {
                    ok: false,
                    what: "StackStorm credentials".into(),
                    detail: format!(
                        "{e}; check the credentials in the definition's `stackstorm.auth`"
                    ),
                });
                (None, "they were refused above".to_owned())
            }
        },
        Err(St2Error::Secret(_)) => (None, "a secret they need is missing".to_owned()),
        Err(e) => {
            lines.push(CheckLine {
                ok: false,
                what: "StackStorm credentials".into(),
                detail: format!("not checked: {e}"),
            });
            (None, "no StackStorm client".to_owned())
        }
    };
    let endpoints = [
        (
            "StackStorm API",
            format!("{}/v1/actionalias?limit=1", st2.api_url),
        ),
        (
            "StackStorm stream",
            format!(
                "{}/v1/stream?events=st2.announcement__{}",
                st2.stream_url, st2.announcement_route
            ),
        ),
    ];
    for (what, url) in endpoints {
        let mut request = http.get(&url);
        if let Some(c) = &credential {
            let (name, value) = c.header();
            request = request.header(name, value);
        }
        let line = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                match (status, &credential) {
                    (200..=299, Some(_)) => CheckLine {
                        ok: true,
                        what: what.into(),
                        detail: format!("{url} answers and accepts the credentials"),
                    },
                    (_, None) => CheckLine {
                        ok: true,
                        what: what.into(),
                        detail: format!(
                            "{url} answers (HTTP {status} without credentials); credentials not checked: {unchecked_because}"
                        ),
                    },
                    (401 | 403, Some(_)) => CheckLine {
                        ok: false,
                        what: what.into(),
                        detail: format!(
                            "{url} refuses the bot's credentials (HTTP {status}); check `stackstorm.auth`"
                        ),
                    },
                    (_, Some(_)) => CheckLine {
                        ok: false,
                        what: what.into(),
                        detail: format!(
                            "{url} answers HTTP {status}; is this StackStorm's {} URL?",
                            if what.ends_with("API") {
                                "API"
                            } else {
                                "stream"
                            }
                        ),
                    },
                }
            }
            Err(e) => CheckLine {
                ok: false,
                what: what.into(),
                detail: format!("{url} is unreachable: {}", without_url(&e)),
            },
        };
        lines.push(line);
    }
    lines
}

/// reqwest errors repeat the URL; keep the cause only.
fn without_url(e: &reqwest::Error) -> String {
    let mut text = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = s.to_string();
        source = s.source();
    }
    if text.is_empty() { e.to_string() } else { text }
}

/// Renders lines as `ok   what: detail` / `FAIL what: detail`.
pub fn render(lines: &[CheckLine]) -> String {
    let mut out = String::new();
    for l in lines {
        let _ = writeln!(
            out,
            "{} {}: {}",
            if l.ok { "ok  " } else { "FAIL" },
            l.what,
            l.detail
        );
    }
    let failed = lines.iter().filter(|l| !l.ok).count();
    if failed == 0 {
        out.push_str("all checks passed\n");
    } else {
        let _ = writeln!(out, "{failed} check(s) failed");
    }
    out
}
