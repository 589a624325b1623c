//! `stackstorm.catalogue:` — the definition and the site's StackStorm content checked
//! against each other at build time.
//!
//! Two groups of rules. [`lint`] needs only the catalogue (it is also what `st2bot-lint`
//! runs on pack directories): formats StackStorm would reject, help texts their own formats
//! do not match, aliases whose action does not exist, aliases ambiguous with each other,
//! alias templates naming parameters that do not exist. [`against_rules`] needs the access
//! rules: a command pattern that matches no alias, and an alias nobody may run (a warning).
//! Alias problems point into the alias file; rule problems into the definition.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use st2_alias::{AliasIndex, FormatEntry, ResolveError};

use crate::acl::{GlobMatcher, compile_glob};
use crate::catalogue::{Catalogue, CatalogueAlias};
use crate::diagnostic::{Diagnostic, DiagnosticId, Diagnostics};
use crate::raw::{Access, Rule};
use crate::source::{Span, Spanned};
use crate::spec::{AccessSpec, Decision};
use crate::suggest::did_you_mean;

/// Runs every catalogue-only rule.
pub(crate) fn lint(d: &mut Diagnostics, catalogue: &Catalogue, index: &AliasIndex) {
    invalid_formats(d, catalogue, index);
    unmatched_examples(d, catalogue);
    unknown_actions(d, catalogue);
    ambiguous_aliases(d, catalogue, index);
    unknown_template_parameters(d, catalogue);
}

/// `d`, pointing into the file `alias` was read from.
fn located(alias: &CatalogueAlias, d: Diagnostic) -> Diagnostic {
    d.in_file(alias.file.clone())
}

/// `file:line` of a span in an alias file, for notes pointing at a second place.
fn place(alias: &CatalogueAlias, span: Span) -> String {
    if span.line == 0 {
        alias.file.display.clone()
    } else {
        format!("{}:{}", alias.file.display, span.line)
    }
}

/// Rule: every representation of every alias is a format StackStorm accepts (a Python
/// regular expression once its `{{param}}` placeholders are rewritten). StackStorm loads
/// such an alias and then fails every command that reaches it with an HTTP 500.
fn invalid_formats(d: &mut Diagnostics, catalogue: &Catalogue, index: &AliasIndex) {
    let invalid: HashMap<&str, &str> = index
        .invalid_formats()
        .into_iter()
        .map(|(_, representation, reason)| (representation, reason))
        .collect();
    if invalid.is_empty() {
        return;
    }
    for alias in &catalogue.aliases {
        for (entry, spans) in alias.alias.formats.iter().zip(&alias.formats) {
            for (representation, span) in entry.representations().iter().zip(&spans.representations)
            {
                let Some(reason) = invalid.get(representation) else {
                    continue;
                };
                d.push(located(
                    alias,
                    Diagnostic::new(
                        DiagnosticId::InvalidAliasFormat,
                        *span,
                        format!(
                            "StackStorm would reject this format of alias `{}`",
                            alias.alias.reference()
                        ),
                        format!("invalid regular expression: {reason}"),
                    )
                    .help("a format is a Python regular expression: escape `(`, `)`, `[`, `*`, `+`, `?` and `\\` with `\\` where they are meant literally")
                    .note("StackStorm registers such an alias, then fails every command that reaches it with an HTTP 500"),
                ));
            }
        }
    }
}

/// A concrete command from a help text written in format syntax: `{{name}}` becomes `x`,
/// `{{name=default}}` its default. `None` for free-form help (`deploy <app> [to <env>]`),
/// which documents rather than exemplifies.
fn example_of(display: &str) -> Option<String> {
    if display.contains(['<', '[', '…']) {
        return None;
    }
    let mut out = String::new();
    let mut rest = display;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}")? + start;
        let inner = &rest[start + 2..end];
        match inner.split_once('=') {
            Some((_, default)) if !default.trim().is_empty() => {
                out.push_str(default.trim().trim_matches(['"', '\'']));
            }
            _ => out.push('x'),
        }
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    Some(out)
}

