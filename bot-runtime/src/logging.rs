//! Log output: `tracing` to standard error, human-readable or JSON, filter from `RUST_LOG`
//! or the definition's `log.level`.

use bot_config::{LogFormat, LogSpec};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber (once; later calls are ignored).
pub fn init(spec: &LogSpec, json_override: Option<bool>) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(spec.level.as_ref()))
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
