//! What the bot posts to Teams: message activities built from an [`Outgoing`].
//!
//! - A mention is `<at>Name</at>` in the text plus a `mention` entity naming the user
//!   ("Channel and group chat conversations with a bot", section "Add mentions to your
//!   messages", learn.microsoft.com/microsoftteams/platform/bots/how-to/conversations/channel-and-group-conversations).
//! - Plain replies are `text`, split at [`MESSAGE_LIMIT`] characters.
//! - Rich replies (a colour from the status or `extra`, a `{~}` pretext, other
//!   `extra.msteams` keys) are Adaptive Cards 1.4 ("Cards reference",
//!   learn.microsoft.com/microsoftteams/platform/task-modules-and-cards/cards/cards-reference):
//!   the pretext and the mention stay in `text`; the body is a `TextBlock` in a `Container`
//!   whose `style` shows the status (`good`, `attention`, `warning`); `extra.msteams.title`
//!   becomes a bold heading and `extra.msteams.fields` (`[{title, value}]`, the hubot shape)
//!   a `FactSet`. `extra.msteams.attachments` is passed through as given (an Adaptive Card
//!   the action author wrote), with the plain text as `text`.

use serde_json::{Map, Value, json};

use crate::backend::{Outgoing, Status, rich};

/// Characters per message (Teams accepts about 28 KB per message, cards included; 4000
/// characters leave room for markup in every script).
pub const MESSAGE_LIMIT: usize = 4000;
/// The `contentType` of an Adaptive Card attachment.
pub const ADAPTIVE_CARD: &str = "application/vnd.microsoft.card.adaptive";

/// A user to mention: their channel id and the name shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mention {
    /// `29:…` id.
    pub id: String,
    /// Display name.
    pub name: String,
}

impl Mention {
    fn markup(&self) -> String {
        format!("<at>{}</at>", escape(&self.name))
    }

    fn entity(&self) -> Value {
        json!({
            "type": "mention",
            "text": self.markup(),
            "mentioned": { "id": self.id, "name": self.name },
        })
    }
}

/// The message activities for `out` (without `replyToId`), in order.
pub fn activities(out: &Outgoing, mention: Option<&Mention>) -> Vec<Value> {
    let parts = rich::parts(out, "msteams");
    let lead = mention
        .map(|m| format!("{} ", m.markup()))
        .unwrap_or_default();
    let entities = mention.map(|m| vec![m.entity()]).unwrap_or_default();
    let with_entities = |mut activity: Value, first: bool| {
        if first && !entities.is_empty() {
            activity["entities"] = Value::Array(entities.clone());
        }
        activity
    };
    if let Some(given) = parts
        .extra
        .and_then(|x| x.get("attachments"))
        .and_then(Value::as_array)
    {
        let text = rich::plain_pieces(&lead, &parts, MESSAGE_LIMIT).swap_remove(0);
        let activity = json!({ "type": "message", "text": text, "attachments": given });
        return vec![with_entities(activity, true)];
    }
    if !parts.is_rich() {
        return rich::plain_pieces(&lead, &parts, MESSAGE_LIMIT)
            .into_iter()
            .enumerate()
            .map(|(i, text)| with_entities(json!({ "type": "message", "text": text }), i == 0))
            .collect();
    }
    let mut head = lead.clone();
    if let Some(p) = parts.pretext {
        head.push_str(p);
    }
    let style = container_style(out.status, parts.color.as_deref());
    crate::backend::split_message(parts.body, MESSAGE_LIMIT, crate::backend::char_len)
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            let card = card(&body, style, if i == 0 { parts.extra } else { None });
            let mut activity = json!({
                "type": "message",
                "attachments": [{ "contentType": ADAPTIVE_CARD, "content": card }],
            });
            if i == 0 && !head.trim().is_empty() {
                activity["text"] = Value::String(head.trim_end().to_owned());
            }
            with_entities(activity, i == 0)
        })
        .collect()
}

/// The update of a posted message (`PUT …/activities/{id}`): to new plain text, or with
/// [`Outgoing::replaces_whole`] to the first activity `out` renders to (card included).
pub fn update(id: &str, out: &Outgoing) -> Value {
    if out.replaces_whole
        && let Some(mut first) = activities(out, None).into_iter().next()
    {
        first["id"] = Value::String(id.to_owned());
        return first;
    }
    let text = crate::backend::split_message(&out.text, MESSAGE_LIMIT, crate::backend::char_len)
        .swap_remove(0);
    json!({ "type": "message", "id": id, "text": text })
}