/// Rule: a format object's `display` written as a command (in format syntax, or plain
/// words) is matched by one of its own representations; help would otherwise show users a
/// command that does not work.
fn unmatched_examples(d: &mut Diagnostics, catalogue: &Catalogue) {
    for alias in &catalogue.aliases {
        for (entry, spans) in alias.alias.formats.iter().zip(&alias.formats) {
            let FormatEntry::Object(object) = entry else {
                continue;
            };
            let (Some(display), Some(span)) = (object.display.as_deref(), spans.display) else {
                continue;
            };
            let representations = entry.representations();
            let Some(example) = example_of(display) else {
                continue;
            };
            if representations.is_empty() {
                continue;
            }
            let multiple = entry.is_match_multiple();
            let matched = representations.iter().any(|r| {
                st2_alias::extract_parameters(r, &example, multiple)
                    .is_ok_and(|found| !multiple || !found.is_empty())
            });
            if !matched {
                d.push(located(
                    alias,
                    Diagnostic::new(
                        DiagnosticId::UnmatchedExample,
                        span,
                        format!(
                            "help for alias `{}` shows `{example}`, which its own formats do not match",
                            alias.alias.reference()
                        ),
                        "no representation of this entry matches it",
                    )
                    .help(format!(
                        "make a `representation` accept it, or write the `display` as the representation does (`{}`)",
                        representations[0]
                    )),
                ));
            }
        }
    }
}

/// Rule: when the catalogue lists actions, every alias runs one of them (StackStorm
/// accepts an alias whose action is missing, st2#4372, and fails at run time).
fn unknown_actions(d: &mut Diagnostics, catalogue: &Catalogue) {
    if !catalogue.actions_known {
        return;
    }
    for alias in &catalogue.aliases {
        let action = alias.alias.action_ref.as_deref().unwrap_or("");
        if catalogue.actions.contains_key(action) {
            continue;
        }
        let message = if action.is_empty() {
            format!("alias `{}` names no action", alias.alias.reference())
        } else {
            format!(
                "alias `{}` runs `{action}`, which is not in the catalogue",
                alias.alias.reference()
            )
        };
        let help = did_you_mean(action, catalogue.actions.keys().map(String::as_str))
            .map(|s| format!("did you mean `{s}`?"))
            .unwrap_or_else(|| {
                "add the action's pack to `catalogue.packs` (or its `st2 action list -j` export), or fix `action_ref`".to_owned()
            });
        d.push(located(
            alias,
            Diagnostic::new(
                DiagnosticId::UnknownAction,
                alias.action_span,
                message,
                "no such action",
            )
            .help(help),
        ));
    }
}

/// Commands that a format obviously accepts: its literal text with each `{{param}}`
/// filled in. Formats using regular-expression syntax outside placeholders give none.
fn samples(representation: &str) -> Vec<String> {
    let mut literal = String::new();
    let mut rest = representation;
    while let Some(start) = rest.find("{{") {
        literal.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else {
            return Vec::new();
        };
        literal.push('\u{0}');
        rest = &rest[start + end + 2..];
    }
    literal.push_str(rest);
    if literal.contains(|c: char| "\\.^$*+?()[]{}|".contains(c)) || literal.trim().is_empty() {
        return Vec::new();
    }
    vec![literal.replace('\u{0}', "x")]
}

