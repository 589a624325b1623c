//! Rich formatting shared by the web-API backends: turns an [`Outgoing`] (text with the
//! `{~}` pretext separator, StackStorm's `extra`, the execution [`Status`], a mention) into
//! what each service posts. Read [`status_color`] and [`parts`] first; each service's
//! `render.rs` (`slack::render`, `mattermost::render`, `discord::render`,
//! `rocketchat::render`) builds its provider shape from these parts.
//!
//! Conventions (STACKSTORM.md §6, hubot-stackstorm's adapters):
//! - `{~}` splits plain pretext from the rich body; a trailing `{~}` means all plain.
//! - `extra.<provider>` carries provider-specific rich content. With `attachments` (or Slack
//!   `blocks`) it is passed through as given; otherwise its keys are merged into the one
//!   attachment built from the body (the legacy hubot shape).
//! - The colour comes from `extra.<provider>.color`, then `extra.color`, then the structured
//!   [`Status`]; never from searching the text.
//! - Every rendering keeps a plain-text fallback ([`plain_text`]) carrying the same words.

use serde_json::{Map, Value, json};

use super::{Action, ActionIds, Outgoing, Status, char_len, split_message, split_pretext};

/// Colour of an execution status, as `#RRGGBB` (Slack, Mattermost, Rocket.Chat attachments).
pub fn status_color(status: Option<Status>) -> Option<&'static str> {
    status.map(|s| match s {
        Status::Succeeded => "#2EB67D",
        Status::Failed => "#E01E5A",
        Status::Running => "#ECB22E",
    })
}

/// The same colour as a 24-bit integer (Discord embeds).
pub fn status_color_rgb(status: Option<Status>) -> Option<u32> {
    status_color(status).and_then(|hex| u32::from_str_radix(hex.trim_start_matches('#'), 16).ok())
}

/// `extra.<provider>` when it is an object.
pub fn provider_extra<'a>(
    extra: Option<&'a Value>,
    provider: &str,
) -> Option<&'a Map<String, Value>> {
    extra?.get(provider)?.as_object()
}

/// Whether `extra.<provider>.thread_response` asks for the reply to go into the thread of
/// the triggering message (the thread id travels in the announcement's `context`).
pub fn wants_thread_response(extra: Option<&Value>, provider: &str) -> bool {
    provider_extra(extra, provider)
        .and_then(|x| x.get("thread_response"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// An outgoing message taken apart: what every provider shape is built from.
#[derive(Clone, Debug, PartialEq)]
pub struct Parts<'a> {
    /// Plain text before `{~}`, when there is a rich body after it.
    pub pretext: Option<&'a str>,
    /// The body (all the text when there is no separator).
    pub body: &'a str,
    /// Attachment colour, when the message has one.
    pub color: Option<String>,
    /// `extra.<provider>`, when given.
    pub extra: Option<&'a Map<String, Value>>,
}

impl Parts<'_> {
    /// Whether this message is rendered rich (an attachment) rather than as plain text.
    pub fn is_rich(&self) -> bool {
        self.color.is_some() || self.pretext.is_some() || self.extra.is_some_and(has_style)
    }

    /// Whether `extra.<provider>` carries a whole rich message to pass through.
    pub fn passthrough(&self) -> bool {
        self.extra
            .is_some_and(|x| x.contains_key("attachments") || x.contains_key("blocks"))
    }
}

/// Whether an `extra.<provider>` object has anything besides `thread_response`.
fn has_style(extra: &Map<String, Value>) -> bool {
    extra.keys().any(|k| k != "thread_response")
}

/// Takes `out` apart for `provider` (`slack`, `mattermost`, `rocketchat`, …).
pub fn parts<'a>(out: &'a Outgoing, provider: &str) -> Parts<'a> {
    let (pretext, body) = split_pretext(&out.text);
    let extra = provider_extra(out.extra.as_ref(), provider);
    let explicit = extra
        .and_then(|x| x.get("color"))
        .or_else(|| out.extra.as_ref().and_then(|e| e.get("color")))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let color = explicit.or_else(|| status_color(out.status).map(str::to_owned));
    Parts {
        pretext: pretext.map(str::trim_end).filter(|p| !p.is_empty()),
        body,
        color,
        extra,
    }
}

/// The message as plain text: `lead` (a rendered mention such as `<@U1>: `), the pretext on
/// its own line, then the body. What every backend falls back to.
pub fn plain_text(lead: &str, parts: &Parts<'_>) -> String {
    let mut text = String::from(lead);
    if let Some(p) = parts.pretext {
        text.push_str(p);
        text.push('\n');
    }
    text.push_str(parts.body);
    text
}

