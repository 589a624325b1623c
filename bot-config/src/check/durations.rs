//! Durations: `90s`, `5m`, `1h30m`, `2d`.

use std::time::Duration;

use crate::diagnostic::{Diagnostic, DiagnosticId, Diagnostics};
use crate::source::{Span, Spanned};

/// Rule: a duration is a number with a unit (`ms`, `s`, `m`, `h`, `d`), possibly several
/// (`1h30m`), greater than zero and below `max`.
pub(super) fn duration(
    d: &mut Diagnostics,
    raw: &Spanned<String>,
    key: &str,
    max: Duration,
) -> Option<Duration> {
    let text = raw.value.trim();
    let bad = |d: &mut Diagnostics, why: &str| {
        d.push(
            Diagnostic::new(
                DiagnosticId::InvalidDuration,
                Span::of(raw),
                format!("`{key}` must be a duration such as `90s`, `5m` or `1h`"),
                why.to_owned(),
            )
            .help(
                "write a number followed by a unit: `ms`, `s`, `m`, `h` or `d` (`1h30m` works too)",
            ),
        );
    };
    if text.is_empty() {
        bad(d, "empty");
        return None;
    }
    if text.chars().all(|c| c.is_ascii_digit()) {
        d.push(
            Diagnostic::new(
                DiagnosticId::InvalidDuration,
                Span::of(raw),
                format!("`{key}` needs a unit"),
                "a number without a unit",
            )
            .help(format!("write `{text}s` for seconds (or `m`, `h`, `d`)")),
        );
        return None;
    }
    let parsed = match humantime::parse_duration(text) {
        Ok(p) => p,
        Err(_) => {
            bad(d, "not a duration");
            return None;
        }
    };
    if parsed.is_zero() {
        d.push(
            Diagnostic::new(
                DiagnosticId::ZeroDuration,
                Span::of(raw),
                format!("`{key}` must be longer than zero"),
                "zero",
            )
            .help("leave the key out to use the default"),
        );
        return None;
    }
    if parsed > max {
        d.push(
            Diagnostic::new(
                DiagnosticId::DurationTooLong,
                Span::of(raw),
                format!(
                    "`{key}` of {} is longer than the most allowed, {}",
                    show(parsed),
                    show(max)
                ),
                "too long",
            )
            .help(format!("use at most {}", show(max))),
        );
        return None;
    }
    Some(parsed)
}

/// A duration in the largest unit that divides it (`90d`, `10m`), as a user would write it.
fn show(d: Duration) -> String {
    let s = d.as_secs();
    if d.subsec_nanos() != 0 || s == 0 {
        return humantime::format_duration(d).to_string();
    }
    for (unit, secs) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if s.is_multiple_of(secs) {
            return format!("{}{unit}", s / secs);
        }
    }
    format!("{s}s")
}
