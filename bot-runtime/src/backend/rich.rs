//! Rich formatting shared by the web-API backends: turns an [`Outgoing`] (text with the
//! `{~}` pretext separator, StackStorm's `extra`, the execution [`Status`], a mention) into
//! what each service posts. Read [`status_color`] and [`parts`] first; then one small
//! function per provider shape ([`slack_messages`], [`mattermost_posts`]).
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

use super::{
    Action, ActionIds, ActionStyle, Outgoing, Status, char_len, split_message, split_pretext,
};

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

/// Slack `chat.postMessage` bodies for `out` (without `channel` and `thread_ts`), each
/// under `limit` characters of text. `mention` is Slack markup such as `<@U123>`.
///
/// - `extra.slack` with `attachments` or `blocks`: one message, passed through as given,
///   with `text` (the notification fallback) set from the plain text when absent;
/// - a rich message (colour, pretext or other `extra.slack` keys): top-level `text` holds the
///   mention and pretext, the body goes into coloured attachments, one per piece;
/// - otherwise plain `text`, split.
pub fn slack_messages(
    out: &Outgoing,
    mention: Option<&str>,
    limit: usize,
) -> Vec<Map<String, Value>> {
    let parts = parts(out, "slack");
    let lead = mention.map(|m| format!("{m}: ")).unwrap_or_default();
    if let (true, Some(extra)) = (parts.passthrough(), parts.extra) {
        let mut message = extra.clone();
        message.remove("thread_response");
        let text = match message.get("text").and_then(Value::as_str) {
            Some(t) => format!("{lead}{t}"),
            None => plain_text(&lead, &parts),
        };
        let text = split_message(&text, limit, char_len).swap_remove(0);
        message.insert("text".into(), Value::String(text));
        return vec![message];
    }
    if !parts.is_rich() {
        return plain_pieces(&lead, &parts, limit)
            .into_iter()
            .map(|t| text_object("text", t))
            .collect();
    }
    let headline = format!("{lead}{}", parts.pretext.unwrap_or_default());
    let headline = headline.trim_end_matches([' ', ':']).to_owned();
    let headline_len = char_len(&headline);
    let body_limit = limit.saturating_sub(headline_len + 1).max(limit / 2);
    let mut messages = Vec::new();
    for (i, piece) in split_message(parts.body, body_limit, char_len)
        .into_iter()
        .enumerate()
    {
        let extra = if i == 0 { parts.extra } else { None };
        let mut message = Map::new();
        if i == 0 && !headline.is_empty() {
            message.insert("text".into(), Value::String(headline.clone()));
        }
        message.insert(
            "attachments".into(),
            json!([legacy_attachment(&piece, parts.color.as_deref(), extra)]),
        );
        messages.push(message);
    }
    messages
}

/// Mattermost `POST /api/v4/posts` contents for `out`: `(message, props)` pairs, each
/// message under `limit` characters. `mention` is `@username`.
///
/// - `extra.mattermost.attachments`: used verbatim in `props.attachments` of the first post,
///   the plain text as the message;
/// - a rich message: the mention and pretext as the message, the body in coloured
///   attachments, one per piece;
/// - otherwise plain messages, split.
pub fn mattermost_posts(
    out: &Outgoing,
    mention: Option<&str>,
    limit: usize,
) -> Vec<(String, Option<Value>)> {
    let parts = parts(out, "mattermost");
    let lead = mention.map(|m| format!("{m}: ")).unwrap_or_default();
    if let (true, Some(extra)) = (parts.passthrough(), parts.extra) {
        let mut props = extra.clone();
        props.remove("thread_response");
        props.remove("blocks");
        let mut posts: Vec<(String, Option<Value>)> = plain_pieces(&lead, &parts, limit)
            .into_iter()
            .map(|m| (m, None))
            .collect();
        posts[0].1 = Some(Value::Object(props));
        return posts;
    }
    if !parts.is_rich() {
        return plain_pieces(&lead, &parts, limit)
            .into_iter()
            .map(|m| (m, None))
            .collect();
    }
    let headline = format!("{lead}{}", parts.pretext.unwrap_or_default());
    let headline = headline.trim_end_matches([' ', ':']).to_owned();
    split_message(parts.body, limit, char_len)
        .into_iter()
        .enumerate()
        .map(|(i, piece)| {
            let extra = if i == 0 { parts.extra } else { None };
            let attachment = legacy_attachment(&piece, parts.color.as_deref(), extra);
            let message = if i == 0 {
                headline.clone()
            } else {
                String::new()
            };
            (message, Some(json!({ "attachments": [attachment] })))
        })
        .collect()
}

