//! Diagnostics for bot definitions: one [`Diagnostic`] type, two renderings.
//!
//! The long form (rustc style, with the offending line and a caret) is what the `bot!` macro
//! puts in `compile_error!`; the short form (`file:line:col: error: … (help: …)`) is the one
//! line per problem that `build.rs` prints. Both come from the same values, so the words are
//! the same everywhere. [`Diagnostics`] is the accumulator every check pushes into.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::source::{SourceFile, Span};

mod id;

pub use id::DiagnosticId;

/// How bad a problem is: an error stops the build, a warning is reported and the bot builds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The definition cannot be built.
    #[default]
    Error,
    /// The definition builds, but something in it is probably not what its author meant.
    Warning,
}

impl Severity {
    /// `error` or `warning`, as rendered.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One problem in a bot definition: where, what, and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Stable id (`unknown-backend`), used for test names and the error reference.
    pub id: DiagnosticId,
    /// Where the problem is.
    pub span: Span,
    /// What is wrong, lowercase, no trailing period.
    pub message: String,
    /// A few words printed next to the caret.
    pub label: String,
    /// How to fix it, when a fix exists.
    pub help: Option<String>,
    /// Extra context (the valid set, the rule that is violated).
    pub note: Option<String>,
    /// The text under `span` is a secret: the snippet shows `***` in its place.
    pub redact: bool,
    /// Error or warning.
    pub severity: Severity,
    /// The file the span points into when it is not the bot definition itself (an alias
    /// file of the StackStorm catalogue).
    pub origin: Option<Arc<SourceFile>>,
}

