//! Log output: `tracing` to standard error, human-readable or JSON, filter from `RUST_LOG`,
//! `--log-level`, or the definition's `log.level` (the terminal demo: warnings only, so logs
//! do not drown the chat).
//!
//! A filter is a comma-separated list of `level` and `target=level` directives
//! (`warn,bot_runtime::aliases=info`), the syntax `log.level` is checked against at build
//! time. `RUST_LOG` takes the same; one the bot cannot read is reported and the definition's
//! level used instead.

use std::str::FromStr;

use bot_config::{LogFormat, LogSpec};
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global subscriber (once; later calls are ignored), filtering by `RUST_LOG`
/// or the definition's `log.level`.
pub fn init(spec: &LogSpec, json_override: Option<bool>) {
    init_with_level(spec, json_override, None);
}

/// As [`init`], with `level` (`--log-level`, or the text backend's `warn`) taking the
/// place of the definition's `log.level`; `RUST_LOG` still wins.
pub fn init_with_level(spec: &LogSpec, json_override: Option<bool>, level: Option<&str>) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let (filter, refused) =
        choose_filter(rust_log.as_deref(), level.unwrap_or(spec.level.as_ref()));
    let json = json_override.unwrap_or(spec.format == LogFormat::Json);
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    let lines = if json {
        stderr
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed()
    } else {
        stderr.with_ansi(false).boxed()
    };
    let result = tracing_subscriber::registry()
        .with(lines)
        .with(filter)
        .try_init();
    if result.is_ok()
        && let Some(error) = refused
    {
        tracing::warn!(error = %error, "RUST_LOG is not a list of `level` and `target=level` directives; using the configured log level");
    }
}

/// The filter: `RUST_LOG` when it is set and readable, else `configured`, else `info`; and
/// why `RUST_LOG` was not used, when it was set but could not be read.
fn choose_filter(rust_log: Option<&str>, configured: &str) -> (Targets, Option<String>) {
    let mut refused = None;
    if let Some(directives) = rust_log.filter(|d| !d.trim().is_empty()) {
        match parse(directives) {
            Ok(filter) => return (filter, None),
            Err(e) => refused = Some(e),
        }
    }
    let filter =
        parse(configured).unwrap_or_else(|_| Targets::new().with_default(tracing::Level::INFO));
    (filter, refused)
}

fn parse(directives: &str) -> Result<Targets, String> {
    let cleaned: Vec<&str> = directives
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    Targets::from_str(&cleaned.join(",")).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;
    use tracing_subscriber::filter::LevelFilter;

    fn default_level(filter: &Targets) -> Option<LevelFilter> {
        filter.default_level()
    }

    #[test]
    fn the_configured_level_applies_without_rust_log() {
        let (filter, refused) = choose_filter(None, "warn");
        assert_eq!(default_level(&filter), Some(LevelFilter::WARN));
        assert!(refused.is_none());
        let (filter, _) = choose_filter(Some("  "), "debug");
        assert_eq!(default_level(&filter), Some(LevelFilter::DEBUG));
    }

    #[test]
    fn rust_log_wins_with_per_target_levels() {
        let (filter, refused) = choose_filter(Some("warn, bot_runtime::aliases=info"), "debug");
        assert!(refused.is_none());
        assert!(filter.would_enable("bot_runtime::aliases", &Level::INFO));
        assert!(!filter.would_enable("bot_runtime::aliases", &Level::DEBUG));
        assert!(!filter.would_enable("bot_runtime::dispatch", &Level::INFO));
        assert!(filter.would_enable("bot_runtime::dispatch", &Level::WARN));
        let (filter, _) = choose_filter(Some("bot_runtime=debug,info"), "warn");
        assert!(filter.would_enable("bot_runtime::results", &Level::DEBUG));
        assert!(filter.would_enable("hyper", &Level::INFO));
        assert!(!filter.would_enable("hyper", &Level::DEBUG));
        let (filter, _) = choose_filter(Some("OFF"), "info");
        assert!(!filter.would_enable("bot_runtime", &Level::ERROR));
    }

    #[test]
    fn an_unreadable_rust_log_is_reported_and_the_configured_level_used() {
        let (filter, refused) = choose_filter(Some("bot_runtime=loud"), "warn");
        assert!(refused.is_some_and(|e| !e.is_empty()));
        assert_eq!(default_level(&filter), Some(LevelFilter::WARN));
    }

    #[test]
    fn an_unreadable_configured_level_falls_back_to_info() {
        let (filter, refused) = choose_filter(None, "bot_runtime=chatty");
        assert!(refused.is_none());
        assert_eq!(default_level(&filter), Some(LevelFilter::INFO));
    }
}
