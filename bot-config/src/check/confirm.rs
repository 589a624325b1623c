//! `confirm:` — commands that run only once confirmed: by the requester repeating a code
//! (`by: self`) or approved by another member of a group (`by: "@group"`).

use std::time::Duration;

use crate::acl::BOT_COMMANDS;
use crate::diagnostic::{Diagnostic, DiagnosticId, Diagnostics};
use crate::raw::Confirm;
use crate::source::{Span, Spanned};
use crate::spec::{ConfirmBy, ConfirmSpec, GroupSpec, Str};
use crate::suggest::list_words;

/// Shortest `within`: a person must have time to read the prompt and answer.
pub(crate) const MIN_WITHIN: Duration = Duration::from_secs(10);
/// Longest `within`: a request older than a day is no longer what anyone meant to run.
pub(crate) const MAX_WITHIN: Duration = Duration::from_secs(24 * 3600);
/// `within` when not given.
pub(crate) const DEFAULT_WITHIN: Duration = Duration::from_secs(300);

/// Checks every `confirm:` entry against the (already checked) groups.
pub(super) fn check(
    d: &mut Diagnostics,
    raw: Option<&Spanned<Vec<Spanned<Confirm>>>>,
    groups: &[GroupSpec],
) -> Vec<ConfirmSpec> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    raw.value
        .iter()
        .filter_map(|entry| check_entry(d, entry, groups))
        .collect()
}

fn check_entry(
    d: &mut Diagnostics,
    entry: &Spanned<Confirm>,
    groups: &[GroupSpec],
) -> Option<ConfirmSpec> {
    let Confirm {
        commands,
        by,
        within,
    } = &entry.value;
    let mut ok = true;
    // Rule: `commands` is not an empty list (such an entry would confirm nothing).
    if commands.value.is_empty() {
        ok = false;
        d.push(
            Diagnostic::new(
                DiagnosticId::EmptyList,
                Span::start_of(commands),
                "`commands` is an empty list, so this confirmation applies to nothing",
                "empty",
            )
            .help("list the alias refs (or globs such as `core.remote*`) that need a confirmation"),
        );
    }
    for c in &commands.value {
        ok &= super::access::glob_ok(d, c, "command");
        // Rule: only aliases are confirmed; the bot's own commands (`bot:help`…) are not.
        if c.value.starts_with("bot:") {
            ok = false;
            d.push(
                Diagnostic::new(
                    DiagnosticId::UnconfirmableCommand,
                    Span::of(c),
                    format!(
                        "`{}` is one of the bot's own commands, which are never confirmed",
                        c.value
                    ),
                    "not an alias",
                )
                .help("name action-alias refs (`pack.name`) or globs over them (`packs.*`)")
                .note(format!(
                    "the bot's own commands are {}; limit them with `access:` rules instead",
                    list_words(BOT_COMMANDS.iter().copied())
                )),
            );
        }
    }
    let by = confirm_by(d, by, groups);
    // Rule: `within` is a duration from 10s to 24h.
    let within = match within {
        None => Some(DEFAULT_WITHIN),
        Some(w) => super::durations::duration(d, w, "within", MAX_WITHIN).and_then(|within| {
            if within < MIN_WITHIN {
                d.push(
                    Diagnostic::new(
                        DiagnosticId::WithinTooShort,
                        Span::of(w),
                        format!("`within` must be at least {}s", MIN_WITHIN.as_secs()),
                        "too short to answer",
                    )
                    .help("give people time to read the prompt and answer, e.g. `within: 60s`"),
                );
                None
            } else {
                Some(within)
            }
        }),
    };
    if !ok {
        return None;
    }
    Some(ConfirmSpec {
        commands: commands
            .value
            .iter()
            .map(|c| Str::from(c.value.clone()))
            .collect::<Vec<_>>()
            .into(),
        by: by?,
        within: within?,
        line: Span::start_of(entry).line,
    })
}

/// Rule: `by` is `self` or `@group`, a group defined under `groups:`.
fn confirm_by(
    d: &mut Diagnostics,
    by: &Spanned<String>,
    groups: &[GroupSpec],
) -> Option<ConfirmBy> {
    let names = || groups.iter().map(|g| &*g.name);
    if by.value == "self" {
        return Some(ConfirmBy::Requester);
    }
    let Some(group) = by.value.strip_prefix('@') else {
        let help = crate::suggest::did_you_mean(&by.value, names())
            .map(|g| {
                format!("did you mean `\"@{g}\"`? (quote it: YAML reads a bare `@` as an error)")
            })
            .unwrap_or_else(|| {
                "write `by: self` or `by: \"@oncall\"` (a group under `groups:`)".to_owned()
            });
        d.push(
            Diagnostic::new(
                DiagnosticId::InvalidConfirmBy,
                Span::of(by),
                format!("`by` must be `self` or `@group`, not `{}`", by.value),
                "not `self` or a group",
            )
            .help(help)
            .note("`self`: the requester repeats a code; `@group`: another member of the group approves"),
        );
        return None;
    };
    if groups.iter().any(|g| g.name == group) {
        return Some(ConfirmBy::Group(group.to_owned().into()));
    }
    d.push(
        Diagnostic::new(
            DiagnosticId::UndefinedGroup,
            Span::of(by),
            format!("group `{group}` is not defined"),
            "no such group",
        )
        .maybe_help(
            crate::suggest::did_you_mean(group, names()).map(|c| format!("did you mean `@{c}`?")),
        )
        .note(if groups.is_empty() {
            "no groups are defined; add them under `groups:`".to_owned()
        } else {
            format!("defined groups are {}", list_words(names()))
        }),
    );
    None
}
