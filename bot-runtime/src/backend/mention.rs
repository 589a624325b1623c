//! Leading mentions of the bot: the one place that decides whether a chat message starts
//! by addressing the bot (`bot: help`, `@bot help`, `<@U123> help`) and what the command
//! after the mention is.
//!
//! Every service writes a mention its own way, so a [`Rule`] names what truly differs
//! (how the mention opens, how names compare, what may follow the name); the scanning,
//! separator and whitespace handling are shared. Each backend passes its rule constant
//! ([`SLACK`], [`MATTERMOST`], [`DISCORD`], [`ROCKETCHAT`], [`MATRIX`], [`XMPP`], and the
//! IRC session's rule, which compares nicks under RFC 1459 case mapping). Only a mention
//! at the very start counts (after leading whitespace); one later in the text does not.
//! The command is returned trimmed at both ends.

/// How a service writes a leading mention of the bot, and what may follow it.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    /// How the mention opens.
    pub opening: Opening,
    /// Whether a name as typed is the bot's name (see [`exact`], [`ascii_case`],
    /// [`any_case`]).
    pub same: fn(&str, &str) -> bool,
    /// What must follow the name or tag before the command.
    pub after: After,
}

/// How a mention opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opening {
    /// The name as typed, optionally after `@` (`bot: hi`, `@bot, hi`).
    OptionalAt,
    /// The name after a required `@` (`@bot hi`).
    At,
    /// The name exactly as typed, no sigil (Matrix, whose names carry their own).
    Bare,
    /// `<@ID>` markup around the bot's user id; `bang` also accepts `<@!ID>` (Discord's
    /// nickname form), `label` also accepts `<@ID|label>` (Slack).
    Tag { bang: bool, label: bool },
}

/// What must follow the bot's name before the command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// Exactly one `:` or `,` (IRC). With `space_after_at`, a name opened with `@` may be
    /// followed by whitespace instead (XMPP).
    Separator { space_after_at: bool },
    /// `:`, possibly after whitespace (Matrix display names may end a word early).
    Colon,
    /// Anything that cannot continue the name: optional `:`/`,` characters, then the
    /// command. `space_before` allows whitespace before the `:`/`,` (Discord).
    /// `word` says which characters continue a name (none for tags).
    Optional { space_before: bool, word: Word },
}

/// Which characters continue a user name after the bot's name (so `@bots` is not `@bot`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Word {
    /// No check (a tag ends at `>`).
    Any,
    /// Letters and digits of any script, `.`, `_`, `-` (Rocket.Chat).
    Unicode,
    /// ASCII letters and digits, `.`, `_`, `-`; trailing dots end a sentence, not the
    /// name (Mattermost: `@bot.` mentions `bot`).
    AsciiTrailingDots,
}

/// Names compare byte for byte.
pub fn exact(typed: &str, name: &str) -> bool {
    typed == name
}

/// Names compare ignoring ASCII case.
pub fn ascii_case(typed: &str, name: &str) -> bool {
    typed.eq_ignore_ascii_case(name)
}

/// Names compare ignoring case in any script.
pub fn any_case(typed: &str, name: &str) -> bool {
    typed.to_lowercase() == name.to_lowercase()
}

/// Slack: `<@U123>` or `<@U123|name>`, then optional `:`/`,`.
pub const SLACK: Rule = Rule {
    opening: Opening::Tag {
        bang: false,
        label: true,
    },
    same: exact,
    after: After::Optional {
        space_before: false,
        word: Word::Any,
    },
};

/// Discord: `<@123>` or `<@!123>`, then optional `:`/`,` (whitespace allowed before).
pub const DISCORD: Rule = Rule {
    opening: Opening::Tag {
        bang: true,
        label: false,
    },
    same: exact,
    after: After::Optional {
        space_before: true,
        word: Word::Any,
    },
};

/// Mattermost: `@username` in any ASCII case, then optional `:`/`,`.
pub const MATTERMOST: Rule = Rule {
    opening: Opening::At,
    same: ascii_case,
    after: After::Optional {
        space_before: false,
        word: Word::AsciiTrailingDots,
    },
};

/// Rocket.Chat: `@username` exactly, then optional `:`/`,`.
pub const ROCKETCHAT: Rule = Rule {
    opening: Opening::At,
    same: exact,
    after: After::Optional {
        space_before: false,
        word: Word::Unicode,
    },
};

