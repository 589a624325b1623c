//! The st2bot runtime: what a compiled bot runs. Read [`main`] first: it parses the command
//! line, sets up logging, and runs the bot described by the `BotSpec` that `bot!` compiled
//! into the executable.
//!
//! Modules: [`backend`] (chat services), [`secret`] (secret resolution and redaction),
//! [`check`] (`--check`), [`doctor`] (`--doctor`), [`http`] (the shared HTTP client),
//! [`tls`] (TLS for backends with their own sockets), [`cli`], [`logging`], [`ha`] (several
//! instances sharing leadership and state in PostgreSQL).

pub mod aliases;
pub mod app;
pub mod audit;
mod auth_page;
pub mod backend;
pub mod check;
pub mod cli;
pub mod confirm;
pub mod dispatch;
pub mod doctor;
pub mod explain;
pub mod ha;
pub mod help_rights;
pub mod http;
pub mod inquiry;
pub mod linked;
pub mod logging;
pub mod ops;
pub mod print_spec;
pub mod results;
pub mod secret;
pub mod session;
#[cfg(feature = "simulator")]
pub mod simulator;
pub mod stackstorm;
pub mod template;
pub mod tls;

/// Entry points for the fuzz targets in `fuzz/` (not a stable interface).
#[doc(hidden)]
pub mod __fuzz {
    pub use crate::auth_page::read_form_for_fuzzing;
    pub use crate::backend::discord::incoming_from_frame as discord_inbound;
    pub use crate::backend::matrix::incoming_from_sync as matrix_inbound;
    pub use crate::backend::mattermost::incoming_from_posted as mattermost_inbound;
    pub use crate::backend::rocketchat::incoming_from_frame as rocketchat_inbound;
    pub use crate::backend::slack::incoming_from_payload as slack_inbound;
    pub use crate::backend::split::{byte_len, char_len, check_contract as check_split_contract};
    pub use crate::stackstorm::stream::SseParser;
}

use std::process::ExitCode;

use bot_config::{BackendSpec, BotSpec};

pub use linked::{Linked, SIMULATOR, Simulated, SimulatorStart};

/// Entry point of every generated executable.
pub fn main(spec: &'static BotSpec, linked: Linked) -> ExitCode {
    run_main(spec, linked, None)
}

/// [`main`] for an executable that embeds its access matrix (`--access-matrix`).
pub fn main_with_access_matrix(
    spec: &'static BotSpec,
    linked: Linked,
    access_matrix: &'static str,
) -> ExitCode {
    run_main(spec, linked, Some(access_matrix))
}

fn run_main(
    spec: &'static BotSpec,
    linked: Linked,
    access_matrix: Option<&'static str>,
) -> ExitCode {
    bot_heap::configure();
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
        cli::Command::PrintSpec(format) => {
            return match print_spec::render(spec, format) {
                Ok(text) => {
                    print_out(&text);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{}: {e}", spec.name);
                    ExitCode::FAILURE
                }
            };
        }
        cli::Command::AccessMatrix => {
            return match access_matrix {
                Some(text) => {
                    print_out(text);
                    ExitCode::SUCCESS
                }
                None => {
                    eprintln!(
                        "{}: this executable was built without its access matrix",
                        spec.name
                    );
                    ExitCode::FAILURE
                }
            };
        }
        cli::Command::Check
        | cli::Command::Doctor
        | cli::Command::Run
        | cli::Command::Explain(_) => {}
    }
    // On the terminal, chat and logs share the screen: warnings only unless asked.
    let text_default = (matches!(spec.backend, BackendSpec::Text(_))
        && options.command == cli::Command::Run)
        .then_some("warn");
    logging::init_with_level(
        &spec.log,
        options.log_json,
        options.log_level.as_deref().or(text_default),
    );
    // One thread runs the bot: a command's hops between stdin or the chat socket, the
    // dispatcher, the HTTP connection to StackStorm and the reply stay on it, instead of
    // waking a second worker for each (docs/operations.md, "Performance", has the
    // benchmark's figures). Long CPU work (building the alias index) goes to the blocking
    // pool; blocking reads (stdin) have threads of their own.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{}: cannot start the async runtime: {e}", spec.name);
            return ExitCode::FAILURE;
        }
    };
    let mut bot = Bot::new(spec, linked);
    if let Err(e) = bot.apply_overrides(&options) {
        eprintln!("{}: {e}", spec.name);
        return ExitCode::from(2);
    }
    runtime.block_on(bot.run(&options))
}

