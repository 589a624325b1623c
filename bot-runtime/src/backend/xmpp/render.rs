//! Turning an [`Outgoing`] reply into a `<message/>` stanza: `groupchat` to a room, `chat`
//! to a person; the plain `<body/>` always (mention, `{~}` pretext, text), and an XHTML-IM
//! (XEP-0071) `<html/>` alternative when `extra.xmpp` carries HTML:
//!
//! ```yaml
//! extra:
//!   xmpp:
//!     html: "<p>Deployed <strong>web-1</strong></p>"   # or `xmpp: "<p>…</p>"`
//! ```
//!
//! The HTML must be well-formed XML (XHTML). It is reduced to XEP-0071's integration set
//! (text, list, hypertext and image modules plus `style`): other elements are unwrapped,
//! `script`/`style`/`head` elements dropped with their content, links limited to `http`,
//! `https`, `mailto` and `xmpp`. HTML that does not parse is logged and left out; the plain
//! body still goes.

use tokio_xmpp::jid::Jid;
use tokio_xmpp::minidom::{Element, Node};
use tokio_xmpp::parsers::message::{Id, Lang, Message, MessageType};
use tokio_xmpp::parsers::ns;

use crate::backend::{Outgoing, Target, char_len, split_message, split_pretext};

/// Characters per message body: servers take far more (Prosody: 256 KiB stanzas); this
/// keeps messages readable.
pub(crate) const MAX_BODY: usize = 10_000;

/// Elements kept in XHTML-IM output (XEP-0071 §6 integration set, structure excluded).
const ALLOWED_ELEMENTS: &[&str] = &[
    "a",
    "abbr",
    "acronym",
    "address",
    "blockquote",
    "br",
    "cite",
    "code",
    "dd",
    "dfn",
    "div",
    "dl",
    "dt",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "img",
    "kbd",
    "li",
    "ol",
    "p",
    "pre",
    "q",
    "samp",
    "span",
    "strong",
    "ul",
    "var",
];

/// Elements dropped together with their content.
const DROPPED_ELEMENTS: &[&str] = &["script", "style", "head", "title", "object", "iframe"];

/// Why a reply cannot become a stanza.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RenderError {
    /// The target is not a JID.
    #[error("`{target}` is not a valid JID: {reason}")]
    BadTarget {
        /// The target as given.
        target: String,
        /// Why.
        reason: String,
    },
}

/// The destination JID and whether it is a room.
pub(crate) fn destination(out: &Outgoing) -> Result<(Jid, bool), RenderError> {
    let (raw, room) = match &out.target {
        Target::Room { id, .. } => (id.as_str(), true),
        Target::Direct { user } => (user.as_str(), false),
    };
    let jid = Jid::new(raw).map_err(|e| RenderError::BadTarget {
        target: raw.to_owned(),
        reason: e.to_string(),
    })?;
    Ok((jid, room))
}

/// The plain text of a reply: mention, pretext line, body.
pub(crate) fn plain_text(out: &Outgoing) -> String {
    let (pretext, body) = split_pretext(&out.text);
    let mut text = String::new();
    if let Some(user) = &out.mention {
        text.push_str(user);
        text.push_str(": ");
    }
    if let Some(pretext) = pretext {
        text.push_str(pretext.trim_end());
        text.push('\n');
    }
    text.push_str(body);
    text
}

/// The HTML `extra.xmpp` carries, when it does.
fn extra_html(out: &Outgoing) -> Option<&str> {
    let xmpp = out.extra.as_ref()?.get("xmpp")?;
    match xmpp {
        serde_json::Value::String(html) => Some(html),
        other => other.get("html")?.as_str(),
    }
}

/// The `<html xmlns='…xhtml-im'><body xmlns='…xhtml'>…</body></html>` payload for a reply,
/// or `None` when it has no (usable) HTML.
pub(crate) fn xhtml_payload(out: &Outgoing) -> Option<Element> {
    let html = extra_html(out)?;
    let wrapped = format!("<body xmlns='{}'>{html}</body>", ns::XHTML);
    let parsed: Element = match wrapped.parse() {
        Ok(e) => e,
        Err(error) => {
            tracing::warn!(%error, "extra.xmpp HTML is not well-formed XHTML; sending the plain body only");
            return None;
        }
    };
    let mut body = Element::builder("body", ns::XHTML).build();
    if let Some(user) = &out.mention {
        body.append_text(format!("{user}: "));
    }
    for node in parsed.nodes() {
        for clean in sanitize(node) {
            body.append_node(clean);
        }
    }
    Some(Element::builder("html", ns::XHTML_IM).append(body).build())
}

/// The sanitized form of one node (zero, one or several nodes: unwrapped elements give
/// their children).
fn sanitize(node: &Node) -> Vec<Node> {
    let element = match node {
        Node::Text(text) => return vec![Node::Text(text.clone())],
        Node::Element(e) => e,
    };
    let name = element.name().to_ascii_lowercase();
    if DROPPED_ELEMENTS.contains(&name.as_str()) {
        return Vec::new();
    }
    let children: Vec<Node> = element.nodes().flat_map(sanitize).collect();
    if !ALLOWED_ELEMENTS.contains(&name.as_str()) {
        return children;
    }
    let mut builder = Element::builder(name.as_str(), ns::XHTML);
    for ((attr_ns, attr), value) in element.attrs().iter() {
        if attr_ns.is_none() && allowed_attribute(&name, attr.as_str(), value) {
            builder = builder.attr(attr.clone(), value.as_str());
        }
    }
    let mut clean = builder.build();
    for child in children {
        clean.append_node(child);
    }
    vec![Node::Element(clean)]
}

