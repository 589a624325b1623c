//! Keys, types and YAML syntax: turns the YAML parser's errors (syntax, unknown key, missing
//! key, duplicate key, wrong type) into diagnostics in our words, with "did you mean" for
//! misspelt keys and a hint for the YAML pitfalls that bite bot definitions (unquoted
//! `${…}` in flow collections, unquoted `@group`, tabs).
//!
//! The parser stops at the first such problem, so each file yields exactly one of these.
//! Errors are matched on the parser's error variants, never on its message text, except
//! for the scanner's own messages (`ExternalMessage`), which have no variants.

use serde_saphyr::Error;

use crate::diagnostic::{Diagnostic, DiagnosticId};
use crate::source::{SourceFile, Span};
use crate::suggest::{did_you_mean_help, list_words};

/// Rule: the file must be one YAML document whose keys and value types are those of the
/// schema.
pub(crate) fn from_parse_error(error: &Error, file: &SourceFile) -> Diagnostic {
    if let Some(d) = invisible_indentation(file) {
        return d;
    }
    let error = innermost(error);
    let span = error
        .location()
        .map(|l| Span::from_location(&l))
        .filter(|s| s.line > 0)
        .unwrap_or(Span::FILE);
    match error {
        Error::SerdeUnknownField {
            field, expected, ..
        } => unknown_key(span, field, expected),
        Error::SerdeUnknownVariant { variant, .. } => Diagnostic::new(
            DiagnosticId::UnknownKey,
            Span {
                len: char_len(variant),
                ..span
            },
            format!("unknown rule kind `{variant}`"),
            "not `allow` or `deny`",
        )
        .maybe_help(did_you_mean_help(variant, ["allow", "deny"]))
        .note("each rule is `- allow: {…}` or `- deny: {…}`"),
        Error::SerdeMissingField { field, .. } => missing_key(span, field, file),
        Error::DuplicateMappingKey { key, .. } => duplicate_key(span, key.as_deref(), file),
        Error::Eof { .. } if is_blank(&file.text) => Diagnostic::new(
            DiagnosticId::EmptyFile,
            Span::FILE,
            "the bot definition is empty",
            "",
        )
        .help("start from bots/demo.yaml: a definition needs at least `name`, `backend` and `stackstorm`"),
        Error::Eof { .. } => syntax(
            span,
            "the file ends in the middle of a value",
            "close every quote and bracket that is still open",
        ),
        Error::MultipleDocuments { .. } => syntax(
            span,
            "a bot definition is one YAML document, but `---` starts a second one here",
            "remove the `---` line; put a second bot in its own file under bots/",
        ),
        Error::UnknownAnchor { .. } => syntax(
            span,
            "this alias (`*name`) refers to an anchor that is not defined",
            "define the anchor first with `&name` on the value you want to reuse",
        ),
        Error::InvalidScalar { ty, .. } => match *ty {
            "bool" | "boolean" => wrong_type(span, "`true` or `false`", "write `true` or `false`"),
            "u16" => wrong_type(
                span,
                "a whole number from 0 to 65535",
                "write a port number such as `6697`",
            ),
            _ => wrong_type(
                span,
                "a whole number, 0 or more",
                "write a number such as `4000`",
            ),
        },
        Error::InvalidBooleanStrict { .. } => {
            wrong_type(span, "`true` or `false`", "write `true` or `false`")
        }
        Error::NullIntoString { .. } => match comment_as_value(file, span) {
            Some(word) => Diagnostic::new(
                DiagnosticId::WrongType,
                file.line_text(span.line)
                    .chars()
                    .position(|c| c == '#')
                    .map_or(span, |i| Span::new(span.line, u32::try_from(i + 1).unwrap_or(1), 1 + char_len(&word))),
                "wrong type: expected a value, but it is empty",
                "`#` starts a comment here",
            )
            .help(format!("`#` after a space starts a YAML comment, so `#{word}` is not read: quote it, `\"#{word}\"`")),
            None => wrong_type(
                span,
                "a value, but it is empty",
                "write a value after the colon (or remove the key if it is optional)",
            ),
        },
        Error::Unexpected { expected, .. }
            if expected.contains("string") && starts_template(file, span) =>
        {
            Diagnostic::new(
                DiagnosticId::WrongType,
                Span { len: 2, ..span },
                "wrong type: a template written without quotes is read as a YAML mapping",
                "`{` starts a mapping in YAML",
            )
            .help("put the whole template in quotes, e.g. `ack: \"{{user}}: running {{alias}}\"`, or use a `|` block")
        }
        Error::Unexpected { expected, .. } => misindented(file, span).unwrap_or_else(|| unexpected(span, expected)),
        Error::SerdeInvalidType { .. } if misindented(file, span).is_some() => {
            misindented(file, span).unwrap_or_else(|| unexpected(span, ""))
        }
        Error::SerdeInvalidType { expected, .. } => {
            if expected.contains("sequence") {
                unexpected(span, "sequence start")
            } else if expected.contains("map") || expected.starts_with("struct") {
                unexpected(span, "mapping start")
            } else if expected.contains("string") {
                unexpected(span, "string scalar")
            } else {
                wrong_type(
                    span,
                    "a different kind of value",
                    "see bots/reference.yaml for the shape of this key",
                )
            }
        }
        Error::ExpectedMappingEndAfterEnumVariantValue { .. } => Diagnostic::new(
            DiagnosticId::WrongType,
            span,
            "a rule has exactly one key, `allow` or `deny`",
            "second key in the same rule",
        )
        .help("start a new rule with `- ` in front of this key"),
        Error::ExternallyTaggedEnumExpectedScalarOrMapping { .. }
        | Error::ExpectedStringKeyForExternallyTaggedEnum { .. } => Diagnostic::new(
            DiagnosticId::WrongType,
            span,
            "a rule must be `allow:` or `deny:` followed by what it matches",
            "not a rule",
        )
        .help("write e.g. `- allow: { users: [alice], commands: [\"st2.*\"] }`"),
        Error::ExternalMessage { msg, .. } => scanner(span, msg, file),
        other => {
            let text = other.to_string();
            let text = text.split(" at line ").next().unwrap_or(&text).to_owned();
            syntax(span, &text, GENERIC_SYNTAX_HELP)
        }
    }
}

