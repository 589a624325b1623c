//! Rocket.Chat rendering: `chat.postMessage` bodies (text and attachments), built from
//! [`parts`](crate::backend::rich::parts).
use serde_json::{Map, Value, json};

use crate::backend::rich::{legacy_attachment, parts, plain_pieces, text_object};
use crate::backend::{Outgoing, char_len, split_message};

/// Rocket.Chat `chat.postMessage` bodies for `out` (without `roomId`/`channel` and `tmid`),
/// `text` under `limit` characters. `mention` is `@username`.
///
/// - `extra.rocketchat.attachments`: used verbatim on the first message, with the plain text;
/// - a rich message: the mention and pretext as `text`, the body in coloured attachments
///   (`extra.rocketchat` keys merged in, as hubot-stackstorm does), one per message;
/// - otherwise plain `text`, split.
pub fn messages(out: &Outgoing, mention: Option<&str>, limit: usize) -> Vec<Map<String, Value>> {
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
