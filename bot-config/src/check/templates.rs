//! `templates:` — each template parses and uses only variables and helpers the runtime
//! provides for its slot.

use crate::diagnostic::{Diagnostic, DiagnosticId, Diagnostics};
use crate::raw::Templates;
use crate::source::{SourceFile, Span, Spanned};

use super::scalar::ScalarMap;
use crate::spec::TemplatesSpec;
use crate::suggest::{did_you_mean, did_you_mean_help, list_words};
use crate::templates::{HELPERS, ProblemKind, check_template, slot};

pub(super) fn check(
    d: &mut Diagnostics,
    raw: Option<&Spanned<Templates>>,
    file: &SourceFile,
) -> TemplatesSpec {
    let default = Templates::default();
    let t = raw.map(|t| &t.value).unwrap_or(&default);
    let mut one = |name: &'static str, value: &Option<Spanned<String>>| -> String {
        let slot = slot(name).unwrap_or_else(|| unreachable!("slot {name} is defined"));
        match value {
            None => slot.default.to_owned(),
            Some(v) => {
                super::values::not_cut_by_comment(d, file, v, name);
                check_one(d, v, slot, file);
                v.value.clone()
            }
        }
    };
    TemplatesSpec {
        ack: one("ack", &t.ack).into(),
        result: one("result", &t.result).into(),
        error: one("error", &t.error).into(),
        help: one("help", &t.help).into(),
        denied: one("denied", &t.denied).into(),
        no_match: one("no_match", &t.no_match).into(),
        ambiguous: one("ambiguous", &t.ambiguous).into(),
    }
}

/// Rules: a template parses as handlebars (every `{{` closed, every `{{#block}}` closed by
/// its own `{{/block}}`); every variable it reads is one its slot provides (with
/// did-you-mean); every helper it calls exists. Problems point at the exact characters in
/// the YAML file, whatever the scalar style.
fn check_one(
    d: &mut Diagnostics,
    v: &Spanned<String>,
    slot: &'static crate::templates::Slot,
    file: &SourceFile,
) {
    let map = ScalarMap::new(file, Span::of(v), &v.value);
    let text = &v.value;
    for p in check_template(text, slot) {
        let at = char_index(text, p.line, p.column);
        let diag = match p.kind {
            ProblemKind::Syntax(reason) => {
                let (index, len, what, help) = tag_balance(text).unwrap_or_else(|| {
                    let what = plain_reason(&reason);
                    (
                        at,
                        1,
                        what,
                        "check that every `{{` has its `}}` and every `{{#block}}` its `{{/block}}`"
                            .to_owned(),
                    )
                });
                Diagnostic::new(
                    DiagnosticId::TemplateSyntax,
                    map.span(index, len),
                    format!("template `{}` does not parse: {what}", slot.name),
                    "handlebars syntax error",
                )
                .help(help)
            }
            ProblemKind::UnknownVariable { path, known } => {
                let index = find_from(text, at, &path).unwrap_or(at);
                let last = path.rsplit(['.', '/']).next().unwrap_or(&path).to_owned();
                let parent = path.rsplit_once(['.', '/']).map(|(a, _)| a);
                Diagnostic::new(
                    DiagnosticId::UnknownVariable,
                    map.span(index, path.chars().count()),
                    format!(
                        "template `{}` uses `{path}`, which the bot never provides",
                        slot.name
                    ),
                    "unknown variable",
                )
                .maybe_help(
                    did_you_mean(&last, known.iter().copied()).map(|c| match parent {
                        Some(parent) => format!("did you mean `{parent}.{c}`?"),
                        None => format!("did you mean `{c}`?"),
                    }),
                )
                .note(match (parent, known.is_empty()) {
                    (Some(parent), true) => format!("`{parent}` is a single value with no fields"),
                    (Some(parent), false) => {
                        format!("`{parent}` has {}", list_words(known.iter().copied()))
                    }
                    (None, _) if known.is_empty() => {
                        "inside this `#each` each item is a single value: use `{{this}}`".to_owned()
                    }
                    (None, _) => format!(
                        "here `{}` templates can use {}",
                        slot.name,
                        list_words(known.iter().copied())
                    ),
                })
            }
            ProblemKind::Partial(name) => {
                let index = find_from(text, at, "{{>").unwrap_or(at);
                Diagnostic::new(
                    DiagnosticId::TemplatePartial,
                    map.span(index, 3 + name.chars().count()),
                    format!("template `{}` uses the partial `{name}`, which does not exist", slot.name),
                    "partials are not available",
                )
                .help("write the text in place; each template is rendered on its own, without partials")
            }
            ProblemKind::UnknownHelper(name) => {
                let index = find_from(text, at, &name).unwrap_or(at);
                Diagnostic::new(
                    DiagnosticId::UnknownHelper,
                    map.span(index, name.chars().count()),
                    format!(
                        "template `{}` calls `{name}`, which is not a helper",
                        slot.name
                    ),
                    "unknown helper",
                )
                .maybe_help(did_you_mean_help(&name, HELPERS.iter().copied()))
                .note(format!(
                    "helpers are {}",
                    list_words(HELPERS.iter().copied())
                ))
            }
        };
        d.push(diag);
    }
}

