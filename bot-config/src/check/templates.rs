//! `templates:` — each template parses and uses only variables and helpers the runtime
//! provides for its slot.

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::raw::Templates;
use crate::source::{Span, Spanned};
use crate::spec::TemplatesSpec;
use crate::suggest::{did_you_mean_help, list_words};
use crate::templates::{HELPERS, ProblemKind, check_template, slot};

pub(super) fn check(d: &mut Diagnostics, raw: Option<&Spanned<Templates>>) -> TemplatesSpec {
    let default = Templates::default();
    let t = raw.map(|t| &t.value).unwrap_or(&default);
    let mut one = |name: &'static str, value: &Option<Spanned<String>>| -> String {
        let slot = slot(name).unwrap_or_else(|| unreachable!("slot {name} is defined"));
        match value {
            None => slot.default.to_owned(),
            Some(v) => {
                check_one(d, v, slot);
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

/// Rules: a template parses as handlebars; every variable it reads is one its slot
/// provides (with did-you-mean); every helper it calls exists.
fn check_one(d: &mut Diagnostics, v: &Spanned<String>, slot: &'static crate::templates::Slot) {
    let start = Span::of(v);
    let multi_line = v.value.trim_end().contains('\n');
    for p in check_template(&v.value, slot) {
        let span = if multi_line {
            // A block scalar (`|`) starts its text on the line after the indicator; point
            // at the start of the template line that holds the problem.
            Span::new(start.line + p.line, 1, 1)
        } else {
            let opening_quote = u32::from(quoted(v));
            start.shifted(0, p.column.saturating_sub(1) + opening_quote, 2)
        };
        let diag = match p.kind {
            ProblemKind::Syntax(reason) => Diagnostic::new(
                "template-syntax",
                span,
                format!("template `{}` does not parse: {reason}", slot.name),
                "handlebars syntax error",
            )
            .help("check that every `{{` has its `}}` and every `{{#block}}` its `{{/block}}`"),
            ProblemKind::UnknownVariable { path, known } => {
                let last = path.rsplit(['.', '/']).next().unwrap_or(&path).to_owned();
                Diagnostic::new(
                    "unknown-variable",
                    span,
                    format!(
                        "template `{}` uses `{path}`, which the bot never provides",
                        slot.name
                    ),
                    "unknown variable",
                )
                .maybe_help(did_you_mean_help(&last, known.iter().copied()))
                .note(if known.is_empty() {
                    format!(
                        "`{}` has no fields",
                        path.rsplit_once('.').map(|(a, _)| a).unwrap_or(&path)
                    )
                } else {
                    format!(
                        "`{}` templates can use {}",
                        slot.name,
                        list_words(known.iter().copied())
                    )
                })
            }
            ProblemKind::UnknownHelper(name) => Diagnostic::new(
                "unknown-helper",
                span,
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
            )),
        };
        d.push(diag);
    }
}

/// Whether the scalar was written in quotes (its span is two longer than its text).
fn quoted(v: &Spanned<String>) -> bool {
    Span::of(v).len as usize == v.value.chars().count() + 2
}
