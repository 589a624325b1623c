//! Turns a parsed Python pattern into `fancy-regex` syntax with the same matching behaviour.
//!
//! Nothing of the original text is passed through: every literal is written as a `\x{..}`
//! escape and every flag-dependent item is spelled out (case-insensitive letters become the
//! set of characters Python would accept, `\w`/`\s`/`\d`/`\b` use Python's definitions, `$`
//! and `.` follow the flags in force), so differences between the two syntaxes cannot leak
//! through. Capturing groups are emitted unnamed, in the same order, so group numbers agree.

use std::fmt::Write as _;

use super::parse::{At, Category, Flags, MAXREPEAT, Node, PatternError, RepeatKind, SetItem};
use crate::unicode;

/// What Python's `$` (without `MULTILINE`) becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DollarMode {
    /// The subject never ends with `\n` (StackStorm pads it with a space), so "end, or before
    /// a final newline" is just the end of the text.
    EndOfText,
    /// General case: end of text, or just before a final `\n`.
    BeforeFinalNewline,
    /// Like `BeforeFinalNewline`, except that a `$` that is the last top-level item may
    /// consume that newline. Only valid when the caller uses the groups, not the match end.
    ConsumeFinalNewlineAtEnd,
}

/// Translates `nodes` (parsed with global `flags`) into a pattern for `fancy-regex`.
///
/// `group_offset` is added to every group reference, for callers that put capturing groups
/// of their own in front of the pattern.
pub(crate) fn translate(
    nodes: &[Node],
    flags: Flags,
    dollar: DollarMode,
    group_offset: usize,
) -> Result<String, PatternError> {
    let ctx = Context {
        dollar,
        group_offset,
    };
    let mut out = String::new();
    let last = nodes.len().checked_sub(1);
    for (i, node) in nodes.iter().enumerate() {
        if dollar == DollarMode::ConsumeFinalNewlineAtEnd
            && Some(i) == last
            && matches!(node, Node::At(At::End))
            && !flags.contains(Flags::MULTILINE)
        {
            out.push_str(r"\n?\z");
        } else {
            emit(node, flags, ctx, &mut out)?;
        }
    }
    Ok(out)
}

/// Settings that hold for the whole translation.
#[derive(Clone, Copy)]
struct Context {
    dollar: DollarMode,
    group_offset: usize,
}

fn emit_sequence(
    nodes: &[Node],
    flags: Flags,
    ctx: Context,
    out: &mut String,
) -> Result<(), PatternError> {
    for node in nodes {
        emit(node, flags, ctx, out)?;
    }
    Ok(())
}

fn emit(node: &Node, flags: Flags, ctx: Context, out: &mut String) -> Result<(), PatternError> {
    match node {
        Node::Literal(c) => emit_literal(*c, false, flags, out),
        Node::NotLiteral(c) => emit_literal(*c, true, flags, out),
        Node::Any => {
            if flags.contains(Flags::DOTALL) {
                out.push_str(r"(?s:.)");
            } else {
                out.push_str(r"[^\n]");
            }
        }
        Node::In { negate, items } => emit_set(*negate, items, flags, out),
        Node::At(at) => emit_at(*at, flags, ctx.dollar, out),
        Node::Branch(items) => {
            out.push_str("(?:");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push('|');
                }
                emit_sequence(item, flags, ctx, out)?;
            }
            out.push(')');
        }
        Node::Group {
            index,
            add,
            del,
            body,
        } => {
            out.push_str(if index.is_some() { "(" } else { "(?:" });
            emit_sequence(body, flags.combine(*add, *del), ctx, out)?;
            out.push(')');
        }
        Node::Repeat {
            kind,
            min,
            max,
            body,
        } => {
            let mut inner = String::from("(?:");
            emit_sequence(body, flags, ctx, &mut inner)?;
            inner.push(')');
            if is_zero_width(body) {
                // `fancy-regex` refuses to repeat a look-around. Python stops repeating an
                // item that matched without advancing, so one attempt is all that counts:
                // required once when `min > 0`, else optional in the repeat's own order.
                match (*min, kind) {
                    (0, RepeatKind::Greedy) => write_all(out, &["(?:", &inner, "|)"]),
                    (0, RepeatKind::Lazy) => write_all(out, &["(?:|", &inner, ")"]),
                    (0, RepeatKind::Possessive) => write_all(out, &["(?>", &inner, "|)"]),
                    _ => out.push_str(&inner),
                }
                return Ok(());
            }
            let quantifier = match (*min, *max) {
                (0, 1) => "?".to_owned(),
                (0, MAXREPEAT) => "*".to_owned(),
                (1, MAXREPEAT) => "+".to_owned(),
                (n, MAXREPEAT) => format!("{{{n},}}"),
                (n, m) if n == m => format!("{{{n}}}"),
                (n, m) => format!("{{{n},{m}}}"),
            };
            match kind {
                RepeatKind::Greedy => {
                    out.push_str(&inner);
                    out.push_str(&quantifier);
                }
                RepeatKind::Lazy => {
                    out.push_str(&inner);
                    out.push_str(&quantifier);
                    out.push('?');
                }
                RepeatKind::Possessive => {
                    out.push_str("(?>");
                    out.push_str(&inner);
                    out.push_str(&quantifier);
                    out.push(')');
                }
            }
        }
        Node::Atomic(body) => {
            out.push_str("(?>");
            emit_sequence(body, flags, ctx, out)?;
            out.push(')');
        }
        Node::Assert {
            negate,
            behind,
            body,
        } => {
            out.push_str(match (behind, negate) {
                (false, false) => "(?=",
                (false, true) => "(?!",
                (true, false) => "(?<=",
                (true, true) => "(?<!",
            });
            emit_sequence(body, flags, ctx, out)?;
            out.push(')');
        }
        Node::GroupRef(group) => {
            // Case-insensitive back-references compare with `fancy-regex`'s simple case
            // folding; Python compares simple lowercases. They differ only for characters
            // like `ſ`/`s` or `ς`/`σ`, which fold together but lowercase apart.
            let case = if flags.contains(Flags::IGNORECASE) {
                "(?i:"
            } else {
                "(?:"
            };
            let _ = write!(out, r"{case}\{})", group + ctx.group_offset);
        }
        Node::GroupRefExists { group, yes, no } => {
            let _ = write!(out, "(?({})(?:", group + ctx.group_offset);
            emit_sequence(yes, flags, ctx, out)?;
            out.push_str(")|(?:");
            if let Some(no) = no {
                emit_sequence(no, flags, ctx, out)?;
            }
            out.push_str("))");
        }
    }
    Ok(())
}

