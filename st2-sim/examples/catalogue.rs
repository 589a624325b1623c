//! The alias-catalogue benchmark driver (run by `benches/catalogue`, which builds both
//! executables first): for each catalogue size it serves a generated catalogue with the
//! `serve` example, starts a Text-backend bot against it and measures, from the outside:
//!
//! - **ready**: from starting the bot to its `action aliases loaded` log line;
//! - **idle RSS**: `VmRSS` of `/proc/PID/status` one second after ready;
//! - **help p50**: median time from typing `!help` to the last line of the reply;
//! - **CPU per command**: `utime + stime` of `/proc/PID/stat` over `--commands` alias
//!   commands (one at a time, each waiting for its ack; all results received), divided by
//!   their number; the commands cycle over the first `--cycle` aliases (100 by default, so
//!   the bot's compiled formats are reused; more than `st2_alias::COMPILED_CACHE` measures
//!   a command whose format is compiled again);
//! - **ack p50**: median time from typing such a command to its acknowledgement;
//! - **RSS after all used**: `VmRSS` once every alias of the catalogue has run one command.
//!
//! Prints a markdown table on standard output and progress on standard error.
//!
//! ```text
//! catalogue --bot target/release/demo --serve target/release/examples/serve [--quick]
//!           [--sizes 100,1000,10000] [--commands 1000] [--help-runs 20]
//!           [--list-delay-ms MS] [--cycle N]
//! ```
//!
//! `--list-delay-ms` makes each page of the alias list take that long to answer (the
//! `serve` example's option), for the start-up of a bot against a slower StackStorm.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

/// Kernel clock ticks per second in `/proc/PID/stat` (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;
/// Longest wait for any one expected line.
const WAIT: Duration = Duration::from_secs(120);
/// Commands whose acks may be outstanding at once while every alias is used.
const WINDOW: usize = 32;

struct Options {
    bot: String,
    serve: String,
    sizes: Vec<usize>,
    commands: usize,
    help_runs: usize,
    list_delay_ms: usize,
    cycle: usize,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        bot: String::new(),
        serve: String::new(),
        sizes: vec![100, 1_000, 10_000],
        commands: 1_000,
        help_runs: 20,
        list_delay_ms: 0,
        cycle: 100,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        let number = |text: String| {
            text.parse::<usize>()
                .map_err(|e| format!("{flag}: {text:?}: {e}"))
        };
        match flag.as_str() {
            "--bot" => options.bot = value()?,
            "--serve" => options.serve = value()?,
            "--sizes" => {
                options.sizes = value()?
                    .split(',')
                    .map(|n| number(n.trim().replace('_', "")))
                    .collect::<Result<_, _>>()?;
            }
            "--commands" => options.commands = number(value()?)?.max(1),
            "--help-runs" => options.help_runs = number(value()?)?.max(1),
            "--list-delay-ms" => options.list_delay_ms = number(value()?)?,
            "--cycle" => options.cycle = number(value()?)?.max(1),
            "--quick" => {
                options.sizes = vec![100, 1_000];
                options.commands = 200;
                options.help_runs = 5;
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if options.bot.is_empty() || options.serve.is_empty() {
        return Err("usage: catalogue --bot PATH --serve PATH [--quick] [--sizes 100,1000,10000] [--commands N] [--help-runs N] [--list-delay-ms MS] [--cycle N]".into());
    }
    Ok(options)
}

/// Which output a line came from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Out,
    Err,
}

/// A child process whose output lines arrive, timestamped, on a channel.
struct Process {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<(Instant, Source, String)>,
}

fn forward(
    reader: impl std::io::Read + Send + 'static,
    source: Source,
    tx: Sender<(Instant, Source, String)>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { return };
            if tx.send((Instant::now(), source, line)).is_err() {
                return;
            }
        }
    });
}

impl Process {
    fn start(command: &mut Command) -> Result<Process, String> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {command:?}: {e}"))?;
        let (tx, lines) = channel();
        if let Some(out) = child.stdout.take() {
            forward(out, Source::Out, tx.clone());
        }
        if let Some(err) = child.stderr.take() {
            forward(err, Source::Err, tx);
        }
        let stdin = child.stdin.take();
        Ok(Process {
            child,
            stdin,
            lines,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn say(&mut self, line: &str) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("input already closed")?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("cannot write to the process: {e}"))
    }

