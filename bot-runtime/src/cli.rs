//! Command-line options of every generated executable.

use std::time::Duration;

use crate::print_spec::SpecFormat;

/// What the executable was asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Run the bot.
    Run,
    /// Validate the run-time environment and exit.
    Check,
    /// Self-check against StackStorm (aliases, notify rule, stream, test announcement).
    Doctor,
    /// Print usage and exit.
    Help,
    /// Print the version and exit.
    Version,
    /// Print the compiled definition (secret references only) in this format and exit.
    PrintSpec(SpecFormat),
    /// Explain the access decision for one command, then exit 0 (allowed) or 1.
    Explain(crate::explain::ExplainRequest),
    /// Print the access matrix computed at build time and exit.
    AccessMatrix,
}

/// Parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// What to do.
    pub command: Command,
    /// Text backend: act as this user.
    pub user: Option<String>,
    /// Text backend: speak in this room (`-` for direct messages).
    pub room: Option<String>,
    /// Override the log format (`text` or `json`).
    pub log_json: Option<bool>,
    /// After the text backend's input ends, wait up to this long for results in flight
    /// (`None`: the default, 30 s when standard input is not a terminal).
    pub linger: Option<Duration>,
    /// Log filter (`warn`, `info`, `debug`, or a `RUST_LOG`-style filter); `RUST_LOG` wins.
    pub log_level: Option<String>,
    /// Talk to the StackStorm at this base URL instead of the definition's (derives
    /// `/api`, `/auth`, `/stream` as `stackstorm.url` does). Also `ST2BOT_STACKSTORM_URL`.
    pub stackstorm_url: Option<String>,
    /// Demo mode: start the built-in StackStorm simulator on loopback and talk to it.
    pub simulate: bool,
    /// Connect to the chat server at this URL instead of the definition's `backend.url`
    /// (backends that have one: matrix, slack, mattermost, discord, rocketchat; msteams: the
    /// token issuer). Also `ST2BOT_BACKEND_URL`.
    pub backend_url: Option<String>,
    /// Connect to the chat server at `HOST[:PORT]` instead of the definition's
    /// `backend.server`/`backend.port` (backends that have them: irc, xmpp). Also
    /// `ST2BOT_CHAT_SERVER`.
    pub chat_server: Option<String>,
    /// Serve `/healthz`, `/readyz` and `/metrics` here (overrides `health.listen`).
    pub health_listen: Option<String>,
    /// Keep the owed results in this file (overrides `stackstorm.results_store`).
    pub results_store: Option<String>,
    /// Owe results this long (overrides `stackstorm.result_timeout`).
    pub result_timeout: Option<Duration>,
    /// Serve the login page here (overrides `auth_page.listen`; several instances of one
    /// bot on one host, `ha:`).
    pub auth_page_listen: Option<String>,
    /// `ST2BOT_MSTEAMS_UNSIGNED_INBOUND` (environment only): the Teams backend's test-only
    /// switch for Microsoft's Agents Playground (see `backend::msteams`).
    pub msteams_unsigned_inbound: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            command: Command::Run,
            user: None,
            room: None,
            log_json: None,
            linger: None,
            log_level: None,
            stackstorm_url: None,
            simulate: false,
            backend_url: None,
            chat_server: None,
            health_listen: None,
            results_store: None,
            result_timeout: None,
            auth_page_listen: None,
            msteams_unsigned_inbound: None,
        }
    }
}

/// A command line that cannot be understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}\nRun with --help for usage.")]
pub struct UsageError(String);