/// Rule: no command is matched by formats of two different enabled aliases in the same
/// matching pass: StackStorm answers such a command with "matched more than 1 pattern" and
/// runs nothing. Found by trying, for each plain format, the command it most obviously
/// accepts; reported once per pair, at the alias read later.
fn ambiguous_aliases(d: &mut Diagnostics, catalogue: &Catalogue, index: &AliasIndex) {
    let by_ref: HashMap<&str, usize> = catalogue
        .aliases
        .iter()
        .enumerate()
        .map(|(i, a)| (a.alias.reference(), i))
        .collect();
    let mut reported: BTreeSet<(usize, usize)> = BTreeSet::new();
    for (i, alias) in catalogue.aliases.iter().enumerate() {
        if !alias.alias.enabled {
            continue;
        }
        for (entry, spans) in alias.alias.formats.iter().zip(&alias.formats) {
            for (representation, span) in entry.representations().iter().zip(&spans.representations)
            {
                for command in samples(representation) {
                    let candidates = match index.resolve(&command) {
                        Err(ResolveError::Ambiguous { candidates, .. })
                        | Err(ResolveError::AmbiguousMulti { candidates, .. }) => candidates,
                        _ => continue,
                    };
                    let others: BTreeSet<usize> = candidates
                        .iter()
                        .filter_map(|(r, _)| by_ref.get(r.as_str()).copied())
                        .filter(|j| *j != i)
                        .collect();
                    for j in others {
                        if !reported.insert((i.min(j), i.max(j))) {
                            continue;
                        }
                        let other = &catalogue.aliases[j];
                        let (later, later_span, earlier) = if j > i {
                            (other, other_span(other, &candidates), alias)
                        } else {
                            (alias, *span, other)
                        };
                        d.push(located(
                    later,
                    Diagnostic::new(
                                DiagnosticId::AmbiguousAliases,
                                later_span,
                                format!(
                                    "aliases `{}` and `{}` both match `{command}`",
                                    earlier.alias.reference(),
                                    later.alias.reference()
                                ),
                                "this format matches it too",
                            )
                            .help("make one of the formats more specific; StackStorm runs nothing when a command matches formats of two aliases")
                            .note(format!(
                                "`{}` is defined at {}",
                                earlier.alias.reference(),
                                place(earlier, earlier.name_span)
                            )),
                        ));
                    }
                }
            }
        }
    }
}

/// The span of the first representation of `alias` among `candidates`.
fn other_span(alias: &CatalogueAlias, candidates: &[(String, String)]) -> Span {
    for (entry, spans) in alias.alias.formats.iter().zip(&alias.formats) {
        for (representation, span) in entry.representations().iter().zip(&spans.representations) {
            if candidates
                .iter()
                .any(|(r, rep)| r == alias.alias.reference() && rep == representation)
            {
                return *span;
            }
        }
    }
    alias.name_span
}

/// The parameter names a format can extract: `{{name}}`, `{{name=default}}` and
/// `(?P<name>…)`.
pub(crate) fn format_parameters(representation: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = representation;
    while let Some(start) = rest.find("{{") {
        let Some(end) = rest[start..].find("}}") else {
            break;
        };
        let inner = &rest[start + 2..start + end];
        let name = inner.split('=').next().unwrap_or("").trim();
        if !name.is_empty() {
            out.insert(name.to_owned());
        }
        rest = &rest[start + end + 2..];
    }
    let mut rest = representation;
    while let Some(start) = rest.find("(?P<") {
        let after = &rest[start + 4..];
        if let Some(end) = after.find('>') {
            out.insert(after[..end].to_owned());
        }
        rest = after;
    }
    out
}

/// Rule: an alias's `ack.format` or `result.format` uses only `execution.parameters.X`
/// that exist: a parameter of its formats, an immutable parameter, or a parameter of its
/// action. Knowable only when the catalogue lists the action.
fn unknown_template_parameters(d: &mut Diagnostics, catalogue: &Catalogue) {
    const PREFIX: &str = "execution.parameters.";
    for alias in &catalogue.aliases {
        let Some(action) = alias
            .alias
            .action_ref
            .as_deref()
            .and_then(|a| catalogue.actions.get(a))
        else {
            continue;
        };
        let mut known: BTreeSet<String> = action.parameters.clone();
        for entry in &alias.alias.formats {
            for r in entry.representations() {
                known.extend(format_parameters(r));
            }
        }
        if let Some(serde_json::Value::Object(fixed)) = alias.alias.immutable_parameters.as_deref()
        {
            known.extend(fixed.keys().cloned());
        }
        for (key, text, span) in &alias.templates {
            let mut rest = text.as_str();
            let mut seen = BTreeSet::new();
            while let Some(at) = rest.find(PREFIX) {
                let after = &rest[at + PREFIX.len()..];
                let name: String = after
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                rest = after;
                if name.is_empty() || known.contains(&name) || !seen.insert(name.clone()) {
                    continue;
                }
                let used = format!("{PREFIX}{name}");
                let at = crate::catalogue::find_text(&alias.file, &used, span.line.max(1))
                    .filter(|s| span.line == 0 || s.line < span.line + text.lines().count() as u32)
                    .unwrap_or(*span);
                d.push(located(
                    alias,
                    Diagnostic::new(
                        DiagnosticId::UnknownAliasParameter,
                        at,
                        format!(
                            "`{key}` of alias `{}` uses `{PREFIX}{name}`, which neither the alias nor action `{}` has",
                            alias.alias.reference(),
                            action.reference
                        ),
                        "in this template",
                    )
                    .help(
                        did_you_mean(&name, known.iter().map(String::as_str))
                            .map(|s| format!("did you mean `{PREFIX}{s}`?"))
                            .unwrap_or_else(|| "use a parameter the alias's formats extract or the action declares".to_owned()),
                    )
                    .note(format!(
                        "parameters here are {}",
                        crate::suggest::list_words(known.iter().map(String::as_str))
                    )),
                ));
            }
        }
    }
}

