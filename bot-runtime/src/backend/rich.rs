//! Rich formatting shared by the web-API backends: the `{~}` pretext split, colours from the
//! structured execution [`Status`] (never from searching the text), and one function per
//! provider that turns an [`Outgoing`](super::Outgoing)'s body and `extra.<provider>` into
//! that service's rich shape. Every shape carries the same information as the plain-text
//! fallback: the pretext stays plain, the body goes into the rich part.

use serde_json::{Map, Value};

use super::Status;

/// A message text cut at `{~}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parts<'a> {
    /// Plain text before the rich body (`None` without `{~}`).
    pub pretext: Option<&'a str>,
    /// The body, rendered rich when the message is rich.
    pub body: &'a str,
    /// A trailing `{~}`: the whole text is plain, never rich.
    pub all_plain: bool,
}

/// Splits `text` at the first `{~}` (see STACKSTORM.md §6).
pub fn parts(text: &str) -> Parts<'_> {
    match text.split_once("{~}") {
        Some((pre, rest)) if rest.trim().is_empty() => Parts {
            pretext: None,
            body: pre,
            all_plain: true,
        },
        Some((pre, body)) => Parts {
            pretext: (!pre.trim().is_empty()).then_some(pre.trim_end()),
            body: body.trim_start_matches('\n'),
            all_plain: false,
        },
        None => Parts {
            pretext: None,
            body: text,
            all_plain: false,
        },
    }
}

/// The colour of a status as `0xRRGGBB` (Slack's `good`, `danger`, `warning`).
pub fn status_rgb(status: Status) -> u32 {
    match status {
        Status::Succeeded => 0x2E_B8_86,
        Status::Failed => 0xA3_02_00,
        Status::Running => 0xDA_A0_38,
    }
}

/// `#rrggbb` for a colour.
pub fn hex_colour(rgb: u32) -> String {
    format!("#{rgb:06x}")
}

/// Reads a colour given as `#rrggbb`, `rrggbb`, a number, or Slack's names.
pub fn parse_colour(value: &Value) -> Option<u32> {
    match value {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => match s.as_str() {
            "good" => Some(status_rgb(Status::Succeeded)),
            "danger" => Some(status_rgb(Status::Failed)),
            "warning" => Some(status_rgb(Status::Running)),
            other => {
                let hex = other.strip_prefix('#').unwrap_or(other);
                (hex.len() == 6)
                    .then(|| u32::from_str_radix(hex, 16).ok())
                    .flatten()
            }
        },
        _ => None,
    }
}

/// `extra.<provider>` as an object, when present.
pub fn provider_extra<'a>(
    extra: Option<&'a Value>,
    provider: &str,
) -> Option<&'a Map<String, Value>> {
    extra?.get(provider)?.as_object()
}

/// Discord's rich form of a message body.
#[derive(Clone, Debug, PartialEq)]
pub enum DiscordRich {
    /// Plain text only: no status and no `extra.discord`, or a trailing `{~}`.
    Plain,
    /// `extra.discord.embeds` given verbatim: sent as is, the body stays in `content`.
    Verbatim(Vec<Value>),
    /// One embed per body piece, built from the body: the first piece carries every field of
    /// `extra.discord` (title, url, fields, footer…), all carry the colour.
    Built(Vec<Value>),
}

/// Discord embeds for a body (each piece at most `description_limit` characters).
/// Colour: `extra.discord.color` (number, `#hex` or Slack name), else the status colour.
pub fn discord_embed(
    body: &str,
    status: Option<Status>,
    extra: Option<&Value>,
    description_limit: usize,
) -> DiscordRich {
    let discord = provider_extra(extra, "discord");
    if let Some(embeds) = discord
        .and_then(|d| d.get("embeds"))
        .and_then(Value::as_array)
    {
        return DiscordRich::Verbatim(embeds.clone());
    }
    if discord.is_none() && status.is_none() {
        return DiscordRich::Plain;
    }
    let colour = discord
        .and_then(|d| d.get("color").or_else(|| d.get("colour")))
        .and_then(parse_colour)
        .or_else(|| status.map(status_rgb));
    let pieces = if body.trim().is_empty() {
        Vec::new()
    } else {
        super::split_message(body, description_limit, super::char_len)
    };
    let mut embeds = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let mut embed = Map::new();
        if i == 0
            && let Some(d) = discord
        {
            for (key, value) in d {
                if !matches!(key.as_str(), "color" | "colour" | "embeds" | "description") {
                    embed.insert(key.clone(), value.clone());
                }
            }
        }
        embed.insert("description".into(), Value::String(piece.clone()));
        if let Some(c) = colour {
            embed.insert("color".into(), Value::from(c));
        }
        embeds.push(Value::Object(embed));
    }
    if embeds.is_empty()
        && let Some(d) = discord
    {
        // No body, but the extra may still carry a title or fields worth showing.
        let mut embed: Map<String, Value> = d
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "color" | "colour" | "embeds"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !embed.is_empty() {
            if let Some(c) = colour {
                embed.insert("color".into(), Value::from(c));
            }
            embeds.push(Value::Object(embed));
        }
    }
    DiscordRich::Built(embeds)
}