fn write_all(out: &mut String, pieces: &[&str]) {
    for piece in pieces {
        out.push_str(piece);
    }
}

/// True when `nodes` can only match the empty string (assertions and anchors).
fn is_zero_width(nodes: &[Node]) -> bool {
    nodes.iter().all(|node| match node {
        Node::At(_) | Node::Assert { .. } => true,
        Node::Group { body, .. } | Node::Atomic(body) => is_zero_width(body),
        Node::Branch(items) => items.iter().all(|item| is_zero_width(item)),
        Node::Repeat { max, body, .. } => *max == 0 || is_zero_width(body),
        Node::GroupRefExists { yes, no, .. } => {
            is_zero_width(yes) && no.as_ref().is_none_or(|no| is_zero_width(no))
        }
        Node::Literal(_)
        | Node::NotLiteral(_)
        | Node::Any
        | Node::In { .. }
        | Node::GroupRef(_) => false,
    })
}

fn push_char(c: u32, out: &mut String) {
    let _ = write!(out, r"\x{{{c:x}}}");
}

/// True for code points that can appear in a Rust string.
fn is_scalar(c: u32) -> bool {
    char::from_u32(c).is_some()
}

/// A literal, or (`negate`) anything but it, honouring `IGNORECASE`.
fn emit_literal(c: u32, negate: bool, flags: Flags, out: &mut String) {
    let chars: Vec<u32> = if !flags.contains(Flags::IGNORECASE) {
        vec![c]
    } else if flags.contains(Flags::UNICODE) {
        if unicode::is_cased(c) {
            unicode::case_insensitive_closure([unicode::lower(c)])
        } else {
            vec![c]
        }
    } else if unicode::ascii_is_cased(c) {
        let lowered = unicode::ascii_lower(c);
        vec![lowered, lowered - 32]
    } else {
        vec![c]
    };
    let chars: Vec<u32> = chars.into_iter().filter(|c| is_scalar(*c)).collect();
    match (chars.as_slice(), negate) {
        ([], false) => out.push_str(r"[^\x{0}-\x{10ffff}]"),
        ([], true) => out.push_str("(?s:.)"),
        ([single], false) => push_char(*single, out),
        (many, negate) => {
            out.push('[');
            if negate {
                out.push('^');
            }
            for c in many {
                push_char(*c, out);
            }
            out.push(']');
        }
    }
}

/// The class text for a category under the given flags, as a bracketed class.
fn category_class(category: Category, flags: Flags) -> String {
    let ascii = !flags.contains(Flags::UNICODE);
    let (body, negated) = match category {
        Category::Digit => (
            if ascii {
                unicode::ASCII_DIGIT_CLASS
            } else {
                unicode::DIGIT_CLASS
            },
            false,
        ),
        Category::NotDigit => (
            if ascii {
                unicode::ASCII_DIGIT_CLASS
            } else {
                unicode::DIGIT_CLASS
            },
            true,
        ),
        Category::Space => (
            if ascii {
                unicode::ASCII_SPACE_CLASS
            } else {
                unicode::SPACE_CLASS
            },
            false,
        ),
        Category::NotSpace => (
            if ascii {
                unicode::ASCII_SPACE_CLASS
            } else {
                unicode::SPACE_CLASS
            },
            true,
        ),
        Category::Word => (
            if ascii {
                unicode::ASCII_WORD_CLASS
            } else {
                unicode::WORD_CLASS
            },
            false,
        ),
        Category::NotWord => (
            if ascii {
                unicode::ASCII_WORD_CLASS
            } else {
                unicode::WORD_CLASS
            },
            true,
        ),
    };
    format!("[{}{body}]", if negated { "^" } else { "" })
}