/// A bot about to run: its spec (the one compiled into the executable, with the command
/// line's overrides applied) and the subsystems the executable carries. It owns both, so
/// `run` borrows them for as long as the bot runs and nothing is leaked.
#[derive(Debug)]
pub struct Bot {
    spec: BotSpec,
    linked: Linked,
}

impl Bot {
    /// The bot `spec` describes, with the subsystems of `linked`.
    pub fn new(spec: &BotSpec, linked: Linked) -> Self {
        Self {
            spec: spec.clone(),
            linked,
        }
    }

    /// The spec the bot runs.
    pub fn spec(&self) -> &BotSpec {
        &self.spec
    }

    /// Applies the addresses given on the command line (`--backend-url`, `--chat-server`,
    /// `--auth-page-listen`, `--stackstorm-url`); a message for the user when one does not
    /// apply or does not parse.
    pub fn apply_overrides(&mut self, options: &cli::Options) -> Result<(), String> {
        let spec = &mut self.spec;
        if let Some(url) = options.backend_url.as_deref() {
            with_backend_url(spec, url)?;
        }
        if let Some(server) = options.chat_server.as_deref() {
            with_chat_server(spec, server)?;
        }
        if let Some(listen) = options.auth_page_listen.as_deref() {
            with_auth_page_listen(spec, listen)?;
        }
        if let Some(base) = options.stackstorm_url.as_deref() {
            with_stackstorm_url(spec, base)?;
        }
        Ok(())
    }

