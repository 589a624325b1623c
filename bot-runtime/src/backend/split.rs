//! Splitting long output into chat-sized pieces: the one function every backend calls
//! ([`split_message`]), with the length unit of its service ([`char_len`] or [`byte_len`]).
//!
//! Contract (checked by the property test below and the `split_message` fuzz target):
//! - it returns, in time linear in the text, for any text and limit;
//! - every piece is at most `limit` units long (limits below [`MIN_LIMIT`] count as it);
//! - every piece has an even number of Markdown code-fence lines: a piece that ends inside a
//!   fence gets a closing [`CLOSE_FENCE`], and the next one reopens it with [`OPEN_FENCE`];
//! - the pieces without those added fence lines, joined with `\n` where a cut fell between
//!   two lines and with nothing where a line longer than the limit was cut (on a character
//!   boundary), give back the text; a piece that would hold only whitespace is left out.

/// Opening fence added at the start of a piece that continues a fenced block.
pub const OPEN_FENCE: &str = "```\n";
/// Closing fence added at the end of a piece that stops inside a fenced block.
pub const CLOSE_FENCE: &str = "\n```";
/// The smallest limit honoured: room for both added fences and a four-byte character.
pub const MIN_LIMIT: usize = 16;

/// Whether `line` (without its `\n`) opens or closes a Markdown code fence.
pub fn is_fence_line(line: &str) -> bool {
    line.trim_start().starts_with("```")
}

/// Length in characters (most services count characters).
pub fn char_len(s: &str) -> usize {
    s.chars().count()
}

/// Length in bytes (IRC counts bytes).
pub fn byte_len(s: &str) -> usize {
    s.len()
}

/// One piece of a split, as positions in the text: what [`split_message`] renders, and what
/// the property test and the fuzz target check the contract against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// Byte range of the text this piece carries.
    pub range: std::ops::Range<usize>,
    /// Whether the piece starts with [`OPEN_FENCE`] (the cut before it fell inside a fence).
    pub reopened: bool,
    /// Whether the piece ends with [`CLOSE_FENCE`] (the cut after it falls inside a fence).
    pub closed: bool,
}

impl Part {
    /// The piece as posted.
    pub fn render(&self, text: &str) -> String {
        let body = &text[self.range.clone()];
        let mut piece = String::with_capacity(body.len() + 8);
        if self.reopened {
            piece.push_str(OPEN_FENCE);
        }
        piece.push_str(body);
        if self.closed {
            piece.push_str(CLOSE_FENCE);
        }
        piece
    }
}

/// Splits `text` into pieces of at most `limit` units as measured by `len` (which must be
/// additive, as [`char_len`] and [`byte_len`] are), on line boundaries where possible,
/// keeping Markdown code fences balanced in every piece. See the module documentation for
/// the exact contract.
pub fn split_message(text: &str, limit: usize, len: fn(&str) -> usize) -> Vec<String> {
    if len(text) <= limit.max(MIN_LIMIT) {
        return vec![text.to_owned()];
    }
    split_parts(text, limit, len)
        .iter()
        .map(|p| p.render(text))
        .collect()
}

/// The pieces [`split_message`] makes of a text longer than `limit`, as [`Part`]s.
pub fn split_parts(text: &str, limit: usize, len: fn(&str) -> usize) -> Vec<Part> {
    let mut splitter = Splitter {
        text,
        limit: limit.max(MIN_LIMIT),
        len,
        open_cost: len(OPEN_FENCE),
        close_cost: len(CLOSE_FENCE),
        parts: Vec::new(),
        current: Current::default(),
        in_fence: false,
    };
    let mut at = 0;
    for line in text.split('\n') {
        splitter.push_line(at, line);
        at += line.len() + 1;
    }
    splitter.flush();
    splitter.parts
}

/// The piece being built.
#[derive(Default)]
struct Current {
    /// Byte range taken so far (`None` before anything is taken).
    range: Option<std::ops::Range<usize>>,
    /// Its length in units, counting the reopening fence.
    len: usize,
    /// Whether it reopens a fence.
    reopened: bool,
    /// Whether it holds more than whitespace.
    non_blank: bool,
    /// Whether the next line joins it after a `\n` (it holds at least one line).
    has_lines: bool,
}

/// The state of one split.
struct Splitter<'t> {
    text: &'t str,
    limit: usize,
    len: fn(&str) -> usize,
    open_cost: usize,
    close_cost: usize,
    parts: Vec<Part>,
    current: Current,
    /// Whether the text is inside a fence after what was taken so far.
    in_fence: bool,
}