/// Matrix: the display name or user id (any case), then `:`.
pub const MATRIX: Rule = Rule {
    opening: Opening::Bare,
    same: any_case,
    after: After::Colon,
};

/// XMPP rooms: `nick:`, `nick,`, `@nick:` or `@nick text` (any case).
pub const XMPP: Rule = Rule {
    opening: Opening::OptionalAt,
    same: any_case,
    after: After::Separator {
        space_after_at: true,
    },
};

/// The command after a leading mention of one of `names` (empty names never match), or
/// `None` when `text` does not start with one.
pub fn strip<'a, S: AsRef<str>>(text: &'a str, names: &[S], rule: &Rule) -> Option<&'a str> {
    let text = text.trim_start();
    names
        .iter()
        .map(AsRef::as_ref)
        .filter(|name| !name.is_empty())
        .find_map(|name| strip_one(text, name, rule))
}

/// [`strip`] for one name, as `(command, true)`, or `(text, false)` unchanged.
pub fn split<'a>(text: &'a str, name: &str, rule: &Rule) -> (&'a str, bool) {
    match strip(text, &[name], rule) {
        Some(command) => (command, true),
        None => (text, false),
    }
}

fn strip_one<'a>(text: &'a str, name: &str, rule: &Rule) -> Option<&'a str> {
    let (body, at) = match rule.opening {
        Opening::Tag { bang, label } => return strip_tag(text, name, rule, bang, label),
        Opening::OptionalAt => match text.strip_prefix('@') {
            Some(rest) => (rest, true),
            None => (text, false),
        },
        Opening::At => (text.strip_prefix('@')?, true),
        Opening::Bare => (text, false),
    };
    let rest = strip_name(body, name, rule.same)?;
    finish(rest, rule.after, at)
}

/// `<@ID>` (and the `!`/`|label` forms the rule allows), then what the rule allows after.
fn strip_tag<'a>(text: &'a str, id: &str, rule: &Rule, bang: bool, label: bool) -> Option<&'a str> {
    let rest = text.strip_prefix("<@")?;
    let rest = if bang {
        rest.strip_prefix('!').unwrap_or(rest)
    } else {
        rest
    };
    let typed_len = rest.find(['>', '|'])?;
    if !(rule.same)(&rest[..typed_len], id) {
        return None;
    }
    let rest = &rest[typed_len..];
    let rest = match rest.strip_prefix('>') {
        Some(rest) => rest,
        None if label => &rest[rest.find('>')? + 1..],
        None => return None,
    };
    finish(rest, rule.after, false)
}

/// The text after `name` at the start of `body`, compared character by character.
fn strip_name<'a>(body: &'a str, name: &str, same: fn(&str, &str) -> bool) -> Option<&'a str> {
    let chars = name.chars().count();
    let end = body
        .char_indices()
        .nth(chars)
        .map_or(body.len(), |(i, _)| i);
    let head = &body[..end];
    if head.chars().count() != chars || !same(head, name) {
        return None;
    }
    Some(&body[end..])
}

/// Applies the rule's separator to what follows the name; the command, trimmed.
fn finish(rest: &str, after: After, at: bool) -> Option<&str> {
    let command = match after {
        After::Separator { space_after_at } => match rest.strip_prefix([':', ',']) {
            Some(command) => command,
            None if space_after_at && at && rest.starts_with(char::is_whitespace) => rest,
            None => return None,
        },
        After::Colon => rest.trim_start().strip_prefix(':')?,
        After::Optional { space_before, word } => {
            if continues_name(rest, word) {
                return None;
            }
            let rest = if space_before {
                rest.trim_start()
            } else {
                rest
            };
            rest.trim_start_matches([':', ','])
        }
    };
    Some(command.trim())
}