/// Rocket.Chat's rich form of a message body.
#[derive(Clone, Debug, PartialEq)]
pub enum RocketChatRich {
    /// Plain text only.
    Plain,
    /// `extra.rocketchat.attachments` given verbatim; the body stays in `text`.
    Verbatim(Vec<Value>),
    /// One attachment per body piece (`text`, `color`, and on the first piece every field of
    /// `extra.rocketchat`, like hubot-stackstorm merges them).
    Built(Vec<Value>),
}

/// Rocket.Chat attachments for a body (each piece at most `text_limit` characters).
pub fn rocketchat_attachments(
    body: &str,
    status: Option<Status>,
    extra: Option<&Value>,
    text_limit: usize,
) -> RocketChatRich {
    let rc = provider_extra(extra, "rocketchat");
    if let Some(attachments) = rc
        .and_then(|d| d.get("attachments"))
        .and_then(Value::as_array)
    {
        return RocketChatRich::Verbatim(attachments.clone());
    }
    if rc.is_none() && status.is_none() {
        return RocketChatRich::Plain;
    }
    let colour = rc
        .and_then(|d| d.get("color"))
        .and_then(parse_colour)
        .or_else(|| status.map(status_rgb));
    let pieces = if body.trim().is_empty() {
        vec![String::new()]
    } else {
        super::split_message(body, text_limit, super::char_len)
    };
    let attachments = pieces
        .into_iter()
        .enumerate()
        .map(|(i, piece)| {
            let mut a = Map::new();
            if i == 0
                && let Some(d) = rc
            {
                for (key, value) in d {
                    if !matches!(key.as_str(), "color" | "attachments" | "text") {
                        a.insert(key.clone(), value.clone());
                    }
                }
            }
            a.insert("text".into(), Value::String(piece));
            if let Some(c) = colour {
                a.insert("color".into(), Value::String(hex_colour(c)));
            }
            Value::Object(a)
        })
        .filter(|a| {
            a.as_object()
                .is_some_and(|o| o.len() > 1 || o["text"] != "")
        })
        .collect();
    RocketChatRich::Built(attachments)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn splits_pretext() {
        assert_eq!(
            parts("Ran it{~}output"),
            Parts {
                pretext: Some("Ran it"),
                body: "output",
                all_plain: false
            }
        );
        assert!(parts("plain{~}").all_plain);
        assert_eq!(parts("plain{~}").body, "plain");
        assert_eq!(parts("x").pretext, None);
    }

    #[test]
    fn colours() {
        assert_eq!(hex_colour(status_rgb(Status::Failed)), "#a30200");
        assert_eq!(parse_colour(&json!("#00ff00")), Some(0x00ff00));
        assert_eq!(parse_colour(&json!("danger")), Some(0xA30200));
        assert_eq!(parse_colour(&json!(255)), Some(255));
        assert_eq!(parse_colour(&json!("nope")), None);
    }

    #[test]
    fn discord_embed_from_status_and_extra() {
        assert_eq!(discord_embed("x", None, None, 4096), DiscordRich::Plain);
        let DiscordRich::Built(e) = discord_embed("out", Some(Status::Failed), None, 4096) else {
            panic!("not built")
        };
        assert_eq!(e, vec![json!({"description": "out", "color": 0xA30200})]);
        let extra = json!({"discord": {"title": "T", "color": "#010203"}});
        let DiscordRich::Built(e) = discord_embed("out", Some(Status::Failed), Some(&extra), 4096)
        else {
            panic!("not built")
        };
        assert_eq!(
            e,
            vec![json!({"title": "T", "description": "out", "color": 0x010203})]
        );
        let verbatim = json!({"discord": {"embeds": [{"title": "given"}]}});
        assert_eq!(
            discord_embed("out", None, Some(&verbatim), 4096),
            DiscordRich::Verbatim(vec![json!({"title": "given"})])
        );
    }

    #[test]
    fn long_bodies_become_several_embeds() {
        let body = "line\n".repeat(2000);
        let DiscordRich::Built(e) = discord_embed(&body, Some(Status::Succeeded), None, 4096)
        else {
            panic!("not built")
        };
        assert!(e.len() >= 3);
        for embed in &e {
            let d = embed["description"].as_str().unwrap();
            assert!(d.chars().count() <= 4096);
            assert_eq!(embed["color"], json!(0x2EB886));
        }
    }

    #[test]
    fn rocketchat_attachments_merge_extra() {
        assert_eq!(
            rocketchat_attachments("x", None, None, 5000),
            RocketChatRich::Plain
        );
        let extra = json!({"rocketchat": {"title": "T", "color": "good"}});
        let RocketChatRich::Built(a) = rocketchat_attachments("out", None, Some(&extra), 5000)
        else {
            panic!("not built")
        };
        assert_eq!(
            a,
            vec![json!({"title": "T", "text": "out", "color": "#2eb886"})]
        );
        let verbatim = json!({"rocketchat": {"attachments": [{"text": "given"}]}});
        assert_eq!(
            rocketchat_attachments("out", None, Some(&verbatim), 5000),
            RocketChatRich::Verbatim(vec![json!({"text": "given"})])
        );
    }
}