impl Splitter<'_> {
    /// Takes the line starting at byte `start` (without its `\n`), cutting pieces as needed.
    /// Each pass of the loop takes the rest of the line, or ends a piece that holds more
    /// than whitespace, or takes at least one character of an over-long line: it ends.
    fn push_line(&mut self, start: usize, line: &str) {
        let fence_after = self.in_fence ^ is_fence_line(line);
        let reserve = if fence_after { self.close_cost } else { 0 };
        let end = start + line.len();
        let mut rest = start;
        let mut rest_len = (self.len)(line);
        loop {
            let separator = usize::from(self.current.has_lines);
            if self.current.len + separator + rest_len + reserve <= self.limit {
                self.take(rest, end, separator + rest_len, fence_after);
                self.current.has_lines = true;
                return;
            }
            if self.current.non_blank {
                self.flush();
                continue;
            }
            // Even a fresh piece cannot hold the rest of this line: cut it.
            let budget = self
                .limit
                .saturating_sub(self.current.len + separator + reserve);
            let (head, head_len) = self.longest_prefix(&self.text[rest..end], budget);
            if head == 0 {
                // Only whitespace taken and no room left: drop that and start afresh.
                self.flush();
                continue;
            }
            self.take(rest, rest + head, separator + head_len, fence_after);
            self.flush();
            rest += head;
            rest_len -= head_len;
        }
    }

    /// Byte length and units of the longest prefix of `s` (on a character boundary) at
    /// most `budget` units long.
    fn longest_prefix(&self, s: &str, budget: usize) -> (usize, usize) {
        let mut taken = 0;
        let mut end = 0;
        let mut buf = [0u8; 4];
        for (i, c) in s.char_indices() {
            let n = (self.len)(c.encode_utf8(&mut buf));
            if taken + n > budget {
                break;
            }
            taken += n;
            end = i + c.len_utf8();
        }
        (end, taken)
    }

    /// Extends the current piece to `end` (from `start` when it is empty).
    fn take(&mut self, start: usize, end: usize, units: usize, fence_after: bool) {
        let range = self.current.range.get_or_insert(start..start);
        let from = range.end.max(start);
        range.end = end;
        self.current.len += units;
        self.current.non_blank |= !self.text[from..end].trim().is_empty();
        self.in_fence = fence_after;
    }

    /// Ends the current piece (dropped when it holds only whitespace) and starts the next,
    /// closing and reopening the fence when the cut falls inside one.
    fn flush(&mut self) {
        let current = std::mem::take(&mut self.current);
        if let (Some(range), true) = (current.range, current.non_blank) {
            self.parts.push(Part {
                range,
                reopened: current.reopened,
                closed: self.in_fence,
            });
        }
        self.current.reopened = self.in_fence;
        self.current.len = if self.in_fence { self.open_cost } else { 0 };
    }
}

/// Cuts `text` to at most `max_units` units (as measured by `len`) before a note, preferring
/// a line boundary near the end and closing a code fence left open. `None` when the text
/// fits; else the kept text and how many units were left out.
pub fn truncate(text: &str, max_units: usize, len: fn(&str) -> usize) -> Option<(String, usize)> {
    let total = len(text);
    if total <= max_units {
        return None;
    }
    let budget = max_units.saturating_sub(len(CLOSE_FENCE));
    let mut taken = 0;
    let mut end = 0;
    let mut buf = [0u8; 4];
    for (i, c) in text.char_indices() {
        let n = len(c.encode_utf8(&mut buf));
        if taken + n > budget {
            break;
        }
        taken += n;
        end = i + c.len_utf8();
    }
    // Back up to the last line end when one is in the last fifth of what fits.
    if let Some(nl) = text[..end].rfind('\n')
        && nl >= end - end / 5
    {
        end = nl;
    }
    let mut kept = text[..end].to_owned();
    let fences = kept.split('\n').filter(|l| is_fence_line(l)).count();
    if fences % 2 == 1 {
        kept.push_str(CLOSE_FENCE);
    }
    Some((kept, total - len(&text[..end])))
}

