//! Turning an [`Outgoing`] reply into IRC lines: the mention and `{~}` pretext first, one
//! line of text per `PRIVMSG` (IRC has no multi-line messages), blank lines dropped (servers
//! refuse empty `PRIVMSG`s), and each line cut so that what the server relays to others —
//! `:nick!user@host PRIVMSG target :text` plus CRLF — stays within 512 bytes.

use crate::backend::{Outgoing, Target, byte_len, split_message, split_pretext};

/// The most bytes one IRC line may have, CRLF included (RFC 1459 §2.3).
pub(crate) const MAX_LINE: usize = 512;

/// One line of text for one target, not yet cut to the line limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Line {
    /// Channel or nick.
    pub(crate) target: String,
    /// The text, without line breaks.
    pub(crate) text: String,
}

/// Where a reply goes on IRC: the channel, or the nick for a private message.
pub(crate) fn target(out: &Outgoing) -> &str {
    match &out.target {
        Target::Room { id, .. } => id,
        Target::Direct { user } => user,
    }
}

/// The lines of a reply, in order. Rich `extra` content has no IRC rendering and is
/// ignored; the plain text always carries the message.
pub(crate) fn lines(out: &Outgoing) -> Vec<Line> {
    let target = target(out).to_owned();
    let (pretext, body) = split_pretext(&out.text);
    let mut texts: Vec<String> = Vec::new();
    for part in pretext.into_iter().chain([body]) {
        texts.extend(
            part.split('\n')
                .map(|l| l.trim_end_matches('\r').replace('\0', ""))
                .filter(|l| !l.trim().is_empty()),
        );
    }
    if let Some(user) = &out.mention {
        match texts.first_mut() {
            Some(first) => first.insert_str(0, &format!("{user}: ")),
            None => texts.push(format!("{user}:")),
        }
    }
    texts
        .into_iter()
        .map(|text| Line {
            target: target.clone(),
            text,
        })
        .collect()
}

/// Bytes of text that fit in one `PRIVMSG` to `target` when the server prefixes it with a
/// `nick!user@host` of `mask_len` bytes.
pub(crate) fn text_budget(mask_len: usize, target: &str) -> usize {
    let overhead = 1 + mask_len + " PRIVMSG ".len() + target.len() + " :".len() + "\r\n".len();
    MAX_LINE.saturating_sub(overhead)
}

/// Cuts one line of text into pieces of at most `budget` bytes (on character boundaries).
pub(crate) fn fit(text: &str, budget: usize) -> Vec<String> {
    split_message(text, budget, byte_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(text: &str) -> Outgoing {
        Outgoing::text(
            Target::Room {
                id: "#ops".into(),
                thread: None,
            },
            text,
        )
    }

    #[test]
    fn one_line_per_privmsg_with_mention_and_pretext() {
        let mut out = room("Result:{~}line 1\n\nline 2\r\n");
        out.mention = Some("alice".into());
        let texts: Vec<_> = lines(&out).into_iter().map(|l| l.text).collect();
        assert_eq!(texts, ["alice: Result:", "line 1", "line 2"]);
        let dm = Outgoing::text(Target::Direct { user: "bob".into() }, "hi{~}");
        assert_eq!(
            lines(&dm),
            [Line {
                target: "bob".into(),
                text: "hi".into()
            }]
        );
    }

    #[test]
    fn relayed_lines_stay_within_512_bytes() {
        let mask = "st2bot!~st2bot@some.long.host.example.org";
        let budget = text_budget(mask.len(), "#ops");
        let text = "ü".repeat(700);
        let pieces = fit(&text, budget);
        assert!(pieces.len() >= 3);
        for piece in &pieces {
            let relayed = format!(":{mask} PRIVMSG #ops :{piece}\r\n");
            assert!(relayed.len() <= MAX_LINE, "{}", relayed.len());
        }
        assert_eq!(pieces.concat(), text);
        assert_eq!(
            format!(":{mask} PRIVMSG #ops :{}\r\n", "x".repeat(budget)).len(),
            MAX_LINE
        );
    }
}