/// Characters that look like indentation but are not YAML whitespace.
const INVISIBLE: &[(char, &str)] = &[
    ('\u{a0}', "a non-breaking space (U+00A0)"),
    ('\u{2007}', "a figure space (U+2007)"),
    ('\u{202f}', "a narrow non-breaking space (U+202F)"),
    ('\u{3000}', "an ideographic space (U+3000)"),
    ('\u{200b}', "a zero-width space (U+200B)"),
    ('\u{feff}', "a byte order mark (U+FEFF)"),
];

/// Rule: indentation is made of ordinary spaces. A non-breaking space (pasted from a web
/// page or a chat) before a key is part of the key for YAML, which then reports a missing
/// key somewhere else; name the invisible character where it is instead.
fn invisible_indentation(file: &SourceFile) -> Option<Diagnostic> {
    file.text.lines().enumerate().find_map(|(i, line)| {
        let (column, (c, what)) = line
            .chars()
            .take_while(|c| c.is_whitespace() || *c == '\u{200b}' || *c == '\u{feff}' || *c == '-')
            .enumerate()
            .find_map(|(col, c)| INVISIBLE.iter().find(|(x, _)| *x == c).map(|x| (col, *x)))?;
        if i == 0 && column == 0 && c == '\u{feff}' {
            return None; // a byte order mark at the very start is allowed
        }
        Some(
            Diagnostic::new(
                DiagnosticId::InvisibleCharacter,
                Span::new(
                    u32::try_from(i + 1).unwrap_or(u32::MAX),
                    u32::try_from(column + 1).unwrap_or(1),
                    1,
                ),
                format!(
                    "this line is indented with {what}, which YAML does not count as indentation"
                ),
                "invisible character here",
            )
            .help("replace it with an ordinary space (retype the indentation)"),
        )
    })
}

/// The word after `#` when the value at `span` is empty because `- #word` or `key: #word`
/// made it a comment.
fn comment_as_value(file: &SourceFile, span: Span) -> Option<String> {
    let line = file.line_text(span.line);
    let code = line
        .trim_start()
        .strip_prefix('-')
        .map(str::trim_start)
        .or_else(|| line.split_once(": ").map(|(_, v)| v.trim_start()))?;
    let word: String = code
        .strip_prefix('#')?
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    (!word.is_empty()).then_some(word)
}

