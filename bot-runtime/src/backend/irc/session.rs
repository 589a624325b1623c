//! One IRC connection's protocol state, free of I/O so scripted server lines can drive it in
//! tests: registration (server `PASS`, SASL PLAIN through `CAP`/`AUTHENTICATE`, `NICK`/`USER`
//! with a `_` fallback when the nick is taken), NickServ `IDENTIFY`, joining the configured
//! channels, `PING`/`PONG`, tracking the bot's own `nick!user@host` (the prefix the server
//! puts in front of everything the bot says, which counts against the 512-byte line limit),
//! and turning `PRIVMSG`s into [`Incoming`] messages.

use std::collections::BTreeMap;

use base64::Engine as _;
use bot_config::IrcAuth;

use super::proto::{self, Message};
use crate::backend::{Incoming, Room, mention};
use crate::secret::Secret;

/// Longest `user` part servers accept (USERLEN), for the worst-case prefix.
const MAX_USER_LEN: usize = 10;
/// Longest host name, for the worst-case prefix.
const MAX_HOST_LEN: usize = 63;
/// Nick-collision retries (`bot_`, `bot__`, …) before giving up on this connection.
const MAX_NICK_ATTEMPTS: usize = 8;
/// SASL payloads go in chunks of this many base64 bytes (IRCv3 SASL 3.1).
const SASL_CHUNK: usize = 400;

/// What the session needs to know about the bot's account.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// Wanted nick.
    pub(crate) nickname: String,
    /// Account name for SASL and NickServ; also the `USER` name.
    pub(crate) account: String,
    /// Password for `auth`.
    pub(crate) password: Option<Secret>,
    /// Authentication method.
    pub(crate) auth: IrcAuth,
    /// Channels to join, as configured.
    pub(crate) rooms: Vec<String>,
    /// Real name sent in `USER`.
    pub(crate) realname: String,
}

/// Something the driver must do.
#[derive(Debug, PartialEq)]
pub(crate) enum Action {
    /// Write this line (without CRLF) now; `secret` lines are never logged.
    Send {
        /// The line.
        line: String,
        /// Whether it carries a password.
        secret: bool,
    },
    /// Hand this message to the bot.
    Deliver(Incoming),
    /// Registered and every channel joined (or refused): the connection is usable.
    Ready,
    /// Authentication failed for good: stop, do not reconnect.
    AuthFailed(String),
    /// The settings cannot work on this server (e.g. an invalid nick): stop.
    Invalid(String),
    /// Give up on this connection and reconnect later (with backoff).
    Reconnect(String),
}

/// SASL negotiation progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sasl {
    /// Not used on this connection.
    Off,
    /// `CAP LS` sent, collecting capabilities.
    Listing,
    /// `CAP REQ :sasl` sent.
    Requested,
    /// `AUTHENTICATE PLAIN` sent, waiting for `AUTHENTICATE +`.
    Started,
    /// Credentials sent, waiting for 903.
    Sent,
    /// 903 received, `CAP END` sent.
    Done,
}

/// Where a channel join stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Join {
    /// `JOIN` sent, no answer yet.
    Pending,
    /// The server echoed our `JOIN`.
    Joined,
    /// The server refused it (banned, invite-only, key…).
    Refused,
}

/// Protocol state of one connection.
#[derive(Debug)]
pub(crate) struct Session {
    settings: Settings,
    /// The nick the server knows us by (or the one we are trying).
    nick: String,
    nick_attempts: usize,
    registered: bool,
    /// `nick!user@host` as the server shows us, once seen.
    mask: Option<String>,
    sasl: Sasl,
    available_caps: Vec<String>,
    /// Waiting for NickServ to confirm `IDENTIFY` before joining.
    awaiting_identify: bool,
    /// Folded channel name → (name as configured, state).
    joins: BTreeMap<String, (String, Join)>,
    ready: bool,
}