fn text_object(key: &str, text: String) -> Map<String, Value> {
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

/// A colour as `0xRRGGBB`: a number, `#rrggbb`/`rrggbb`, or Slack's `good`/`warning`/`danger`.
pub fn color_rgb(value: &Value) -> Option<u32> {
    match value {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => match s.as_str() {
            "good" => status_color_rgb(Some(Status::Succeeded)),
            "warning" => status_color_rgb(Some(Status::Running)),
            "danger" => status_color_rgb(Some(Status::Failed)),
            hex => {
                let hex = hex.strip_prefix('#').unwrap_or(hex);
                (hex.len() == 6)
                    .then(|| u32::from_str_radix(hex, 16).ok())
                    .flatten()
            }
        },
        _ => None,
    }
}

/// Discord `POST /channels/{id}/messages` bodies for `out` (without `message_reference` and
/// `allowed_mentions`), `content` under `limit` characters, embed descriptions under
/// `embed_limit`. `mention` is Discord markup such as `<@123>`.
///
/// - `extra.discord.embeds`: passed through as given (ten per message, Discord's maximum),
///   after the plain text as `content`;
/// - a rich message: the mention and pretext as `content`, the body in embeds with the colour
///   (a number or `#hex`), `extra.discord`'s other keys (`title`, `url`, `fields`, `footer`…)
///   merged into the first; one embed per message, so each stays under the 6000-character
///   total;
/// - otherwise plain `content`, split.
pub fn discord_messages(
    out: &Outgoing,
    mention: Option<&str>,
    limit: usize,
    embed_limit: usize,
) -> Vec<Map<String, Value>> {
    let parts = parts(out, "discord");
    let lead = mention.map(|m| format!("{m}: ")).unwrap_or_default();
    let verbatim = parts
        .extra
        .and_then(|x| x.get("embeds"))
        .and_then(Value::as_array);
    if let Some(embeds) = verbatim {
        let mut messages: Vec<Map<String, Value>> = plain_pieces(&lead, &parts, limit)
            .into_iter()
            .filter(|t| !t.trim().is_empty())
            .map(|t| text_object("content", t))
            .collect();
        let mut groups = embeds.chunks(10);
        if let (Some(last), Some(group)) = (messages.last_mut(), groups.next()) {
            last.insert("embeds".into(), Value::Array(group.to_vec()));
        }
        for group in groups {
            let mut m = Map::new();
            m.insert("embeds".into(), Value::Array(group.to_vec()));
            messages.push(m);
        }
        return messages;
    }
    if !parts.is_rich() {
        return plain_pieces(&lead, &parts, limit)
            .into_iter()
            .map(|t| text_object("content", t))
            .collect();
    }
    let color = parts
        .extra
        .and_then(|x| x.get("color"))
        .and_then(color_rgb)
        .or_else(|| parts.color.as_deref().and_then(|c| color_rgb(&json!(c))));
    let headline = format!("{lead}{}", parts.pretext.unwrap_or_default());
    let headline = headline.trim_end_matches([' ', ':']).to_owned();
    let mut messages: Vec<Map<String, Value>> = if headline.is_empty() {
        Vec::new()
    } else {
        split_message(&headline, limit, char_len)
            .into_iter()
            .map(|t| text_object("content", t))
            .collect()
    };
    let pieces = if parts.body.trim().is_empty() {
        Vec::new()
    } else {
        split_message(parts.body, embed_limit, char_len)
    };
    for (i, piece) in pieces.into_iter().enumerate() {
        let mut embed = Map::new();
        if i == 0
            && let Some(x) = parts.extra
        {
            for (k, v) in x {
                if !matches!(k.as_str(), "color" | "thread_response" | "embeds") {
                    embed.insert(k.clone(), v.clone());
                }
            }
        }
        embed.insert("description".into(), Value::String(piece));
        if let Some(c) = color {
            embed.insert("color".into(), Value::from(c));
        }
        let embeds = Value::Array(vec![Value::Object(embed)]);
        match messages.last_mut() {
            Some(last) if i == 0 => {
                last.insert("embeds".into(), embeds);
            }
            _ => {
                let mut m = Map::new();
                m.insert("embeds".into(), embeds);
                messages.push(m);
            }
        }
    }
    messages
}

/// Rocket.Chat `chat.postMessage` bodies for `out` (without `roomId`/`channel` and `tmid`),
/// `text` under `limit` characters. `mention` is `@username`.
///
/// - `extra.rocketchat.attachments`: used verbatim on the first message, with the plain text;
/// - a rich message: the mention and pretext as `text`, the body in coloured attachments
///   (`extra.rocketchat` keys merged in, as hubot-stackstorm does), one per message;
/// - otherwise plain `text`, split.
pub fn rocketchat_messages(
    out: &Outgoing,
    mention: Option<&str>,
    limit: usize,
) -> Vec<Map<String, Value>> {
    let parts = parts(out, "rocketchat");
    let lead = mention.map(|m| format!("{m}: ")).unwrap_or_default();
    if let (true, Some(extra)) = (parts.passthrough(), parts.extra) {
        let mut messages: Vec<Map<String, Value>> = plain_pieces(&lead, &parts, limit)
            .into_iter()
            .map(|t| text_object("text", t))
            .collect();
        if let (Some(first), Some(attachments)) = (messages.first_mut(), extra.get("attachments")) {
            first.insert("attachments".into(), attachments.clone());
        }
        return messages;
    }
    if !parts.is_rich() {
        return plain_pieces(&lead, &parts, limit)
            .into_iter()
            .map(|t| text_object("text", t))
            .collect();
    }
    let headline = format!("{lead}{}", parts.pretext.unwrap_or_default());
    let headline = headline.trim_end_matches([' ', ':']).to_owned();
    let mut messages: Vec<Map<String, Value>> = split_message(&headline, limit, char_len)
        .into_iter()
        .filter(|t| !t.is_empty())
        .map(|t| text_object("text", t))
        .collect();
    for (i, piece) in split_message(parts.body, limit, char_len)
        .into_iter()
        .enumerate()
    {
        let extra = if i == 0 { parts.extra } else { None };
        let attachments = json!([legacy_attachment(&piece, parts.color.as_deref(), extra)]);
        match messages.last_mut() {
            Some(last) if i == 0 => {
                last.insert("attachments".into(), attachments);
            }
            _ => {
                let mut m = text_object("text", String::new());
                m.insert("attachments".into(), attachments);
                messages.push(m);
            }
        }
    }
    messages
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
fn label(text: &str, max: usize) -> String {
    if char_len(text) <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Slack Block Kit limits (<https://api.slack.com/reference/block-kit/block-elements#button>,
/// <https://api.slack.com/reference/block-kit/blocks>): a button's text, elements in one
/// `actions` block, a section's text, blocks in a message.
pub const SLACK_BUTTON_TEXT: usize = 75;
/// Elements in one Slack `actions` block.
pub const SLACK_BUTTONS: usize = 25;
/// Characters of one Slack `section` block's text.
pub const SLACK_SECTION_TEXT: usize = 3000;
/// Blocks in one Slack message.
pub const SLACK_BLOCKS: usize = 50;

/// Adds `buttons` to a Slack `chat.postMessage` body from [`slack_messages`] as an
/// `actions` block of `button` elements (`action_id` and `value` are the button's id, never
/// its command). Slack shows `text` only when a message has no blocks, so a message without
/// blocks gets its text as `section` blocks first (`text` stays, as the notification
/// fallback); a message with blocks (`extra.slack.blocks`) gets the actions block after
/// them. No room for another block: no buttons (the text says what to type).
pub fn slack_add_buttons(message: &mut Map<String, Value>, buttons: &[(String, &Action)]) {
    if buttons.is_empty() {
        return;
    }
    let elements: Vec<Value> = buttons
        .iter()
        .take(SLACK_BUTTONS)
        .map(|(id, action)| {
            let mut button = json!({
                "type": "button",
                "text": {"type": "plain_text", "text": label(&action.label, SLACK_BUTTON_TEXT), "emoji": true},
                "action_id": id,
                "value": id,
            });
            match action.style {
                ActionStyle::Primary => button["style"] = json!("primary"),
                ActionStyle::Danger => button["style"] = json!("danger"),
                ActionStyle::Default => {}
            }
            button
        })
        .collect();
    let actions = json!({"type": "actions", "elements": elements});
    if let Some(Value::Array(blocks)) = message.get_mut("blocks") {
        if blocks.len() < SLACK_BLOCKS {
            blocks.push(actions);
        }
        return;
    }
    let text = message
        .get("text")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut blocks: Vec<Value> = if text.trim().is_empty() {
        Vec::new()
    } else {
        split_message(text, SLACK_SECTION_TEXT, char_len)
            .into_iter()
            .take(SLACK_BLOCKS - 1)
            .map(|piece| json!({"type": "section", "text": {"type": "mrkdwn", "text": piece}}))
            .collect()
    };
    blocks.push(actions);
    message.insert("blocks".into(), Value::Array(blocks));
}

/// Mattermost buttons (<https://developers.mattermost.com/integrate/plugins/interactive-messages/>):
/// one more attachment in `props.attachments` whose `actions` are buttons. Each button's
/// `integration` sends Mattermost's POST to `url` with `context` holding the button's id
/// (`action`) and the endpoint's `secret`, never the command (Mattermost keeps
/// `integration` on the server: clients do not see it). Action `id`s are letters and digits.
pub fn mattermost_add_buttons(
    props: &mut Option<Value>,
    buttons: &[(String, &Action)],
    url: &str,
    secret: &str,
) {
    if buttons.is_empty() {
        return;
    }
    let actions: Vec<Value> = buttons
        .iter()
        .enumerate()
        .map(|(i, (id, action))| {
            let style = match action.style {
                ActionStyle::Primary => "good",
                ActionStyle::Danger => "danger",
                ActionStyle::Default => "default",
            };
            json!({
                "id": format!("st2bot{i}"),
                "name": action.label,
                "type": "button",
                "style": style,
                "integration": {"url": url, "context": {"action": id, "secret": secret}},
            })
        })
        .collect();
    let labels: Vec<&str> = buttons.iter().map(|(_, a)| a.label.as_str()).collect();
    let attachment = json!({"fallback": labels.join(" / "), "actions": actions});
    let props = props.get_or_insert_with(|| json!({}));
    if !props.is_object() {
        *props = json!({});
    }
    match props.get_mut("attachments") {
        Some(Value::Array(list)) => list.push(attachment),
        _ => props["attachments"] = json!([attachment]),
    }
}

/// Discord message component limits
/// (<https://discord.com/developers/docs/interactions/message-components>): buttons per
/// action row, action rows per message, a button's label.
pub const DISCORD_BUTTONS_PER_ROW: usize = 5;
/// Action rows in one Discord message.
pub const DISCORD_ROWS: usize = 5;
/// Buttons in one Discord message.
pub const DISCORD_BUTTONS: usize = DISCORD_BUTTONS_PER_ROW * DISCORD_ROWS;
/// Characters of a Discord button's label.
pub const DISCORD_LABEL: usize = 80;

/// Discord `components` for `buttons`: action rows (type 1) of at most five buttons
/// (type 2; style 3 success, 4 danger, 2 secondary), `custom_id` the button's id.
pub fn discord_components(buttons: &[(String, &Action)]) -> Value {
    let rows: Vec<Value> = buttons
        .chunks(DISCORD_BUTTONS_PER_ROW)
        .take(DISCORD_ROWS)
        .map(|row| {
            let row: Vec<Value> = row
                .iter()
                .map(|(id, action)| {
                    let style = match action.style {
                        ActionStyle::Primary => 3,
                        ActionStyle::Danger => 4,
                        ActionStyle::Default => 2,
                    };
                    json!({"type": 2, "style": style, "label": label(&action.label, DISCORD_LABEL), "custom_id": id})
                })
                .collect();
            json!({"type": 1, "components": row})
        })
        .collect();
    Value::Array(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Target;

    fn out(text: &str, extra: Option<Value>, status: Option<Status>) -> Outgoing {
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
    fn slack_plain_rich_and_passthrough() {
        let plain = slack_messages(&out("hello", None, None), Some("<@U1>"), 4000);
        assert_eq!(plain, vec![text_object("text", "<@U1>: hello".into())]);

        let rich = slack_messages(
            &out(
                "Done{~}stdout here",
                Some(json!({"slack": {"title": "T"}})),
                Some(Status::Failed),
            ),
            Some("<@U1>"),
            4000,
        );
        assert_eq!(rich.len(), 1);
        assert_eq!(rich[0]["text"], "<@U1>: Done");
        let a = &rich[0]["attachments"][0];
        assert_eq!(a["color"], "#E01E5A");
        assert_eq!(a["text"], "stdout here");
        assert_eq!(a["title"], "T");

        let blocks = json!([{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]);
        let pass = slack_messages(
            &out(
                "hi",
                Some(json!({"slack": {"blocks": blocks, "thread_response": true}})),
                None,
            ),
            None,
            4000,
        );
        assert_eq!(pass[0]["blocks"], blocks);
        assert_eq!(pass[0]["text"], "hi");
        assert!(!pass[0].contains_key("thread_response"));
        assert!(wants_thread_response(
            Some(&json!({"slack": {"thread_response": true}})),
            "slack"
        ));
    }

    #[test]
    fn long_bodies_split_into_attachments_under_the_limit() {
        let body = "line of output\n".repeat(800);
        let msgs = slack_messages(
            &out(&format!("head{{~}}{body}"), None, Some(Status::Succeeded)),
            None,
            4000,
        );
        assert!(msgs.len() >= 3);
        for m in &msgs {
            let t = m["attachments"][0]["text"].as_str().unwrap();
            assert!(char_len(t) <= 4000);
            assert_eq!(m["attachments"][0]["color"], "#2EB67D");
        }
        assert_eq!(msgs[0]["text"], "head");
        assert!(!msgs[1].contains_key("text"));
    }

    #[test]
    fn mattermost_shapes() {
        let posts = mattermost_posts(
            &out("pre{~}body", None, Some(Status::Running)),
            Some("@alice"),
            4000,
        );
        assert_eq!(posts[0].0, "@alice: pre");
        let props = posts[0].1.as_ref().unwrap();
        assert_eq!(props["attachments"][0]["color"], "#ECB22E");
        assert_eq!(props["attachments"][0]["text"], "body");

        let given = json!([{"text": "x", "actions": []}]);
        let posts = mattermost_posts(
            &out(
                "msg",
                Some(json!({"mattermost": {"attachments": given}})),
                None,
            ),
            None,
            4000,
        );
        assert_eq!(
            posts,
            vec![("msg".to_owned(), Some(json!({"attachments": given})))]
        );

        let plain = mattermost_posts(&out("all plain{~}", None, None), None, 4000);
        assert_eq!(plain, vec![("all plain".to_owned(), None)]);
    }

    fn buttons(n: usize, label_len: usize) -> (ActionIds, Vec<Action>) {
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

    #[test]
    fn slack_buttons_follow_the_text_in_an_actions_block_within_block_kit_limits() {
        let (ids, actions) = buttons(30, 100);
        let shown = issue_ids(&actions, SLACK_BUTTONS, &ids);
        assert_eq!(shown.len(), SLACK_BUTTONS, "no id for what is not rendered");
        let mut message = slack_messages(&out(&"y".repeat(3500), None, None), Some("<@U1>"), 4000)
            .pop()
            .unwrap();
        slack_add_buttons(&mut message, &shown);
        let blocks = message["blocks"].as_array().unwrap();
        // The text (more than one section holds) is shown as sections, then the buttons.
        assert_eq!(blocks.len(), 3);
        assert_eq!(blocks[0]["type"], "section");
        assert!(
            blocks[0]["text"]["text"]
                .as_str()
                .unwrap()
                .starts_with("<@U1>: y")
        );
        assert!(blocks.iter().all(|b| b["type"] != "section"
            || char_len(b["text"]["text"].as_str().unwrap()) <= SLACK_SECTION_TEXT));
        assert!(
            message["text"].as_str().unwrap().starts_with("<@U1>: "),
            "fallback kept"
        );
        let elements = blocks[2]["elements"].as_array().unwrap();
        assert_eq!(blocks[2]["type"], "actions");
        assert_eq!(elements.len(), SLACK_BUTTONS);
        for (e, (id, _)) in elements.iter().zip(&shown) {
            assert_eq!(e["type"], "button");
            assert_eq!(e["action_id"], json!(id));
            assert_eq!(e["value"], json!(id));
            assert_eq!(e["text"]["type"], "plain_text");
            assert_eq!(
                char_len(e["text"]["text"].as_str().unwrap()),
                SLACK_BUTTON_TEXT
            );
            assert!(
                !e.to_string().contains("!approve"),
                "no command goes to Slack"
            );
        }
        assert_eq!(elements[0]["style"], "primary");
        assert_eq!(elements[1]["style"], "danger");
        assert!(elements[2].get("style").is_none());
    }

    #[test]
    fn slack_buttons_go_after_given_blocks() {
        let (ids, actions) = buttons(2, 7);
        let shown = issue_ids(&actions, SLACK_BUTTONS, &ids);
        let extra = json!({"slack": {"blocks": [{"type": "divider"}]}});
        let mut message = slack_messages(&out("t", Some(extra), None), None, 4000)
            .pop()
            .unwrap();
        slack_add_buttons(&mut message, &shown);
        let blocks = message["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0]["type"], "divider");
        assert_eq!(blocks[1]["elements"][1]["text"]["text"], "xxxxxxx");
    }

    #[test]
    fn discord_buttons_come_in_rows_of_five_within_component_limits() {
        let (ids, actions) = buttons(27, 90);
        let shown = issue_ids(&actions, DISCORD_BUTTONS, &ids);
        assert_eq!(shown.len(), DISCORD_BUTTONS);
        let rows = discord_components(&shown);
        let rows = rows.as_array().unwrap();
        assert_eq!(rows.len(), DISCORD_ROWS);
        for row in rows {
            assert_eq!(row["type"], 1);
            let buttons = row["components"].as_array().unwrap();
            assert_eq!(buttons.len(), DISCORD_BUTTONS_PER_ROW);
            for b in buttons {
                assert_eq!(b["type"], 2);
                assert_eq!(char_len(b["label"].as_str().unwrap()), DISCORD_LABEL);
                assert!(b["custom_id"].as_str().unwrap().len() <= 100);
            }
        }
        let first = &rows[0]["components"];
        assert_eq!(
            (
                first[0]["style"].clone(),
                first[1]["style"].clone(),
                first[2]["style"].clone()
            ),
            (json!(3), json!(4), json!(2))
        );
        assert_eq!(first[0]["custom_id"], json!(shown[0].0));
        assert!(!rows[0].to_string().contains("!approve"));
    }

    #[test]
    fn mattermost_buttons_are_one_more_attachment_with_the_id_and_secret_in_context() {
        let (ids, actions) = buttons(2, 7);
        let shown = issue_ids(&actions, usize::MAX, &ids);
        let mut props = None;
        mattermost_add_buttons(&mut props, &shown, "https://bot.example/mm", "s3cret");
        let attachments = props.as_ref().unwrap()["attachments"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(attachments.len(), 1);
        let list = attachments[0]["actions"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0]["id"], "st2bot0");
        assert!(list.iter().all(|a| {
            a["id"]
                .as_str()
                .unwrap()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric())
        }));
        assert_eq!(
            (list[0]["style"].clone(), list[1]["style"].clone()),
            (json!("good"), json!("danger"))
        );
        assert_eq!(list[1]["integration"]["url"], "https://bot.example/mm");
        assert_eq!(
            list[1]["integration"]["context"],
            json!({"action": shown[1].0, "secret": "s3cret"})
        );
        assert!(!props.as_ref().unwrap().to_string().contains("!approve"));
        // A rich post keeps its attachment; the buttons come after it.
        let mut rich =
            mattermost_posts(&out("pre{~}body", None, Some(Status::Running)), None, 4000)
                .pop()
                .unwrap()
                .1;
        mattermost_add_buttons(&mut rich, &shown, "https://bot.example/mm", "s");
        let attachments = rich.unwrap()["attachments"].as_array().unwrap().clone();
        assert_eq!(attachments.len(), 2);
        assert_eq!(attachments[0]["text"], "body");
    }

    #[test]
    fn typography() {
        assert_eq!(
            normalize_typography("run “a b”\u{a0}x ‘y’"),
            "run \"a b\" x 'y'"
        );
    }
}