/// The legacy attachment shape Slack, Mattermost and Rocket.Chat share: `text` with a
/// `fallback`, the colour, and `extra` keys merged in (`title`, `fields`, … as given).
pub fn legacy_attachment(
    text: &str,
    color: Option<&str>,
    extra: Option<&Map<String, Value>>,
) -> Value {
    let mut attachment = Map::new();
    if let Some(x) = extra {
        for (k, v) in x {
            if !matches!(k.as_str(), "thread_response" | "attachments" | "blocks") {
                attachment.insert(k.clone(), v.clone());
            }
        }
    }
    attachment.insert("fallback".into(), Value::String(text.to_owned()));
    attachment.insert("text".into(), Value::String(text.to_owned()));
    if let Some(c) = color {
        attachment.insert("color".into(), Value::String(c.to_owned()));
    }
    attachment
        .entry("mrkdwn_in")
        .or_insert_with(|| json!(["text", "pretext"]));
    Value::Object(attachment)
}

/// Plain text split at `limit` characters, `lead` on the first piece only.
pub fn plain_pieces(lead: &str, parts: &Parts<'_>, limit: usize) -> Vec<String> {
    split_message(&plain_text(lead, parts), limit, char_len)
}

pub(crate) fn text_object(key: &str, text: String) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(key.into(), Value::String(text));
    m
}

/// Normalises typography that chat clients substitute into typed commands (curly quotes,
/// non-breaking spaces), as hubot-stackstorm's adapters do, so `run "x y"` still parses.
pub fn normalize_typography(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' => '"',
            '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' => '\'',
            '\u{00A0}' | '\u{202F}' | '\u{2007}' => ' ',
            other => other,
        })
        .collect()
}

/// Buttons to render: each [`Action`] with the id its backend issued for it
/// ([`ActionIds::issue`]), at most `max` (the service's limit; the rest are not rendered and
/// so get no id).
pub fn issue_ids<'a>(
    actions: &'a [Action],
    max: usize,
    ids: &ActionIds,
) -> Vec<(String, &'a Action)> {
    actions
        .iter()
        .take(max)
        .map(|a| (ids.issue(&a.command), a))
        .collect()
}

/// `text` cut to `max` characters, with `…` when cut (button labels).
pub(crate) fn label(text: &str, max: usize) -> String {
    if char_len(text) <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Messages and buttons the renderer tests of every service start from.
#[cfg(test)]
pub(crate) mod fixtures {
    use crate::backend::Target;
    use crate::backend::{Action, ActionIds, ActionStyle, Outgoing, Status};
    use serde_json::Value;

    pub(crate) fn out(text: &str, extra: Option<Value>, status: Option<Status>) -> Outgoing {
        Outgoing {
            target: Target::Room {
                id: "C1".into(),
                thread: None,
            },
            text: text.into(),
            mention: None,
            extra,
            status,
            remember_as: None,
            replaces: None,
            handle: None,
            replaces_whole: false,
            report_posted: None,
            actions: Vec::new(),
        }
    }

    pub(crate) fn buttons(n: usize, label_len: usize) -> (ActionIds, Vec<Action>) {
        let actions = (0..n)
            .map(|i| Action {
                label: "x".repeat(label_len),
                style: [
                    ActionStyle::Primary,
                    ActionStyle::Danger,
                    ActionStyle::Default,
                ][i % 3],
                command: format!("!approve {i}"),
            })
            .collect();
        (ActionIds::default(), actions)
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::out;
    use super::*;

    #[test]
    fn colour_comes_from_status_not_text() {
        let failed_words = out("status : failed", None, Some(Status::Succeeded));
        assert_eq!(
            parts(&failed_words, "slack").color.as_deref(),
            Some("#2EB67D")
        );
        let plain = out("status : failed", None, None);
        assert_eq!(parts(&plain, "slack").color, None);
        assert!(!parts(&plain, "slack").is_rich());
        assert_eq!(status_color_rgb(Some(Status::Failed)), Some(0xE01E5A));
    }

    #[test]
    fn explicit_colour_wins() {
        let o = out(
            "x",
            Some(json!({"color": "#F35A00", "slack": {"color": "warning"}})),
            Some(Status::Failed),
        );
        assert_eq!(parts(&o, "slack").color.as_deref(), Some("warning"));
        assert_eq!(parts(&o, "mattermost").color.as_deref(), Some("#F35A00"));
    }

    #[test]
    fn typography() {
        assert_eq!(
            normalize_typography("run “a b”\u{a0}x ‘y’"),
            "run \"a b\" x 'y'"
        );
    }
}