/// Usage text.
pub fn usage(name: &str, description: &str) -> String {
    format!(
        "{name}: {description}\n\n\
         Usage: {name} [OPTIONS]\n\n\
         Options:\n  \
         --check              validate secrets and StackStorm connectivity, then exit\n  \
         --doctor             self-check after install: aliases, notify rule, stream, and a\n  \
         \x20                    test announcement through StackStorm; then exit\n  \
         --user NAME          text backend: act as this chat user\n  \
         --room NAME          text backend: speak in this room (`-` for a direct message)\n  \
         --linger DURATION    text backend: after end of input, wait up to this long for\n  \
         \x20                    results in flight (default 30s when input is not a terminal)\n  \
         --log-level LEVEL    log filter such as `warn`, `info` or `debug` (the text backend\n  \
         \x20                    logs warnings only unless asked; RUST_LOG wins)\n  \
         --log-format FORMAT  `text` or `json` (default from the definition)\n  \
         --stackstorm-url URL talk to the StackStorm behind URL instead of the definition's\n  \
         \x20                    (also ST2BOT_STACKSTORM_URL)\n  \
         --backend-url URL    connect to the chat server at URL instead of `backend.url`\n  \
         \x20                    (also ST2BOT_BACKEND_URL)\n  \
         --chat-server HOST[:PORT]\n  \
         \x20                    irc, xmpp: connect to HOST (and PORT) instead of\n  \
         \x20                    `backend.server` (also ST2BOT_CHAT_SERVER)\n  \
         --simulate           demo mode: start a simulated StackStorm on 127.0.0.1 and use it\n  \
         \x20                    (terminal bots with `backend.simulator: true`)\n  \
         --health-listen ADDR serve /healthz, /readyz and /metrics on ADDR (e.g. 127.0.0.1:9180)\n  \
         --results-store PATH keep the results still owed in PATH (overrides\n  \
         \x20                    `stackstorm.results_store`)\n  \
         --result-timeout DURATION\n  \
         \x20                    owe a started execution's result this long (overrides\n  \
         \x20                    `stackstorm.result_timeout`)\n  \
         --auth-page-listen ADDR\n  \
         \x20                    serve the login page on ADDR instead of `auth_page.listen`\n  \
         --print-spec[=FMT]   print the compiled definition as `yaml` (default) or `json`\n  \
         \x20                    (also --format FMT), secrets as references; then exit\n  \
         --explain USER ROOM COMMAND\n  \
         \x20                    which alias COMMAND resolves to and which access rule lets\n  \
         \x20                    USER run it in ROOM (`-`: a direct message) or not; exit 0\n  \
         \x20                    if allowed, 1 if not (aliases from StackStorm, or --simulate)\n  \
         --access-matrix      print who may run which alias where (Markdown, computed at\n  \
         \x20                    build time from the access rules and the catalogue)\n  \
         --version            print the version and exit\n  \
         -h, --help           print this help\n\n\
         Environment: RUST_LOG sets the log filter; secrets come from the variables and\n\
         files the definition names.\n"
    )
}

