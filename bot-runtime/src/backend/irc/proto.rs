//! IRC wire format (RFC 1459 / RFC 2812 with IRCv3 message tags): parsing one received line
//! into a [`Message`], building lines to send without ever letting CR, LF or NUL through,
//! RFC 1459 case mapping, and the mIRC formatting codes people put in their text.

/// One received line, split into its parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Message {
    /// IRCv3 tags (`@msgid=…;account=…`), values unescaped.
    pub(crate) tags: Vec<(String, String)>,
    /// `nick!user@host` or a server name, without the leading `:`.
    pub(crate) prefix: Option<String>,
    /// Command or three-digit numeric, upper case.
    pub(crate) command: String,
    /// Parameters, the trailing one included (without its `:`).
    pub(crate) params: Vec<String>,
}

impl Message {
    /// Parses a line (CR/LF already removed or not). `None` for a line with no command.
    pub(crate) fn parse(line: &str) -> Option<Message> {
        let mut rest = line.trim_end_matches(['\r', '\n']).trim_start_matches(' ');
        let mut tags = Vec::new();
        if let Some(after) = rest.strip_prefix('@') {
            let (raw, tail) = after.split_once(' ').unwrap_or((after, ""));
            for tag in raw.split(';').filter(|t| !t.is_empty()) {
                let (key, value) = tag.split_once('=').unwrap_or((tag, ""));
                tags.push((key.to_owned(), unescape_tag(value)));
            }
            rest = tail.trim_start_matches(' ');
        }
        let mut prefix = None;
        if let Some(after) = rest.strip_prefix(':') {
            let (p, tail) = after.split_once(' ').unwrap_or((after, ""));
            prefix = Some(p.to_owned());
            rest = tail.trim_start_matches(' ');
        }
        let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
        if command.is_empty() {
            return None;
        }
        let mut params = Vec::new();
        loop {
            rest = rest.trim_start_matches(' ');
            if rest.is_empty() {
                break;
            }
            if let Some(trailing) = rest.strip_prefix(':') {
                params.push(trailing.to_owned());
                break;
            }
            let (param, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            params.push(param.to_owned());
            rest = tail;
        }
        Some(Message {
            tags,
            prefix,
            command: command.to_ascii_uppercase(),
            params,
        })
    }

    /// Parameter `i`, when present.
    pub(crate) fn param(&self, i: usize) -> Option<&str> {
        self.params.get(i).map(String::as_str)
    }

    /// The last parameter (the text of PRIVMSG, NOTICE, numerics), or `""`.
    pub(crate) fn trailing(&self) -> &str {
        self.params.last().map(String::as_str).unwrap_or("")
    }

    /// The nick of a `nick!user@host` prefix (`None` for server prefixes and no prefix).
    pub(crate) fn nick(&self) -> Option<&str> {
        let prefix = self.prefix.as_deref()?;
        match prefix.split_once('!') {
            Some((nick, _)) => Some(nick),
            None if !prefix.contains('.') => Some(prefix),
            None => None,
        }
    }

    /// A tag's value.
    pub(crate) fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Undoes IRCv3 tag value escaping (`\:` `\s` `\\` `\r` `\n`).
fn unescape_tag(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(':') => out.push(';'),
            Some('s') => out.push(' '),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// Removes what must never reach the wire inside one line: CR, LF and NUL become spaces.
pub(crate) fn clean(text: &str) -> String {
    text.chars()
        .map(|c| {
            if matches!(c, '\r' | '\n' | '\0') {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// Whether a parameter can be sent as a middle (non-trailing) parameter.
fn is_middle(param: &str) -> bool {
    !param.is_empty() && !param.starts_with(':') && !param.contains(' ')
}

/// Builds a line (without CRLF): `COMMAND p1 p2 :trailing`. Every part is [`clean`]ed; the
/// last parameter is sent as a trailing one when it needs to be.
pub(crate) fn line(command: &str, params: &[&str]) -> String {
    let mut out = clean(command);
    let count = params.len();
    for (i, param) in params.iter().enumerate() {
        let param = clean(param);
        out.push(' ');
        if i + 1 == count && !is_middle(&param) {
            out.push(':');
        } else if !is_middle(&param) {
            // A middle parameter cannot hold spaces: keep the line well-formed.
            out.push_str(
                &param
                    .replace(' ', "_")
                    .trim_start_matches(':')
                    .replace(':', "_"),
            );
            continue;
        }
        out.push_str(&param);
    }
    out
}

/// `PRIVMSG target :text`, the text always as the trailing parameter (so it may start with
/// `:` or hold spaces) and [`clean`]ed.
pub(crate) fn privmsg(target: &str, text: &str) -> String {
    let target = clean(target).replace(' ', "_");
    format!("PRIVMSG {target} :{}", clean(text))
}

/// RFC 1459 case mapping: `A-Z[]\~` lower to `a-z{}|^`.
pub(crate) fn fold(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'A'..='Z' => c.to_ascii_lowercase(),
            '[' => '{',
            ']' => '}',
            '\\' => '|',
            '~' => '^',
            other => other,
        })
        .collect()
}

/// Case-insensitive comparison of nicks and channels under RFC 1459 mapping.
pub(crate) fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len() && fold(a) == fold(b)
}

/// Whether a target names a channel rather than a nick.
pub(crate) fn is_channel(target: &str) -> bool {
    target.starts_with(['#', '&', '+', '!'])
}

/// Whether a PRIVMSG/NOTICE text is a CTCP request or reply (`\x01VERSION\x01`, ACTION…).
pub(crate) fn is_ctcp(text: &str) -> bool {
    text.starts_with('\u{1}')
}

/// Removes mIRC formatting: bold, italics, underline, strike-through, monospace, reverse,
/// reset and colours (`\x03` with up to two foreground and two background digits).
pub(crate) fn strip_formatting(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{2}' | '\u{f}' | '\u{11}' | '\u{16}' | '\u{1d}' | '\u{1e}' | '\u{1f}' => {}
            '\u{3}' => {
                let mut digits = 0;
                while digits < 2 && chars.peek().is_some_and(char::is_ascii_digit) {
                    chars.next();
                    digits += 1;
                }
                if digits > 0 && chars.peek() == Some(&',') {
                    let mut lookahead = chars.clone();
                    lookahead.next();
                    if lookahead.peek().is_some_and(char::is_ascii_digit) {
                        chars.next();
                        let mut bg = 0;
                        while bg < 2 && chars.peek().is_some_and(char::is_ascii_digit) {
                            chars.next();
                            bg += 1;
                        }
                    }
                }
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prefix_params_and_trailing() {
        let m = Message::parse(":alice!al@host PRIVMSG #ops :!help me\r\n").unwrap();
        assert_eq!(m.prefix.as_deref(), Some("alice!al@host"));
        assert_eq!(m.nick(), Some("alice"));
        assert_eq!(m.command, "PRIVMSG");
        assert_eq!(m.params, ["#ops", "!help me"]);
        let ping = Message::parse("PING :irc.localhost").unwrap();
        assert_eq!(
            (ping.prefix, ping.params),
            (None, vec!["irc.localhost".to_owned()])
        );
        let numeric = Message::parse(":irc.localhost 001  bot  :Welcome").unwrap();
        assert_eq!(numeric.nick(), None);
        assert_eq!(numeric.params, ["bot", "Welcome"]);
        assert_eq!(Message::parse(""), None);
        assert_eq!(Message::parse(":only.prefix"), None);
    }

    #[test]
    fn parses_tags() {
        let m =
            Message::parse("@msgid=abc;account=al\\sice;+draft :a!b@c PRIVMSG bot :hi").unwrap();
        assert_eq!(m.tag("msgid"), Some("abc"));
        assert_eq!(m.tag("account"), Some("al ice"));
        assert_eq!(m.tag("+draft"), Some(""));
        assert_eq!(m.trailing(), "hi");
    }

    #[test]
    fn built_lines_never_carry_line_breaks() {
        assert_eq!(
            line("PRIVMSG", &["#ops", "a\r\nb\0c"]),
            "PRIVMSG #ops :a  b c"
        );
        assert_eq!(line("NICK", &["bot"]), "NICK bot");
        assert_eq!(line("PONG", &[":x y"]), "PONG ::x y");
        assert_eq!(line("JOIN", &["#a b", "key"]), "JOIN #a_b key");
        assert_eq!(line("PRIVMSG", &["#ops", ""]), "PRIVMSG #ops :");
        assert_eq!(privmsg("#ops", "word"), "PRIVMSG #ops :word");
        assert_eq!(privmsg("#o ps", ":a\nb"), "PRIVMSG #o_ps ::a b");
    }

    #[test]
    fn case_mapping_and_ctcp() {
        assert!(same_name("St2Bot[1]", "st2bot{1}"));
        assert!(!same_name("bot", "bot_"));
        assert!(is_channel("#ops") && !is_channel("alice"));
        assert!(is_ctcp("\u{1}VERSION\u{1}"));
    }

    #[test]
    fn strips_colours_and_styles() {
        assert_eq!(
            strip_formatting("\u{2}!help\u{2} \u{3}04,12red\u{3} x"),
            "!help red x"
        );
        assert_eq!(strip_formatting("\u{3}4,x"), ",x");
        assert_eq!(strip_formatting("\u{1d}it\u{f}"), "it");
    }
}
