//! The Text backend: the terminal. Each line read from standard input is a message from one
//! user in one room (`--user`, `--room`; `--room -` for a direct message); replies are
//! printed to standard output, one message per block.
//!
//! Output shape (stable, used by transcript tests): a reply to the current room is printed as
//! is; one to another room as `[#room] text`; a private one as `[to user] text`. Thread ids
//! are shown as `[#room thread 1]`. Terminal control characters in replies are printed
//! escaped (`\x1b`), never raw. End of input closes the incoming side; replies still
//! queued are printed before the backend returns. An input line longer than
//! [`MAX_LINE_BYTES`] is skipped with a warning ([`LineSplitter`]).
//!
//! Where input or output is a pipe (scripts, the benchmarks, a supervisor that pipes the
//! bot), it is read or written on the runtime's thread, through a descriptor of its own in
//! non-blocking mode ([`reopen_pipe`]): a command then costs no thread hand-over. Anything
//! else (a terminal, a file, a socket) is read and written on threads of their own (see
//! [`read_stdin_lines`] and [`StdoutWriter`]): those reads and writes block and cannot be
//! cancelled, and shutdown must never wait for one.

use std::borrow::Cow;
use std::io::{BufRead, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use bot_config::TextSpec;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, oneshot};

use super::{
    Backend, BackendError, BackendIo, BackendOptions, BoxFuture, Capabilities, ConnState, Incoming,
    Outgoing, Room, Target, split_pretext,
};

/// The terminal backend.
#[derive(Debug)]
pub struct TextBackend {
    user: String,
    room: Option<String>,
    banner_help: Option<String>,
}

impl TextBackend {
    /// The backend for a definition and the command-line options.
    pub fn new(spec: &TextSpec, options: &BackendOptions) -> Self {
        let user = options
            .user
            .clone()
            .or_else(|| (!spec.user.is_empty()).then(|| spec.user.to_string()))
            .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
            .unwrap_or_else(|| "operator".to_owned());
        let room = options
            .room
            .clone()
            .unwrap_or_else(|| spec.room.to_string());
        let room = (!room.is_empty() && room != "-").then_some(room);
        Self {
            user,
            room,
            banner_help: options.banner_help.clone(),
        }
    }

    /// The line printed (on standard error) when the bot starts: who you are, where, how
    /// to get help and how to quit; `None` when the options ask for no banner.
    pub fn banner(&self) -> Option<String> {
        let help = self.banner_help.as_ref()?;
        let place = match &self.room {
            Some(room) => format!("in room {room}"),
            None => "in a direct message with the bot".to_owned(),
        };
        Some(format!(
            "You are {} {place}: type {help} for commands, Ctrl-D to quit.",
            self.user
        ))
    }

    fn render(&self, out: &Outgoing) -> String {
        let (pretext, body) = split_pretext(&out.text);
        let mut text = String::new();
        if let Some(m) = &out.mention {
            text.push_str(&format!("@{m}: "));
        }
        if let Some(p) = pretext {
            text.push_str(p.trim_end());
            text.push('\n');
        }
        text.push_str(body);
        let label = match &out.target {
            Target::Room { id, thread } => {
                let same = self.room.as_deref() == Some(id.as_str());
                match (same, thread) {
                    (true, None) => None,
                    (_, Some(t)) => Some(format!("[{id} thread {t}] ")),
                    (false, None) => Some(format!("[{id}] ")),
                }
            }
            Target::Direct { user } => Some(format!("[to {user}] ")),
        };
        let mut rendered = label.unwrap_or_default();
        rendered.push_str(&text);
        let mut rendered = escape_controls(&rendered).into_owned();
        if !rendered.ends_with('\n') {
            rendered.push('\n');
        }
        rendered
    }
}