    /// Runs what `options.command` asks (`--check`, `--doctor`, `--explain`, or the bot
    /// itself), in demo mode with `--simulate`.
    pub async fn run(&self, options: &cli::Options) -> ExitCode {
        let simulator = if options.simulate {
            let Some(start) = self.linked.simulator else {
                eprintln!(
                    "{}: this executable has no StackStorm simulator: `--simulate` is for \
                     terminal bots in demo mode (`backend: {{ kind: text, simulator: true }}`, \
                     such as `demo`)",
                    self.spec.name
                );
                return ExitCode::from(2);
            };
            match start(&self.spec).await {
                Ok(s) => Some(s),
                Err(e) => {
                    eprintln!(
                        "{}: cannot start the StackStorm simulator: {e}",
                        self.spec.name
                    );
                    return ExitCode::FAILURE;
                }
            }
        } else {
            None
        };
        let (spec, client) = match &simulator {
            Some(sim) => (&sim.spec, Ok(sim.client.clone())),
            None => (
                &self.spec,
                stackstorm::St2Client::new(&self.spec.stackstorm),
            ),
        };
        match options.command {
            cli::Command::Check => {
                let lines = check::run(spec, client.as_ref(), options.simulate).await;
                print_out(&check::render(&lines));
                if lines.iter().all(|l| l.ok) {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            cli::Command::Doctor => {
                let lines = match &client {
                    Ok(client) => doctor::run(spec, client).await,
                    Err(e) => doctor::client_unavailable(e),
                };
                print_out(&check::render(&lines));
                if lines.iter().all(|l| l.ok) {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            cli::Command::Explain(ref request) => match &client {
                Ok(client) => explain::run(spec, client, request).await,
                Err(e) => {
                    eprintln!("{}: {e}", spec.name);
                    ExitCode::from(2)
                }
            },
            _ => match client {
                Ok(client) => {
                    app::run_with(
                        spec,
                        client,
                        options,
                        self.linked,
                        tokio_util::sync::CancellationToken::new(),
                    )
                    .await
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot set up the StackStorm client");
                    eprintln!("{}: {e}", spec.name);
                    ExitCode::FAILURE
                }
            },
        }
    }
}

/// The spec with StackStorm's addresses derived from `base` (as `stackstorm.url` does).
fn with_stackstorm_url(spec: &mut BotSpec, base: &str) -> Result<(), String> {
    let parsed = url::Url::parse(base)
        .map_err(|e| format!("`--stackstorm-url {base}` is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "`--stackstorm-url {base}` must be an http or https URL"
        ));
    }
    spec.stackstorm.use_base_url(base.trim_end_matches('/'));
    Ok(())
}

/// The spec with the login page's listen address replaced (`--auth-page-listen`).
fn with_auth_page_listen(spec: &mut BotSpec, listen: &str) -> Result<(), String> {
    let address: std::net::SocketAddr = listen
        .parse()
        .map_err(|_| format!("`--auth-page-listen {listen}` is not an IP address and port"))?;
    let Some(page) = spec.auth_page.as_mut() else {
        return Err("`--auth-page-listen` needs `auth_page` in the definition".to_owned());
    };
    page.listen = address.to_string().into();
    Ok(())
}

/// The spec with the chat server's URL replaced (`--backend-url`), for backends that have one.
fn with_backend_url(spec: &mut BotSpec, url: &str) -> Result<(), String> {
    let parsed =
        url::Url::parse(url).map_err(|e| format!("`--backend-url {url}` is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "`--backend-url {url}` must be an http or https URL"
        ));
    }
    let url = url.to_owned().into();
    match &mut spec.backend {
        BackendSpec::Matrix(b) => b.url = url,
        BackendSpec::Slack(b) => b.url = url,
        BackendSpec::Mattermost(b) => b.url = url,
        BackendSpec::Discord(b) => b.url = url,
        BackendSpec::RocketChat(b) => b.url = url,
        BackendSpec::MsTeams(b) => b.url = url,
        other => {
            return Err(format!(
                "`--backend-url` does not apply to the `{}` backend (it has no URL)",
                other.kind()
            ));
        }
    }
    Ok(())
}

/// The spec with the chat server's host (and port) replaced (`--chat-server HOST[:PORT]`),
/// for the backends that name a server rather than a URL (irc, xmpp).
fn with_chat_server(spec: &mut BotSpec, server: &str) -> Result<(), String> {
    let (host, port) = host_and_port(server)
        .ok_or_else(|| format!("`--chat-server {server}` is not HOST or HOST:PORT"))?;
    match &mut spec.backend {
        BackendSpec::Irc(b) => {
            b.server = host.into();
            b.port = port.unwrap_or(b.port);
        }
        BackendSpec::Xmpp(b) => {
            b.server = host.into();
            b.port = port.unwrap_or(b.port);
        }
        other => {
            return Err(format!(
                "`--chat-server` does not apply to the `{}` backend (use `--backend-url` for \
                 the backends with a URL)",
                other.kind()
            ));
        }
    }
    Ok(())
}

/// `host`, `host:port`, `[v6]` or `[v6]:port` (an IPv6 address with a port needs brackets).
fn host_and_port(text: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) if !port.contains(':') => (host, Some(port)),
            Some(_) => (text, None), // a bare IPv6 address
            None => (text, None),
        }
    };
    let valid_host = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if !valid_host {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p != 0)?),
        None => None,
    };
    Some((host.to_owned(), port))
}

/// Writes to standard output, ignoring a closed pipe (`bot --print-spec | head`).
fn print_out(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

#[cfg(test)]
mod chat_server_tests {
    use super::host_and_port;

    #[test]
    fn host_with_and_without_port() {
        let hp = |t: &str| host_and_port(t);
        assert_eq!(hp("127.0.0.1:6697"), Some(("127.0.0.1".into(), Some(6697))));
        assert_eq!(
            hp("irc.example.org"),
            Some(("irc.example.org".into(), None))
        );
        assert_eq!(hp("[::1]:5222"), Some(("::1".into(), Some(5222))));
        assert_eq!(hp("[::1]"), Some(("::1".into(), None)));
        assert_eq!(hp("::1"), Some(("::1".into(), None)));
    }

    #[test]
    fn nonsense_is_refused() {
        for bad in [
            "",
            ":6697",
            "host:",
            "host:0",
            "host:65536",
            "host:port",
            "[::1",
            "[::1]6697",
            "ho st",
            "http://host",
        ] {
            assert_eq!(host_and_port(bad), None, "{bad:?}");
        }
    }
}
