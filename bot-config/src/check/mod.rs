//! Validation: raw definition in, [`BotSpec`] or diagnostics out.
//!
//! One file per rule family, one function per rule, each with a comment stating the rule.
//! Every check pushes into the same [`Diagnostics`] so a file's problems are reported in one
//! pass; only YAML syntax and type errors (from the parser) stop early.

mod access;
mod backend;
pub(crate) mod catalogue;
mod confirm;
mod durations;
mod keys;
mod scalar;
mod secrets;
mod stackstorm;
mod templates;
mod values;

use std::path::{Path, PathBuf};

use crate::catalogue::{Catalogue, SourcePath};
use crate::diagnostic::{Diagnostic, DiagnosticId, Diagnostics};
use crate::raw::BotFile;
use crate::source::{SourceFile, Span, Spanned};
use crate::spec::{AccessSpec, BackendSpec, BotSpec, ChatSpec, LogFormat, LogSpec};

pub(crate) use keys::from_parse_error;

/// The backend kinds, for `backend_kinds()`.
pub(crate) fn backend_kinds() -> Vec<&'static str> {
    backend::kinds().collect()
}

/// Checks a parsed definition; `Err` holds every error, sorted by position, `Ok` the spec
/// and the warnings. Catalogue paths are taken relative to `dir`, the definition's
/// directory; the files read are added to `inputs`, the catalogue's alias refs to
/// `catalogue_aliases`.
pub(crate) fn check(
    raw: BotFile,
    file: &SourceFile,
    dir: &Path,
    inputs: &mut Vec<PathBuf>,
    catalogue_aliases: &mut Vec<String>,
) -> Result<(BotSpec, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut d = Diagnostics::new();
    let name = values::bot_name(&mut d, &raw.name);
    let backend = backend::check(&mut d, &raw.backend, file);
    let stackstorm = stackstorm::check(&mut d, &raw.stackstorm, file);
    let chat = chat(
        &mut d,
        raw.chat.as_ref(),
        file,
        backend.as_ref().map(BackendSpec::can_edit),
    );
    let access = access::check(&mut d, raw.access.as_ref(), raw.groups.as_ref());
    let confirm = confirm::check(&mut d, raw.confirm.as_ref(), &access.groups);
    if let Some(catalogue) = &raw.stackstorm.value.catalogue {
        with_catalogue(&mut d, catalogue, file, dir, inputs, |d, catalogue| {
            self::catalogue::against_rules(d, catalogue, raw.access.as_ref(), &access);
            self::catalogue::against_confirm(d, catalogue, raw.confirm.as_ref());
            catalogue_aliases.extend(catalogue.alias_refs().map(str::to_owned));
        });
    }
    let templates = templates::check(&mut d, raw.templates.as_ref(), file);
    let auth_page = raw
        .auth_page
        .as_ref()
        .map(|a| values::auth_page(&mut d, a, &name));
    if let Some(page) = &raw.auth_page {
        session_admins(&mut d, page, &access);
    }
    let ha = raw.ha.as_ref().map(|h| values::ha(&mut d, h));
    let health_listen = raw
        .health
        .as_ref()
        .and_then(|h| h.value.listen.as_ref())
        .and_then(|l| values::listen_address(&mut d, l).map(Into::into));
    let log = log(&mut d, raw.log.as_ref());
    if let Some(description) = &raw.description {
        values::not_cut_by_comment(&mut d, file, description, "description");
    }
    let description = raw
        .description
        .as_ref()
        .map(|s| s.value.clone())
        .unwrap_or_default();
    let warnings = d.finish()?;
    // Every part is present when no diagnostic was pushed; a missing part here is a bug in
    // a check (it returned None without reporting), reported as such rather than a panic.
    let missing = |what: &str| {
        vec![Diagnostic::new(
            DiagnosticId::Internal,
            Span::FILE,
            format!("internal error: `{what}` failed validation without a diagnostic"),
            "",
        )]
    };
    Ok((
        BotSpec {
            name: name.into(),
            description: description.into(),
            source: file.display.clone().into(),
            backend: backend.ok_or_else(|| missing("backend"))?,
            stackstorm: stackstorm.ok_or_else(|| missing("stackstorm"))?,
            chat,
            access,
            confirm: confirm.into(),
            templates,
            auth_page: match auth_page {
                Some(a) => Some(a.ok_or_else(|| missing("auth_page"))?),
                None => None,
            },
            ha: match ha {
                Some(h) => Some(h.ok_or_else(|| missing("ha"))?),
                None => None,
            },
            health_listen,
            log,
        },
        warnings,
    ))
}

