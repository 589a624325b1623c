//! The login page's HTML: self-contained (inline style, no script, no external asset), and
//! every value that is not a literal of this file goes through [`escape`].

use std::fmt::Write as _;

/// Escapes text for an HTML element body or a double- or single-quoted attribute value.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:34rem;margin:2rem auto;padding:0 1rem;color:#222}\
h1{font-size:1.4rem}fieldset{border:1px solid #bbb;border-radius:6px;margin:1rem 0;padding:1rem}\
label{display:block;margin:.5rem 0 .2rem}input[type=text],input[type=password]{width:100%;padding:.4rem;box-sizing:border-box}\
button{margin-top:.8rem;padding:.4rem 1rem}.error{background:#fde8e8;border:1px solid #e0a0a0;padding:.6rem;border-radius:6px}\
.note{color:#555;font-size:.9rem}.who{background:#eef3fb;border:1px solid #b8c8e8;padding:.6rem;border-radius:6px}";

/// A complete document around `body`.
fn document(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"referrer\" content=\"no-referrer\">\
<title>{}</title><style>{STYLE}</style></head><body>\n{body}\n</body></html>\n",
        escape(title)
    )
}

/// What the login form shows.
pub(crate) struct FormPage<'a> {
    /// The bot's name.
    pub(crate) bot_name: &'a str,
    /// The chat user the link belongs to (shown so that a forwarded link is noticed).
    pub(crate) chat_user: &'a str,
    /// The link id (hex), posted back.
    pub(crate) link_id: &'a str,
    /// The CSRF token for this link.
    pub(crate) csrf: &'a str,
    /// Attempts left before the link is burnt.
    pub(crate) attempts_left: u32,
    /// Why the previous attempt failed.
    pub(crate) error: Option<&'a str>,
    /// The username to prefill (from a failed attempt).
    pub(crate) username: &'a str,
}

/// The login form: StackStorm username and password, or an existing token.
pub(crate) fn form(page: &FormPage<'_>) -> String {
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>Log in to StackStorm for {bot}</h1>\n\
<p class=\"who\">This binds your StackStorm identity to the chat user <strong>{user}</strong>. \
Commands that chat user runs will then run as you in StackStorm. \
<strong>If that chat user is not you, close this page</strong>: someone forwarded you their link.</p>\n",
        bot = escape(page.bot_name),
        user = escape(page.chat_user),
    );
    if let Some(error) = page.error {
        let _ = writeln!(
            body,
            "<p class=\"error\" role=\"alert\">{}</p>",
            escape(error)
        );
    }
    let hidden = format!(
        "<input type=\"hidden\" name=\"id\" value=\"{}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(page.link_id),
        escape(page.csrf)
    );
    let _ = write!(
        body,
        "<form method=\"post\" autocomplete=\"off\">{hidden}<input type=\"hidden\" name=\"kind\" value=\"password\">\
<fieldset><legend>StackStorm username and password</legend>\
<label for=\"username\">Username</label><input type=\"text\" id=\"username\" name=\"username\" value=\"{username}\" required autocapitalize=\"none\" spellcheck=\"false\">\
<label for=\"password\">Password</label><input type=\"password\" id=\"password\" name=\"password\" required autocomplete=\"current-password\">\
<p class=\"note\">The bot exchanges these for a StackStorm token and keeps only the token. The password is not stored.</p>\
<button type=\"submit\">Log in</button></fieldset></form>\n\
<form method=\"post\" autocomplete=\"off\">{hidden}<input type=\"hidden\" name=\"kind\" value=\"token\">\
<fieldset><legend>Or an existing StackStorm token</legend>\
<label for=\"token\">Token</label><input type=\"password\" id=\"token\" name=\"token\" required>\
<p class=\"note\">A token from <code>st2 auth</code>; the bot checks it with StackStorm before using it.</p>\
<button type=\"submit\">Use this token</button></fieldset></form>\n\
<p class=\"note\">This link works once and for a few minutes. Attempts left: {attempts}.</p>",
        username = escape(page.username),
        attempts = page.attempts_left,
    );
    document("StackStorm login", &body)
}

/// The page after a successful login.
pub(crate) fn done(bot_name: &str, st2_user: &str, expires: &str) -> String {
    document(
        "Logged in",
        &format!(
            "<h1>Logged in</h1>\n<p>{bot} now runs your commands as StackStorm user <strong>{user}</strong> until {expires}.</p>\n\
<p class=\"note\">You can close this page. Use the bot's <code>session logout</code> command to end the session early.</p>",
            bot = escape(bot_name),
            user = escape(st2_user),
            expires = escape(expires),
        ),
    )
}

/// A page that only explains something (invalid link, refused request).
pub(crate) fn message(title: &str, text: &str) -> String {
    document(
        title,
        &format!("<h1>{}</h1>\n<p>{}</p>", escape(title), escape(text)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_quotes_and_controls() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(escape("a\u{0}b\nc"), "a\u{fffd}b\nc");
    }

    #[test]
    fn the_form_escapes_every_variable_part() {
        let evil = "\"><script>x()</script>";
        let html = form(&FormPage {
            bot_name: evil,
            chat_user: evil,
            link_id: evil,
            csrf: evil,
            attempts_left: 3,
            error: Some(evil),
            username: evil,
        });
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains(evil), "{html}");
        assert!(html.contains("&lt;script&gt;"));
        let done = done(evil, evil, evil);
        assert!(!done.contains("<script>"));
        let msg = message(evil, evil);
        assert!(!msg.contains("<script>"));
    }

    #[test]
    fn the_form_needs_no_external_asset() {
        let html = form(&FormPage {
            bot_name: "demo",
            chat_user: "alice",
            link_id: "00",
            csrf: "11",
            attempts_left: 5,
            error: None,
            username: "",
        });
        for external in [
            "http:",
            "https:",
            "src=",
            "<script",
            "<link",
            "action=\"http",
        ] {
            assert!(!html.contains(external), "{external} in {html}");
        }
        assert_eq!(html.matches("method=\"post\"").count(), 2);
    }
}