impl Backend for TextBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_message_len: 100_000,
            rich: false,
            threads: false,
            edit: false,
            buttons: false,
        }
    }

    fn run(self: Box<Self>, io: BackendIo) -> BoxFuture<'static, Result<(), BackendError>> {
        Box::pin(async move {
            let BackendIo {
                incoming,
                mut outgoing,
                state,
                shutdown,
            } = io;
            let _ = state.send(ConnState::Connected);
            // Only a person at a terminal needs a prompt; piped input gets clean output.
            let prompt = std::io::IsTerminal::is_terminal(&std::io::stdin());
            if let Some(banner) = self.banner() {
                eprintln!("{banner}");
            }
            show_prompt(prompt);
            let mut stdout = match reopen_pipe(std::io::stdout(), PipeEnd::Write) {
                Some(fd) => StdoutWriter::spawn(pipe::Sender::from_owned_fd(fd)?, prompt),
                None => StdoutWriter::start(std::io::stdout(), prompt)?,
            };
            let mut lines = read_stdin_lines();
            let mut incoming = Some(incoming);
            let mut counter = 0u64;
            loop {
                tokio::select! {
                    line = lines.recv(), if incoming.is_some() => {
                        match line {
                            Some(Ok(line)) => {
                                let text = line.trim();
                                if text.is_empty() {
                                    continue;
                                }
                                counter += 1;
                                let message = Incoming {
                                    user_id: self.user.clone(),
                                    user: self.user.clone(),
                                    room: self.room.clone().map(|r| Room { id: r.clone(), name: r }),
                                    text: text.to_owned(),
                                    mentioned: false,
                                    thread: None,
                                    message_id: Some(counter.to_string()),
                                };
                                if let Some(tx) = &incoming
                                    && tx.send(message).await.is_err() {
                                        incoming = None;
                                    }
                            }
                            Some(Err(e)) => {
                                tracing::error!(error = %e, "text backend: cannot read standard input; no more input");
                                incoming = None;
                            }
                            None => {
                                tracing::debug!("text backend: end of input");
                                incoming = None;
                            }
                        }
                    }
                    reply = outgoing.recv() => {
                        match reply {
                            Some(reply) => stdout.write(self.render(&reply)).await?,
                            None => break,
                        }
                    }
                    () = shutdown.cancelled() => {
                        while let Ok(reply) = outgoing.try_recv() {
                            stdout.write(self.render(&reply)).await?;
                        }
                        break;
                    }
                }
            }
            stdout.finish().await?;
            Ok(())
        })
    }
}

/// How long stopping waits for the writer to print what is queued; a reader that stopped
/// reading cannot hold the bot's shutdown longer.
const FINAL_WRITE_WAIT: Duration = Duration::from_secs(5);

/// Standard output (or any writer), written on a thread of its own. A reply is handed over
/// whole and written in one piece; whenever nothing more is queued the writer flushes and,
/// at a terminal, prints the input prompt (after the replies, so it is never printed above
/// them). Writes cannot be cancelled, so they stay off the runtime's thread: a terminal or
/// pipe that stops reading blocks the writer, never the bot.
struct StdoutWriter {
    replies: mpsc::Sender<String>,
    /// What the writer thread ended with: `Ok` after the last reply was written and
    /// flushed, the first write error otherwise.
    ended: oneshot::Receiver<std::io::Result<()>>,
}

