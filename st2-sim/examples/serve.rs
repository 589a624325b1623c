//! Serves the StackStorm simulator with a generated catalogue of action aliases, for
//! benchmarks and manual runs against a catalogue of realistic size:
//!
//! ```text
//! cargo run --release -p st2-sim --example serve -- --aliases 10000 --listen 127.0.0.1:9101
//! ```
//!
//! Prints the base URL (the bots' `--stackstorm-url`) as its first line on standard output,
//! then serves until interrupted. The API key is `sim-api-key`. Options:
//!
//! - `--aliases N`: the catalogue size (default 100), see `st2_sim::generated_aliases`;
//! - `--listen ADDR`: where to listen (default `127.0.0.1:0`, a free port; loopback only);
//! - `--result-delay-ms MS`: time from an execution request to its result (default 20);
//! - `--list-delay-ms MS`: time each page of the alias list takes (default 0; a real
//!   st2api reads each page from MongoDB);
//! - `--stop-on-eof`: also stop when standard input ends (a benchmark driver that dies
//!   takes the simulator along).

use std::io::Read;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use st2_sim::{Sim, SimConfig};

struct Args {
    aliases: usize,
    listen: SocketAddr,
    result_delay: Duration,
    list_delay: Duration,
    stop_on_eof: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        aliases: 100,
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        result_delay: Duration::from_millis(20),
        list_delay: Duration::ZERO,
        stop_on_eof: false,
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let mut value = || given.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--aliases" => {
                args.aliases = value()?.parse().map_err(|e| format!("--aliases: {e}"))?;
            }
            "--listen" => {
                args.listen = value()?.parse().map_err(|e| format!("--listen: {e}"))?;
                if !args.listen.ip().is_loopback() {
                    return Err("--listen: the simulator serves on loopback only".into());
                }
            }
            "--result-delay-ms" => {
                let ms: u64 = value()?
                    .parse()
                    .map_err(|e| format!("--result-delay-ms: {e}"))?;
                args.result_delay = Duration::from_millis(ms);
            }
            "--list-delay-ms" => {
                let ms: u64 = value()?
                    .parse()
                    .map_err(|e| format!("--list-delay-ms: {e}"))?;
                args.list_delay = Duration::from_millis(ms);
            }
            "--stop-on-eof" => args.stop_on_eof = true,
            "-h" | "--help" => {
                return Err(
                    "usage: serve [--aliases N] [--listen 127.0.0.1:PORT] [--result-delay-ms MS] [--list-delay-ms MS] [--stop-on-eof]"
                        .into(),
                );
            }
            other => return Err(format!("unknown option {other:?} (see --help)")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("serve: {message}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("serve: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let config = SimConfig {
            aliases: st2_sim::generated_aliases(args.aliases),
            result_delay: args.result_delay,
            list_delay: args.list_delay,
            ..SimConfig::default()
        };
        let sim = match Sim::start_on(args.listen, config).await {
            Ok(sim) => sim,
            Err(e) => {
                eprintln!("serve: cannot listen on {}: {e}", args.listen);
                return ExitCode::FAILURE;
            }
        };
        println!("{}", sim.url());
        eprintln!(
            "serve: {} aliases at {} (API key sim-api-key); Ctrl-C stops",
            args.aliases,
            sim.url()
        );
        let (eof_tx, eof) = tokio::sync::oneshot::channel::<()>();
        // Without `--stop-on-eof` the sender lives until the end, so `eof` never fires.
        let _never_sent = if args.stop_on_eof {
            // A thread of its own (not the runtime's blocking pool, which would keep the
            // runtime from shutting down while it waits for input).
            std::thread::spawn(move || {
                let mut sink = [0u8; 256];
                let mut stdin = std::io::stdin();
                while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
                let _ = eof_tx.send(());
            });
            None
        } else {
            Some(eof_tx)
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = eof => {}
        }
        drop(sim);
        ExitCode::SUCCESS
    })
}
