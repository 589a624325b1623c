//! Positions inside a YAML string scalar: which line and column of the file each character
//! of the parsed value came from, so a problem found inside a value (a template error) is
//! reported where it is written, whatever the scalar style: plain, `'single'`, `"double"`
//! (with escapes), `|` literal or `>` folded, on one line or several.
//!
//! Read [`ScalarMap::new`] first. The map is only trusted when decoding the source again
//! gives exactly the parsed value; otherwise every position falls back to the scalar's start.

use crate::source::{SourceFile, Span};

/// A source character with its 1-based line and column.
#[derive(Clone, Copy, Debug)]
struct At {
    ch: char,
    line: u32,
    column: u32,
}

/// Where each character of a scalar's value is written in the file.
#[derive(Debug)]
pub(super) struct ScalarMap {
    /// The scalar's own span (the fallback position).
    start: Span,
    /// Source position of each value character, when the decoding was verified.
    positions: Option<Vec<(u32, u32)>>,
}

impl ScalarMap {
    /// Maps the scalar written at `span` whose parsed value is `value`.
    pub(super) fn new(file: &SourceFile, span: Span, value: &str) -> Self {
        let positions = source_chars(file, span).and_then(|src| {
            let decoded = match src.first().map(|a| a.ch) {
                Some('"') => flow(&src[1..src.len().saturating_sub(1).max(1)], Quote::Double),
                Some('\'') => flow(&src[1..src.len().saturating_sub(1).max(1)], Quote::Single),
                _ => match block_indicator(file, span) {
                    Some('|') => block(&src, span.column.saturating_sub(1), false),
                    Some(_) => block(&src, span.column.saturating_sub(1), true),
                    None => flow(&src, Quote::Plain),
                },
            };
            let text: String = decoded.iter().map(|a| a.ch).collect();
            (text.trim_end_matches('\n') == value.trim_end_matches('\n'))
                .then(|| decoded.iter().map(|a| (a.line, a.column)).collect())
        });
        Self {
            start: span,
            positions,
        }
    }