/// An Adaptive Card with the body, styled, with `title` and `fields` from `extra`.
fn card(body: &str, style: Option<&str>, extra: Option<&Map<String, Value>>) -> Value {
    let mut items = Vec::new();
    if let Some(title) = extra.and_then(|x| x.get("title")).and_then(Value::as_str) {
        items.push(json!({ "type": "TextBlock", "text": title, "weight": "Bolder", "wrap": true }));
    }
    items.push(json!({ "type": "TextBlock", "text": body, "wrap": true }));
    if let Some(fields) = extra
        .and_then(|x| x.get("fields"))
        .and_then(Value::as_array)
    {
        let facts: Vec<Value> = fields
            .iter()
            .filter_map(|f| {
                let title = f.get("title").and_then(Value::as_str)?;
                let value = match f.get("value")? {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                Some(json!({ "title": title, "value": value }))
            })
            .collect();
        if !facts.is_empty() {
            items.push(json!({ "type": "FactSet", "facts": facts }));
        }
    }
    let mut container = json!({ "type": "Container", "items": items });
    if let Some(s) = style {
        container["style"] = Value::String(s.to_owned());
    }
    json!({
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.4",
        "body": [container],
    })
}

/// The container style for a status (Adaptive Cards have no free colours): from the
/// structured status, else `good`/`attention`/`warning` or a hubot colour name in `extra`.
fn container_style(status: Option<Status>, color: Option<&str>) -> Option<&'static str> {
    match status {
        Some(Status::Succeeded) => return Some("good"),
        Some(Status::Failed) => return Some("attention"),
        Some(Status::Running) => return Some("warning"),
        None => {}
    }
    match color?.to_ascii_lowercase().as_str() {
        "good" | "green" | "success" => Some("good"),
        "danger" | "attention" | "red" | "error" => Some("attention"),
        "warning" | "yellow" | "orange" => Some("warning"),
        _ => Some("emphasis"),
    }
}

/// A display name made safe inside `<at>…</at>`.
fn escape(name: &str) -> String {
    name.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Target;

    fn out(text: &str) -> Outgoing {
        Outgoing::text(
            Target::Room {
                id: "19:ops".into(),
                thread: None,
            },
            text,
        )
    }

    #[test]
    fn plain_text_with_a_mention_entity() {
        let m = Mention {
            id: "29:alice".into(),
            name: "Alice <A>".into(),
        };
        let a = activities(&out("done"), Some(&m));
        assert_eq!(a.len(), 1);
        assert_eq!(a[0]["text"], "<at>Alice &lt;A&gt;</at> done");
        assert_eq!(a[0]["entities"][0]["text"], "<at>Alice &lt;A&gt;</at>");
        assert_eq!(a[0]["entities"][0]["mentioned"]["id"], "29:alice");
        assert!(a[0].get("attachments").is_none());
    }

    #[test]
    fn long_text_is_split_and_only_the_first_part_mentions() {
        let m = Mention {
            id: "29:a".into(),
            name: "A".into(),
        };
        let a = activities(&out(&"word ".repeat(2000)), Some(&m));
        assert!(a.len() >= 3);
        assert!(
            a.iter()
                .all(|x| x["text"].as_str().unwrap().chars().count() <= MESSAGE_LIMIT)
        );
        assert!(a[0].get("entities").is_some());
        assert!(a[1].get("entities").is_none());
    }

    #[test]
    fn a_status_makes_an_adaptive_card() {
        let mut o = out("pretext{~}the body");
        o.status = Some(Status::Failed);
        o.extra = Some(
            json!({ "msteams": { "title": "Deploy", "fields": [{ "title": "host", "value": "web1" }, { "title": "n", "value": 3 }] } }),
        );
        let a = activities(&o, None);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0]["text"], "pretext");
        let card = &a[0]["attachments"][0];
        assert_eq!(card["contentType"], ADAPTIVE_CARD);
        let container = &card["content"]["body"][0];
        assert_eq!(container["style"], "attention");
        assert_eq!(container["items"][0]["text"], "Deploy");
        assert_eq!(container["items"][1]["text"], "the body");
        assert_eq!(container["items"][2]["facts"][1]["value"], "3");
    }

    #[test]
    fn given_attachments_pass_through() {
        let mut o = out("summary");
        let card = json!({ "contentType": ADAPTIVE_CARD, "content": { "type": "AdaptiveCard", "body": [] } });
        o.extra = Some(json!({ "msteams": { "attachments": [card.clone()] } }));
        let a = activities(&o, None);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0]["attachments"][0], card);
        assert_eq!(a[0]["text"], "summary");
    }

    #[test]
    fn updates_carry_the_id_and_cut_text() {
        let target = Target::Room {
            id: "19:c@thread.tacv2".into(),
            thread: None,
        };
        let u = update(
            "act-1",
            &Outgoing::text(target.clone(), "x".repeat(MESSAGE_LIMIT + 5)),
        );
        assert_eq!(u["id"], "act-1");
        assert_eq!(u["text"].as_str().unwrap().chars().count(), MESSAGE_LIMIT);
        assert!(u.get("attachments").is_none());

        let mut whole = Outgoing::text(target, "build 42 passed");
        whole.status = Some(Status::Succeeded);
        whole.replaces_whole = true;
        let u = update("act-1", &whole);
        assert_eq!(u["id"], "act-1");
        assert_eq!(u["attachments"][0]["contentType"], ADAPTIVE_CARD);
    }
}