/// Adds the scalar values of `lo..=hi` (skipping surrogates) to a class body.
fn push_range(lo: u32, hi: u32, out: &mut String) {
    let mut ranges = Vec::new();
    if lo < 0xD800 {
        ranges.push((lo, hi.min(0xD7FF)));
    }
    if hi > 0xDFFF {
        ranges.push((lo.max(0xE000), hi));
    }
    for (lo, hi) in ranges {
        if lo > hi {
            continue;
        }
        push_char(lo, out);
        if hi > lo {
            out.push('-');
            push_char(hi, out);
        }
    }
}

/// A `[...]` set, honouring `IGNORECASE` as Python's `IN_UNI_IGNORE`/`IN_IGNORE` do: the
/// input character is lowercased and looked up among the lowercased members.
fn emit_set(negate: bool, items: &[SetItem], flags: Flags, out: &mut String) {
    let mut body = String::new();
    let ignore_case = flags.contains(Flags::IGNORECASE);
    let unicode_mode = flags.contains(Flags::UNICODE);
    let has_cased = ignore_case
        && items.iter().any(|item| match item {
            SetItem::Literal(c) => {
                if unicode_mode {
                    unicode::is_cased(*c)
                } else {
                    unicode::ascii_is_cased(*c)
                }
            }
            SetItem::Range(lo, hi) => {
                if unicode_mode {
                    (*lo..=*hi).any(unicode::is_cased)
                } else {
                    (*lo..=*hi).any(unicode::ascii_is_cased)
                }
            }
            SetItem::Category(_) => false,
        });
    if has_cased {
        let mut members: Vec<u32> = Vec::new();
        for item in items {
            match item {
                SetItem::Literal(c) => members.push(*c),
                SetItem::Range(lo, hi) => members.extend(*lo..=*hi),
                SetItem::Category(category) => body.push_str(&category_class(*category, flags)),
            }
        }
        let accepted: Vec<u32> = if unicode_mode {
            unicode::case_insensitive_closure(members.into_iter().map(unicode::lower))
        } else {
            let mut accepted: Vec<u32> = members
                .into_iter()
                .map(unicode::ascii_lower)
                .flat_map(|c| {
                    if unicode::ascii_is_cased(c) {
                        vec![c, c - 32]
                    } else {
                        vec![c]
                    }
                })
                .collect();
            accepted.sort_unstable();
            accepted.dedup();
            accepted
        };
        push_sorted_chars(&accepted, &mut body);
    } else {
        for item in items {
            match item {
                SetItem::Literal(c) => {
                    if is_scalar(*c) {
                        push_char(*c, &mut body);
                    }
                }
                SetItem::Range(lo, hi) => push_range(*lo, *hi, &mut body),
                SetItem::Category(category) => body.push_str(&category_class(*category, flags)),
            }
        }
    }
    if body.is_empty() {
        // Only surrogates: Python's set can never match a Rust string.
        out.push_str(if negate {
            "(?s:.)"
        } else {
            r"[^\x{0}-\x{10ffff}]"
        });
        return;
    }
    out.push('[');
    if negate {
        out.push('^');
    }
    out.push_str(&body);
    out.push(']');
}

/// Writes sorted code points as compact ranges.
fn push_sorted_chars(chars: &[u32], out: &mut String) {
    let mut i = 0;
    while i < chars.len() {
        let start = chars[i];
        let mut end = start;
        while i + 1 < chars.len() && chars[i + 1] == end + 1 {
            i += 1;
            end = chars[i];
        }
        push_range(start, end, out);
        i += 1;
    }
}

fn emit_at(at: At, flags: Flags, dollar: DollarMode, out: &mut String) {
    let multiline = flags.contains(Flags::MULTILINE);
    match at {
        At::Beginning if multiline => out.push_str("(?m:^)"),
        At::Beginning | At::BeginningString => out.push_str(r"\A"),
        At::End if multiline => out.push_str("(?m:$)"),
        At::End => match dollar {
            DollarMode::EndOfText => out.push_str(r"\z"),
            DollarMode::BeforeFinalNewline | DollarMode::ConsumeFinalNewlineAtEnd => {
                out.push_str(r"(?=\n?\z)");
            }
        },
        At::EndString => out.push_str(r"\z"),
        At::Boundary | At::NonBoundary => {
            let word = if flags.contains(Flags::UNICODE) {
                unicode::WORD_CLASS
            } else {
                unicode::ASCII_WORD_CLASS
            };
            if at == At::Boundary {
                let _ = write!(
                    out,
                    r"(?:(?<=[{word}])(?![{word}])|(?<![{word}])(?=[{word}]))"
                );
            } else {
                // Python 3.11's `\B` never matches in an empty string.
                let _ = write!(
                    out,
                    r"(?:(?<=[{word}])(?=[{word}])|(?<![{word}])(?![{word}])(?:(?<=(?s:.))|(?=(?s:.))))"
                );
            }
        }
    }
}
