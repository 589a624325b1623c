//! Diagnostics for bot definitions: one [`Diagnostic`] type, two renderings.
//!
//! The long form (rustc style, with the offending line and a caret) is what the `bot!` macro
//! puts in `compile_error!`; the short form (`file:line:col: error: … (help: …)`) is the one
//! line per problem that `build.rs` prints. Both come from the same values, so the words are
//! the same everywhere. [`Diagnostics`] is the accumulator every check pushes into.

use std::fmt::Write as _;

use crate::source::{SourceFile, Span};

/// One problem in a bot definition: where, what, and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Stable kebab-case id (`unknown-backend`), used for test names and the README's error
    /// reference.
    pub id: &'static str,
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
}

impl Diagnostic {
    /// A diagnostic with a message and a label; add help and notes with the builders.
    pub fn new(
        id: &'static str,
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
        }
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

    /// Adds a `note:` line.
    #[must_use]
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// The rustc-style multi-line rendering (without the leading `error: `, which rustc adds
    /// for `compile_error!`; [`Diagnostic::render_long`] adds it).
    pub fn render_body(&self, file: &SourceFile) -> String {
        let mut out = String::new();
        out.push_str(&self.message);
        out.push('\n');
        if self.span.line == 0 {
            let _ = writeln!(out, "  --> {}", file.display);
        } else {
            let line_no = self.span.line.to_string();
            let pad = " ".repeat(line_no.len());
            let text = file.line_text(self.span.line);
            let _ = writeln!(
                out,
                "{pad}--> {}:{}:{}",
                file.display, self.span.line, self.span.column
            );
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{line_no} | {}", text.trim_end());
            let before: String = text
                .chars()
                .take(self.span.column.saturating_sub(1) as usize)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let available = text
                .chars()
                .count()
                .saturating_sub(self.span.column.saturating_sub(1) as usize);
            let carets = (self.span.len as usize).clamp(1, available.max(1));
            let _ = writeln!(out, "{pad} | {before}{} {}", "^".repeat(carets), self.label);
            let _ = writeln!(out, "{pad} |");
        }
        let pad = if self.span.line == 0 {
            String::new()
        } else {
            " ".repeat(self.span.line.to_string().len())
        };
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

    /// The long form as a standalone text (`error: …` plus the body).
    pub fn render_long(&self, file: &SourceFile) -> String {
        format!("error: {}", self.render_body(file))
    }

    /// The one-line form: `` bots/acme.yaml:4:9: error: unknown backend `slak` (help: …) ``.
    pub fn render_short(&self, file: &SourceFile) -> String {
        let mut out = if self.span.line == 0 {
            format!("{}: error: {}", file.display, self.message)
        } else {
            format!(
                "{}:{}:{}: error: {}",
                file.display, self.span.line, self.span.column, self.message
            )
        };
        if let Some(help) = &self.help {
            let _ = write!(out, " (help: {help})");
        }
        out
    }
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

    /// Consumes the accumulator: the diagnostics sorted by position, or `Ok(())`.
    pub fn finish(mut self) -> Result<(), Vec<Diagnostic>> {
        self.consumed = true;
        let mut items = std::mem::take(&mut self.items);
        if items.is_empty() {
            return Ok(());
        }
        items.sort_by(|a, b| a.span.cmp(&b.span).then_with(|| a.id.cmp(b.id)));
        items.dedup();
        Err(items)
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
            "unknown-backend",
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
    #[should_panic(expected = "dropped without being reported")]
    fn unreported_diagnostics_panic() {
        let mut d = Diagnostics::new();
        d.push(Diagnostic::new("x", Span::FILE, "x", "x"));
    }
}