/// Parses arguments (without the program name).
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Options, UsageError> {
    let mut options = Options {
        stackstorm_url: std::env::var("ST2BOT_STACKSTORM_URL")
            .ok()
            .filter(|u| !u.is_empty()),
        backend_url: std::env::var("ST2BOT_BACKEND_URL")
            .ok()
            .filter(|u| !u.is_empty()),
        msteams_unsigned_inbound: std::env::var(crate::backend::msteams::UNSIGNED_INBOUND_ENV).ok(),
        chat_server: std::env::var("ST2BOT_CHAT_SERVER")
            .ok()
            .filter(|u| !u.is_empty()),
        ..Options::default()
    };
    let mut args = args.into_iter();
    // `--format` may come before or after `--print-spec`; it applies to that command only.
    let mut spec_format: Option<SpecFormat> = None;
    let mut set_spec_format = |name: &str, flag: &str| match SpecFormat::parse(name) {
        Some(f) => {
            spec_format = Some(f);
            Ok(())
        }
        None => Err(UsageError(format!(
            "`{flag} {name}`: unknown format (use `yaml` or `json`)"
        ))),
    };
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, UsageError> {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| UsageError(format!("`{name}` needs a value")))
        };
        match flag.as_str() {
            "--check" | "check" => options.command = Command::Check,
            "--doctor" | "doctor" => options.command = Command::Doctor,
            "-h" | "--help" => options.command = Command::Help,
            "-V" | "--version" => options.command = Command::Version,
            "--print-spec" => {
                if let Some(name) = &inline {
                    set_spec_format(name, "--print-spec")?;
                }
                options.command = Command::PrintSpec(SpecFormat::default());
            }
            "--access-matrix" => options.command = Command::AccessMatrix,
            "--explain" => {
                let user = value("--explain")?;
                let (Some(room), Some(command)) = (args.next(), args.next()) else {
                    return Err(UsageError(
                        "`--explain` needs USER ROOM COMMAND (ROOM `-` for a direct message)"
                            .into(),
                    ));
                };
                options.command = Command::Explain(crate::explain::ExplainRequest {
                    user,
                    room: (room != "-").then_some(room),
                    command,
                });
            }
            "--format" => set_spec_format(&value("--format")?, "--format")?,
            "--user" => options.user = Some(value("--user")?),
            "--stackstorm-url" => options.stackstorm_url = Some(value("--stackstorm-url")?),
            "--simulate" => options.simulate = true,
            "--backend-url" => options.backend_url = Some(value("--backend-url")?),
            "--chat-server" => options.chat_server = Some(value("--chat-server")?),
            "--health-listen" => options.health_listen = Some(value("--health-listen")?),
            "--auth-page-listen" => {
                options.auth_page_listen = Some(value("--auth-page-listen")?);
            }
            "--room" => options.room = Some(value("--room")?),
            "--results-store" => options.results_store = Some(value("--results-store")?),
            "--result-timeout" => {
                let v = value("--result-timeout")?;
                options.result_timeout = Some(humantime::parse_duration(&v).map_err(|_| {
                    UsageError(format!(
                        "`--result-timeout {v}` is not a duration such as `1h`"
                    ))
                })?);
            }
            "--linger" => {
                let v = value("--linger")?;
                options.linger = Some(humantime::parse_duration(&v).map_err(|_| {
                    UsageError(format!("`--linger {v}` is not a duration such as `5s`"))
                })?);
            }
            "--log-level" => options.log_level = Some(value("--log-level")?),
            "--log-format" => match value("--log-format")?.as_str() {
                "json" => options.log_json = Some(true),
                "text" => options.log_json = Some(false),
                other => {
                    return Err(UsageError(format!(
                        "unknown log format `{other}` (use `text` or `json`)"
                    )));
                }
            },
            other => return Err(UsageError(format!("unknown option `{other}`"))),
        }
    }
    if let Some(format) = spec_format {
        match &mut options.command {
            Command::PrintSpec(f) => *f = format,
            _ => {
                return Err(UsageError(
                    "`--format` applies to `--print-spec` only".into(),
                ));
            }
        }
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Options, UsageError> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_options() {
        let o = p(&["--user", "bob", "--room=ops", "--check", "--linger", "2s"]).unwrap();
        assert_eq!(o.command, Command::Check);
        assert_eq!(o.user.as_deref(), Some("bob"));
        assert_eq!(o.room.as_deref(), Some("ops"));
        assert_eq!(o.linger, Some(Duration::from_secs(2)));
        assert!(p(&["--nope"]).is_err());
        assert!(p(&["--user"]).is_err());
        assert!(p(&["--log-format", "xml"]).is_err());
        let o = p(&[
            "--results-store",
            "/var/lib/st2bot/owed.redb",
            "--result-timeout=2h",
        ])
        .unwrap();
        assert_eq!(
            o.results_store.as_deref(),
            Some("/var/lib/st2bot/owed.redb")
        );
        assert_eq!(o.result_timeout, Some(Duration::from_secs(7200)));
        assert_eq!(
            p(&["--result-timeout", "soon"]).unwrap_err().to_string(),
            "`--result-timeout soon` is not a duration such as `1h`\nRun with --help for usage."
        );
        let o = p(&["--explain", "carol", "-", "local date"]).unwrap();
        assert_eq!(
            o.command,
            Command::Explain(crate::explain::ExplainRequest {
                user: "carol".into(),
                room: None,
                command: "local date".into(),
            })
        );
        assert!(p(&["--explain", "carol", "ops"]).is_err());
        assert_eq!(
            p(&["--access-matrix"]).unwrap().command,
            Command::AccessMatrix
        );
        let o = p(&["--backend-url", "http://127.0.0.1:8008"]).unwrap();
        assert_eq!(o.backend_url.as_deref(), Some("http://127.0.0.1:8008"));
        let o = p(&["--chat-server", "127.0.0.1:6697"]).unwrap();
        assert_eq!(o.chat_server.as_deref(), Some("127.0.0.1:6697"));
    }

    #[test]
    fn print_spec_formats() {
        let format = |args: &[&str]| p(args).map(|o| o.command);
        assert_eq!(
            format(&["--print-spec"]),
            Ok(Command::PrintSpec(SpecFormat::Yaml))
        );
        assert_eq!(
            format(&["--print-spec=json"]),
            Ok(Command::PrintSpec(SpecFormat::Json))
        );
        assert_eq!(
            format(&["--format", "json", "--print-spec"]),
            Ok(Command::PrintSpec(SpecFormat::Json))
        );
        assert_eq!(
            format(&["--print-spec", "--format=yaml"]),
            Ok(Command::PrintSpec(SpecFormat::Yaml))
        );
        assert!(format(&["--print-spec=toml"]).is_err());
        assert!(
            format(&["--format", "json"]).is_err(),
            "without --print-spec"
        );
    }
}