/// Reads `stackstorm.catalogue`, runs the catalogue-only rules, then `more` (the rules
/// that involve the definition).
fn with_catalogue(
    d: &mut Diagnostics,
    raw: &Spanned<crate::raw::Catalogue>,
    file: &SourceFile,
    dir: &Path,
    inputs: &mut Vec<PathBuf>,
    more: impl FnOnce(&mut Diagnostics, &crate::catalogue::Catalogue),
) {
    let display_dir = Path::new(&file.display)
        .parent()
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .unwrap_or_default();
    let sources = |list: &Option<Spanned<Vec<Spanned<String>>>>| -> Vec<SourcePath> {
        list.iter()
            .flat_map(|l| l.value.iter())
            .map(|p| SourcePath {
                path: dir.join(&p.value),
                display: if display_dir.is_empty() {
                    p.value.clone()
                } else {
                    format!("{display_dir}/{}", p.value)
                },
                span: Span::of(p),
            })
            .collect()
    };
    let packs = sources(&raw.value.packs);
    let exports = sources(&raw.value.exports);
    if packs.is_empty() && exports.is_empty() {
        d.push(
            Diagnostic::new(
                DiagnosticId::EmptyCatalogue,
                key_span(file, Span::start_of(raw), "catalogue"),
                "`catalogue` names no packs and no exports",
                "nothing to read",
            )
            .help("add `packs: [packs]` (a directory of packs) or `exports: [aliases.json]` (`st2 action-alias list -j`), or remove `catalogue`"),
        );
        return;
    }
    let (catalogue, problems) = Catalogue::read(&packs, &exports);
    inputs.extend(catalogue.inputs.iter().cloned());
    for p in problems {
        d.push(p);
    }
    let index =
        st2_alias::AliasIndex::new(catalogue.aliases.iter().map(|a| a.alias.clone()).collect());
    self::catalogue::lint(d, &catalogue, &index);
    more(d, &catalogue);
}

/// Where `key:` is written for a value at `value`: the parser records value positions
/// only. Looks on the value's line, then on the lines above it (block values start on the
/// line after their key); falls back to the value itself.
pub(super) fn key_span(file: &SourceFile, value: Span, key: &str) -> Span {
    let needle = format!("{key}:");
    let found = |line: u32, before: Option<u32>| -> Option<Span> {
        let text = file.line_text(line);
        let chars: Vec<char> = text.chars().collect();
        let limit = before.map_or(chars.len(), |c| {
            (c as usize).saturating_sub(1).min(chars.len())
        });
        let needle: Vec<char> = needle.chars().collect();
        (0..limit).rev().find_map(|i| {
            let boundary = i == 0 || matches!(chars[i - 1], ' ' | '{' | ',' | '\t');
            (boundary && chars[i..].starts_with(&needle)).then(|| {
                Span::new(
                    line,
                    u32::try_from(i + 1).unwrap_or(1),
                    u32::try_from(key.chars().count()).unwrap_or(1),
                )
            })
        })
    };
    if value.line == 0 {
        return value;
    }
    found(value.line, Some(value.column))
        .or_else(|| {
            (value.line.saturating_sub(3).max(1)..value.line)
                .rev()
                .find_map(|l| found(l, None))
        })
        .unwrap_or(value)
}