impl Session {
    /// A session that has sent nothing yet.
    pub(crate) fn new(settings: Settings) -> Self {
        let nick = settings.nickname.clone();
        Self {
            settings,
            nick,
            nick_attempts: 0,
            registered: false,
            mask: None,
            sasl: Sasl::Off,
            available_caps: Vec::new(),
            awaiting_identify: false,
            joins: BTreeMap::new(),
            ready: false,
        }
    }

    /// The nick the server knows us by.
    pub(crate) fn nick(&self) -> &str {
        &self.nick
    }

    /// Whether registration finished (001 received).
    pub(crate) fn registered(&self) -> bool {
        self.registered
    }

    /// Whether the session waits for NickServ before joining.
    pub(crate) fn awaiting_identify(&self) -> bool {
        self.awaiting_identify
    }

    /// Length of the `nick!user@host` prefix the server adds to what we say: the one seen
    /// in our own `JOIN` echo, or the longest it could be.
    pub(crate) fn mask_len(&self) -> usize {
        match &self.mask {
            Some(mask) => mask.len(),
            None => self.nick.len() + 1 + MAX_USER_LEN + 1 + MAX_HOST_LEN,
        }
    }

    /// Lines to send as soon as the connection is open.
    pub(crate) fn start(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        match self.settings.auth {
            IrcAuth::Server => {
                if let Some(password) = &self.settings.password {
                    out.push(secret(proto::line("PASS", &[password.expose()])));
                }
            }
            IrcAuth::Sasl => {
                self.sasl = Sasl::Listing;
                out.push(send(proto::line("CAP", &["LS", "302"])));
            }
            IrcAuth::None | IrcAuth::NickServ => {}
        }
        out.push(send(proto::line("NICK", &[&self.nick])));
        let user = user_name(&self.settings.account, &self.settings.nickname);
        out.push(send(proto::line(
            "USER",
            &[&user, "0", "*", &self.settings.realname],
        )));
        out
    }