/// Whether `rest` goes on with more of a user name (so the mention named someone else).
fn continues_name(rest: &str, word: Word) -> bool {
    match word {
        Word::Any => false,
        Word::Unicode => rest
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-')),
        Word::AsciiTrailingDots => {
            let run = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
                .unwrap_or(rest.len());
            !rest[..run].trim_end_matches('.').is_empty()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one<'a>(text: &'a str, name: &str, rule: &Rule) -> Option<&'a str> {
        strip(text, &[name], rule)
    }

    #[test]
    fn only_a_leading_mention_counts() {
        for (rule, mention) in [
            (&SLACK, "<@UBOT>"),
            (&DISCORD, "<@UBOT>"),
            (&MATTERMOST, "@UBOT"),
            (&ROCKETCHAT, "@UBOT"),
            (&MATRIX, "UBOT:"),
            (&XMPP, "UBOT:"),
        ] {
            assert_eq!(
                one(&format!("  {mention} help "), "UBOT", rule),
                Some("help")
            );
            assert_eq!(one(&format!("hi {mention} help"), "UBOT", rule), None);
            assert_eq!(one("help", "UBOT", rule), None);
            assert_eq!(one(&format!("{mention} help"), "", rule), None);
        }
    }

    #[test]
    fn separators_colon_and_comma() {
        assert_eq!(one("<@U1>: help", "U1", &SLACK), Some("help"));
        assert_eq!(one("<@U1>, help", "U1", &SLACK), Some("help"));
        assert_eq!(one("@bot: help", "bot", &ROCKETCHAT), Some("help"));
        assert_eq!(one("@bot, help", "bot", &MATTERMOST), Some("help"));
        assert_eq!(one("bot, hi", "bot", &XMPP), Some("hi"));
        assert_eq!(one("bot hi", "bot", &XMPP), None);
        assert_eq!(one("@bot hi", "bot", &XMPP), Some("hi"));
        assert_eq!(one("@bot", "bot", &XMPP), None);
        // Matrix takes only a colon, possibly after a space.
        assert_eq!(one("bot : hi", "bot", &MATRIX), Some("hi"));
        assert_eq!(one("bot, hi", "bot", &MATRIX), None);
        // Whitespace before the separator only where the service had it.
        assert_eq!(one("<@1> : hi", "1", &DISCORD), Some("hi"));
        assert_eq!(one("<@1> : hi", "1", &SLACK), Some(": hi"));
    }

    #[test]
    fn tags_and_their_variants() {
        assert_eq!(one("<@U1|st2> help", "U1", &SLACK), Some("help"));
        assert_eq!(one("<@U1X> help", "U1", &SLACK), None);
        assert_eq!(one("<@U1|st2 help", "U1", &SLACK), None);
        assert_eq!(one("<@!U1> help", "U1", &SLACK), None);
        assert_eq!(one("<@!42> help", "42", &DISCORD), Some("help"));
        assert_eq!(one("<@42|x> help", "42", &DISCORD), None);
        assert_eq!(one("<@42", "42", &DISCORD), None);
    }

    #[test]
    fn name_boundaries_per_service() {
        assert_eq!(one("@bots help", "bot", &ROCKETCHAT), None);
        assert_eq!(one("@bot. help", "bot", &ROCKETCHAT), None);
        assert_eq!(one("@botß help", "bot", &ROCKETCHAT), None);
        assert_eq!(one("@bot. help", "bot", &MATTERMOST), Some(". help"));
        assert_eq!(one("@bot.x help", "bot", &MATTERMOST), None);
        assert_eq!(one("@botß help", "bot", &MATTERMOST), Some("ß help"));
        assert_eq!(one("@bot", "bot", &MATTERMOST), Some(""));
        assert_eq!(one("botany: hi", "bot", &XMPP), None);
    }

    #[test]
    fn case_rules_per_service() {
        assert_eq!(one("@BOT help", "bot", &MATTERMOST), Some("help"));
        assert_eq!(one("@BOT help", "bot", &ROCKETCHAT), None);
        assert_eq!(one("<@u1> help", "U1", &SLACK), None);
        assert_eq!(one("ÉLAN: hi", "élan", &MATRIX), Some("hi"));
        assert_eq!(one("@ÉLAN hi", "élan", &XMPP), Some("hi"));
        assert!(ascii_case("Bot", "bOT") && !ascii_case("É", "é"));
        assert!(any_case("É", "é") && !exact("a", "A"));
    }

    #[test]
    fn several_names_and_multibyte_text() {
        let names = ["St2 Bot".to_owned(), "@st2bot:x".to_owned()];
        assert_eq!(strip("st2 bot: !help", &names, &MATRIX), Some("!help"));
        assert_eq!(strip("@st2bot:x: run it", &names, &MATRIX), Some("run it"));
        assert_eq!(strip("St2", &names, &MATRIX), None);
        assert_eq!(one("é", "bot", &XMPP), None);
        assert_eq!(one("ééé: x", "bo", &XMPP), None);
    }

    #[test]
    fn split_keeps_unmentioned_text_unchanged() {
        assert_eq!(split("  hello ", "bot", &MATTERMOST), ("  hello ", false));
        assert_eq!(split("@bot hello ", "bot", &MATTERMOST), ("hello", true));
    }
}