impl StdoutWriter {
    /// Starts the thread that writes to `out`, showing the prompt after replies when
    /// `prompt`.
    fn start<W: Write + Send + 'static>(out: W, prompt: bool) -> std::io::Result<Self> {
        let (replies, mut queue) = mpsc::channel::<String>(64);
        let (report, ended) = oneshot::channel();
        std::thread::Builder::new()
            .name("stdout".into())
            .spawn(move || {
                let mut out = out;
                let mut write_all = || -> std::io::Result<()> {
                    while let Some(reply) = queue.blocking_recv() {
                        out.write_all(reply.as_bytes())?;
                        if queue.is_empty() {
                            out.flush()?;
                            show_prompt(prompt);
                        }
                    }
                    out.flush()
                };
                let _ = report.send(write_all());
            })?;
        Ok(Self { replies, ended })
    }

    /// Starts a task, on the caller's runtime, that writes to `out` (a non-blocking pipe:
    /// waiting for its reader costs no thread), showing the prompt after replies when
    /// `prompt`. Same contract as [`StdoutWriter::start`].
    fn spawn<W: AsyncWrite + Unpin + Send + 'static>(out: W, prompt: bool) -> Self {
        let (replies, mut queue) = mpsc::channel::<String>(64);
        let (report, ended) = oneshot::channel();
        tokio::spawn(async move {
            let mut out = out;
            let write_all = async {
                while let Some(reply) = queue.recv().await {
                    out.write_all(reply.as_bytes()).await?;
                    if queue.is_empty() {
                        out.flush().await?;
                        show_prompt(prompt);
                    }
                }
                out.flush().await
            };
            let _ = report.send(write_all.await);
        });
        Self { replies, ended }
    }

    /// Queues `reply`; the writer's error when it has stopped on one.
    async fn write(&mut self, reply: String) -> std::io::Result<()> {
        if self.replies.send(reply).await.is_ok() {
            return Ok(());
        }
        Err(self.writer_error().await)
    }

    /// Why the writer thread stopped early.
    async fn writer_error(&mut self) -> std::io::Error {
        match (&mut self.ended).await {
            Ok(Err(e)) => e,
            Ok(Ok(())) | Err(_) => std::io::Error::other("the output thread stopped"),
        }
    }

    /// Waits (at most [`FINAL_WRITE_WAIT`]) until what is queued has been written and
    /// flushed.
    async fn finish(self) -> std::io::Result<()> {
        self.finish_within(FINAL_WRITE_WAIT).await
    }

    async fn finish_within(self, wait: Duration) -> std::io::Result<()> {
        let Self { replies, ended } = self;
        drop(replies);
        match tokio::time::timeout(wait, ended).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(std::io::Error::other("the output thread stopped")),
            Err(_) => {
                tracing::warn!(
                    wait_ms = wait.as_millis() as u64,
                    "text backend: standard output is not being read; replies still queued are lost"
                );
                Ok(())
            }
        }
    }
}

/// Prints the input prompt on standard error, when input is a terminal.
fn show_prompt(prompt: bool) {
    if prompt {
        use std::io::Write as _;
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(b"> ");
        let _ = err.flush();
    }
}

/// Standard input, line by line. A pipe is read by a task on the runtime's thread (a
/// non-blocking read is cancelled with the runtime). Anything else is read on a thread of
/// its own: a blocking read from a terminal cannot be cancelled, so shutdown must never
/// wait for one (tokio's `stdin` would hold the runtime's shutdown until the next line);
/// the thread is never joined, it ends with the process or at end of input. Invalid UTF-8
/// is decoded lossily (U+FFFD), so one stray byte costs a character, not the bot.
fn read_stdin_lines() -> mpsc::Receiver<std::io::Result<String>> {
    let (tx, rx) = mpsc::channel(64);
    if let Some(fd) = reopen_pipe(std::io::stdin(), PipeEnd::Read) {
        match pipe::Receiver::from_owned_fd(fd) {
            Ok(input) => {
                tokio::spawn(async move {
                    read_lines_async(tokio::io::BufReader::new(input), &tx).await;
                });
                return rx;
            }
            Err(e) => {
                tracing::debug!(error = %e, "text backend: reading standard input on a thread");
            }
        }
    }
    let spawned = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            read_lines(stdin.lock(), &tx);
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "text backend: cannot start the input thread");
    }
    rx
}

/// The longest line the Text backend reads, in bytes: twice the longest command the
/// dispatcher takes ([`crate::dispatch::MAX_COMMAND_BYTES`]), so an over-long command still
/// gets the dispatcher's reply, while a runaway writer (a file without line ends, a binary
/// piped in by mistake) costs at most this much memory per line. A longer line is skipped
/// whole, with a warning.
const MAX_LINE_BYTES: usize = 2 * crate::dispatch::MAX_COMMAND_BYTES;

/// Cuts a byte stream into lines: the input thread and the input task both feed it, chunk
/// by chunk, so the two read the same lines. A line is decoded lossily (invalid UTF-8
/// becomes U+FFFD: one stray byte costs a character, not the bot) and loses its line end
/// (`\n`, and any `\r` before it); a last line without one is a line too.
#[derive(Debug, Default)]
struct LineSplitter {
    line: Vec<u8>,
    /// Bytes of the current line seen beyond [`MAX_LINE_BYTES`]: it is being skipped.
    skipped: usize,
}