/// The best "did you mean" for a command pattern: an alias ref, or a glob over the same
/// pack (`core.lcoal*` → `core.local*`).
fn command_suggestion(pattern: &str, refs: &[&str]) -> Option<String> {
    let literal: String = pattern
        .chars()
        .take_while(|c| !"*?[{\\".contains(*c))
        .collect();
    if literal.len() == pattern.len() {
        return did_you_mean(pattern, refs.iter().copied()).map(str::to_owned);
    }
    let tail = &pattern[literal.len()..];
    let prefixes: BTreeSet<String> = refs
        .iter()
        .filter_map(|r| r.get(..literal.len().min(r.len())))
        .map(str::to_owned)
        .collect();
    did_you_mean(&literal, prefixes.iter().map(String::as_str)).map(|p| format!("{p}{tail}"))
}

/// Rule: each command pattern of an access rule (other than `bot:` commands) matches at
/// least one alias of the catalogue; a typo such as `core.lcoal*` otherwise builds and
/// silently changes who may run what.
pub(crate) fn against_rules(
    d: &mut Diagnostics,
    catalogue: &Catalogue,
    raw: Option<&Spanned<Access>>,
    spec: &AccessSpec,
) {
    let refs: Vec<&str> = catalogue.alias_refs().collect();
    let packs: BTreeSet<&str> = catalogue
        .aliases
        .iter()
        .map(|a| a.alias.pack.as_str())
        .collect();
    let rules = raw
        .and_then(|a| a.value.rules.as_ref())
        .map(|r| r.value.as_slice())
        .unwrap_or_default();
    for rule in rules {
        let scope = match &rule.value {
            Rule::Allow(s) | Rule::Deny(s) => &s.value,
        };
        for command in scope.commands.iter().flat_map(|c| c.value.iter()) {
            unknown_alias(d, command, &refs, &packs);
        }
    }
    not_runnable(d, catalogue, spec);
}

/// Rule: a `confirm:` command pattern matches at least one alias of the catalogue (else
/// the confirmation protects nothing, usually a typo).
pub(crate) fn against_confirm(
    d: &mut Diagnostics,
    catalogue: &Catalogue,
    raw: Option<&Spanned<Vec<Spanned<crate::raw::Confirm>>>>,
) {
    let refs: Vec<&str> = catalogue.alias_refs().collect();
    let packs: BTreeSet<&str> = catalogue
        .aliases
        .iter()
        .map(|a| a.alias.pack.as_str())
        .collect();
    for entry in raw.iter().flat_map(|r| r.value.iter()) {
        for command in &entry.value.commands.value {
            unknown_alias(d, command, &refs, &packs);
        }
    }
}

/// Rule: a command pattern (of an access rule or a confirmation) that is not the bot's
/// own matches at least one alias ref of the catalogue.
fn unknown_alias(
    d: &mut Diagnostics,
    command: &Spanned<String>,
    refs: &[&str],
    packs: &BTreeSet<&str>,
) {
    if command.value.starts_with("bot:") {
        return;
    }
    let Ok(glob) = compile_glob(&command.value) else {
        return;
    };
    let matcher = glob.compile_matcher();
    if refs.iter().any(|r| matcher.is_match(r)) {
        return;
    }
    let label = if glob.literal().is_some() {
        "no alias has this ref"
    } else {
        "no alias ref matches this pattern"
    };
    d.push(
        Diagnostic::new(
            DiagnosticId::UnknownAlias,
            Span::of(command),
            format!("`{}` matches no alias in the catalogue", command.value),
            label,
        )
        .maybe_help(
            command_suggestion(&command.value, refs).map(|s| format!("did you mean `{s}`?")),
        )
        .note(format!(
            "the catalogue has {} alias{} in {} {}",
            refs.len(),
            if refs.len() == 1 { "" } else { "es" },
            if packs.len() == 1 { "pack" } else { "packs" },
            crate::suggest::list_words(packs.iter().copied())
        )),
    );
}

