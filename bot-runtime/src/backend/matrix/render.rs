//! Turning an [`Outgoing`] into `m.room.message` contents, and reading commands out of
//! incoming message bodies.
//!
//! Outgoing: always a plain `body`; a `formatted_body` (`org.matrix.custom.html`) only when
//! there is rich content: `extra.matrix.formatted_body`, or a `{~}` pretext split (pretext as
//! a line, body with code fences as `<pre><code>`). Long text is split on lines with code
//! fences balanced, at most [`MAX_MESSAGE_CHARS`] characters per message and never more than
//! [`MAX_CONTENT_BYTES`] of JSON per event (the homeserver rejects events over 65,536 bytes).
//! Every message carries `m.mentions`, empty unless it answers someone, so output that
//! happens to contain `@room` or a name pings nobody.

use serde_json::{Map, Value, json};

use super::super::{Outgoing, char_len, split_message, split_pretext};

/// Longest message the backend sends in one event, in characters.
pub(crate) const MAX_MESSAGE_CHARS: usize = 16_000;
/// Largest serialized content per event; the rest of the 65,536-byte event limit is left for
/// the envelope (ids, signatures, hashes).
pub(crate) const MAX_CONTENT_BYTES: usize = 60_000;
/// Message type unless `extra.matrix.msgtype` says otherwise: notices are what the
/// specification asks automated senders to use (bots never answer them, so no loops).
const DEFAULT_MSGTYPE: &str = "m.notice";

/// Someone a message answers: user id and the name shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Mention {
    /// Full user id.
    pub(crate) user_id: String,
    /// Display name (or the user id when none is known).
    pub(crate) display: String,
}

/// An edit (`m.replace`, Matrix client-server API "Event replacements") of `event_id` so
/// that it reads `out.text`, or with [`Outgoing::replaces_whole`] as `out` would have been
/// posted (rich: `extra.matrix`, pretext), its first piece when it would not fit one event: `m.new_content` is the new message (no
/// thread relation there: the original keeps its own), the fallback `body` (and
/// `formatted_body`) the same behind `* `, no mentions (an edit pings no one again).
pub(crate) fn replacement(event_id: &str, out: &Outgoing) -> Value {
    let plain;
    let out = if out.replaces_whole {
        out
    } else {
        plain = Outgoing::text(out.target.clone(), out.text.clone());
        &plain
    };
    let mut new_content = render(out, None, None)
        .into_iter()
        .next()
        .unwrap_or_else(|| json!({"msgtype": DEFAULT_MSGTYPE, "body": ""}));
    if let Some(o) = new_content.as_object_mut() {
        o.remove("m.relates_to");
        o.insert("m.mentions".into(), json!({}));
    }
    let mut content = new_content.clone();
    for key in ["body", "formatted_body"] {
        if let Some(text) = new_content.get(key).and_then(Value::as_str) {
            content[key] = Value::String(format!("* {text}"));
        }
    }
    content["m.new_content"] = new_content;
    content["m.relates_to"] = json!({"rel_type": "m.replace", "event_id": event_id});
    content
}