    /// The span of `len` value characters starting at character `index` of the value; the
    /// scalar's start when positions are unknown or the range crosses a line.
    pub(super) fn span(&self, index: usize, len: usize) -> Span {
        let Some(positions) = &self.positions else {
            return Span {
                len: 1,
                ..self.start
            };
        };
        let Some(&(line, column)) = positions.get(index).or(positions.last()) else {
            return Span {
                len: 1,
                ..self.start
            };
        };
        // Underline up to the last character on the same line.
        let end = positions
            .iter()
            .skip(index)
            .take(len.max(1))
            .take_while(|(l, _)| *l == line)
            .last()
            .map_or(column, |(_, c)| *c);
        Span::new(line, column, end + 1 - column)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Quote {
    Plain,
    Single,
    Double,
}

/// The characters of the file under `span`, with their positions.
fn source_chars(file: &SourceFile, span: Span) -> Option<Vec<At>> {
    if span.line == 0 {
        return None;
    }
    let mut out = Vec::new();
    let (mut line, mut column) = (1u32, 1u32);
    for ch in file.text.chars() {
        let started = (line, column) >= (span.line, span.column);
        if started {
            if out.len() >= span.len as usize {
                break;
            }
            out.push(At { ch, line, column });
        }
        if ch == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (!out.is_empty()).then_some(out)
}

/// `|` or `>` when the scalar at `span` is a block scalar (its indicator ends the nearest
/// non-empty line above, before any comment).
fn block_indicator(file: &SourceFile, span: Span) -> Option<char> {
    let before: String = file
        .line_text(span.line)
        .chars()
        .take(span.column.saturating_sub(1) as usize)
        .collect();
    if !before.trim().is_empty() {
        return None;
    }
    let above = (1..span.line)
        .rev()
        .map(|l| file.line_text(l))
        .find(|l| !l.trim().is_empty())?;
    let code = match above.find(" #") {
        Some(i) => &above[..i],
        None => above,
    };
    let last_word = code.trim_end().rsplit([' ', ':']).next()?;
    let indicator = last_word.chars().next()?;
    (matches!(indicator, '|' | '>')
        && last_word[1..]
            .chars()
            .all(|c| c.is_ascii_digit() || c == '-' || c == '+'))
    .then_some(indicator)
}

/// Decodes a plain or quoted (flow) scalar: escapes, `''`, and line folding (a line break
/// is a space, blank lines are line breaks, indentation and trailing spaces vanish).
fn flow(src: &[At], quote: Quote) -> Vec<At> {
    let mut out: Vec<At> = Vec::new();
    let mut trailing_spaces = 0;
    let mut i = 0;
    while i < src.len() {
        let a = src[i];
        match a.ch {
            '\n' => {
                out.truncate(out.len() - trailing_spaces);
                trailing_spaces = 0;
                let mut j = i + 1;
                let mut breaks = 0;
                loop {
                    while j < src.len() && matches!(src[j].ch, ' ' | '\t') {
                        j += 1;
                    }
                    if j < src.len() && src[j].ch == '\n' {
                        breaks += 1;
                        j += 1;
                    } else {
                        break;
                    }
                }
                if breaks == 0 {
                    out.push(At { ch: ' ', ..a });
                } else {
                    out.extend(std::iter::repeat_n(At { ch: '\n', ..a }, breaks));
                }
                i = j;
                continue;
            }
            '\\' if quote == Quote::Double => {
                let Some(next) = src.get(i + 1) else { break };
                trailing_spaces = 0;
                if next.ch == '\n' {
                    // Escaped line break: joins the lines with nothing in between.
                    let mut j = i + 2;
                    while j < src.len() && matches!(src[j].ch, ' ' | '\t') {
                        j += 1;
                    }
                    i = j;
                    continue;
                }
                let (ch, extra) = match next.ch {
                    'n' => ('\n', 0),
                    't' | '\t' => ('\t', 0),
                    'r' => ('\r', 0),
                    '0' => ('\0', 0),
                    'a' => ('\u{7}', 0),
                    'b' => ('\u{8}', 0),
                    'e' => ('\u{1b}', 0),
                    'f' => ('\u{c}', 0),
                    'v' => ('\u{b}', 0),
                    ' ' => (' ', 0),
                    'N' => ('\u{85}', 0),
                    '_' => ('\u{a0}', 0),
                    'L' => ('\u{2028}', 0),
                    'P' => ('\u{2029}', 0),
                    'x' | 'u' | 'U' => {
                        let digits = match next.ch {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let hex: String =
                            src.iter().skip(i + 2).take(digits).map(|a| a.ch).collect();
                        let ch = u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .unwrap_or('\u{fffd}');
                        (ch, digits)
                    }
                    other => (other, 0),
                };
                out.push(At { ch, ..a });
                i += 2 + extra;
                continue;
            }
            '\'' if quote == Quote::Single && src.get(i + 1).is_some_and(|n| n.ch == '\'') => {
                trailing_spaces = 0;
                out.push(a);
                i += 2;
                continue;
            }
            ' ' | '\t' => trailing_spaces += 1,
            _ => trailing_spaces = 0,
        }
        out.push(a);
        i += 1;
    }
    out
}

/// Decodes a block scalar whose content is indented by `indent` columns: `|` keeps line
/// breaks; `>` (`folded`) turns a break between two plain lines into a space.
fn block(src: &[At], indent: u32, folded: bool) -> Vec<At> {
    // Split into lines of content (indentation removed) with the break after each.
    let mut lines: Vec<(Vec<At>, Option<At>)> = vec![(Vec::new(), None)];
    for a in src {
        let (content, brk) = lines.last_mut().unwrap_or_else(|| unreachable!());
        if a.ch == '\n' {
            *brk = Some(*a);
            lines.push((Vec::new(), None));
        } else if !content.is_empty() || a.column > indent || a.ch != ' ' {
            content.push(*a);
        }
    }
    let mut out = Vec::new();
    let more_indented = |l: &[At]| l.first().is_some_and(|a| matches!(a.ch, ' ' | '\t'));
    let mut i = 0;
    while i < lines.len() {
        let (content, brk) = &lines[i];
        out.extend(content.iter().copied());
        let Some(brk) = brk else { break };
        if !folded || content.is_empty() {
            out.push(*brk);
            i += 1;
            continue;
        }
        // Folded: count the blank lines that follow.
        let mut j = i + 1;
        while j < lines.len() && lines[j].0.is_empty() && lines[j].1.is_some() {
            j += 1;
        }
        let blanks = j - i - 1;
        let next = lines.get(j).map(|l| l.0.as_slice()).unwrap_or(&[]);
        let keep = more_indented(content) || more_indented(next) || next.is_empty();
        let newlines = blanks + usize::from(keep);
        if newlines == 0 {
            out.push(At { ch: ' ', ..*brk });
        } else {
            out.extend(std::iter::repeat_n(At { ch: '\n', ..*brk }, newlines));
        }
        i = j;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The position of the first `{{` of `value` as parsed from `yaml` (a `t:` key).
    fn brace_position(yaml: &str) -> (u32, u32) {
        #[derive(serde::Deserialize)]
        struct Doc {
            t: crate::source::Spanned<String>,
        }
        let doc: Doc = serde_saphyr::from_str(yaml).expect("test YAML parses");
        let file = SourceFile::new("t.yaml", yaml);
        let map = ScalarMap::new(&file, Span::of(&doc.t), &doc.t.value);
        assert!(map.positions.is_some(), "decoding matched for {yaml:?}");
        let index = doc.t.value.find("{{").expect("has braces");
        let index = doc.t.value[..index].chars().count();
        let span = map.span(index, 2);
        (span.line, span.column)
    }

    #[test]
    fn every_scalar_style_maps_back_to_the_source() {
        assert_eq!(brace_position("t: ab {{x}}\n"), (1, 7));
        assert_eq!(brace_position("t: \"a\\tb {{x}}\"\n"), (1, 10));
        assert_eq!(brace_position("t: \"\\u00e9 {{x}}\"\n"), (1, 12));
        assert_eq!(brace_position("t: 'it''s {{x}}'\n"), (1, 11));
        assert_eq!(brace_position("t: one\n  two {{x}}\n"), (2, 7));
        assert_eq!(brace_position("t: \"one\n\n   two {{x}}\"\n"), (3, 8));
        assert_eq!(brace_position("t: |\n  one\n  two {{x}}\n"), (3, 7));
        assert_eq!(brace_position("t: |-\n    one\n\n    two {{x}}\n"), (4, 9));
        assert_eq!(brace_position("t: >\n  one\n  two {{x}}\n"), (3, 7));
        assert_eq!(
            brace_position("t: >  # folded\n  one\n\n    deep\n  two {{x}}\n"),
            (5, 7)
        );
    }
}
