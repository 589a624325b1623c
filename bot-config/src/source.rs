//! Source files and positions: where a bot definition came from and where in it a value sits.
//!
//! Read [`Span`] first: every diagnostic carries one. Positions are 1-based, columns count
//! characters (not bytes), and `len` is the number of characters to underline.

use serde_saphyr::Location;

/// A YAML value together with the place it was written (re-exported so the rest of the
/// crate, and nobody else, depends on the YAML crate's type).
pub type Spanned<T> = serde_saphyr::Spanned<T>;

/// A bot definition file as read: the path to show in diagnostics and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// Relative path shown to users (`bots/acme.yaml`); never an absolute path.
    pub display: String,
    /// The whole YAML text.
    pub text: String,
}

impl SourceFile {
    /// A source file from its display path and text.
    pub fn new(display: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            display: display.into(),
            text: text.into(),
        }
    }

    /// The text of 1-based line `line`, without its line break (empty past the end).
    pub fn line_text(&self, line: u32) -> &str {
        self.text
            .lines()
            .nth(line.saturating_sub(1) as usize)
            .unwrap_or("")
    }
}

/// A position in a bot definition: 1-based line and column (in characters) and the number
/// of characters the problem covers (at least 1 when rendered).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    /// 1-based line; 0 means "the file as a whole".
    pub line: u32,
    /// 1-based column in characters.
    pub column: u32,
    /// Characters to underline.
    pub len: u32,
}

impl Span {
    /// The whole file (used when the YAML library cannot say where).
    pub const FILE: Span = Span {
        line: 0,
        column: 0,
        len: 0,
    };

    /// A span at `line:column` covering `len` characters.
    pub const fn new(line: u32, column: u32, len: u32) -> Self {
        Self { line, column, len }
    }

    /// The span of a YAML library location.
    pub fn from_location(location: &Location) -> Self {
        let len = location.span().len();
        Self {
            line: u32::try_from(location.line()).unwrap_or(u32::MAX),
            column: u32::try_from(location.column()).unwrap_or(u32::MAX),
            len: u32::try_from(len).unwrap_or(1).max(1),
        }
    }

    /// Where a spanned YAML value was written (its use site, for aliases).
    pub fn of<T>(value: &Spanned<T>) -> Self {
        Self::from_location(&value.referenced)
    }

    /// The span of a mapping or sequence: its first character only, since a caret under a
    /// whole block would run over several lines.
    pub fn start_of<T>(value: &Spanned<T>) -> Self {
        Self {
            len: 1,
            ..Self::of(value)
        }
    }

    /// A span `offset` characters into this one, `len` long (for positions inside a scalar,
    /// such as a template error). Only meaningful on one-line scalars.
    pub fn shifted(self, line_delta: u32, column: u32, len: u32) -> Self {
        if line_delta == 0 {
            Self {
                line: self.line,
                column: self.column + column,
                len,
            }
        } else {
            Self {
                line: self.line + line_delta,
                column: column + 1,
                len,
            }
        }
    }
}
