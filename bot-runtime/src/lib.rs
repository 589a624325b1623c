//! The st2bot runtime: what a compiled bot runs. Read [`main`] first: it parses the command
//! line, sets up logging, and runs the bot described by the `BotSpec` that `bot!` compiled
//! into the executable.
//!
//! Modules: [`backend`] (chat services), [`secret`] (secret resolution and redaction),
//! [`check`] (`--check`), [`http`] (the shared HTTP client), [`tls`] (TLS for
//! backends with their own sockets), [`cli`], [`logging`].

pub mod app;
pub mod backend;
pub mod check;
pub mod cli;
pub mod http;
pub mod logging;
pub mod secret;
pub mod tls;

use std::process::ExitCode;

use bot_config::BotSpec;

/// Entry point of every generated executable.
pub fn main(spec: &'static BotSpec) -> ExitCode {
    let options = match cli::parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{}: {e}", spec.name);
            return ExitCode::from(2);
        }
    };
    match options.command {
        cli::Command::Help => {
            let description = if spec.description.is_empty() {
                format!("StackStorm ChatOps bot compiled from {}", spec.source)
            } else {
                spec.description.to_string()
            };
            print_out(&cli::usage(&spec.name, &description));
            return ExitCode::SUCCESS;
        }
        cli::Command::Version => {
            print_out(&format!(
                "{} (st2bot {})\n",
                spec.name,
                env!("CARGO_PKG_VERSION")
            ));
            return ExitCode::SUCCESS;
        }
        cli::Command::PrintSpec => {
            print_out(&format!("{spec:#?}\n"));
            return ExitCode::SUCCESS;
        }
        cli::Command::Check | cli::Command::Run => {}
    }
    logging::init(&spec.log, options.log_json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{}: cannot start the async runtime: {e}", spec.name);
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match options.command {
            cli::Command::Check => {
                let lines = check::run(spec).await;
                print_out(&check::render(&lines));
                if lines.iter().all(|l| l.ok) {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            _ => app::run(spec, &options).await,
        }
    })
}

/// Writes to standard output, ignoring a closed pipe (`bot --print-spec | head`).
fn print_out(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}
