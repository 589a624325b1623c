//! Secrets at run time: resolve a [`SecretRef`] from the environment or a file into a
//! [`Secret`], whose `Debug` and `Display` never show the value.

use std::fmt;

use bot_config::SecretRef;
use secrecy::{ExposeSecret, SecretString};

/// A resolved secret. Print it all you like: it shows `***`. Call [`Secret::expose`] only
/// where the value goes on the wire.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a value (tests, values received at run time such as user tokens).
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The value, for the one place it is sent.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// `${NAME}` is not set.
    #[error("environment variable `{0}` is not set")]
    MissingEnv(String),
    /// `${NAME}` is set but empty.
    #[error("environment variable `{0}` is empty")]
    EmptyEnv(String),
    /// `file:` could not be read.
    #[error("cannot read secret file `{path}`: {source}")]
    File {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `file:` is empty.
    #[error("secret file `{0}` is empty")]
    EmptyFile(String),
}

/// Reads a secret from where its reference points.
pub fn resolve(reference: &SecretRef) -> Result<Secret, SecretError> {
    match reference {
        SecretRef::Env(name) => match std::env::var(name.as_ref()) {
            Ok(v) if v.is_empty() => Err(SecretError::EmptyEnv(name.to_string())),
            Ok(v) => Ok(Secret::new(v)),
            Err(_) => Err(SecretError::MissingEnv(name.to_string())),
        },
        SecretRef::File(path) => {
            let text =
                std::fs::read_to_string(path.as_ref()).map_err(|source| SecretError::File {
                    path: path.to_string(),
                    source,
                })?;
            let value = text.trim_end_matches(['\n', '\r']);
            if value.is_empty() {
                Err(SecretError::EmptyFile(path.to_string()))
            } else {
                Ok(Secret::new(value))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn reads_files_without_trailing_newline() {
        let dir = std::env::temp_dir().join(format!("st2bot-secret-{}", std::process::id()));
        std::fs::write(&dir, "tok\n").unwrap();
        let s = resolve(&SecretRef::File(dir.to_string_lossy().into_owned().into())).unwrap();
        assert_eq!(s.expose(), "tok");
        std::fs::remove_file(&dir).unwrap();
        assert!(matches!(
            resolve(&SecretRef::Env("ST2BOT_TEST_SURELY_UNSET".into())),
            Err(SecretError::MissingEnv(_))
        ));
    }
}