/// A block that is merely mis-indented: `key:` followed by lines that should be under it
/// but start at the same column. Gives advice about indentation rather than about `{`/`[`.
fn misindented(file: &SourceFile, span: Span) -> Option<Diagnostic> {
    let indent = |l: &str| l.chars().take_while(|c| *c == ' ').count();
    // The key whose value is missing: the nearest line at or above the error that ends
    // with `:` (a block key with nothing after it).
    let (key_line, key_text) = (span.line.saturating_sub(3).max(1)..=span.line)
        .rev()
        .map(|l| (l, file.line_text(l)))
        .find(|(_, t)| {
            let code = t.split(" #").next().unwrap_or(t).trim_end();
            code.ends_with(':') && !code.trim_start().starts_with('#')
        })?;
    let next = (key_line + 1..key_line + 4)
        .map(|l| (l, file.line_text(l)))
        .find(|(_, t)| !t.trim().is_empty() && !t.trim_start().starts_with('#'))?;
    if indent(next.1) > indent(key_text) || next.1.trim_start().starts_with('-') {
        return None;
    }
    let key = key_text
        .trim()
        .trim_end_matches(':')
        .trim_start_matches("- ");
    Some(
        Diagnostic::new(
            DiagnosticId::WrongType,
            Span::new(next.0, u32::try_from(indent(next.1) + 1).unwrap_or(1), 1),
            format!("`{key}:` is empty: the lines below it are not indented under it"),
            format!("indent this line more than `{key}:`"),
        )
        .help(format!(
            "indent the keys that belong to `{key}` by two more spaces than `{key}:` itself"
        )),
    )
}

const GENERIC_SYNTAX_HELP: &str = "check the indentation (spaces only), the colon after each key, and that every quote and bracket is closed";

/// The error inside the wrappers that only add a snippet or an alias location.
fn innermost(error: &Error) -> &Error {
    match error.without_snippet() {
        Error::AliasError { error, .. } => innermost(error),
        other => other,
    }
}

fn char_len(s: &str) -> u32 {
    u32::try_from(s.chars().count()).unwrap_or(u32::MAX).max(1)
}

/// The nearest line above `line` with an odd number of `"`: where a double-quoted value
/// that the parser ran past its line starts.
fn runaway_quote(file: &SourceFile, line: u32) -> Option<u32> {
    (line.saturating_sub(20).max(1)..line).rev().find(|&l| {
        let text = file.line_text(l);
        let code = text.split(" #").next().unwrap_or(text);
        !code.trim_start().starts_with('#')
            && (code.matches('"').count() - code.matches("\\\"").count()) % 2 == 1
    })
}

/// Whether the value at `span` starts with `{{` (an unquoted handlebars template).
fn starts_template(file: &SourceFile, span: Span) -> bool {
    file.line_text(span.line)
        .chars()
        .skip(span.column.saturating_sub(1) as usize)
        .take(2)
        .eq(['{', '{'])
}

fn is_blank(text: &str) -> bool {
    text.lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
}

fn syntax(span: Span, what: &str, help: &str) -> Diagnostic {
    Diagnostic::new(
        DiagnosticId::YamlSyntax,
        span,
        format!("invalid YAML: {what}"),
        "the YAML parser stopped here",
    )
    .help(help.to_owned())
}

fn wrong_type(span: Span, expected: &str, help: &str) -> Diagnostic {
    Diagnostic::new(
        DiagnosticId::WrongType,
        span,
        format!("wrong type: expected {expected}"),
        format!("expected {expected}"),
    )
    .help(help.to_owned())
}

/// The parser expected a structure (`sequence start`, `mapping start`, `string scalar`).
fn unexpected(span: Span, expected: &str) -> Diagnostic {
    match expected {
        e if e.contains("sequence") => wrong_type(
            Span { len: 1, ..span },
            "a list",
            "write a list, e.g. `[a, b]` or one `- item` per line",
        ),
        e if e.contains("mapping") => wrong_type(
            Span { len: 1, ..span },
            "a mapping of keys to values",
            "write `key: value` pairs indented under this key",
        ),
        _ => wrong_type(
            Span { len: 1, ..span },
            "a single value",
            "write one value here, not a list or a mapping",
        ),
    }
}