/// The contents to send for `out`, in order; `thread` puts each in that thread.
pub(crate) fn render(
    out: &Outgoing,
    mention: Option<&Mention>,
    thread: Option<&str>,
) -> Vec<Value> {
    let extra = out
        .extra
        .as_ref()
        .and_then(|e| e.get("matrix"))
        .and_then(Value::as_object);
    let msgtype = extra
        .and_then(|m| m.get("msgtype"))
        .and_then(Value::as_str)
        .filter(|t| matches!(*t, "m.text" | "m.notice" | "m.emote"))
        .unwrap_or(DEFAULT_MSGTYPE);
    let (pretext, body) = split_pretext(&out.text);
    let plain_text = match pretext {
        Some(p) => format!("{}\n{body}", p.trim_end()),
        None => body.to_owned(),
    };
    let (mention_plain, mention_html) = match mention {
        Some(m) => (
            format!("{}: ", m.display),
            format!(
                "<a href=\"https://matrix.to/#/{}\">{}</a>: ",
                escape_html(&m.user_id),
                escape_html(&m.display)
            ),
        ),
        None => (String::new(), String::new()),
    };
    let mentions = match mention {
        Some(m) => json!({ "user_ids": [m.user_id] }),
        None => json!({}),
    };
    let base = Base {
        msgtype,
        mentions,
        thread,
    };

    // Rich content given as HTML: sent whole when it fits, else degraded to plain pieces.
    if let Some(html) = extra
        .and_then(|m| m.get("formatted_body"))
        .and_then(Value::as_str)
    {
        let plain = extra
            .and_then(|m| m.get("body"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or(plain_text.clone());
        let plain = format!("{mention_plain}{plain}");
        let html = format!("{mention_html}{html}");
        if char_len(&plain) <= MAX_MESSAGE_CHARS && char_len(&html) <= MAX_MESSAGE_CHARS {
            let content = base.content(&plain, Some(&html), true);
            if content_size(&content) <= MAX_CONTENT_BYTES {
                return vec![content];
            }
        }
        tracing::debug!("matrix: extra.matrix.formatted_body too large, sending plain pieces");
        return base.fit_plain(&plain);
    }

    let rich = pretext.is_some();
    let (prefix_plain, prefix_html) = match pretext {
        Some(p) => (
            format!("{mention_plain}{}\n", p.trim_end()),
            format!("{mention_html}{}<br>", escape_html(p.trim_end())),
        ),
        None => (mention_plain, mention_html),
    };
    let limit = MAX_MESSAGE_CHARS
        .saturating_sub(char_len(&prefix_plain))
        .max(MAX_MESSAGE_CHARS / 2);
    let mut contents = Vec::new();
    for (i, piece) in split_message(body, limit, char_len).into_iter().enumerate() {
        let (pp, ph) = if i == 0 {
            (prefix_plain.as_str(), prefix_html.as_str())
        } else {
            ("", "")
        };
        let plain = format!("{pp}{piece}");
        let html = rich.then(|| format!("{ph}{}", text_to_html(&piece)));
        contents.extend(base.fit(&plain, html.as_deref(), i == 0));
    }
    contents
}

/// What every piece of one message shares.
struct Base<'a> {
    msgtype: &'a str,
    mentions: Value,
    thread: Option<&'a str>,
}

impl Base<'_> {
    fn content(&self, plain: &str, html: Option<&str>, first: bool) -> Value {
        let mut content = Map::new();
        content.insert("msgtype".into(), json!(self.msgtype));
        content.insert("body".into(), json!(plain));
        if let Some(html) = html {
            content.insert("format".into(), json!("org.matrix.custom.html"));
            content.insert("formatted_body".into(), json!(html));
        }
        let mentions = if first {
            self.mentions.clone()
        } else {
            json!({})
        };
        content.insert("m.mentions".into(), mentions);
        if let Some(root) = self.thread {
            content.insert(
                "m.relates_to".into(),
                json!({
                    "rel_type": "m.thread",
                    "event_id": root,
                    "is_falling_back": true,
                    "m.in_reply_to": { "event_id": root },
                }),
            );
        }
        Value::Object(content)
    }

    /// One content when it fits the event size; else without HTML; else split in halves.
    fn fit(&self, plain: &str, html: Option<&str>, first: bool) -> Vec<Value> {
        let content = self.content(plain, html, first);
        if content_size(&content) <= MAX_CONTENT_BYTES {
            return vec![content];
        }
        if html.is_some() {
            return self.fit(plain, None, first);
        }
        let half = (char_len(plain) / 2).max(16);
        split_message(plain, half, char_len)
            .iter()
            .enumerate()
            .flat_map(|(i, p)| self.fit(p, None, first && i == 0))
            .collect()
    }

    fn fit_plain(&self, plain: &str) -> Vec<Value> {
        split_message(plain, MAX_MESSAGE_CHARS, char_len)
            .iter()
            .enumerate()
            .flat_map(|(i, p)| self.fit(p, None, i == 0))
            .collect()
    }
}

fn content_size(content: &Value) -> usize {
    serde_json::to_vec(content)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
}

/// Escapes text for HTML.
pub(crate) fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Plain text to HTML: code fences become `<pre><code>`, other lines are escaped and joined
/// with `<br>`.
fn text_to_html(text: &str) -> String {
    let mut html = String::new();
    let mut in_fence = false;
    let mut first_line = true;
    for line in text.split('\n') {
        if line.trim_start().starts_with("```") {
            if in_fence {
                html.push_str("</code></pre>");
            } else {
                html.push_str("<pre><code>");
            }
            in_fence = !in_fence;
            first_line = true;
            continue;
        }
        if in_fence {
            html.push_str(&escape_html(line));
            html.push('\n');
        } else {
            if !first_line {
                html.push_str("<br>");
            }
            html.push_str(&escape_html(line));
        }
        first_line = false;
    }
    if in_fence {
        html.push_str("</code></pre>");
    }
    html
}

/// The body without the quoted fallback a reply carries (`> <@user> …` lines, then a blank
/// line), when the event is a reply.
pub(crate) fn strip_reply_fallback<'a>(body: &'a str, content: &Value) -> &'a str {
    let is_reply = content
        .get("m.relates_to")
        .and_then(|r| r.get("m.in_reply_to"))
        .is_some();
    if !is_reply || !body.starts_with("> ") {
        return body;
    }
    let mut rest = body;
    while let Some(line_end) = rest.find('\n') {
        let line = &rest[..line_end];
        if line.starts_with('>') {
            rest = &rest[line_end + 1..];
        } else {
            break;
        }
    }
    rest.strip_prefix('\n').unwrap_or(rest)
}

