//! Slack rendering: `chat.postMessage` bodies (text, legacy attachments, passthrough
//! `extra.slack`) and Block Kit buttons, built from [`parts`](crate::backend::rich::parts).
use serde_json::{Map, Value, json};

use crate::backend::rich::{
    label, legacy_attachment, parts, plain_pieces, plain_text, text_object,
};
use crate::backend::{Action, ActionStyle, Outgoing, char_len, split_message};

/// Slack `chat.postMessage` bodies for `out` (without `channel` and `thread_ts`), each
/// under `limit` characters of text. `mention` is Slack markup such as `<@U123>`.
///
/// - `extra.slack` with `attachments` or `blocks`: one message, passed through as given,
///   with `text` (the notification fallback) set from the plain text when absent;
/// - a rich message (colour, pretext or other `extra.slack` keys): top-level `text` holds the
///   mention and pretext, the body goes into coloured attachments, one per piece;
/// - otherwise plain `text`, split.
pub fn messages(out: &Outgoing, mention: Option<&str>, limit: usize) -> Vec<Map<String, Value>> {
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

/// Slack Block Kit limits (<https://api.slack.com/reference/block-kit/block-elements#button>,
/// <https://api.slack.com/reference/block-kit/blocks>): a button's text, elements in one
/// `actions` block, a section's text, blocks in a message.
pub const BUTTON_TEXT: usize = 75;
/// Elements in one Slack `actions` block.
pub const BUTTONS: usize = 25;
/// Characters of one Slack `section` block's text.
pub const SECTION_TEXT: usize = 3000;
/// Blocks in one Slack message.
pub const BLOCKS: usize = 50;

/// Adds `buttons` to a Slack `chat.postMessage` body from [`messages`] as an
/// `actions` block of `button` elements (`action_id` and `value` are the button's id, never
/// its command). Slack shows `text` only when a message has no blocks, so a message without
/// blocks gets its text as `section` blocks first (`text` stays, as the notification
/// fallback); a message with blocks (`extra.slack.blocks`) gets the actions block after
/// them. No room for another block: no buttons (the text says what to type).
pub fn add_buttons(message: &mut Map<String, Value>, buttons: &[(String, &Action)]) {
    if buttons.is_empty() {
        return;
    }
    let elements: Vec<Value> = buttons
        .iter()
        .take(BUTTONS)
        .map(|(id, action)| {
            let mut button = json!({
                "type": "button",
                "text": {"type": "plain_text", "text": label(&action.label, BUTTON_TEXT), "emoji": true},
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
        if blocks.len() < BLOCKS {
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
        split_message(text, SECTION_TEXT, char_len)
            .into_iter()
            .take(BLOCKS - 1)
            .map(|piece| json!({"type": "section", "text": {"type": "mrkdwn", "text": piece}}))
            .collect()
    };
    blocks.push(actions);
    message.insert("blocks".into(), Value::Array(blocks));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Status;
    use crate::backend::rich::fixtures::{buttons, out};
    use crate::backend::rich::{issue_ids, wants_thread_response};

    #[test]
    fn slack_plain_rich_and_passthrough() {
        let plain = messages(&out("hello", None, None), Some("<@U1>"), 4000);
        assert_eq!(plain, vec![text_object("text", "<@U1>: hello".into())]);

        let rich = messages(
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
        let pass = messages(
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
        let msgs = messages(
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
    fn slack_buttons_follow_the_text_in_an_actions_block_within_block_kit_limits() {
        let (ids, actions) = buttons(30, 100);
        let shown = issue_ids(&actions, BUTTONS, &ids);
        assert_eq!(shown.len(), BUTTONS, "no id for what is not rendered");
        let mut message = messages(&out(&"y".repeat(3500), None, None), Some("<@U1>"), 4000)
            .pop()
            .unwrap();
        add_buttons(&mut message, &shown);
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
            || char_len(b["text"]["text"].as_str().unwrap()) <= SECTION_TEXT));
        assert!(
            message["text"].as_str().unwrap().starts_with("<@U1>: "),
            "fallback kept"
        );
        let elements = blocks[2]["elements"].as_array().unwrap();
        assert_eq!(blocks[2]["type"], "actions");
        assert_eq!(elements.len(), BUTTONS);
        for (e, (id, _)) in elements.iter().zip(&shown) {
            assert_eq!(e["type"], "button");
            assert_eq!(e["action_id"], json!(id));
            assert_eq!(e["value"], json!(id));
            assert_eq!(e["text"]["type"], "plain_text");
            assert_eq!(char_len(e["text"]["text"].as_str().unwrap()), BUTTON_TEXT);
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
        let shown = issue_ids(&actions, BUTTONS, &ids);
        let extra = json!({"slack": {"blocks": [{"type": "divider"}]}});
        let mut message = messages(&out("t", Some(extra), None), None, 4000)
            .pop()
            .unwrap();
        add_buttons(&mut message, &shown);
        let blocks = message["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0]["type"], "divider");
        assert_eq!(blocks[1]["elements"][1]["text"]["text"], "xxxxxxx");
    }
}