/// Whether some user may run `command` somewhere: the first rule that names the command
/// and allows, before any rule that denies it to everyone everywhere; else the default.
fn runnable(spec: &AccessSpec, commands: &[Option<Vec<GlobMatcher>>], command: &str) -> bool {
    for (rule, patterns) in spec.rules.iter().zip(commands) {
        let names_it = match patterns {
            None => true,
            Some(patterns) => patterns.iter().any(|m| m.is_match(command)),
        };
        if !names_it {
            continue;
        }
        match rule.decision {
            Decision::Allow => return true,
            Decision::Deny
                if rule.users.is_none() && rule.rooms.is_none() && rule.direct.is_none() =>
            {
                return false;
            }
            Decision::Deny => {}
        }
    }
    spec.default == Decision::Allow
}

/// Rule (warning): every enabled alias can be run by someone. An alias no rule allows is
/// dead weight in help and usually a forgotten rule.
fn not_runnable(d: &mut Diagnostics, catalogue: &Catalogue, spec: &AccessSpec) {
    let commands: Vec<Option<Vec<GlobMatcher>>> = spec
        .rules
        .iter()
        .map(|rule| {
            rule.commands.as_ref().map(|patterns| {
                patterns
                    .iter()
                    .filter_map(|p| compile_glob(p).ok().map(|g| g.compile_matcher()))
                    .collect()
            })
        })
        .collect();
    let mut by_pack: BTreeMap<&str, Vec<&CatalogueAlias>> = BTreeMap::new();
    for alias in catalogue.aliases.iter().filter(|a| a.alias.enabled) {
        if !runnable(spec, &commands, alias.alias.reference()) {
            by_pack.entry(&alias.alias.pack).or_default().push(alias);
        }
    }
    for (pack, aliases) in by_pack {
        for alias in aliases {
            let r = alias.alias.reference();
            d.push(
                Diagnostic::new(
                    DiagnosticId::AliasNotRunnable,
                    alias.name_span,
                    format!("no access rule lets anyone run alias `{r}`"),
                    "nobody may run this alias",
                )
                .warning()
                .help(format!(
                    "to let a group run it, add `- allow: {{ users: [\"@GROUP\"], commands: [\"{r}\"] }}` (or `\"{pack}.*\"`) before the first rule that denies it"
                ))
                .note(if spec.default == Decision::Deny {
                    "the default is `deny` and no `allow` rule names it"
                } else {
                    "a `deny` rule for everyone comes before any `allow` for it"
                })
                .in_file(alias.file.clone()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_and_samples() {
        assert_eq!(
            example_of("deploy {{app}} to {{env=prod}}").as_deref(),
            Some("deploy x to prod")
        );
        assert_eq!(example_of("deploy <app> [to <env>]"), None);
        assert_eq!(samples("run {{cmd}} on {{hosts}}"), ["run x on x"]);
        assert!(samples("(?:\\b|^)fixes (?P<k>[A-Z]+)").is_empty());
        assert_eq!(
            format_parameters("run {{cmd}} on {{ hosts = web1 }} (?P<x>.)"),
            BTreeSet::from(["cmd".to_owned(), "hosts".to_owned(), "x".to_owned()])
        );
    }

    #[test]
    fn suggestions_keep_the_glob() {
        let refs = ["core.local", "core.remote", "packs.install"];
        assert_eq!(
            command_suggestion("core.lcoal*", &refs).as_deref(),
            Some("core.local*")
        );
        assert_eq!(
            command_suggestion("core.lcoal", &refs).as_deref(),
            Some("core.local")
        );
    }
}