    /// Reacts to one line from the server.
    pub(crate) fn handle(&mut self, msg: &Message) -> Vec<Action> {
        let mut out = Vec::new();
        match msg.command.as_str() {
            "PING" => out.push(send(proto::line("PONG", &[msg.trailing()]))),
            "CAP" => self.on_cap(msg, &mut out),
            "AUTHENTICATE" => self.on_authenticate(msg, &mut out),
            // RPL_LOGGEDIN: SASL or NickServ made us logged in.
            "900" => {
                tracing::info!(account = %msg.param(2).unwrap_or(""), "logged in to services");
                if self.awaiting_identify {
                    self.awaiting_identify = false;
                    self.join_all(&mut out);
                }
            }
            // RPL_SASLSUCCESS
            "903" => {
                self.sasl = Sasl::Done;
                out.push(send(proto::line("CAP", &["END"])));
            }
            // ERR_NICKLOCKED, ERR_SASLFAIL, ERR_SASLTOOLONG, ERR_SASLABORTED
            "902" | "904" | "905" | "906" => out.push(Action::AuthFailed(format!(
                "SASL login as `{}` refused: {} {}",
                self.settings.account,
                msg.command,
                msg.trailing()
            ))),
            // ERR_PASSWDMISMATCH
            "464" => out.push(Action::AuthFailed(format!(
                "server password refused: {}",
                msg.trailing()
            ))),
            "001" => self.on_welcome(msg, &mut out),
            // ERR_NICKNAMEINUSE, ERR_NICKCOLLISION, ERR_UNAVAILRESOURCE
            "433" | "436" | "437" if !self.registered => self.next_nick(&mut out),
            // ERR_ERRONEUSNICKNAME
            "432" if !self.registered => {
                if self.nick_attempts == 0 {
                    out.push(Action::Invalid(format!(
                        "the server refuses the nickname `{}`: {}",
                        self.nick,
                        msg.trailing()
                    )));
                } else {
                    out.push(Action::Reconnect(format!(
                        "no usable nickname left after `{}`",
                        self.nick
                    )));
                }
            }
            // ERR_UNKNOWNCOMMAND for CAP: the server has no IRCv3 capabilities, so no SASL.
            "421"
                if msg.param(1).is_some_and(|c| c.eq_ignore_ascii_case("CAP"))
                    && self.sasl != Sasl::Off =>
            {
                out.push(Action::AuthFailed(
                    "the server does not support SASL (no CAP command); use `auth: nickserv` or `auth: server`"
                        .to_owned(),
                ));
            }
            "JOIN" => self.on_join(msg),
            // ERR_NOSUCHCHANNEL, ERR_TOOMANYCHANNELS, ERR_CHANNELISFULL, ERR_INVITEONLYCHAN,
            // ERR_BANNEDFROMCHAN, ERR_BADCHANNELKEY, ERR_NEEDREGGEDNICK (477)
            "403" | "405" | "471" | "473" | "474" | "475" | "477" => {
                if let Some(channel) = msg.param(1) {
                    self.on_join_refused(channel, msg.trailing());
                }
            }
            "KICK" => {
                if let (Some(channel), Some(victim)) = (msg.param(0), msg.param(1))
                    && proto::same_name(victim, &self.nick)
                {
                    tracing::warn!(
                        channel,
                        by = msg.nick().unwrap_or(""),
                        reason = msg.param(2).unwrap_or(""),
                        "kicked; rejoining"
                    );
                    out.push(send(proto::line("JOIN", &[channel])));
                }
            }
            "NICK" => {
                if let (Some(old), Some(new)) = (msg.nick(), msg.param(0))
                    && proto::same_name(old, &self.nick)
                {
                    self.nick = new.to_owned();
                    if let Some(mask) = &self.mask {
                        let rest = mask.split_once('!').map(|(_, r)| r).unwrap_or("");
                        self.mask = Some(format!("{new}!{rest}"));
                    }
                }
            }
            // RPL_HOSTHIDDEN: the server cloaked our host.
            "396" => {
                if let (Some(host), Some(mask)) = (msg.param(1), &self.mask) {
                    let user_part = mask.split_once('@').map(|(u, _)| u).unwrap_or(mask);
                    self.mask = Some(format!("{user_part}@{host}"));
                }
            }
            "CHGHOST" => {
                if msg.nick().is_some_and(|n| proto::same_name(n, &self.nick))
                    && let (Some(user), Some(host)) = (msg.param(0), msg.param(1))
                {
                    self.mask = Some(format!("{}!{user}@{host}", self.nick));
                }
            }
            "NOTICE" => self.on_notice(msg, &mut out),
            "PRIVMSG" => {
                if let Some(incoming) = self.on_privmsg(msg) {
                    out.push(Action::Deliver(incoming));
                }
            }
            "ERROR" => out.push(Action::Reconnect(format!(
                "server closed the link: {}",
                msg.trailing()
            ))),
            _ => {}
        }
        self.check_ready(&mut out);
        out
    }

    /// What the session waited for did not come in time: NickServ did not confirm
    /// `IDENTIFY` (join anyway), or channels did not answer the joins (carry on without them).
    pub(crate) fn timed_out(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        if self.awaiting_identify {
            tracing::warn!("NickServ did not confirm IDENTIFY in time; joining anyway");
            self.awaiting_identify = false;
            self.join_all(&mut out);
        } else {
            for (name, state) in self.joins.values_mut() {
                if *state == Join::Pending {
                    tracing::warn!(channel = %name, "no answer to JOIN; carrying on without it");
                    *state = Join::Refused;
                }
            }
        }
        self.check_ready(&mut out);
        out
    }

