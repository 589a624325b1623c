//! The audit trail: one JSON object per line for every access decision, execution started
//! (or refused by StackStorm) and inquiry answer (sent, refused by the bot, refused by
//! StackStorm), to the file `log.audit_file` and/or standard output (`log.audit_stdout`).
//! Read [`AuditTrail`] first; docs/operations.md#audit-trail is the operator's side.
//!
//! Every line has `time` (RFC 3339, UTC), `bot` and `event`, then the event's fields. Never a
//! secret: no credential ever reaches this module; command text is capped like the logs'
//! ([`crate::dispatch::capped`]), and inquiry answers have the fields their schema marks
//! `secret: true` replaced by `********`, as StackStorm masks them. Lines are appended with
//! one write each; rotation is the platform's (logrotate `copytruncate`, or journald for
//! standard output), so the file is opened once, in append mode.

use std::io::Write as _;
use std::sync::Mutex;

use bot_config::LogSpec;
use serde_json::{Map, Value, json};

/// Why the audit trail could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The file cannot be created or opened for appending.
    #[error("cannot open the audit trail `{path}`: {source}")]
    Open {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Where audit lines go.
pub struct AuditTrail {
    bot: String,
    file: Option<(String, Mutex<std::fs::File>)>,
    stdout: bool,
    /// Under `ha:`, the queue of the PostgreSQL copy ([`crate::ha::audit_store`]).
    shared: Option<tokio::sync::mpsc::Sender<String>>,
}

impl std::fmt::Debug for AuditTrail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditTrail")
            .field("file", &self.file.as_ref().map(|(p, _)| p))
            .field("stdout", &self.stdout)
            .finish()
    }
}

impl AuditTrail {
    /// The trail a definition's `log` section asks for, `None` when it names none. The file
    /// is created readable by its owner only.
    pub fn open(bot: &str, log: &LogSpec) -> Result<Option<Self>, AuditError> {
        let file = match &log.audit_file {
            Some(path) => {
                let mut options = std::fs::OpenOptions::new();
                options.create(true).append(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let file = options
                    .open(path.as_ref())
                    .map_err(|source| AuditError::Open {
                        path: path.to_string(),
                        source,
                    })?;
                Some((path.to_string(), Mutex::new(file)))
            }
            None => None,
        };
        if file.is_none() && !log.audit_stdout {
            return Ok(None);
        }
        Ok(Some(Self {
            bot: bot.to_owned(),
            file,
            stdout: log.audit_stdout,
            shared: None,
        }))
    }

    /// Also appends every line to the instances' shared trail in PostgreSQL (`ha:`).
    pub(crate) fn share(&mut self, lines: tokio::sync::mpsc::Sender<String>) {
        self.shared = Some(lines);
    }

    /// Appends one line: `time`, `bot`, `event` and `fields` (an object).
    pub fn record(&self, event: &str, fields: Value) {
        let mut line = Map::new();
        line.insert(
            "time".into(),
            json!(humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string()),
        );
        line.insert("bot".into(), json!(self.bot));
        line.insert("event".into(), json!(event));
        if let Value::Object(fields) = fields {
            line.extend(fields);
        }
        let mut text = Value::Object(line).to_string();
        if let Some(shared) = &self.shared
            && shared.try_send(text.clone()).is_err()
        {
            tracing::warn!(
                event,
                queued = crate::ha::audit_store::MAX_QUEUED,
                "audit trail: the database copy is behind; this line is only in the file or on standard output"
            );
        }
        text.push('\n');
        if let Some((path, file)) = &self.file {
            let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = file.write_all(text.as_bytes()) {
                tracing::error!(path = %path, error = %e, event, "cannot write the audit trail");
            }
        }
        if self.stdout {
            let mut out = std::io::stdout().lock();
            if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                tracing::error!(error = %e, event, "cannot write the audit trail to stdout");
            }
        }
    }
}

/// An inquiry answer as the trail shows it: the fields `schema` marks `secret: true` masked.
pub fn masked_answer(schema: &Value, answer: &Map<String, Value>) -> Value {
    let secret = |name: &str| {
        schema
            .get("properties")
            .and_then(|p| p.get(name))
            .and_then(|p| p.get("secret"))
            == Some(&Value::Bool(true))
    };
    Value::Object(
        answer
            .iter()
            .map(|(k, v)| {
                let shown = if secret(k) {
                    json!("********")
                } else {
                    v.clone()
                };
                (k.clone(), shown)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_objects_appended_and_secret_answers_masked() {
        let path = std::env::temp_dir().join(format!("st2bot-audit-unit-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let log = LogSpec {
            format: bot_config::LogFormat::Text,
            level: "info".into(),
            audit_file: Some(path.display().to_string().into()),
            audit_stdout: false,
        };
        let trail = AuditTrail::open("acme", &log).unwrap().expect("a trail");
        trail.record("access", json!({"user": "alice", "decision": "allow"}));
        let schema = json!({"properties": {"pin": {"type": "string", "secret": true}, "ok": {"type": "boolean"}}});
        let answer = json!({"pin": "1234", "ok": true});
        let shown = masked_answer(&schema, answer.as_object().unwrap());
        trail.record("inquiry", json!({"response": shown}));
        drop(trail);
        let again = AuditTrail::open("acme", &log).unwrap().unwrap();
        again.record("access", json!({"user": "bob"}));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0]["event"], "access");
        assert_eq!(lines[0]["bot"], "acme");
        assert_eq!(lines[0]["decision"], "allow");
        assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
        assert_eq!(lines[1]["response"], json!({"pin": "********", "ok": true}));
        assert!(!text.contains("1234"));
        assert_eq!(lines[2]["user"], "bob");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_file(&path).unwrap();
        let none = LogSpec {
            audit_file: None,
            ..log
        };
        assert!(AuditTrail::open("acme", &none).unwrap().is_none());
    }
}
