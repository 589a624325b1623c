//! Secrets: a secret is a reference (`${ENV_VAR}` or `file:/path`), never its value.

use crate::diagnostic::{Diagnostic, DiagnosticId, Diagnostics};
use crate::source::{Span, Spanned};
use crate::spec::SecretRef;

/// Rule: a key that holds a secret must be `${NAME}` (NAME: letters, digits, `_`, not
/// starting with a digit) or `file:<path>` with a non-empty path. Anything else is a secret
/// written in clear, which would be compiled into the executable: an error that never
/// repeats the value.
pub(crate) fn secret(d: &mut Diagnostics, raw: &Spanned<String>, key: &str) -> Option<SecretRef> {
    let text = raw.value.trim();
    if let Some(inner) = text.strip_prefix("${") {
        let Some(name) = inner.strip_suffix('}') else {
            d.push(
                Diagnostic::new(
                    DiagnosticId::InvalidSecretReference,
                    Span::of(raw),
                    format!("`{key}` is an unclosed `${{` reference"),
                    "missing `}`",
                )
                .help("write `${NAME}` with the environment variable's name"),
            );
            return None;
        };
        // Rule: no shell-style default (`${NAME:-value}`): the default would be compiled
        // into the executable, and it may be a password, so it is never repeated.
        if let Some(cut) = name.find([':', '-', '=', '?', '+']) {
            let var = &name[..cut];
            d.push(
                Diagnostic::new(
                    DiagnosticId::SecretDefault,
                    Span::of(raw),
                    format!("`{key}` gives `${{{var}}}` a default value, which would be compiled into the executable"),
                    "defaults are not supported here",
                )
                .help(format!("write `${{{var}}}` and set `{var}` where the bot runs"))
                .note("the default is not shown here: it may be a secret")
                .redacted(),
            );
            return None;
        }
        let valid = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            d.push(
                Diagnostic::new(
                    DiagnosticId::InvalidSecretReference,
                    Span::of(raw),
                    format!("`{key}` refers to `{name}`, which is not an environment variable name"),
                    "not a variable name",
                )
                .help("names are letters, digits and `_`, not starting with a digit, e.g. `${ST2_API_KEY}`"),
            );
            return None;
        }
        return Some(SecretRef::Env(name.to_owned().into()));
    }
    if let Some(path) = text.strip_prefix("file:") {
        if path.trim().is_empty() {
            d.push(
                Diagnostic::new(
                    DiagnosticId::InvalidSecretReference,
                    Span::of(raw),
                    format!("`{key}` names no file"),
                    "empty path",
                )
                .help("write `file:/run/secrets/<name>`"),
            );
            return None;
        }
        return Some(SecretRef::File(path.trim().to_owned().into()));
    }
    d.push(
        Diagnostic::new(
            DiagnosticId::ClearTextSecret,
            Span::of(raw),
            format!("`{key}` is a secret written in clear (`***`)"),
            "this value would be compiled into the executable",
        )
        .help(format!(
            "write a reference instead: `{key}: ${{ENV_VAR}}` or `{key}: file:/path/to/secret`"
        ))
        .note("secrets are read at run time from the environment or a file, never stored in the definition")
        .redacted(),
    );
    None
}