    fn on_cap(&mut self, msg: &Message, out: &mut Vec<Action>) {
        let sub = msg.param(1).unwrap_or("").to_ascii_uppercase();
        match (sub.as_str(), self.sasl) {
            ("LS", Sasl::Listing) => {
                // `CAP * LS * :caps…` continues; `CAP * LS :caps…` is the last line.
                let more = msg.params.len() >= 4 && msg.param(2) == Some("*");
                self.available_caps
                    .extend(msg.trailing().split_whitespace().map(str::to_owned));
                if more {
                    return;
                }
                let sasl = self
                    .available_caps
                    .iter()
                    .find(|c| *c == "sasl" || c.starts_with("sasl="));
                match sasl {
                    None => out.push(Action::AuthFailed(
                        "the server does not offer SASL; use `auth: nickserv` or `auth: server`"
                            .to_owned(),
                    )),
                    Some(cap) if cap.contains('=') && !cap_allows_plain(cap) => {
                        out.push(Action::AuthFailed(format!(
                            "the server offers SASL without PLAIN (`{cap}`)"
                        )))
                    }
                    Some(_) => {
                        self.sasl = Sasl::Requested;
                        out.push(send(proto::line("CAP", &["REQ", "sasl"])));
                    }
                }
            }
            ("ACK", Sasl::Requested) if msg.trailing().split_whitespace().any(|c| c == "sasl") => {
                self.sasl = Sasl::Started;
                out.push(send(proto::line("AUTHENTICATE", &["PLAIN"])));
            }
            ("NAK", Sasl::Requested) => out.push(Action::AuthFailed(format!(
                "the server refused the SASL capability: {}",
                msg.trailing()
            ))),
            _ => {}
        }
    }

    fn on_authenticate(&mut self, msg: &Message, out: &mut Vec<Action>) {
        if self.sasl != Sasl::Started || msg.param(0) != Some("+") {
            return;
        }
        let password = self
            .settings
            .password
            .as_ref()
            .map(Secret::expose)
            .unwrap_or("");
        let account = &self.settings.account;
        let payload = base64::engine::general_purpose::STANDARD
            .encode(format!("{account}\0{account}\0{password}"));
        for chunk in payload.as_bytes().chunks(SASL_CHUNK) {
            let chunk = std::str::from_utf8(chunk).unwrap_or("+");
            out.push(secret(proto::line("AUTHENTICATE", &[chunk])));
        }
        if payload.len() % SASL_CHUNK == 0 {
            out.push(send(proto::line("AUTHENTICATE", &["+"])));
        }
        self.sasl = Sasl::Sent;
    }

    fn on_welcome(&mut self, msg: &Message, out: &mut Vec<Action>) {
        if self.sasl != Sasl::Off && self.sasl != Sasl::Done {
            out.push(Action::AuthFailed(
                "the server completed registration without SASL; refusing to stay unauthenticated"
                    .to_owned(),
            ));
            return;
        }
        self.registered = true;
        if let Some(nick) = msg.param(0) {
            self.nick = nick.to_owned();
        }
        tracing::info!(nick = %self.nick, "registered on the IRC server");
        if self.settings.auth == IrcAuth::NickServ
            && let Some(password) = &self.settings.password
        {
            let text = format!("IDENTIFY {} {}", self.settings.account, password.expose());
            out.push(secret(proto::privmsg("NickServ", &text)));
            self.awaiting_identify = true;
            return;
        }
        self.join_all(out);
    }

    fn next_nick(&mut self, out: &mut Vec<Action>) {
        self.nick_attempts += 1;
        if self.nick_attempts > MAX_NICK_ATTEMPTS {
            out.push(Action::Reconnect(format!(
                "nicknames `{}` to `{}` are all taken",
                self.settings.nickname, self.nick
            )));
            return;
        }
        self.nick.push('_');
        tracing::info!(nick = %self.nick, "nickname taken; trying another");
        out.push(send(proto::line("NICK", &[&self.nick])));
    }

    fn join_all(&mut self, out: &mut Vec<Action>) {
        self.joins.clear();
        for room in &self.settings.rooms {
            self.joins
                .insert(proto::fold(room), (room.clone(), Join::Pending));
            out.push(send(proto::line("JOIN", &[room])));
        }
    }