/// Handlebars' parse error in the user's terms: the parser's grammar rule names
/// (`invert_tag_item`, `EOI`) and its position drawing say nothing to a template author.
pub(super) fn plain_reason(reason: &str) -> String {
    let head = reason
        .split_once(": expected")
        .map_or(reason, |(head, _)| head)
        .lines()
        .next()
        .unwrap_or("")
        .trim();
    let leaks = head.is_empty()
        || head.contains("-->")
        || head.contains("expected")
        || head
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .any(|w| w.contains('_') || w == "EOI");
    if leaks {
        "a `{{` tag here is not valid handlebars".to_owned()
    } else {
        head.to_owned()
    }
}

/// The character index of 1-based `line`:`column` inside `text`.
fn char_index(text: &str, line: u32, column: u32) -> usize {
    let mut index = 0;
    for (i, l) in text.split('\n').enumerate() {
        if i + 1 == line as usize {
            return index + (column.saturating_sub(1) as usize).min(l.chars().count());
        }
        index += l.chars().count() + 1;
    }
    text.chars().count().saturating_sub(1)
}

/// The character index of `needle` in `text` at or after character `from`.
fn find_from(text: &str, from: usize, needle: &str) -> Option<usize> {
    let byte = text.char_indices().nth(from).map_or(text.len(), |(b, _)| b);
    text[byte..]
        .find(needle)
        .map(|b| from + text[byte..byte + b].chars().count())
}

/// The common handlebars mistakes, found by pairing tags ourselves (handlebars' own message
/// lists grammar rules): an unclosed `{{`, a `{{/x}}` without its `{{#x}}`, a block closed
/// by the wrong name, a block never closed. Returns the character index and length to
/// underline, what is wrong, and how to fix it.
fn tag_balance(text: &str) -> Option<(usize, usize, String, String)> {
    let chars: Vec<char> = text.chars().collect();
    let mut open: Vec<(String, usize, usize)> = Vec::new();
    let mut i = 0;
    while i + 1 < chars.len() {
        if !(chars[i] == '{' && chars[i + 1] == '{') {
            i += 1;
            continue;
        }
        let start = i;
        let comment = chars[i + 2..].starts_with(&['!', '-', '-']);
        let closing: &[char] = if comment {
            &['-', '-', '}', '}']
        } else {
            &['}', '}']
        };
        let Some(end) = (i + 2..chars.len()).find(|&j| chars[j..].starts_with(closing)) else {
            return Some((
                start,
                2,
                "`{{` is never closed".to_owned(),
                "add `}}` after the expression".to_owned(),
            ));
        };
        let mut j = end + closing.len();
        while j < chars.len() && chars[j] == '}' {
            j += 1;
        }
        let inner: String = chars[i + 2..end].iter().collect();
        let inner = inner.trim_start_matches(['{', '~']).trim();
        let tag_len = j - start;
        let name = |s: &str| s.split_whitespace().next().unwrap_or("").to_owned();
        if let Some(rest) = inner.strip_prefix('#') {
            let rest = rest.trim_start_matches(['>', '*']);
            open.push((name(rest), start, tag_len));
        } else if let Some(rest) = inner.strip_prefix('/') {
            let closed = name(rest);
            match open.pop() {
                None => {
                    return Some((
                        start,
                        tag_len,
                        format!("`{{{{/{closed}}}}}` closes a block that was never opened"),
                        format!(
                            "remove it, or open the block with `{{{{#{closed} …}}}}` before it"
                        ),
                    ));
                }
                Some((opened, _, _)) if opened != closed => {
                    return Some((
                        start,
                        tag_len,
                        format!("`{{{{/{closed}}}}}` closes `{{{{#{opened}}}}}`"),
                        format!("close the `{opened}` block with `{{{{/{opened}}}}}` first"),
                    ));
                }
                Some(_) => {}
            }
        }
        i = j;
    }
    open.pop().map(|(name, start, len)| {
        (
            start,
            len,
            format!("`{{{{#{name}}}}}` is never closed"),
            format!("add `{{{{/{name}}}}}` where the block ends"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::plain_reason;
    use crate::templates::{ProblemKind, check_template, slot};

    #[test]
    fn parser_rule_names_never_reach_users() {
        let ack = slot("ack").unwrap();
        for broken in [
            "{{#if user}}a{{else}}",
            "{{^}}",
            "{{#if a}}{{else else}}{{/if}}",
            "{{{user}}",
            "{{user b=}}",
            "{{#each}}{{/each}}",
            "{{!-- x",
        ] {
            for problem in check_template(broken, ack) {
                if let ProblemKind::Syntax(reason) = problem.kind {
                    let shown = plain_reason(&reason);
                    assert!(
                        !shown.contains('_') && !shown.contains("EOI") && !shown.contains("-->"),
                        "{broken:?}: {shown:?} (from {reason:?})"
                    );
                }
            }
        }
        assert_eq!(
            plain_reason("Invalid handlebars syntax: expected invert_tag_item"),
            "Invalid handlebars syntax"
        );
        assert_eq!(
            plain_reason(" --> 1:5\n  = expected invert_tag_item"),
            "a `{{` tag here is not valid handlebars"
        );
    }
}
