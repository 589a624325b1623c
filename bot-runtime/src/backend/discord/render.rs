//! Discord rendering: `POST /channels/{id}/messages` bodies (content and embeds) and
//! message components (buttons), built from [`parts`](crate::backend::rich::parts).
use serde_json::{Map, Value, json};

use crate::backend::rich::{label, parts, plain_pieces, status_color_rgb, text_object};
use crate::backend::{Action, ActionStyle, Outgoing, Status, char_len, split_message};

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
pub fn messages(
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

/// Discord message component limits
/// (<https://discord.com/developers/docs/interactions/message-components>): buttons per
/// action row, action rows per message, a button's label.
pub const BUTTONS_PER_ROW: usize = 5;
/// Action rows in one Discord message.
pub const ROWS: usize = 5;
/// Buttons in one Discord message.
pub const BUTTONS: usize = BUTTONS_PER_ROW * ROWS;
/// Characters of a Discord button's label.
pub const LABEL: usize = 80;

/// Discord `components` for `buttons`: action rows (type 1) of at most five buttons
/// (type 2; style 3 success, 4 danger, 2 secondary), `custom_id` the button's id.
pub fn components(buttons: &[(String, &Action)]) -> Value {
    let rows: Vec<Value> = buttons
        .chunks(BUTTONS_PER_ROW)
        .take(ROWS)
        .map(|row| {
            let row: Vec<Value> = row
                .iter()
                .map(|(id, action)| {
                    let style = match action.style {
                        ActionStyle::Primary => 3,
                        ActionStyle::Danger => 4,
                        ActionStyle::Default => 2,
                    };
                    json!({"type": 2, "style": style, "label": label(&action.label, LABEL), "custom_id": id})
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
    use crate::backend::rich::fixtures::buttons;
    use crate::backend::rich::issue_ids;

    #[test]
    fn discord_buttons_come_in_rows_of_five_within_component_limits() {
        let (ids, actions) = buttons(27, 90);
        let shown = issue_ids(&actions, BUTTONS, &ids);
        assert_eq!(shown.len(), BUTTONS);
        let rows = components(&shown);
        let rows = rows.as_array().unwrap();
        assert_eq!(rows.len(), ROWS);
        for row in rows {
            assert_eq!(row["type"], 1);
            let buttons = row["components"].as_array().unwrap();
            assert_eq!(buttons.len(), BUTTONS_PER_ROW);
            for b in buttons {
                assert_eq!(b["type"], 2);
                assert_eq!(char_len(b["label"].as_str().unwrap()), LABEL);
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
}