impl LineSplitter {
    /// Takes the bytes of `chunk` up to and including the first line end. Returns how many
    /// it took and the line they ended, if any.
    fn feed(&mut self, chunk: &[u8]) -> (usize, Option<String>) {
        let (piece, used, ended) = match chunk.iter().position(|&b| b == b'\n') {
            Some(at) => (&chunk[..at], at + 1, true),
            None => (chunk, chunk.len(), false),
        };
        if self.skipped == 0 && self.line.len() + piece.len() <= MAX_LINE_BYTES {
            self.line.extend_from_slice(piece);
        } else {
            self.skipped += self.line.len() + piece.len();
            self.line = Vec::new();
        }
        (used, if ended { self.take() } else { None })
    }

    /// At end of input: the last line, when it had no line end.
    fn finish(&mut self) -> Option<String> {
        if self.line.is_empty() && self.skipped == 0 {
            return None;
        }
        self.take()
    }

    fn take(&mut self) -> Option<String> {
        if self.skipped > 0 {
            tracing::warn!(
                bytes = self.skipped,
                limit = MAX_LINE_BYTES,
                "text backend: skipped an input line longer than the limit"
            );
            self.skipped = 0;
            return None;
        }
        let raw = std::mem::take(&mut self.line);
        let end = raw.iter().rposition(|&b| b != b'\r').map_or(0, |i| i + 1);
        Some(String::from_utf8_lossy(&raw[..end]).into_owned())
    }
}

/// Sends each line of `input` ([`LineSplitter`]) to `tx` until end of input, a read error
/// (sent too), or the receiver going away.
fn read_lines(mut input: impl BufRead, tx: &mpsc::Sender<std::io::Result<String>>) {
    let mut lines = LineSplitter::default();
    loop {
        let chunk = match input.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        if chunk.is_empty() {
            if let Some(line) = lines.finish() {
                let _ = tx.blocking_send(Ok(line));
            }
            return;
        }
        let (used, line) = lines.feed(chunk);
        input.consume(used);
        if let Some(line) = line
            && tx.blocking_send(Ok(line)).is_err()
        {
            return;
        }
    }
}

/// [`read_lines`] for a non-blocking reader: the same lines, read on the runtime.
async fn read_lines_async(
    mut input: impl AsyncBufRead + Unpin,
    tx: &mpsc::Sender<std::io::Result<String>>,
) {
    let mut lines = LineSplitter::default();
    loop {
        let chunk = match input.fill_buf().await {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        if chunk.is_empty() {
            if let Some(line) = lines.finish() {
                let _ = tx.send(Ok(line)).await;
            }
            return;
        }
        let (used, line) = lines.feed(chunk);
        input.consume(used);
        if let Some(line) = line
            && tx.send(Ok(line)).await.is_err()
        {
            return;
        }
    }
}

/// Which end of a pipe [`reopen_pipe`] opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PipeEnd {
    Read,
    Write,
}

/// A descriptor of its own, in non-blocking mode, for the pipe behind `fd` (standard input
/// or output); `None` when `fd` is not a pipe or cannot be reopened (then it is read or
/// written on a thread). Reopening through `/proc/self/fd` gives a new open
/// file description: switching *it* to non-blocking leaves the inherited one (shared with
/// the parent, and with standard error after `2>&1`) blocking, as other writers expect.
/// Only pipes are reopened: a terminal reopened could become a controlling terminal, a
/// file would start again at its beginning.
fn reopen_pipe(fd: impl AsFd, end: PipeEnd) -> Option<OwnedFd> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let fd = fd.as_fd().as_raw_fd();
    let path = format!("/proc/self/fd/{fd}");
    if !std::fs::metadata(&path).ok()?.file_type().is_fifo() {
        return None;
    }
    let reopened = std::fs::OpenOptions::new()
        .read(end == PipeEnd::Read)
        .write(end == PipeEnd::Write)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&path);
    match reopened {
        Ok(file) => Some(file.into()),
        Err(e) => {
            tracing::debug!(fd, error = %e, "text backend: cannot reopen the pipe; using a thread");
            None
        }
    }
}