/// If `body` starts with one of `names` followed by `:`, the rest (trimmed). Names compare
/// case-insensitively.
pub(crate) fn strip_mention<'a>(body: &'a str, names: &[String]) -> Option<&'a str> {
    let trimmed = body.trim_start();
    names.iter().filter(|n| !n.is_empty()).find_map(|name| {
        let len = name.chars().count();
        let end = trimmed
            .char_indices()
            .nth(len)
            .map_or(trimmed.len(), |(i, _)| i);
        let head = &trimmed[..end];
        if head.chars().count() != len || head.to_lowercase() != name.to_lowercase() {
            return None;
        }
        trimmed[end..].trim_start().strip_prefix(':').map(str::trim)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Target;

    fn room() -> Target {
        Target::Room {
            id: "!r:x".into(),
            thread: None,
        }
    }

    #[test]
    fn plain_text_has_no_html_and_no_pings() {
        let out = Outgoing::text(room(), "hello @room");
        let c = render(&out, None, None);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0]["body"], "hello @room");
        assert_eq!(c[0]["msgtype"], "m.notice");
        assert_eq!(c[0]["m.mentions"], json!({}));
        assert!(c[0].get("formatted_body").is_none());
    }

    #[test]
    fn pretext_split_gives_html_and_mention_pill() {
        let out = Outgoing::text(room(), "Done <ok>{~}line 1\n```\na < b\n```");
        let alice = Mention {
            user_id: "@alice:x".into(),
            display: "Alice".into(),
        };
        let c = render(&out, Some(&alice), Some("$root"));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0]["body"], "Alice: Done <ok>\nline 1\n```\na < b\n```");
        assert_eq!(
            c[0]["formatted_body"],
            "<a href=\"https://matrix.to/#/@alice:x\">Alice</a>: Done &lt;ok&gt;<br>line 1<pre><code>a &lt; b\n</code></pre>"
        );
        assert_eq!(c[0]["format"], "org.matrix.custom.html");
        assert_eq!(c[0]["m.mentions"]["user_ids"], json!(["@alice:x"]));
        assert_eq!(c[0]["m.relates_to"]["rel_type"], "m.thread");
        assert_eq!(c[0]["m.relates_to"]["event_id"], "$root");
    }

    #[test]
    fn extra_matrix_html_and_msgtype() {
        let mut out = Outgoing::text(room(), "fallback");
        out.extra =
            Some(json!({ "matrix": { "formatted_body": "<b>bold</b>", "msgtype": "m.text" } }));
        let c = render(&out, None, None);
        assert_eq!(c[0]["formatted_body"], "<b>bold</b>");
        assert_eq!(c[0]["body"], "fallback");
        assert_eq!(c[0]["msgtype"], "m.text");
        out.extra = Some(json!({ "matrix": { "formatted_body": "x".repeat(20_000) } }));
        let c = render(&out, None, None);
        assert!(c.iter().all(|c| c.get("formatted_body").is_none()));
        assert_eq!(c[0]["body"], "fallback");
    }

    #[test]
    fn long_text_is_split_within_limits() {
        let text = "0123456789 abcdefghij €€€€€\n".repeat(3000);
        let out = Outgoing::text(room(), format!("pre{{~}}{text}"));
        let c = render(&out, None, None);
        assert!(c.len() >= 5, "{}", c.len());
        for piece in &c {
            assert!(char_len(piece["body"].as_str().unwrap()) <= MAX_MESSAGE_CHARS);
            assert!(content_size(piece) <= MAX_CONTENT_BYTES);
        }
        let joined: String = c
            .iter()
            .map(|p| p["body"].as_str().unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(joined.matches("abcdefghij").count(), 3000);
        assert!(joined.starts_with("pre\n"));
    }

    #[test]
    fn huge_html_escaping_still_fits_an_event() {
        let text = "<&>".repeat(5000);
        let out = Outgoing::text(room(), format!("pre{{~}}{text}"));
        for piece in render(&out, None, None) {
            assert!(content_size(&piece) <= MAX_CONTENT_BYTES);
        }
    }

    #[test]
    fn mentions_and_reply_fallbacks() {
        let names = vec!["St2 Bot".to_owned(), "@st2bot:x".to_owned()];
        assert_eq!(strip_mention("st2 bot: !help", &names), Some("!help"));
        assert_eq!(strip_mention("@st2bot:x: run it", &names), Some("run it"));
        assert_eq!(strip_mention("St2 Bot !help", &names), None);
        assert_eq!(strip_mention("!help", &names), None);
        assert_eq!(strip_mention("St2", &names), None);
        let reply = json!({ "m.relates_to": { "m.in_reply_to": { "event_id": "$e" } } });
        assert_eq!(
            strip_reply_fallback("> <@a:x> old\n> more\n\n!help", &reply),
            "!help"
        );
        assert_eq!(strip_reply_fallback("> quoted", &json!({})), "> quoted");
    }
}