    /// The next line, or `None` after `timeout` without one.
    fn next(&self, timeout: Duration) -> Result<Option<(Instant, Source, String)>, String> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => Ok(Some(line)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err("the process ended".into()),
        }
    }

    /// Waits for a line satisfying `want`; the time it arrived.
    fn wait_for(&self, what: &str, want: impl Fn(Source, &str) -> bool) -> Result<Instant, String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left)? {
                Some((at, source, line)) if want(source, &line) => return Ok(at),
                Some(_) => {}
                None => return Err(format!("no {what} within {WAIT:?}")),
            }
        }
    }

    fn stop(mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `VmRSS` in KiB.
fn rss_kib(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// `utime + stime` in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // The command name (field 2) may hold spaces; the fields after it start at `state`.
    let rest = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    match (field(11), field(12)) {
        (Some(utime), Some(stime)) => Ok(utime + stime),
        _ => Err(format!("unexpected /proc/{pid}/stat: {stat}")),
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn is_ack(line: &str) -> bool {
    // The bot's default ack (`running `alias`, execution …`) or the generated catalogue's
    // own ack format (`working on …`).
    line.contains(": running `") || line.contains("working on ")
}

fn is_result(line: &str) -> bool {
    line.contains("Execution ") && line.ends_with(" succeeded:")
}

fn is_failure(line: &str) -> bool {
    line.contains("failed:")
        || line.contains("no command matches")
        || line.contains("matches more than one")
        || line.contains("not allowed")
}

/// One row of the table.
struct Row {
    aliases: usize,
    ready: Duration,
    idle_rss_kib: u64,
    help_p50: Duration,
    help_lines: usize,
    cpu_per_command: Duration,
    ack_p50: Duration,
    used_rss_kib: u64,
}

/// Counts acks and results among the lines read so far; fails on an error reply.
#[derive(Default)]
struct Progress {
    acks: usize,
    results: usize,
}

impl Progress {
    fn take(&mut self, source: Source, line: &str) -> Result<bool, String> {
        if source == Source::Err {
            return Ok(false);
        }
        if is_failure(line) {
            return Err(format!("the bot refused a command: {line}"));
        }
        if is_result(line) {
            self.results += 1;
        }
        let ack = is_ack(line);
        if ack {
            self.acks += 1;
        }
        Ok(ack)
    }

    /// Reads lines until `acks` acks and `results` results have arrived.
    fn wait(&mut self, bot: &Process, acks: usize, results: usize) -> Result<(), String> {
        let deadline = Instant::now() + WAIT;
        while self.acks < acks || self.results < results {
            let left = deadline.saturating_duration_since(Instant::now());
            match bot.next(left)? {
                Some((_, source, line)) => {
                    self.take(source, &line)?;
                }
                None => {
                    return Err(format!(
                        "{} of {acks} acks and {} of {results} results within {WAIT:?}",
                        self.acks, self.results
                    ));
                }
            }
        }
        Ok(())
    }
}

fn measure(options: &Options, aliases: usize) -> Result<Row, String> {
    let serve = Process::start(Command::new(&options.serve).args([
        "--aliases",
        &aliases.to_string(),
        "--result-delay-ms",
        "5",
        "--list-delay-ms",
        &options.list_delay_ms.to_string(),
        "--stop-on-eof",
    ]))?;
    let url = loop {
        match serve.next(WAIT)? {
            Some((_, Source::Out, line)) => break line,
            Some(_) => {}
            None => return Err("the simulator printed no URL".into()),
        }
    };
    let started = Instant::now();
    let mut bot = Process::start(
        Command::new(&options.bot)
            .args(["--user", "alice", "--stackstorm-url", &url])
            .env("ST2_API_KEY", "sim-api-key")
            .env_remove("ST2BOT_STACKSTORM_URL")
            // The Text backend's own level (warnings), plus the one line that says ready.
            .env("RUST_LOG", "warn,bot_runtime::aliases=info"),
    )?;
    let loaded = bot.wait_for("`action aliases loaded` log line", |source, line| {
        source == Source::Err && line.contains("action aliases loaded")
    })?;
    let ready = loaded - started;
    std::thread::sleep(Duration::from_secs(1));
    let idle_rss_kib = rss_kib(bot.pid())?;
    eprintln!("  {aliases} aliases: ready in {ready:?}, idle RSS {idle_rss_kib} KiB");

    // Help: the first reply shows its last line (the reply is complete once output pauses).
    bot.say("!help")?;
    let mut help_lines = 0;
    let mut last = String::new();
    let mut quiet = Duration::from_secs(10);
    while let Some((_, source, line)) = bot.next(quiet)? {
        if source == Source::Out {
            help_lines += 1;
            last = line;
            quiet = Duration::from_secs(2);
        }
    }
    if help_lines == 0 {
        return Err("no reply to !help".into());
    }
    let mut help = Vec::new();
    for _ in 0..options.help_runs {
        bot.say("!help")?;
        let sent = Instant::now();
        let at = bot.wait_for("end of the help reply", |source, line| {
            source == Source::Out && line == last
        })?;
        help.push(at - sent);
    }
    let help_p50 = median(help);
    eprintln!("  {aliases} aliases: help p50 {help_p50:?} ({help_lines} lines)");

    // CPU per command: one command at a time, each waiting for its ack.
    let cycle = options.cycle.min(aliases).max(1);
    let mut progress = Progress::default();
    let mut acks = Vec::new();
    let before = cpu_ticks(bot.pid())?;
    for k in 0..options.commands {
        bot.say(&format!("!{}", st2_sim::generated_command(k % cycle)))?;
        let sent = Instant::now();
        let deadline = sent + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some((at, source, line)) = bot.next(left)? else {
                return Err(format!("no ack to command {k} within {WAIT:?}"));
            };
            if progress.take(source, &line)? {
                acks.push(at - sent);
                break;
            }
        }
    }
    progress.wait(&bot, options.commands, options.commands)?;
    let ticks = cpu_ticks(bot.pid())? - before;
    let cpu_per_command =
        Duration::from_secs_f64(ticks as f64 / TICKS_PER_SECOND / options.commands as f64);
    let ack_p50 = median(acks);
    eprintln!("  {aliases} aliases: CPU per command {cpu_per_command:?}, ack p50 {ack_p50:?}");

    // Every alias once, a window of commands in flight.
    let mut progress = Progress::default();
    for i in 0..aliases {
        while i - progress.acks >= WINDOW {
            progress.wait(&bot, progress.acks + 1, 0)?;
        }
        bot.say(&format!("!{}", st2_sim::generated_command(i)))?;
    }
    progress.wait(&bot, aliases, aliases)?;
    std::thread::sleep(Duration::from_secs(1));
    let used_rss_kib = rss_kib(bot.pid())?;
    eprintln!("  {aliases} aliases: RSS after all used {used_rss_kib} KiB");

    bot.stop();
    serve.stop();
    Ok(Row {
        aliases,
        ready,
        idle_rss_kib,
        help_p50,
        help_lines,
        cpu_per_command,
        ack_p50,
        used_rss_kib,
    })
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("catalogue: {message}");
            return ExitCode::FAILURE;
        }
    };
    let mut rows = Vec::new();
    for &aliases in &options.sizes {
        eprintln!("catalogue: measuring {aliases} aliases");
        match measure(&options, aliases) {
            Ok(row) => rows.push(row),
            Err(message) => {
                eprintln!("catalogue: {aliases} aliases: {message}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!(
        "| aliases | ready | idle RSS | CPU per command | ack p50 | help p50 (lines) | RSS after all used |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for row in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} ({}) | {} |",
            row.aliases,
            ms(row.ready),
            mib(row.idle_rss_kib),
            ms(row.cpu_per_command),
            ms(row.ack_p50),
            ms(row.help_p50),
            row.help_lines,
            mib(row.used_rss_kib),
        );
    }
    println!(
        "\n{} commands per size for CPU and acks (cycling over {} aliases), {} help runs; `/proc` CPU ticks are 10 ms.",
        options.commands, options.cycle, options.help_runs
    );
    ExitCode::SUCCESS
}