/// `text` with terminal control characters made visible, so a reply or a StackStorm result
/// cannot move the cursor, retitle the window or hide text: C0 controls other than `\n` and
/// `\t` (ESC becomes `\x1b`), DEL, and C1 controls (CSI becomes `\u{9b}`).
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    let visible = |c: char| !c.is_control() || c == '\n' || c == '\t';
    if text.chars().all(visible) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            c if visible(c) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(room: &str) -> TextBackend {
        TextBackend::new(
            &TextSpec {
                user: "alice".into(),
                room: room.to_owned().into(),
                simulator: false,
            },
            &BackendOptions::default(),
        )
    }

    #[test]
    fn renders_targets() {
        let b = backend("ops");
        let here = Outgoing::text(
            Target::Room {
                id: "ops".into(),
                thread: None,
            },
            "hi",
        );
        assert_eq!(b.render(&here), "hi\n");
        let there = Outgoing::text(
            Target::Room {
                id: "dev".into(),
                thread: None,
            },
            "hi",
        );
        assert_eq!(b.render(&there), "[dev] hi\n");
        let mut dm = Outgoing::text(Target::Direct { user: "bob".into() }, "pre{~}body");
        dm.mention = Some("bob".into());
        assert_eq!(b.render(&dm), "[to bob] @bob: pre\nbody\n");
        assert_eq!(backend("-").room, None);
    }

    #[test]
    fn the_banner_says_who_where_how_to_get_help_and_how_to_quit() {
        let b = TextBackend::new(
            &TextSpec {
                user: "".into(),
                room: "ops".into(),
                simulator: false,
            },
            &BackendOptions {
                user: Some("operator".into()),
                banner_help: Some("!help".into()),
                ..BackendOptions::default()
            },
        );
        assert_eq!(
            b.banner().as_deref(),
            Some("You are operator in room ops: type !help for commands, Ctrl-D to quit.")
        );
        assert_eq!(backend("ops").banner(), None);
    }

    #[test]
    fn terminal_controls_are_printed_escaped() {
        assert_eq!(escape_controls("plain\ttext\n"), "plain\ttext\n");
        assert_eq!(
            escape_controls("\u{1b}[2J\u{1b}]0;pwned\u{7}x\u{9b}31m\u{7f}\r"),
            "\\x1b[2J\\x1b]0;pwned\\x07x\\u{9b}31m\\x7f\\x0d"
        );
        let b = backend("ops");
        let out = Outgoing::text(
            Target::Room {
                id: "ops".into(),
                thread: None,
            },
            "result: \u{1b}[31mred\u{1b}[0m",
        );
        assert_eq!(b.render(&out), "result: \\x1b[31mred\\x1b[0m\n");
    }

    /// A writer that records what was written and how often it was flushed.
    #[derive(Clone, Default)]
    struct Recorder(std::sync::Arc<std::sync::Mutex<(Vec<u8>, usize)>>);

    impl std::io::Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().0.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.0.lock().unwrap().1 += 1;
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_writer_prints_replies_in_order_and_flushes_them() {
        let out = Recorder::default();
        let mut writer = StdoutWriter::start(out.clone(), false).unwrap();
        for i in 0..100 {
            writer.write(format!("reply {i}\n")).await.unwrap();
        }
        writer.finish().await.unwrap();
        let (written, flushes) = out.0.lock().unwrap().clone();
        let expected: String = (0..100).map(|i| format!("reply {i}\n")).collect();
        assert_eq!(String::from_utf8(written).unwrap(), expected);
        assert!(flushes >= 1, "flushed at the end at least");
    }

    /// A writer whose reader went away.
    struct Closed;

    impl std::io::Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_write_error_reaches_the_backend() {
        let writer = StdoutWriter::start(Closed, false).unwrap();
        assert_the_broken_pipe_is_reported(writer).await;
    }

    /// Writes until `writer` reports its error, which must be a broken pipe.
    async fn assert_the_broken_pipe_is_reported(mut writer: StdoutWriter) {
        let mut error = None;
        for _ in 0..1000 {
            if let Err(e) = writer.write("lost\n".into()).await {
                error = Some(e);
                break;
            }
        }
        let error = error.expect("the broken pipe is reported");
        assert_eq!(error.kind(), std::io::ErrorKind::BrokenPipe);
    }

    /// A writer whose reader never reads: every write blocks until the test ends.
    struct Stuck(std::sync::Mutex<std::sync::mpsc::Receiver<()>>);

    impl std::io::Write for Stuck {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            let _ = self.0.lock().unwrap().recv();
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_reader_that_stopped_reading_cannot_hold_the_shutdown() {
        let (release, blocked) = std::sync::mpsc::channel();
        let mut writer = StdoutWriter::start(Stuck(std::sync::Mutex::new(blocked)), false).unwrap();
        writer.write("never read\n".into()).await.unwrap();
        let started = std::time::Instant::now();
        let finished = writer.finish_within(Duration::from_millis(100)).await;
        assert!(finished.is_ok(), "a stuck reader is logged, not an error");
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(release);
    }

    /// 200,000 bytes of replies: more than a pipe holds, so the writer waits for its
    /// reader on the runtime (non-blocking) several times.
    #[tokio::test]
    async fn the_pipe_writer_prints_replies_in_order_and_waits_for_its_reader() {
        use tokio::io::AsyncReadExt;
        let (out, mut input) = pipe::pipe().unwrap();
        let reader = tokio::spawn(async move {
            let mut all = String::new();
            input.read_to_string(&mut all).await.map(|_| all)
        });
        let mut writer = StdoutWriter::spawn(out, false);
        for i in 0..20_000 {
            writer.write(format!("reply {i:04}\n")).await.unwrap();
        }
        writer.finish().await.unwrap();
        let written = reader.await.unwrap().unwrap();
        let expected: String = (0..20_000).map(|i| format!("reply {i:04}\n")).collect();
        assert!(expected.len() > 200_000);
        assert!(written == expected, "replies lost or out of order");
    }

    #[tokio::test]
    async fn a_closed_pipe_reaches_the_backend() {
        let (out, input) = pipe::pipe().unwrap();
        drop(input);
        assert_the_broken_pipe_is_reported(StdoutWriter::spawn(out, false)).await;
    }

    #[tokio::test]
    async fn a_pipe_nobody_reads_cannot_hold_the_shutdown() {
        let (out, _unread) = pipe::pipe().unwrap();
        let mut writer = StdoutWriter::spawn(out, false);
        for _ in 0..64 {
            writer.write("x".repeat(8192)).await.unwrap();
        }
        let started = std::time::Instant::now();
        let finished = writer.finish_within(Duration::from_millis(100)).await;
        assert!(finished.is_ok(), "a stuck reader is logged, not an error");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn pipe_input_is_decoded_lossily_and_reading_goes_on() {
        let input: &[u8] = b"!local \xff\xfe date\r\n!help\nlast";
        let (tx, mut rx) = mpsc::channel(8);
        read_lines_async(input, &tx).await;
        drop(tx);
        let mut lines = Vec::new();
        while let Ok(Ok(line)) = rx.try_recv() {
            lines.push(line);
        }
        assert_eq!(lines, ["!local \u{fffd}\u{fffd} date", "!help", "last"]);
    }

    #[tokio::test]
    async fn a_pipe_is_reopened_and_the_inherited_descriptor_stays_blocking() {
        use std::io::Read as _;
        use tokio::io::AsyncReadExt;
        let (mut inherited, mut feed) = std::io::pipe().unwrap();
        let own = reopen_pipe(&inherited, PipeEnd::Read).expect("a pipe is reopened");
        let mut own = pipe::Receiver::from_owned_fd(own).unwrap();
        feed.write_all(b"first\n").unwrap();
        let mut got = [0u8; 6];
        own.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"first\n");
        // The inherited descriptor still blocks: a read on it waits for the next line
        // instead of failing with `WouldBlock`.
        let blocked = std::thread::spawn(move || {
            let mut one = [0u8; 7];
            inherited.read_exact(&mut one).map(|()| one)
        });
        std::thread::sleep(Duration::from_millis(50));
        feed.write_all(b"second\n").unwrap();
        assert_eq!(&blocked.join().unwrap().unwrap(), b"second\n");

        let (_input, output) = std::io::pipe().unwrap();
        assert!(reopen_pipe(&output, PipeEnd::Write).is_some());
    }

    #[test]
    fn what_is_not_a_pipe_is_left_to_the_threads() {
        let file = std::fs::File::open("Cargo.toml").unwrap();
        assert!(reopen_pipe(&file, PipeEnd::Read).is_none());
        let null = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .unwrap();
        assert!(reopen_pipe(&null, PipeEnd::Write).is_none());
    }

    /// Every line `read_lines` sends for `input`, read through a buffer of `capacity`.
    fn lines_read(input: &[u8], capacity: usize) -> Vec<String> {
        let (tx, mut rx) = mpsc::channel(input.len() + 1);
        read_lines(std::io::BufReader::with_capacity(capacity, input), &tx);
        drop(tx);
        std::iter::from_fn(|| rx.try_recv().ok().map(Result::unwrap)).collect()
    }

    /// The same through the input task's reader.
    async fn lines_read_async(input: &[u8], capacity: usize) -> Vec<String> {
        let (tx, mut rx) = mpsc::channel(input.len() + 1);
        read_lines_async(tokio::io::BufReader::with_capacity(capacity, input), &tx).await;
        drop(tx);
        std::iter::from_fn(|| rx.try_recv().ok().map(Result::unwrap)).collect()
    }

    /// What the lines of `input` are, written plainly: split at `\n`, `\r`s before it
    /// dropped, decoded lossily, no line after a final `\n`.
    fn lines_expected(input: &[u8]) -> Vec<String> {
        let mut pieces: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
        if pieces.last().is_some_and(|p| p.is_empty()) {
            pieces.pop();
        }
        pieces
            .into_iter()
            .filter(|p| p.len() <= MAX_LINE_BYTES)
            .map(|p| {
                let mut p = p;
                while let [rest @ .., b'\r'] = p {
                    p = rest;
                }
                String::from_utf8_lossy(p).into_owned()
            })
            .collect()
    }

    proptest::proptest! {
        /// Any input, read in chunks of any size by the thread or by the task, gives the
        /// same lines.
        #[test]
        fn lines_do_not_depend_on_chunking_or_on_the_reader(
            input in proptest::collection::vec(
                proptest::sample::select(vec![b'a', b' ', b'\n', b'\r', 0xff, 0xc3, 0xa9]),
                0..200,
            ),
            capacity in 1usize..16,
        ) {
            let expected = lines_expected(&input);
            proptest::prop_assert_eq!(&lines_read(&input, capacity), &expected);
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let from_task = runtime.block_on(lines_read_async(&input, capacity));
            proptest::prop_assert_eq!(&from_task, &expected);
        }
    }

    #[test]
    fn an_over_long_line_is_skipped_whole_and_reading_goes_on() {
        let mut input = vec![b'x'; MAX_LINE_BYTES];
        input.extend_from_slice(b"\n");
        input.extend(std::iter::repeat_n(b'y', 8 * MAX_LINE_BYTES + 1));
        input.extend_from_slice(b"\n!help\n");
        input.extend(std::iter::repeat_n(b'z', MAX_LINE_BYTES + 1));
        let lines = lines_read(&input, 8192);
        assert_eq!(
            lines.len(),
            2,
            "the longest line kept, the longer ones skipped"
        );
        assert_eq!(lines[0].len(), MAX_LINE_BYTES);
        assert_eq!(lines[1], "!help");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(runtime.block_on(lines_read_async(&input, 8192)), lines);

        // What is held while a line is skipped: nothing beyond the limit.
        let mut splitter = LineSplitter::default();
        let chunk = vec![b'y'; 8192];
        for _ in 0..(4 * MAX_LINE_BYTES / chunk.len()) {
            assert_eq!(splitter.feed(&chunk), (chunk.len(), None));
            assert!(splitter.line.capacity() <= 2 * MAX_LINE_BYTES);
        }
        assert_eq!(splitter.feed(b"\nnext"), (1, None));
        assert_eq!(splitter.feed(b"next\n"), (5, Some("next".to_owned())));
    }

    #[test]
    fn invalid_utf8_input_is_decoded_lossily_and_reading_goes_on() {
        let input: &[u8] = b"!local \xff\xfe date\r\n!help\nlast";
        let (tx, mut rx) = mpsc::channel(8);
        read_lines(std::io::Cursor::new(input), &tx);
        drop(tx);
        let mut lines = Vec::new();
        while let Ok(Ok(line)) = rx.try_recv() {
            lines.push(line);
        }
        assert_eq!(lines, ["!local \u{fffd}\u{fffd} date", "!help", "last"]);
    }
}
