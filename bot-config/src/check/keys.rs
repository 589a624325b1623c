//! Keys and types: turns the YAML parser's errors (syntax, unknown key, missing key, wrong
//! type) into diagnostics in our words, with "did you mean" for misspelt keys.

use crate::diagnostic::Diagnostic;
use crate::source::Span;
use crate::suggest::{did_you_mean_help, list_words};

/// Rule: the file must be valid YAML whose keys and value types are those of the schema.
/// The parser stops at the first such problem, so this yields exactly one diagnostic.
pub(crate) fn from_parse_error(error: &serde_saphyr::Error) -> Diagnostic {
    let span = error
        .location()
        .map(|l| Span::from_location(&l))
        .filter(|s| s.line > 0)
        .unwrap_or(Span::FILE);
    let plain = error.without_snippet().to_string();
    let text = match plain.rfind(" at line ") {
        Some(i) => plain[..i].to_owned(),
        None => plain,
    };

    if let Some(rest) = text.strip_prefix("unknown field `") {
        let (key, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let candidates: Vec<&str> = expected
            .trim_start_matches(", expected one of ")
            .trim_start_matches(", expected ")
            .split(", ")
            .map(|s| s.trim_matches('`'))
            .filter(|s| !s.is_empty() && !s.starts_with("there are no fields"))
            .collect();
        let d = Diagnostic::new(
            "unknown-key",
            Span {
                len: key.chars().count() as u32,
                ..span
            },
            format!("unknown key `{key}`"),
            "not a key here",
        )
        .maybe_help(did_you_mean_help(key, candidates.iter().copied()));
        return if candidates.is_empty() {
            d.note("this mapping takes no keys")
        } else {
            d.note(format!(
                "keys here are {}",
                list_words(candidates.iter().copied())
            ))
        };
    }
    if let Some(rest) = text.strip_prefix("unknown variant `") {
        let (word, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let candidates: Vec<&str> = expected
            .trim_start_matches(", expected one of ")
            .trim_start_matches(", expected ")
            .split(", ")
            .map(|s| s.trim_matches('`'))
            .filter(|s| !s.is_empty())
            .collect();
        return Diagnostic::new(
            "unknown-key",
            Span {
                len: word.chars().count() as u32,
                ..span
            },
            format!("unknown key `{word}`"),
            "not a key here",
        )
        .maybe_help(did_you_mean_help(word, candidates.iter().copied()))
        .note(format!(
            "expected one of {}",
            list_words(candidates.iter().copied())
        ));
    }
    if let Some(rest) = text.strip_prefix("missing field `") {
        let key = rest.split('`').next().unwrap_or(rest);
        return Diagnostic::new(
            "missing-key",
            Span { len: 1, ..span },
            format!("missing required key `{key}`"),
            format!("`{key}` is required in this mapping"),
        )
        .help(format!("add `{key}:` here (see bots/reference.yaml)"));
    }
    if let Some(rest) = text.strip_prefix("duplicate mapping key: ") {
        let key = rest.split(',').next().unwrap_or(rest);
        return Diagnostic::new(
            "duplicate-key",
            span,
            format!("duplicate key `{key}`"),
            "written a second time here",
        )
        .help("keep one of the two; YAML gives no way to say which should win");
    }
    let type_error = |expected: &str, help: &str| {
        Diagnostic::new(
            "wrong-type",
            span,
            format!("wrong type: expected {expected}"),
            format!("expected {expected}"),
        )
        .help(help.to_owned())
    };
    match text.as_str() {
        "invalid boolean" => {
            return type_error("`true` or `false`", "write `true` or `false`");
        }
        "invalid u16" => {
            return type_error(
                "a whole number from 0 to 65535",
                "write a number such as `6697`",
            );
        }
        "invalid u32" | "invalid u64" => {
            return type_error("a whole number", "write a number such as `4000`");
        }
        "expected string scalar" => {
            return type_error(
                "a single text value",
                "write one value here, not a list or a mapping",
            );
        }
        _ => {}
    }
    if text.starts_with("expected sequence") || text.contains("expected a sequence") {
        return type_error(
            "a list",
            "write a list, e.g. `[a, b]` or one `- item` per line",
        );
    }
    if text.starts_with("expected mapping") || text.contains("expected a map") {
        return type_error(
            "a mapping of keys to values",
            "write `key: value` pairs indented under this key",
        );
    }
    if text.starts_with("invalid type") {
        return Diagnostic::new(
            "wrong-type",
            span,
            format!("wrong type: {text}"),
            "wrong type",
        )
        .help("see bots/reference.yaml for the expected shape");
    }
    Diagnostic::new(
        "yaml-syntax",
        span,
        format!("invalid YAML: {text}"),
        "the YAML parser stopped here",
    )
    .help("check indentation (spaces only), colons after keys and closing brackets and quotes")
}