/// Rule: every key is one the schema knows at that place.
fn unknown_key(span: Span, key: &str, expected: &[&str]) -> Diagnostic {
    let d = Diagnostic::new(
        DiagnosticId::UnknownKey,
        Span {
            len: char_len(key),
            ..span
        },
        format!("unknown key `{key}`"),
        "not a key here",
    )
    .maybe_help(did_you_mean_help(key, expected.iter().copied()));
    if expected.is_empty() {
        d.note("this mapping takes no keys")
    } else {
        d.note(format!(
            "keys here are {}",
            list_words(expected.iter().copied())
        ))
    }
}

/// Rule: required keys are present. The parser reports the last position it read inside
/// the incomplete mapping; we point at the key that opens that mapping instead (or at the
/// first key of the file for top-level keys), since that is where the key must be added.
fn missing_key(span: Span, key: &str, file: &SourceFile) -> Diagnostic {
    let (parent, example) = match key {
        "name" => (None, "`name: acme-ops`"),
        "backend" => (None, "`backend: { kind: text }`"),
        "stackstorm" => (
            None,
            "`stackstorm:` with `url: https://st2.example.com` and `auth: { api_key: \"${ST2_API_KEY}\" }`",
        ),
        "kind" => (
            Some("backend"),
            "`kind: slack` (or text, xmpp, irc, matrix, mattermost, discord, rocketchat, msteams)",
        ),
        "auth" => (
            Some("stackstorm"),
            "`auth: { api_key: \"${ST2_API_KEY}\" }`",
        ),
        "public_url" => (
            Some("auth_page"),
            "`public_url: https://bot.example.com/login`",
        ),
        "encryption_key" => (Some("auth_page"), "`encryption_key: ${ST2BOT_SESSION_KEY}`"),
        "database_url" => (Some("ha"), "`database_url: ${ST2BOT_DATABASE_URL}`"),
        _ => (None, ""),
    };
    let (at, label, help) = match parent {
        None => (
            first_key(file).unwrap_or(span),
            format!("the definition has no `{key}`"),
            format!("add {example} at the top level"),
        ),
        Some(parent) => (
            parent_key(file, parent, span.line).unwrap_or(Span { len: 1, ..span }),
            format!("`{parent}` needs `{key}`"),
            format!("add {example} under `{parent}:`"),
        ),
    };
    let help = if example.is_empty() {
        format!("add `{key}:` (see bots/reference.yaml)")
    } else {
        help
    };
    Diagnostic::new(
        DiagnosticId::MissingKey,
        at,
        format!("missing required key `{key}`"),
        label,
    )
    .help(help)
}

/// The first top-level key of the file (skipping comments and blank lines).
fn first_key(file: &SourceFile) -> Option<Span> {
    file.text.lines().enumerate().find_map(|(i, line)| {
        let t = line.trim_start();
        (!t.is_empty() && !t.starts_with('#') && !t.starts_with("---")).then(|| {
            let key_len = t.split(':').next().unwrap_or(t).chars().count();
            Span::new(
                u32::try_from(i + 1).unwrap_or(u32::MAX),
                1 + u32::try_from(line.len() - t.len()).unwrap_or(0),
                u32::try_from(key_len).unwrap_or(1).max(1),
            )
        })
    })
}

/// The nearest `parent:` key written at or above line `from`.
fn parent_key(file: &SourceFile, parent: &str, from: u32) -> Option<Span> {
    let lines: Vec<&str> = file.text.lines().collect();
    let last = (from as usize).min(lines.len());
    (0..last).rev().find_map(|i| {
        let line = lines[i];
        let t = line.trim_start();
        let t = t.strip_prefix("- ").unwrap_or(t);
        t.strip_prefix(parent)
            .filter(|rest| rest.trim_start().starts_with(':'))
            .map(|_| {
                let column = line.len() - t.len() + 1;
                Span::new(
                    u32::try_from(i + 1).unwrap_or(u32::MAX),
                    u32::try_from(column).unwrap_or(1),
                    char_len(parent),
                )
            })
    })
}

