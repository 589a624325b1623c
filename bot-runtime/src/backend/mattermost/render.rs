//! Mattermost rendering: `POST /api/v4/posts` messages with `props.attachments`, and
//! interactive buttons, built from [`parts`](crate::backend::rich::parts).
use serde_json::{Value, json};

use crate::backend::rich::{legacy_attachment, parts, plain_pieces};
use crate::backend::{Action, ActionStyle, Outgoing, char_len, split_message};

/// Mattermost `POST /api/v4/posts` contents for `out`: `(message, props)` pairs, each
/// message under `limit` characters. `mention` is `@username`.
///
/// - `extra.mattermost.attachments`: used verbatim in `props.attachments` of the first post,
///   the plain text as the message;
/// - a rich message: the mention and pretext as the message, the body in coloured
///   attachments, one per piece;
/// - otherwise plain messages, split.
pub fn posts(out: &Outgoing, mention: Option<&str>, limit: usize) -> Vec<(String, Option<Value>)> {
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

/// Mattermost buttons (<https://developers.mattermost.com/integrate/plugins/interactive-messages/>):
/// one more attachment in `props.attachments` whose `actions` are buttons. Each button's
/// `integration` sends Mattermost's POST to `url` with `context` holding the button's id
/// (`action`) and the endpoint's `secret`, never the command (Mattermost keeps
/// `integration` on the server: clients do not see it). Action `id`s are letters and digits.
pub fn add_buttons(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Status;
    use crate::backend::rich::fixtures::{buttons, out};
    use crate::backend::rich::issue_ids;

    #[test]
    fn mattermost_shapes() {
        let posts = super::posts(
            &out("pre{~}body", None, Some(Status::Running)),
            Some("@alice"),
            4000,
        );
        assert_eq!(posts[0].0, "@alice: pre");
        let props = posts[0].1.as_ref().unwrap();
        assert_eq!(props["attachments"][0]["color"], "#ECB22E");
        assert_eq!(props["attachments"][0]["text"], "body");

        let given = json!([{"text": "x", "actions": []}]);
        let posts = super::posts(
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

        let plain = super::posts(&out("all plain{~}", None, None), None, 4000);
        assert_eq!(plain, vec![("all plain".to_owned(), None)]);
    }

    #[test]
    fn mattermost_buttons_are_one_more_attachment_with_the_id_and_secret_in_context() {
        let (ids, actions) = buttons(2, 7);
        let shown = issue_ids(&actions, usize::MAX, &ids);
        let mut props = None;
        add_buttons(&mut props, &shown, "https://bot.example/mm", "s3cret");
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
        let mut rich = posts(&out("pre{~}body", None, Some(Status::Running)), None, 4000)
            .pop()
            .unwrap()
            .1;
        add_buttons(&mut rich, &shown, "https://bot.example/mm", "s");
        let attachments = rich.unwrap()["attachments"].as_array().unwrap().clone();
        assert_eq!(attachments.len(), 2);
        assert_eq!(attachments[0]["text"], "body");
    }
}