    fn on_join(&mut self, msg: &Message) {
        let (Some(nick), Some(channel)) = (msg.nick(), msg.param(0)) else {
            return;
        };
        if !proto::same_name(nick, &self.nick) {
            return;
        }
        if let Some(prefix) = &msg.prefix
            && prefix.contains('@')
        {
            self.mask = Some(prefix.clone());
        }
        tracing::info!(channel, "joined");
        let key = proto::fold(channel);
        match self.joins.get_mut(&key) {
            Some(entry) => entry.1 = Join::Joined,
            None => {
                self.joins.insert(key, (channel.to_owned(), Join::Joined));
            }
        }
    }

    fn on_join_refused(&mut self, channel: &str, reason: &str) {
        if let Some(entry) = self.joins.get_mut(&proto::fold(channel))
            && entry.1 == Join::Pending
        {
            tracing::warn!(channel, reason, "cannot join channel");
            entry.1 = Join::Refused;
        }
    }

    fn on_notice(&mut self, msg: &Message, out: &mut Vec<Action>) {
        if !self.awaiting_identify
            || !msg
                .nick()
                .is_some_and(|n| n.eq_ignore_ascii_case("NickServ"))
        {
            return;
        }
        let text = proto::strip_formatting(msg.trailing()).to_lowercase();
        if text.contains("identified") || text.contains("logged in") {
            self.awaiting_identify = false;
            self.join_all(out);
        } else if text.contains("invalid password") || text.contains("incorrect") {
            tracing::error!(account = %self.settings.account, "NickServ refused the password; joining unidentified");
            self.awaiting_identify = false;
            self.join_all(out);
        }
    }

    fn on_privmsg(&self, msg: &Message) -> Option<Incoming> {
        let sender = msg.nick()?;
        let (target, raw) = (msg.param(0)?, msg.param(1)?);
        if proto::same_name(sender, &self.nick) {
            return None;
        }
        if proto::is_ctcp(raw) {
            tracing::debug!(from = sender, "ignoring CTCP");
            return None;
        }
        let text = proto::strip_formatting(raw);
        let room = if proto::is_channel(target) {
            Some(Room {
                id: target.to_owned(),
                name: target.to_owned(),
            })
        } else if proto::same_name(target, &self.nick) {
            None
        } else {
            return None;
        };
        let (mentioned, text) = match strip_mention(&text, &self.nick) {
            Some(rest) => (true, rest.to_owned()),
            None => (false, text.trim().to_owned()),
        };
        if text.is_empty() {
            return None;
        }
        Some(Incoming {
            user_id: sender.to_owned(),
            user: sender.to_owned(),
            room,
            text,
            mentioned,
            thread: None,
            message_id: msg.tag("msgid").map(str::to_owned),
        })
    }

    fn check_ready(&mut self, out: &mut Vec<Action>) {
        if self.ready || !self.registered || self.awaiting_identify {
            return;
        }
        if self
            .joins
            .values()
            .all(|(_, state)| *state != Join::Pending)
        {
            self.ready = true;
            out.push(Action::Ready);
        }
    }
}

/// `nick: text`, `nick, text`, `@nick: text` → `text` (nick compared under RFC 1459 case
/// mapping).
pub(crate) fn strip_mention<'a>(text: &'a str, nick: &str) -> Option<&'a str> {
    const IRC: mention::Rule = mention::Rule {
        opening: mention::Opening::OptionalAt,
        same: proto::same_name,
        after: mention::After::Separator {
            space_after_at: false,
        },
    };
    mention::strip(text, &[nick], &IRC)
}

/// Whether `sasl=MECH,MECH` lists PLAIN.
fn cap_allows_plain(cap: &str) -> bool {
    cap.split_once('=')
        .is_some_and(|(_, mechs)| mechs.split(',').any(|m| m.eq_ignore_ascii_case("PLAIN")))
}

/// The `USER` name: the account, or the nick, reduced to characters every server accepts.
fn user_name(account: &str, nick: &str) -> String {
    let source = if account.is_empty() { nick } else { account };
    let cleaned: String = source
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(MAX_USER_LEN)
        .collect();
    if cleaned.is_empty() {
        "st2bot".to_owned()
    } else {
        cleaned
    }
}

