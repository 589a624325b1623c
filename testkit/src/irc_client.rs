//! A minimal IRC client for the tests, written independently of the bot's: it registers,
//! answers PINGs, joins channels, says things, and hands back raw lines exactly as the server
//! sent them (CRLF included) so tests can measure the 512-byte limit on what others receive.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::{Instant, timeout_at};

/// One received line, split just enough for assertions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// Exactly as received, CRLF included.
    pub raw: String,
    /// Prefix without `:` (`nick!user@host` or a server name).
    pub prefix: String,
    /// Command or numeric.
    pub command: String,
    /// Parameters, trailing included.
    pub params: Vec<String>,
}

impl Line {
    fn parse(raw: String) -> Self {
        let mut rest = raw.trim_end_matches(['\r', '\n']);
        if rest.starts_with('@') {
            rest = rest.split_once(' ').map(|(_, r)| r).unwrap_or("");
        }
        let mut prefix = String::new();
        if let Some(after) = rest.strip_prefix(':') {
            let (p, r) = after.split_once(' ').unwrap_or((after, ""));
            prefix = p.to_owned();
            rest = r;
        }
        let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
        let mut params = Vec::new();
        while !rest.is_empty() {
            if let Some(trailing) = rest.strip_prefix(':') {
                params.push(trailing.to_owned());
                break;
            }
            let (p, r) = rest.split_once(' ').unwrap_or((rest, ""));
            if !p.is_empty() {
                params.push(p.to_owned());
            }
            rest = r;
        }
        Self {
            command: command.to_owned(),
            prefix,
            params,
            raw,
        }
    }

    /// The sender's nick.
    pub fn nick(&self) -> &str {
        self.prefix.split('!').next().unwrap_or("")
    }

    /// The last parameter.
    pub fn text(&self) -> &str {
        self.params.last().map(String::as_str).unwrap_or("")
    }
}

/// A connected, registered test user.
pub struct IrcClient {
    /// The nick the server gave us.
    pub nick: String,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl IrcClient {
    /// Connects to `127.0.0.1:port` (plain text) and registers as `nick`.
    pub async fn connect(port: u16, nick: &str) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("test client cannot connect to port {port}: {e}"));
        let (read, writer) = stream.into_split();
        let mut client = Self {
            nick: nick.to_owned(),
            reader: BufReader::new(read),
            writer,
        };
        client.send(&format!("NICK {nick}")).await;
        client
            .send(&format!("USER {nick} 0 * :test user {nick}"))
            .await;
        let welcome = client
            .expect(Duration::from_secs(15), |l| {
                l.command == "001" || l.command == "433"
            })
            .await;
        assert_eq!(
            welcome.command, "001",
            "nick {nick} refused: {}",
            welcome.raw
        );
        client
    }

    /// Sends one raw line.
    /// Registers `account` with NickServ (Atheme) from a throwaway connection on `port`.
    pub async fn register_account(port: u16, account: &str, password: &str) {
        let mut owner = Self::connect(port, account).await;
        owner
            .say(
                "NickServ",
                &format!("REGISTER {password} {account}@example.org"),
            )
            .await;
        let answer = owner
            .expect(Duration::from_secs(30), |l| {
                l.command == "NOTICE" && l.nick() == "NickServ" && l.text().contains("registered")
            })
            .await;
        assert!(!answer.text().contains("not"), "{}", answer.raw);
        owner.send("QUIT").await;
    }

    pub async fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .expect("test client write");
    }

    /// Says something to a channel or a nick.
    pub async fn say(&mut self, target: &str, text: &str) {
        self.send(&format!("PRIVMSG {target} :{text}")).await;
    }

    /// Joins a channel and waits for the end of its names list.
    pub async fn join(&mut self, channel: &str) {
        self.send(&format!("JOIN {channel}")).await;
        self.expect(Duration::from_secs(10), |l| l.command == "366")
            .await;
    }

    /// The next line (PINGs answered and skipped), or `None` at end of stream or `deadline`.
    pub async fn next_line(&mut self, deadline: Instant) -> Option<Line> {
        loop {
            let mut raw = String::new();
            let read = timeout_at(deadline, self.reader.read_line(&mut raw)).await;
            match read {
                Ok(Ok(0)) | Err(_) => return None,
                Ok(Err(e)) => panic!("test client read: {e}"),
                Ok(Ok(_)) => {}
            }
            let line = Line::parse(raw);
            if line.command == "PING" {
                let pong = format!("PONG :{}", line.text());
                self.send(&pong).await;
                continue;
            }
            return Some(line);
        }
    }

    /// Reads until a line matches, panicking after `within` (with what was seen).
    pub async fn expect(&mut self, within: Duration, matches: impl Fn(&Line) -> bool) -> Line {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        while let Some(line) = self.next_line(deadline).await {
            if matches(&line) {
                return line;
            }
            seen.push(line.raw);
        }
        panic!(
            "{}: no matching line within {within:?}; saw:\n{}",
            self.nick,
            seen.join("")
        );
    }

    /// Waits for a `PRIVMSG` from `from` to `target` whose text contains `needle`.
    pub async fn privmsg_containing(
        &mut self,
        from: &str,
        target: &str,
        needle: &str,
        within: Duration,
    ) -> Line {
        self.expect(within, |l| {
            l.command == "PRIVMSG"
                && l.nick() == from
                && l.params.first().map(String::as_str) == Some(target)
                && l.text().contains(needle)
        })
        .await
    }

    /// Collects `PRIVMSG`s from `from` to `target` until one whose text is `last`.
    pub async fn privmsgs_until(
        &mut self,
        from: &str,
        target: &str,
        last: &str,
        within: Duration,
    ) -> Vec<Line> {
        let deadline = Instant::now() + within;
        let mut got = Vec::new();
        while let Some(line) = self.next_line(deadline).await {
            if line.command == "PRIVMSG"
                && line.nick() == from
                && line.params.first().map(String::as_str) == Some(target)
            {
                let done = line.text() == last;
                got.push(line);
                if done {
                    return got;
                }
            }
        }
        panic!(
            "{}: `{last}` from {from} never arrived; got {} lines:\n{}",
            self.nick,
            got.len(),
            got.iter().map(|l| l.raw.as_str()).collect::<String>()
        );
    }
}