/// `chat:` with defaults: prefix `!`, mention on, help command `help`, session command
/// `session`, acks on. `can_edit`: whether the backend can edit its messages (`None` when
/// the backend is itself in error).
fn chat(
    d: &mut Diagnostics,
    raw: Option<&Spanned<crate::raw::Chat>>,
    file: &SourceFile,
    can_edit: Option<bool>,
) -> ChatSpec {
    let default = crate::raw::Chat::default();
    let c = raw.map(|c| &c.value).unwrap_or(&default);
    let prefix = match &c.prefix {
        None => "!".to_owned(),
        Some(p) => match &p.value {
            Some(text) => values::prefix(
                d,
                &Spanned::new(text.clone(), p.referenced, p.defined),
                file,
            ),
            // Rule: `prefix: ~` is not a prefix (YAML reads `~` and `null` as no value).
            None => {
                d.push(
                    Diagnostic::new(
                        DiagnosticId::InvalidPrefix,
                        key_span(file, Span::of(p), "prefix"),
                        "`prefix` is null: YAML reads `~`, `null` and nothing at all as no value",
                        "no prefix here",
                    )
                    .help("to use a tilde, quote it: `prefix: \"~\"`; leave `prefix` out for the default `!`"),
                );
                "!".to_owned()
            }
        },
    };
    let help_command = c
        .help_command
        .as_ref()
        .map(|h| values::command_word(d, h, "help_command"))
        .unwrap_or_else(|| "help".to_owned());
    let session_command = c
        .session_command
        .as_ref()
        .map(|h| values::command_word(d, h, "session_command"))
        .unwrap_or_else(|| "session".to_owned());
    if let (Some(s), true) = (&c.session_command, session_command == help_command) {
        d.push(
            Diagnostic::new(
                DiagnosticId::CommandNameClash,
                Span::of(s),
                format!("`session_command` and `help_command` are both `{session_command}`"),
                "same name as the help command",
            )
            .help("give the two commands different names"),
        );
    }
    if let Some(m) = &c.max_message_len
        && m.value < 64
    {
        d.push(
            Diagnostic::new(
                DiagnosticId::MessageLengthTooSmall,
                Span::of(m),
                format!("`max_message_len` of {} is too small to be useful", m.value),
                "must be at least 64",
            )
            .help("leave it out to use the backend's own limit"),
        );
    }
    let ack = c
        .ack
        .as_ref()
        .and_then(|a| a.value.enabled.as_ref())
        .map(|e| e.value)
        .unwrap_or(true);
    let replace = c.ack.as_ref().and_then(|a| a.value.replace.as_ref());
    if let Some(r) = replace.filter(|r| r.value) {
        if can_edit == Some(false) {
            d.push(
                Diagnostic::new(
                    DiagnosticId::AckReplaceNeedsEdit,
                    Span::of(r),
                    "`ack.replace` needs a chat service that can edit messages",
                    "this backend cannot edit a message once posted",
                )
                .help("remove `replace: true`: on this backend the result follows the ack as a new message")
                .note("services that can edit: slack, mattermost, discord, matrix, rocketchat, msteams"),
            );
        } else if !ack {
            d.push(
                Diagnostic::new(
                    DiagnosticId::AckReplaceWithoutAck,
                    Span::of(r),
                    "`ack.replace` has no ack to replace",
                    "acks are off (`enabled: false`)",
                )
                .help("remove `replace: true`, or turn acks on"),
            );
        }
    }
    ChatSpec {
        prefix: prefix.into(),
        mention: c.mention.as_ref().map(|m| m.value).unwrap_or(true),
        help_command: help_command.into(),
        session_command: session_command.into(),
        ack,
        live_ack: c
            .ack
            .as_ref()
            .and_then(|a| a.value.live.as_ref())
            .map(|e| e.value)
            .unwrap_or(true),
        replace_ack: replace.is_some_and(|r| r.value),
        max_message_len: c.max_message_len.as_ref().map(|m| m.value).unwrap_or(0),
    }
}

/// `auth_page.admins`: entries as in access rules' `users` (patterns, `@group` of a group
/// defined under `groups:`). A group named `admins` no longer names them (it did before
/// the key existed): a definition that relies on it gets a warning.
fn session_admins(d: &mut Diagnostics, page: &Spanned<crate::raw::AuthPage>, access: &AccessSpec) {
    let groups: Vec<&str> = access.groups.iter().map(|g| g.name.as_ref()).collect();
    match &page.value.admins {
        Some(list) => {
            access::user_entries(d, &list.value, &groups);
        }
        None if groups.contains(&"admins") => d.push(
            Diagnostic::new(
                DiagnosticId::AdminsGroupNotAdmins,
                Span::start_of(page),
                "the group `admins` does not make its members session admins",
                "no `admins` key in this `auth_page`",
            )
            .help("add `admins: [\"@admins\"]` under `auth_page` to let them list and revoke sessions")
            .warning(),
        ),
        None => {}
    }
}