fn send(line: String) -> Action {
    Action::Send {
        line,
        secret: false,
    }
}

fn secret(line: String) -> Action {
    Action::Send { line, secret: true }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(auth: IrcAuth, password: Option<&str>) -> Settings {
        Settings {
            nickname: "st2bot".into(),
            account: "botacct".into(),
            password: password.map(Secret::new),
            auth,
            rooms: vec!["#ops".into(), "#Dev".into()],
            realname: "st2bot".into(),
        }
    }

    /// Feeds scripted server lines; returns every action, lines rendered as text.
    fn script(session: &mut Session, lines: &[&str]) -> Vec<Action> {
        lines
            .iter()
            .flat_map(|l| session.handle(&Message::parse(l).expect("scripted line parses")))
            .collect()
    }

    fn sent(actions: &[Action]) -> Vec<&str> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send { line, .. } => Some(line.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn plain_registration_nick_fallback_and_joins() {
        let mut s = Session::new(settings(IrcAuth::None, None));
        assert_eq!(sent(&s.start()), ["NICK st2bot", "USER botacct 0 * st2bot"]);
        let a = script(
            &mut s,
            &[":irc.localhost 433 * st2bot :Nickname already in use"],
        );
        assert_eq!(sent(&a), ["NICK st2bot_"]);
        let a = script(
            &mut s,
            &[":irc.localhost 001 st2bot_ :Welcome", "PING :irc.localhost"],
        );
        assert_eq!(sent(&a), ["JOIN #ops", "JOIN #Dev", "PONG irc.localhost"]);
        assert!(!a.contains(&Action::Ready));
        assert_eq!(s.nick(), "st2bot_");
        let a = script(
            &mut s,
            &[
                ":st2bot_!~botacct@127.0.0.1 JOIN :#ops",
                ":irc.localhost 474 st2bot_ #dev :Cannot join channel (+b)",
            ],
        );
        assert_eq!(a, [Action::Ready]);
        assert_eq!(s.mask_len(), "st2bot_!~botacct@127.0.0.1".len());
    }

    #[test]
    fn sasl_plain_exchange() {
        let mut s = Session::new(settings(IrcAuth::Sasl, Some("s3cret")));
        let start = s.start();
        assert_eq!(
            sent(&start),
            ["CAP LS 302", "NICK st2bot", "USER botacct 0 * st2bot"]
        );
        let a = script(
            &mut s,
            &[
                ":irc.localhost CAP * LS * :multi-prefix away-notify",
                ":irc.localhost CAP * LS :sasl=PLAIN,EXTERNAL cap-notify",
            ],
        );
        assert_eq!(sent(&a), ["CAP REQ sasl"]);
        let a = script(&mut s, &[":irc.localhost CAP * ACK :sasl"]);
        assert_eq!(sent(&a), ["AUTHENTICATE PLAIN"]);
        let a = script(&mut s, &["AUTHENTICATE +"]);
        let expected = base64::engine::general_purpose::STANDARD.encode("botacct\0botacct\0s3cret");
        assert_eq!(
            a,
            [Action::Send {
                line: format!("AUTHENTICATE {expected}"),
                secret: true
            }]
        );
        let a = script(
            &mut s,
            &[
                ":irc.localhost 900 st2bot st2bot!u@h botacct :You are now logged in as botacct",
                ":irc.localhost 903 st2bot :SASL authentication successful",
            ],
        );
        assert_eq!(sent(&a), ["CAP END"]);
        let a = script(&mut s, &[":irc.localhost 001 st2bot :Welcome"]);
        assert_eq!(sent(&a), ["JOIN #ops", "JOIN #Dev"]);
    }

    #[test]
    fn sasl_failures_are_fatal() {
        let mut s = Session::new(settings(IrcAuth::Sasl, Some("wrong")));
        s.start();
        script(
            &mut s,
            &[":x CAP * LS :sasl", ":x CAP * ACK :sasl", "AUTHENTICATE +"],
        );
        let a = script(&mut s, &[":x 904 st2bot :SASL authentication failed"]);
        assert!(
            matches!(&a[..], [Action::AuthFailed(r)] if r.contains("904")),
            "{a:?}"
        );

        let mut s = Session::new(settings(IrcAuth::Sasl, Some("pw")));
        s.start();
        let a = script(&mut s, &[":x CAP * LS :multi-prefix"]);
        assert!(matches!(&a[..], [Action::AuthFailed(r)] if r.contains("does not offer SASL")));

        let mut s = Session::new(settings(IrcAuth::Sasl, Some("pw")));
        s.start();
        let a = script(&mut s, &[":x 421 * CAP :Unknown command"]);
        assert!(matches!(&a[..], [Action::AuthFailed(_)]), "{a:?}");

        let mut s = Session::new(settings(IrcAuth::Sasl, Some("pw")));
        s.start();
        let a = script(&mut s, &[":x CAP * LS :sasl=EXTERNAL"]);
        assert!(matches!(&a[..], [Action::AuthFailed(r)] if r.contains("without PLAIN")));
    }

    #[test]
    fn long_sasl_payloads_are_chunked() {
        let long = "p".repeat(600);
        let mut s = Session::new(settings(IrcAuth::Sasl, Some(&long)));
        s.start();
        script(&mut s, &[":x CAP * LS :sasl", ":x CAP * ACK :sasl"]);
        let a = script(&mut s, &["AUTHENTICATE +"]);
        let lines = sent(&a);
        let payload: String = lines
            .iter()
            .map(|l| l.trim_start_matches("AUTHENTICATE "))
            .filter(|c| *c != "+")
            .collect();
        assert!(lines.len() >= 3, "{lines:?}");
        assert!(
            lines[..lines.len() - 1]
                .iter()
                .all(|l| l.len() == "AUTHENTICATE ".len() + 400)
        );
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(payload)
            .unwrap();
        assert_eq!(decoded, format!("botacct\0botacct\0{long}").into_bytes());
    }

    #[test]
    fn nickserv_identify_then_join() {
        let mut s = Session::new(settings(IrcAuth::NickServ, Some("pw")));
        assert_eq!(sent(&s.start()), ["NICK st2bot", "USER botacct 0 * st2bot"]);
        let a = script(
            &mut s,
            &[
                ":irc.localhost 001 st2bot :Welcome",
                ":NickServ!NickServ@services.localhost NOTICE st2bot :This nickname is registered.",
            ],
        );
        assert_eq!(
            a,
            [Action::Send {
                line: "PRIVMSG NickServ :IDENTIFY botacct pw".into(),
                secret: true
            }]
        );
        assert!(s.awaiting_identify());
        let a = script(
            &mut s,
            &[
                ":NickServ!NickServ@services.localhost NOTICE st2bot :You are now identified for \u{2}botacct\u{2}.",
            ],
        );
        assert_eq!(sent(&a), ["JOIN #ops", "JOIN #Dev"]);
        // The same through RPL_LOGGEDIN, and through the timeout.
        let mut s = Session::new(settings(IrcAuth::NickServ, Some("pw")));
        s.start();
        script(&mut s, &[":x 001 st2bot :Welcome"]);
        assert_eq!(
            sent(&script(&mut s, &[":x 900 st2bot m botacct :logged in"])).len(),
            2
        );
        let mut s = Session::new(settings(IrcAuth::NickServ, Some("pw")));
        s.start();
        script(&mut s, &[":x 001 st2bot :Welcome"]);
        assert_eq!(sent(&s.timed_out()).len(), 2);
        assert!(!s.awaiting_identify());
        // Then the joins go unanswered: ready without them.
        assert_eq!(s.timed_out(), [Action::Ready]);
    }

    #[test]
    fn server_password_goes_first_and_refusal_is_fatal() {
        let mut s = Session::new(settings(IrcAuth::Server, Some("pw")));
        let start = s.start();
        assert_eq!(
            start[0],
            Action::Send {
                line: "PASS pw".into(),
                secret: true
            }
        );
        let a = script(&mut s, &[":x 464 * :Password incorrect"]);
        assert!(matches!(&a[..], [Action::AuthFailed(_)]));
    }

    #[test]
    fn invalid_nick_and_exhausted_fallbacks() {
        let mut s = Session::new(settings(IrcAuth::None, None));
        s.start();
        assert!(matches!(
            &script(&mut s, &[":x 432 * st2bot :Erroneous nickname"])[..],
            [Action::Invalid(_)]
        ));
        let mut s = Session::new(settings(IrcAuth::None, None));
        s.start();
        let taken = ":x 433 * n :in use";
        let a = script(&mut s, &[taken; MAX_NICK_ATTEMPTS + 1]);
        assert!(matches!(a.last(), Some(Action::Reconnect(_))));
    }

    fn registered() -> Session {
        let mut s = Session::new(settings(IrcAuth::None, None));
        s.start();
        script(&mut s, &[":x 001 st2bot :Welcome"]);
        s
    }

    fn delivered(actions: Vec<Action>) -> Vec<Incoming> {
        actions
            .into_iter()
            .filter_map(|a| match a {
                Action::Deliver(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn privmsgs_become_incoming() {
        let mut s = registered();
        let got = delivered(script(
            &mut s,
            &[
                "@msgid=m1 :alice!a@h PRIVMSG #ops :!help",
                ":alice!a@h PRIVMSG #ops :ST2BOT: pack list",
                ":alice!a@h PRIVMSG #ops :st2bot, \u{2}run\u{2} date",
                ":bob!b@h PRIVMSG st2bot :!help",
                ":bob!b@h PRIVMSG #ops :\u{1}ACTION waves\u{1}",
                ":bob!b@h PRIVMSG st2bot :\u{1}VERSION\u{1}",
                ":st2bot!u@h PRIVMSG #ops :my own echo",
                ":bob!b@h NOTICE st2bot :!help",
                ":bob!b@h PRIVMSG someoneelse :!help",
                ":bob!b@h PRIVMSG #ops :st2bot:",
            ],
        ));
        let ops = Some(Room {
            id: "#ops".into(),
            name: "#ops".into(),
        });
        assert_eq!(got.len(), 4, "{got:#?}");
        assert_eq!(
            got[0],
            Incoming {
                user_id: "alice".into(),
                user: "alice".into(),
                room: ops.clone(),
                text: "!help".into(),
                mentioned: false,
                thread: None,
                message_id: Some("m1".into()),
            }
        );
        assert_eq!(
            (got[1].text.as_str(), got[1].mentioned),
            ("pack list", true)
        );
        assert_eq!((got[2].text.as_str(), got[2].mentioned), ("run date", true));
        assert_eq!((got[3].room.clone(), got[3].user.as_str()), (None, "bob"));
    }

    #[test]
    fn tracks_own_nick_host_and_kicks() {
        let mut s = registered();
        script(&mut s, &[":st2bot!~u@127.0.0.1 JOIN #ops"]);
        script(&mut s, &[":st2bot!~u@127.0.0.1 NICK :st2bot2"]);
        assert_eq!(s.nick(), "st2bot2");
        assert_eq!(s.mask_len(), "st2bot2!~u@127.0.0.1".len());
        script(
            &mut s,
            &[":x 396 st2bot2 cloak.example :is now your displayed host"],
        );
        assert_eq!(s.mask_len(), "st2bot2!~u@cloak.example".len());
        let a = script(&mut s, &[":op!o@h KICK #ops st2bot2 :bye"]);
        assert_eq!(sent(&a), ["JOIN #ops"]);
    }

    #[test]
    fn mentions() {
        assert_eq!(strip_mention("bot: hi", "bot"), Some("hi"));
        assert_eq!(strip_mention("  @Bot, hi", "bot"), Some("hi"));
        assert_eq!(strip_mention("bot hi", "bot"), None);
        assert_eq!(strip_mention("botany: hi", "bot"), None);
        assert_eq!(strip_mention("é", "bot"), None);
    }
}