impl Diagnostic {
    /// A diagnostic with a message and a label; add help and notes with the builders.
    pub fn new(
        id: DiagnosticId,
        span: Span,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> Self {
        Self {
            id,
            span,
            message: message.into(),
            label: label.into(),
            help: None,
            note: None,
            redact: false,
            severity: Severity::Error,
            origin: None,
        }
    }

    /// Makes this a warning: reported, but the bot still builds.
    #[must_use]
    pub fn warning(mut self) -> Self {
        self.severity = Severity::Warning;
        self
    }

    /// Points the span into `file` instead of the bot definition.
    #[must_use]
    pub fn in_file(mut self, file: Arc<SourceFile>) -> Self {
        self.origin = Some(file);
        self
    }

    /// Whether this is a warning rather than an error.
    pub fn is_warning(&self) -> bool {
        self.severity == Severity::Warning
    }

    /// The file the span points into: the origin if any, else `definition`.
    pub fn file<'a>(&'a self, definition: &'a SourceFile) -> &'a SourceFile {
        self.origin.as_deref().unwrap_or(definition)
    }

    /// Marks the spanned text as a secret, so no rendering repeats it.
    #[must_use]
    pub fn redacted(mut self) -> Self {
        self.redact = true;
        self
    }

    /// Adds a `help:` line.
    #[must_use]
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds a `help:` line when there is one.
    #[must_use]
    pub fn maybe_help(mut self, help: Option<String>) -> Self {
        if help.is_some() {
            self.help = help;
        }
        self
    }

    /// Adds a `note:` line when there is one.
    #[must_use]
    pub fn maybe_note(mut self, note: Option<String>) -> Self {
        if note.is_some() {
            self.note = note;
        }
        self
    }

    /// Adds a `note:` line.
    #[must_use]
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// The rustc-style multi-line rendering (without the leading `error: `, which rustc adds
    /// for `compile_error!`; [`Diagnostic::render_long`] adds it).
    ///
    /// The snippet line never shows a secret: the value of a secret key (`password`,
    /// `token`, …) written in clear, and the spanned text of a [`Diagnostic::redacted`]
    /// diagnostic, are shown as `***`.
    pub fn render_body(&self, file: &SourceFile) -> String {
        let file = self.file(file);
        let mut out = String::new();
        out.push_str(&self.message);
        out.push('\n');
        let pad = if self.span.line == 0 {
            " ".to_owned()
        } else {
            " ".repeat(self.span.line.to_string().len())
        };
        if self.span.line == 0 {
            let _ = writeln!(out, "{pad}--> {}", file.display);
        } else {
            let line_no = self.span.line.to_string();
            let (text, column, len) = redact_line(
                file.line_text(self.span.line).trim_end(),
                self.span.column.max(1),
                self.span.len.max(1),
                self.redact,
            );
            let _ = writeln!(
                out,
                "{pad}--> {}:{}:{}",
                file.display, self.span.line, self.span.column
            );
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{line_no} | {text}");
            let before: String = text
                .chars()
                .take(column.saturating_sub(1) as usize)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let available = text
                .chars()
                .count()
                .saturating_sub(column.saturating_sub(1) as usize);
            let carets = (len as usize).clamp(1, available.max(1));
            let label = if self.label.is_empty() {
                String::new()
            } else {
                format!(" {}", self.label)
            };
            let _ = writeln!(out, "{pad} | {before}{}{label}", "^".repeat(carets));
            let _ = writeln!(out, "{pad} |");
        }
        if let Some(help) = &self.help {
            let _ = writeln!(out, "{pad} = help: {help}");
        }
        if let Some(note) = &self.note {
            let _ = writeln!(out, "{pad} = note: {note}");
        }
        while out.ends_with('\n') {
            out.pop();
        }
        out
    }

    /// The long form as a standalone text (`error: …` or `warning: …` plus the body).
    pub fn render_long(&self, file: &SourceFile) -> String {
        format!("{}: {}", self.severity.as_str(), self.render_body(file))
    }

    /// The one-line form: `` bots/acme.yaml:4:9: error: unknown backend `slak` (help: …) ``.
    pub fn render_short(&self, file: &SourceFile) -> String {
        let file = self.file(file);
        let severity = self.severity.as_str();
        let mut out = if self.span.line == 0 {
            format!("{}: {severity}: {}", file.display, self.message)
        } else {
            format!(
                "{}:{}:{}: {severity}: {}",
                file.display, self.span.line, self.span.column, self.message
            )
        };
        if let Some(help) = &self.help {
            let _ = write!(out, " (help: {help})");
        }
        if let Some(note) = &self.note {
            let _ = write!(out, " (note: {note})");
        }
        out
    }
}

/// Keys whose values are secrets: shown as `***` in snippets unless they are references.
pub const SECRET_KEYS: &[&str] = &[
    "password",
    "token",
    "api_key",
    "app_token",
    "bot_token",
    "encryption_key",
];

/// Whether a secret key's value is a reference (`${NAME}`, `file:…`) rather than a secret.
fn is_reference(value: &str) -> bool {
    let v = value.trim().trim_matches(['"', '\'']);
    v.is_empty() || v.starts_with("${") || v.starts_with("file:")
}

/// A snippet line with every clear-text secret replaced by `***`, and the caret
/// `column`/`len` moved to match. With `span_is_secret`, the spanned text is masked too.
fn redact_line(line: &str, column: u32, len: u32, span_is_secret: bool) -> (String, u32, u32) {
    let chars: Vec<char> = line.chars().collect();
    // Character ranges [start, end) to mask.
    let mut masks: Vec<(usize, usize)> = Vec::new();
    if span_is_secret {
        let start = (column as usize).saturating_sub(1).min(chars.len());
        let end = (start + len as usize).min(chars.len());
        if end > start {
            masks.push((start, end));
        }
    }
    let mut i = 0;
    while i < chars.len() {
        let boundary = i == 0 || matches!(chars[i - 1], ' ' | '{' | ',' | '-' | '\t');
        let key = boundary
            .then(|| {
                SECRET_KEYS.iter().find(|k| {
                    let k: Vec<char> = k.chars().collect();
                    chars[i..].starts_with(&k) && chars.get(i + k.len()) == Some(&':')
                })
            })
            .flatten();
        let Some(key) = key else {
            i += 1;
            continue;
        };
        let mut start = i + key.len() + 1;
        while chars.get(start).is_some_and(|c| *c == ' ') {
            start += 1;
        }
        let end = match chars.get(start) {
            Some(q @ ('"' | '\'')) => chars[start + 1..]
                .iter()
                .position(|c| c == q)
                .map(|p| start + p + 2)
                .unwrap_or(chars.len()),
            _ => {
                let mut end = start;
                while end < chars.len()
                    && !matches!(chars[end], ',' | '}' | ']')
                    && !(chars[end] == '#' && chars.get(end.wrapping_sub(1)) == Some(&' '))
                {
                    end += 1;
                }
                while end > start && chars[end - 1] == ' ' {
                    end -= 1;
                }
                end
            }
        };
        let value: String = chars[start..end].iter().collect();
        if !is_reference(&value) && !value.starts_with(['|', '>']) {
            masks.push((start, end));
        }
        i = end.max(i + 1);
    }
    if masks.is_empty() {
        return (line.to_owned(), column, len);
    }
    masks.sort_unstable();
    let (mut out, mut col, mut caret_len) = (String::new(), column, len);
    let caret_start = column.saturating_sub(1) as usize;
    let mut shift: i64 = 0;
    let mut pos = 0;
    for (start, end) in masks {
        if start < pos {
            continue;
        }
        out.extend(&chars[pos..start]);
        out.push_str("***");
        if caret_start >= start && caret_start < end {
            col = u32::try_from(start as i64 + shift + 1).unwrap_or(column);
            caret_len = 3;
        } else if caret_start >= end {
            col = u32::try_from(i64::from(column) + shift + 3 - (end - start) as i64)
                .unwrap_or(column);
        }
        shift += 3 - (end - start) as i64;
        pos = end;
    }
    out.extend(&chars[pos..]);
    (out, col, caret_len)
}

/// The accumulator every check pushes into (serde's `Ctxt`): it panics when dropped without
/// being turned into a result, so a check cannot forget to report.
#[derive(Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
    consumed: bool,
}