/// `log:` with defaults: text format, `info` level. Format is `text` or `json`.
fn log(d: &mut Diagnostics, raw: Option<&Spanned<crate::raw::Log>>) -> LogSpec {
    let mut spec = LogSpec {
        format: LogFormat::Text,
        level: "info".into(),
        audit_file: None,
        audit_stdout: false,
    };
    let Some(raw) = raw else { return spec };
    spec.audit_file = raw
        .value
        .audit_file
        .as_ref()
        .map(|f| f.value.clone().into());
    spec.audit_stdout = raw.value.audit_stdout.as_ref().is_some_and(|s| s.value);
    if let Some(f) = &raw.value.format {
        match f.value.as_str() {
            "text" => spec.format = LogFormat::Text,
            "json" => spec.format = LogFormat::Json,
            other => d.push(
                Diagnostic::new(
                    DiagnosticId::UnknownLogFormat,
                    Span::of(f),
                    format!("unknown log format `{other}`"),
                    "not a log format",
                )
                .maybe_help(crate::suggest::did_you_mean_help(other, ["text", "json"]))
                .note("log formats are `text` and `json`"),
            ),
        }
    }
    if let Some(l) = &raw.value.level {
        log_level(d, l);
        spec.level = l.value.clone().into();
    }
    spec
}

/// Rule: `log.level` is a level (`trace`, `debug`, `info`, `warn`, `error`, `off`) or a
/// comma-separated list of `level` and `target=level` directives (`RUST_LOG` syntax, with
/// the level always written out).
fn log_level(d: &mut Diagnostics, raw: &Spanned<String>) {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let is_level = |w: &str| LEVELS.contains(&w.trim().to_ascii_lowercase().as_str());
    let bad = raw
        .value
        .split(',')
        .find(|directive| match directive.split_once('=') {
            Some((target, level)) => target.trim().is_empty() || !is_level(level),
            None => !is_level(directive),
        });
    if let Some(bad) = bad {
        d.push(
            Diagnostic::new(
                DiagnosticId::InvalidLogLevel,
                Span::of(raw),
                format!("`{}` is not a log level", bad.trim()),
                "not a level or `target=level`",
            )
            .help("write `debug` for more detail or `info` for the usual output")
            .note("levels are `trace`, `debug`, `info`, `warn`, `error` and `off`; per-module levels are written `bot_runtime=debug,info`"),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::diagnostic::DiagnosticId;
    use crate::source::SourceFile;

    fn definition(auth_page_admins: &str) -> String {
        format!(
            r#"name: acme
backend: {{ kind: text }}
stackstorm:
  url: https://st2.example.com
  auth: {{ api_key: "${{ST2_API_KEY}}" }}
auth_page:
  public_url: https://bot.example.com/login
  encryption_key: ${{ST2BOT_SESSION_KEY}}
{auth_page_admins}
groups:
  admins: [alice]
"#
        )
    }

    fn ids(diagnostics: &[crate::diagnostic::Diagnostic]) -> Vec<DiagnosticId> {
        diagnostics.iter().map(|d| d.id).collect()
    }

    #[test]
    fn session_admins_are_a_key_not_a_group_name() {
        let dir = std::path::Path::new(".");
        let relying = SourceFile::new("bot.yaml", definition(""));
        let loaded = crate::load_in(&relying, dir);
        let spec = loaded.result.expect("a warning, not an error");
        assert!(spec.auth_page.unwrap().admins.is_empty());
        assert_eq!(ids(&loaded.warnings), [DiagnosticId::AdminsGroupNotAdmins]);

        let explicit = SourceFile::new("bot.yaml", definition(r#"  admins: ["@admins", root]"#));
        let loaded = crate::load_in(&explicit, dir);
        assert!(loaded.warnings.is_empty());
        let admins = loaded.result.unwrap().auth_page.unwrap().admins;
        assert_eq!(
            admins.iter().map(|a| a.as_ref()).collect::<Vec<&str>>(),
            ["@admins", "root"]
        );

        let undefined = SourceFile::new("bot.yaml", definition(r#"  admins: ["@sre"]"#));
        let errors = crate::load_in(&undefined, dir).result.unwrap_err();
        assert_eq!(ids(&errors), [DiagnosticId::UndefinedGroup]);
    }
}
