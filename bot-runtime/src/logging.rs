//! Log output: `tracing` to standard error, human-readable or JSON, filter from `RUST_LOG`,
//! `--log-level`, or the definition's `log.level` (the terminal demo: warnings only, so logs
//! do not drown the chat).

use bot_config::{LogFormat, LogSpec};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber (once; later calls are ignored), filtering by `RUST_LOG`
/// or the definition's `log.level`.
pub fn init(spec: &LogSpec, json_override: Option<bool>) {
    init_with_level(spec, json_override, None);
}

/// As [`init`], with `level` (`--log-level`, or the text backend's `warn`) taking the
/// place of the definition's `log.level`; `RUST_LOG` still wins.
pub fn init_with_level(spec: &LogSpec, json_override: Option<bool>, level: Option<&str>) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level.unwrap_or(spec.level.as_ref())))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = json_override.unwrap_or(spec.format == LogFormat::Json);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
    let _ = result;
}