/// XEP-0071 attributes per element, with safe URL schemes only.
fn allowed_attribute(element: &str, attr: &str, value: &str) -> bool {
    let safe_url = |v: &str| {
        let lower = v.trim().to_ascii_lowercase();
        ["http://", "https://", "mailto:", "xmpp:"]
            .iter()
            .any(|scheme| lower.starts_with(scheme))
    };
    match (element, attr) {
        (_, "style") => !value.to_ascii_lowercase().contains("url("),
        (_, "title") => true,
        ("a", "href") => safe_url(value),
        ("a", "type") => true,
        ("img", "src") => {
            let lower = value.trim().to_ascii_lowercase();
            lower.starts_with("http://") || lower.starts_with("https://")
        }
        ("img", "alt" | "height" | "width") => true,
        ("blockquote" | "q", "cite") => safe_url(value),
        _ => false,
    }
}

/// The first stanza for a reply (a short reply has one).
#[cfg(test)]
pub(crate) fn message(out: &Outgoing) -> Result<Message, RenderError> {
    Ok(messages(out)?.swap_remove(0))
}

/// The stanzas for a reply: the plain body split at [`MAX_BODY`] characters, the XHTML-IM
/// alternative (when there is one) on a single message, so it is never cut.
pub(crate) fn messages(out: &Outgoing) -> Result<Vec<Message>, RenderError> {
    let (to, room) = destination(out)?;
    let kind = if room {
        MessageType::Groupchat
    } else {
        MessageType::Chat
    };
    let html = xhtml_payload(out);
    let pieces = split_message(&plain_text(out), MAX_BODY, char_len);
    let single = pieces.len() == 1;
    let mut messages = Vec::with_capacity(pieces.len());
    for piece in pieces {
        let mut message = Message::new_with_type(kind.clone(), Some(to.clone()))
            .with_body(Lang::default(), piece);
        message.id = Some(Id(format!("st2bot-{:016x}", rand::random::<u64>())));
        if single && let Some(html) = &html {
            message.payloads.push(html.clone());
        }
        messages.push(message);
    }
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(target: Target, text: &str, extra: Option<serde_json::Value>) -> Outgoing {
        let mut out = Outgoing::text(target, text);
        out.extra = extra;
        out
    }

    fn room() -> Target {
        Target::Room {
            id: "ops@conference.localhost".into(),
            thread: None,
        }
    }

    #[test]
    fn groupchat_and_chat_with_plain_bodies() {
        let mut out = reply(room(), "Result{~}line 1\nline 2", None);
        out.mention = Some("alice".into());
        let m = message(&out).unwrap();
        assert_eq!(m.type_, MessageType::Groupchat);
        assert_eq!(
            m.to.as_ref().unwrap().to_string(),
            "ops@conference.localhost"
        );
        assert_eq!(
            m.get_best_body(vec![]).unwrap().1,
            "alice: Result\nline 1\nline 2"
        );
        assert!(m.payloads.is_empty());
        let dm = message(&reply(
            Target::Direct {
                user: "alice@localhost".into(),
            },
            "hi",
            None,
        ))
        .unwrap();
        assert_eq!(dm.type_, MessageType::Chat);
        let bad = message(&reply(Target::Direct { user: "@@".into() }, "hi", None));
        assert!(matches!(bad, Err(RenderError::BadTarget { .. })));
    }

    #[test]
    fn xhtml_im_from_extra_is_sanitized() {
        let extra = serde_json::json!({"xmpp": {"html":
            "<p>Deployed <strong>web-1</strong> <a href='https://st2/x' onclick='evil()'>log</a><a href='javascript:alert(1)'>x</a></p><script>alert(1)</script><blink>on</blink><img src='data:x' alt='i'/>"}});
        let m = message(&reply(room(), "Deployed web-1", Some(extra))).unwrap();
        assert_eq!(m.get_best_body(vec![]).unwrap().1, "Deployed web-1");
        let html = m
            .payloads
            .iter()
            .find(|p| p.is("html", ns::XHTML_IM))
            .unwrap();
        let xml = String::from(html);
        assert!(xml.contains("<strong>web-1</strong>"), "{xml}");
        assert!(xml.contains("href='https://st2/x'"), "{xml}");
        for banned in ["onclick", "javascript", "script", "blink", "data:x"] {
            assert!(!xml.contains(banned), "{banned} in {xml}");
        }
        assert!(xml.contains(">on<"), "unwrapped text kept: {xml}");
    }

    #[test]
    fn extra_as_string_and_broken_html() {
        let m = message(&reply(
            room(),
            "x",
            Some(serde_json::json!({"xmpp": "<em>x</em>"})),
        ))
        .unwrap();
        assert!(m.payloads.iter().any(|p| p.is("html", ns::XHTML_IM)));
        let broken = message(&reply(
            room(),
            "x",
            Some(serde_json::json!({"xmpp": "<p>unclosed"})),
        ))
        .unwrap();
        assert!(broken.payloads.is_empty());
        let slack_only = message(&reply(
            room(),
            "x",
            Some(serde_json::json!({"slack": {"color": "good"}})),
        ))
        .unwrap();
        assert!(slack_only.payloads.is_empty());
    }
}