impl Diagnostics {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a problem.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.items.push(diagnostic);
    }

    /// Whether any problem was recorded so far.
    pub fn has_errors(&self) -> bool {
        !self.items.is_empty()
    }

    /// Whether any error (not a warning) was recorded so far.
    pub fn has_hard_errors(&self) -> bool {
        self.items.iter().any(|d| !d.is_warning())
    }

    /// Consumes the accumulator: `Err` with the errors sorted by position when there is
    /// any, else `Ok` with the warnings (possibly none), sorted the same way. Diagnostics
    /// in the definition come first, then those in other files by file name.
    pub fn finish(mut self) -> Result<Vec<Diagnostic>, Vec<Diagnostic>> {
        self.consumed = true;
        let mut items = std::mem::take(&mut self.items);
        items.sort_by(|a, b| {
            let file = |d: &Diagnostic| d.origin.as_ref().map(|f| f.display.clone());
            file(a)
                .cmp(&file(b))
                .then_with(|| a.span.cmp(&b.span))
                .then_with(|| a.id.cmp(&b.id))
        });
        items.dedup();
        let (warnings, errors): (Vec<_>, Vec<_>) = items.into_iter().partition(|d| d.is_warning());
        if errors.is_empty() {
            Ok(warnings)
        } else {
            Err(errors)
        }
    }
}

impl Drop for Diagnostics {
    fn drop(&mut self) {
        if !self.consumed && !self.items.is_empty() && !std::thread::panicking() {
            panic!("bot-config: diagnostics dropped without being reported");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_and_short_forms() {
        let file = SourceFile::new("bots/acme.yaml", "name: acme\nbackend:\n  kind: slak\n");
        let d = Diagnostic::new(
            DiagnosticId::UnknownBackend,
            Span::new(3, 9, 4),
            "unknown backend `slak`",
            "not a backend",
        )
        .help("did you mean `slack`?");
        assert_eq!(
            d.render_long(&file),
            "error: unknown backend `slak`\n --> bots/acme.yaml:3:9\n  |\n3 |   kind: slak\n  |         ^^^^ not a backend\n  |\n  = help: did you mean `slack`?"
        );
        assert_eq!(
            d.render_short(&file),
            "bots/acme.yaml:3:9: error: unknown backend `slak` (help: did you mean `slack`?)"
        );
    }

    #[test]
    fn the_short_form_carries_the_note_and_warnings_say_so() {
        let file = SourceFile::new("bots/acme.yaml", "chat:\n  prefx: x\n");
        let d = Diagnostic::new(
            DiagnosticId::UnknownKey,
            Span::new(2, 3, 5),
            "unknown key `prefx`",
            "",
        )
        .help("did you mean `prefix`?")
        .note("keys here are `prefix` and `mention`");
        assert_eq!(
            d.render_short(&file),
            "bots/acme.yaml:2:3: error: unknown key `prefx` (help: did you mean `prefix`?) (note: keys here are `prefix` and `mention`)"
        );
        let w = Diagnostic::new(
            DiagnosticId::AliasNotRunnable,
            Span::new(2, 3, 5),
            "nobody may run it",
            "",
        )
        .warning();
        assert!(
            w.render_short(&file)
                .starts_with("bots/acme.yaml:2:3: warning: ")
        );
        assert!(w.render_long(&file).starts_with("warning: "));
    }

    #[test]
    fn snippets_never_show_a_clear_text_secret() {
        assert_eq!(
            redact_line("  password: hunter2", 3, 8, false),
            ("  password: ***".to_owned(), 3, 8)
        );
        assert_eq!(
            redact_line("  password: \"${PASS}\"", 3, 8, false).0,
            "  password: \"${PASS}\""
        );
        // A caret after a masked value moves left with the text.
        assert_eq!(
            redact_line("  auth: { api_key: 'hunter22', tls: maybe }", 37, 5, false),
            ("  auth: { api_key: ***, tls: maybe }".to_owned(), 30, 5)
        );
        // A caret on the secret itself underlines the mask.
        assert_eq!(
            redact_line("  url: https://u:p@host", 8, 16, true),
            ("  url: ***".to_owned(), 8, 3)
        );
        let file = SourceFile::new("b.yaml", "backend:\n  token: xoxb-123\n");
        let d = Diagnostic::new(DiagnosticId::ClearTextSecret, Span::new(2, 10, 8), "m", "l")
            .redacted();
        assert!(!d.render_long(&file).contains("xoxb"));
    }

    #[test]
    #[should_panic(expected = "dropped without being reported")]
    fn unreported_diagnostics_panic() {
        let mut d = Diagnostics::new();
        d.push(Diagnostic::new(
            DiagnosticId::YamlSyntax,
            Span::FILE,
            "x",
            "x",
        ));
    }
}