/// Checks [`split_message`]'s contract on one input (for the property test and the fuzz
/// target): `Err` says which part of it failed.
#[doc(hidden)]
pub fn check_contract(text: &str, limit: usize, len: fn(&str) -> usize) -> Result<(), String> {
    let pieces = split_message(text, limit, len);
    let limit = limit.max(MIN_LIMIT);
    if len(text) <= limit {
        return if pieces == [text] {
            Ok(())
        } else {
            Err("a text within the limit was changed".into())
        };
    }
    let parts = split_parts(text, limit, len);
    let rendered: Vec<String> = parts.iter().map(|p| p.render(text)).collect();
    if rendered != pieces {
        return Err("pieces differ from their parts".into());
    }
    // Byte offsets of the text's own fence lines; `fences_before(p)` counts those before `p`.
    let mut fence_starts = Vec::new();
    let mut at = 0;
    for line in text.split('\n') {
        if is_fence_line(line) {
            fence_starts.push(at);
        }
        at += line.len() + 1;
    }
    let fences_before = |p: usize| fence_starts.partition_point(|&s| s < p);
    let mut pos = 0;
    for (i, (part, piece)) in parts.iter().zip(&pieces).enumerate() {
        let (start, end) = (part.range.start, part.range.end);
        if start < pos || end <= start || end > text.len() {
            return Err(format!("piece {i}: range {start}..{end} out of order"));
        }
        if !text[pos..start].trim().is_empty() {
            return Err(format!(
                "piece {i}: text lost before it: {:?}",
                &text[pos..start]
            ));
        }
        if len(piece) > limit {
            return Err(format!(
                "piece {i}: {} units over the limit {limit}",
                len(piece)
            ));
        }
        if piece.trim().is_empty() {
            return Err(format!("piece {i} is blank"));
        }
        let open = fences_before(start) % 2 == 1;
        let close = fences_before(end) % 2 == 1;
        if part.reopened != open || part.closed != close {
            return Err(format!("piece {i}: fence not carried across the cut"));
        }
        let own = fences_before(end) - fences_before(start);
        if (own + usize::from(part.reopened) + usize::from(part.closed)) % 2 != 0 {
            return Err(format!("piece {i}: unbalanced fences"));
        }
        pos = end;
    }
    if !text[pos..].trim().is_empty() {
        return Err(format!("text lost at the end: {:?}", &text[pos..]));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn truncation_keeps_whole_lines_and_closes_fences() {
        let text = format!("```\n{}```\n", "0123456789\n".repeat(100));
        let (kept, dropped) = truncate(&text, 200, char_len).unwrap();
        assert!(char_len(&kept) <= 200, "{kept:?}");
        assert!(kept.ends_with("0123456789\n```"), "{kept:?}");
        assert_eq!(
            dropped,
            char_len(&text) - char_len(kept.trim_end_matches("\n```"))
        );
        assert_eq!(truncate("short", 200, char_len), None);
    }

    #[test]
    fn short_text_is_one_piece() {
        assert_eq!(split_message("hello", 64, char_len), vec!["hello"]);
    }

    #[test]
    fn splits_on_lines_and_balances_fences() {
        let text = format!("intro\n```\n{}```\nend", "line of output\n".repeat(20));
        let pieces = split_message(&text, 80, char_len);
        assert!(pieces.len() > 3);
        check(&text, 80, char_len);
    }

    #[test]
    fn cuts_long_lines_on_char_boundaries() {
        let text = "é".repeat(100);
        let pieces = split_message(&text, 30, byte_len);
        assert!(pieces.iter().all(|p| p.len() <= 30));
        assert_eq!(pieces.concat(), text);
    }

    /// Issue 12 item 1: a line longer than the room left inside a fence looped for ever.
    #[test]
    fn a_long_line_inside_a_fence_is_cut_and_the_fence_kept() {
        let text = format!("Result:\n```\n{}\n```\ndone", "x".repeat(380));
        check(&text, 400, char_len);
        assert_eq!(
            split_message(&text, 400, char_len),
            [
                format!("Result:\n```\n{}\n```", "x".repeat(380)),
                "done".into()
            ]
        );
        let text = format!("Result:\n```\nfirst\n{}\n```\ndone", "x".repeat(900));
        check(&text, 400, char_len);
        let pieces = split_message(&text, 400, char_len);
        assert_eq!(pieces.len(), 4, "{pieces:?}");
        assert!(pieces[0].ends_with(CLOSE_FENCE) && pieces[1].starts_with(OPEN_FENCE));
        assert!(pieces[1].ends_with(CLOSE_FENCE) && pieces[2].starts_with(OPEN_FENCE));
    }

    #[test]
    fn a_mebibyte_line_in_a_fence_is_split_quickly() {
        let text = format!("```\n{}\n```", "y".repeat(1 << 20));
        check(&text, 4000, char_len);
    }

    fn check(text: &str, limit: usize, len: fn(&str) -> usize) {
        if let Err(e) = check_contract(text, limit, len) {
            panic!("{e}\ntext: {text:?}\nlimit: {limit}");
        }
    }

    fn text_strategy() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("```".to_owned()),
            Just("```rust".to_owned()),
            Just("  ```".to_owned()),
            Just("\n".to_owned()),
            Just("\n\n".to_owned()),
            Just(" ".to_owned()),
            "[a-z]{1,12}",
            "[a-zé€😀 ]{1,40}",
            "x{60,500}",
            any::<char>().prop_map(String::from),
        ];
        prop::collection::vec(piece, 0..120).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn pieces_fit_balance_and_give_back_the_text(
            text in text_strategy(),
            limit in 64usize..600,
            bytes in any::<bool>(),
        ) {
            let len: fn(&str) -> usize = if bytes { byte_len } else { char_len };
            prop_assert_eq!(check_contract(&text, limit, len), Ok(()), "limit {}", limit);
        }
    }
}