/// Rule: a key appears once per mapping. Points at the second occurrence and says where
/// the first one is when it can be found (same indentation, above).
fn duplicate_key(span: Span, key: Option<&str>, file: &SourceFile) -> Diagnostic {
    let Some(key) = key else {
        return Diagnostic::new(
            DiagnosticId::DuplicateKey,
            span,
            "duplicate key in this mapping",
            "written a second time here",
        )
        .help("keep one of the two");
    };
    let first = (1..span.line).rev().find(|&l| {
        let line = file.line_text(l);
        let indent = line.len() - line.trim_start().len();
        indent + 1 == span.column as usize
            && line
                .trim_start()
                .strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with(':'))
    });
    let d = Diagnostic::new(
        DiagnosticId::DuplicateKey,
        Span {
            len: char_len(key),
            ..span
        },
        format!("duplicate key `{key}`"),
        "written a second time here",
    )
    .help("keep one of the two; YAML gives no way to say which should win");
    match first {
        Some(line) => d.note(format!("`{key}` is first written at line {line}")),
        None => d,
    }
}

/// The scanner's own errors (no variants): the message, plus a hint for the usual causes.
fn scanner(span: Span, message: &str, file: &SourceFile) -> Diagnostic {
    let line = file.line_text(span.line);
    let at = line
        .chars()
        .nth(span.column.saturating_sub(1) as usize)
        .unwrap_or(' ');
    let in_flow = line.contains(['{', '[']);
    let unquoted_reference = line.contains("${") && !line.contains("\"${") && !line.contains("'${");
    let help = if in_flow && unquoted_reference {
        "inside `{ … }` and `[ … ]` a `}` ends the collection: quote the reference, e.g. `{ api_key: \"${ST2_API_KEY}\" }`".to_owned()
    } else if message.contains("unexpected character") && at == '`' {
        "a value cannot start with a backtick unless it is quoted: put the whole value in double quotes".to_owned()
    } else if message.contains("unexpected character") && at == '@' {
        format!(
            "a value cannot start with `{at}` unless it is quoted: write `\"{}\"`",
            line.chars()
                .skip(span.column.saturating_sub(1) as usize)
                .take_while(|c| !matches!(c, ',' | ']' | '}' | ' ' | '#'))
                .collect::<String>()
        )
    } else if message.contains("unexpected character") && at == '%' {
        "`%` starts a YAML directive: quote the value".to_owned()
    } else if message.contains("tab") {
        "indent with spaces; YAML does not allow tabs for indentation".to_owned()
    } else if message.contains("mapping values are not allowed") {
        "this value contains `: `, which YAML reads as a new key: quote the whole value".to_owned()
    } else if message.contains("did not find expected key")
        || message.contains("did not find expected '-'")
    {
        "this line is indented differently from the keys around it: align it with its siblings"
            .to_owned()
    } else if message.contains("unclosed quote") {
        "add the closing quote at the end of the value".to_owned()
    } else if message.contains("unclosed") {
        "close the bracket at the end of the value, or quote the value if the bracket is meant literally"
            .to_owned()
    } else if message.contains("flow mapping") && !in_flow {
        "a `{` opened on a line above is never closed: add the `}` at the end of that value"
            .to_owned()
    } else if message.contains("flow sequence") && !in_flow {
        "a `[` opened on a line above is never closed: add the `]` at the end of that value"
            .to_owned()
    } else if message.contains("trailing content")
        && line
            .chars()
            .take(span.column.saturating_sub(1) as usize)
            .filter(|c| *c == '"')
            .count()
            % 2
            == 1
    {
        match runaway_quote(file, span.line) {
            Some(opened) => format!(
                "the quote opened on line {opened} is not closed there, so it runs on to this line: add the missing `\"` at the end of line {opened}"
            ),
            None => "quote the whole value, or remove what follows the closing quote".to_owned(),
        }
    } else if message.contains("trailing content") {
        "quote the whole value, or remove what follows the closing quote".to_owned()
    } else if in_flow {
        "separate items with `, ` and close every `{` and `[`".to_owned()
    } else {
        GENERIC_SYNTAX_HELP.to_owned()
    };
    Diagnostic::new(
        DiagnosticId::YamlSyntax,
        span,
        format!("invalid YAML: {message}"),
        "the YAML parser stopped here",
    )
    .help(help)
}
