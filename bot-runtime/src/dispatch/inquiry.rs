//! The dispatcher's inquiry side: posting a new inquiry where its workflow was started
//! ([`Dispatcher::ask_inquiry`], from the announcement of docs/inquiries.md's rule) and the
//! `inquiry list|show|respond`, `approve` and `reject` commands
//! ([`Dispatcher::inquiry_command`]). The schema, validation and permission rules are in
//! [`crate::inquiry`]. A yes/no question is asked in the thread of its command where the
//! service has threads, and a plain `yes`/`no` there is read as `approve`/`reject`
//! (`Dispatcher::plan`); it carries Approve/Reject buttons ([`approval_actions`]) for the
//! backends that have them, and a press comes back as the presser's `approve ID` /
//! `reject ID`.

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use super::Dispatcher;
use crate::backend::{Incoming, Outgoing, Target, approval_actions};
use crate::inquiry::{self, Inquiry};
use crate::stackstorm::St2Error;

/// How far up the workflow tree the bot looks for the execution it started.
const MAX_ANCESTORS: usize = 8;

/// What StackStorm's refusal of an inquiry means to the user, when it is one of the
/// inquiry's own states (messages of `st2common/exceptions/inquiry.py`).
fn inquiry_state(id: &str, e: &St2Error) -> Option<String> {
    match e {
        St2Error::Api {
            status: 400,
            faultstring,
            ..
        } if faultstring.contains("timed out") => Some(format!(
            "inquiry {id} has expired (its time ran out): it can no longer be answered"
        )),
        St2Error::Api {
            status: 400,
            faultstring,
            ..
        } if faultstring.contains("already been responded") => {
            Some(format!("inquiry {id} was already answered"))
        }
        St2Error::Api {
            status: 400,
            faultstring,
            ..
        } if faultstring.contains("is not an inquiry") => {
            Some(format!("{id} is an execution, not an inquiry"))
        }
        St2Error::Api { status: 404, .. } => Some(format!("there is no inquiry {id}")),
        _ => None,
    }
}

/// How long until an inquiry started at `started` (RFC 3339) with `ttl` minutes expires;
/// `None` when it never does or the start is unknown.
fn time_left(started: Option<&str>, ttl: i64) -> Option<Duration> {
    let ttl = u64::try_from(ttl).ok().filter(|t| *t > 0)?;
    let started = started?;
    let started = started.strip_suffix("+00:00").unwrap_or(started);
    let started = humantime::parse_rfc3339_weak(started).ok()?;
    let ends = started + Duration::from_secs(ttl.saturating_mul(60));
    Some(ends.duration_since(SystemTime::now()).unwrap_or_default())
}

impl Dispatcher {
    /// Posts inquiry `id` (just announced by the inquiry rule on `channel`) in the room and
    /// thread of the command that started its workflow, or else in `channel` / the
    /// inquiry's route.
    pub(super) async fn ask_inquiry(&self, id: &str, channel: Option<&str>) {
        let inquiry = match self.st2.inquiry(id).await {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(inquiry = id, error = %e, "cannot read an announced inquiry");
                return;
            }
        };
        let link = self.st2.execution_link(id).await.unwrap_or_default();
        // A yes/no question goes in the thread of the command (where the service has
        // threads), so that a plain `yes` or `no` in that thread answers it.
        let yes_no = self.capabilities.threads
            && inquiry::single_boolean(&inquiry::fields(&inquiry.schema)).is_some();
        let mut target = None;
        let mut mention = None;
        let mut parent = link.parent.clone();
        let owed = self.results.owed();
        for _ in 0..MAX_ANCESTORS {
            let Some(pid) = parent.take() else { break };
            if let Some(started) = owed.iter().find(|o| o.execution_id == pid) {
                target = Some(match &started.room {
                    Some(room) => Target::Room {
                        id: room.clone(),
                        thread: started
                            .thread
                            .clone()
                            .or_else(|| started.message_id.clone().filter(|_| yes_no)),
                    },
                    None => Target::Direct {
                        user: started.user_id.clone(),
                    },
                });
                mention = started.room.as_ref().map(|_| started.user.clone());
                break;
            }
            parent = match self.st2.execution_link(&pid).await {
                Ok(l) => l.parent,
                Err(e) => {
                    tracing::debug!(execution = %pid, error = %e, "cannot read an inquiry's workflow");
                    None
                }
            };
        }
        let target = target.or_else(|| {
            let place = channel
                .filter(|c| !c.is_empty())
                .or(Some(inquiry.route.as_str()).filter(|r| !r.is_empty()))?;
            Some(match place.strip_prefix('@') {
                Some(user) => Target::Direct {
                    user: user.to_owned(),
                },
                None => Target::Room {
                    id: place.to_owned(),
                    thread: None,
                },
            })
        });
        let Some(target) = target else {
            tracing::warn!(
                inquiry = id,
                "an inquiry from a workflow this bot did not start, without route: not posted"
            );
            return;
        };
        let left = time_left(link.start_timestamp.as_deref(), inquiry.ttl);
        let mut text = inquiry::question(&inquiry, left, &self.spec.chat.prefix);
        if yes_no
            && let Target::Room {
                id: room,
                thread: Some(thread),
            } = &target
        {
            self.question_threads
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remember(room, thread, id);
            text.push_str("\nOr reply `yes` or `no` in this thread.");
        }
        tracing::info!(inquiry = id, "posting an inquiry");
        let mut out = Outgoing::text(target, text);
        out.mention = mention;
        if inquiry::single_boolean(&inquiry::fields(&inquiry.schema)).is_some() {
            out.actions = approval_actions(&self.spec.chat.prefix, id);
        }
        self.send(out).await;
    }

    /// `inquiry [list]`, `inquiry show ID`, `inquiry respond ID key=value…`, `approve ID`,
    /// `reject ID` (access already allowed as `bot:inquiry`).
    pub(super) async fn inquiry_command(&self, message: &Incoming, command: &str) {
        let mut words = command.splitn(2, char::is_whitespace);
        let verb = words.next().unwrap_or_default();
        let rest = words.next().unwrap_or_default().trim();
        let (sub, rest) = match verb {
            "inquiry" => {
                let mut w = rest.splitn(2, char::is_whitespace);
                (w.next().unwrap_or_default(), w.next().unwrap_or_default())
            }
            other => (other, rest),
        };
        let mut w = rest.trim().splitn(2, char::is_whitespace);
        let id = w.next().unwrap_or_default();
        let answer = w.next().unwrap_or_default().trim();
        match sub {
            "" | "list" => self.list_inquiries(message).await,
            "show" | "respond" | "approve" | "reject" if id.is_empty() => {
                let text = format!(
                    "{}: say which inquiry: `{}{} ID` (`{}inquiry list` shows them)",
                    message.user,
                    self.spec.chat.prefix,
                    if verb == "inquiry" {
                        format!("inquiry {sub}")
                    } else {
                        sub.to_owned()
                    },
                    self.spec.chat.prefix
                );
                self.reply(message, text).await;
            }
            "show" => self.show_inquiry(message, id).await,
            "respond" => {
                self.answer_inquiry(message, id, Answer::Fields(answer))
                    .await
            }
            "approve" => self.answer_inquiry(message, id, Answer::YesNo(true)).await,
            "reject" => self.answer_inquiry(message, id, Answer::YesNo(false)).await,
            other => {
                let p = &self.spec.chat.prefix;
                let text = format!(
                    "{}: `{}` is not an inquiry command; say `{p}inquiry list`, `{p}inquiry show ID`, `{p}inquiry respond ID key=value…`, `{p}approve ID` or `{p}reject ID`",
                    message.user,
                    self.echo(other)
                );
                self.reply(message, text).await;
            }
        }
    }

    async fn list_inquiries(&self, message: &Incoming) {
        let text = match self.st2.inquiries().await {
            Ok(list) if list.is_empty() => {
                format!("{}: no inquiry is waiting for an answer.", message.user)
            }
            Ok(list) => {
                let mut text = format!("{}: inquiries waiting for an answer:", message.user);
                for i in &list {
                    let fields: Vec<String> = inquiry::fields(&i.schema)
                        .into_iter()
                        .map(|f| f.name)
                        .collect();
                    text.push_str(&format!(
                        "\n  • {} asks {}",
                        i.id,
                        if fields.is_empty() {
                            "nothing".to_owned()
                        } else {
                            fields.join(", ")
                        }
                    ));
                }
                text.push_str(&format!(
                    "\n`{}inquiry show ID` shows one.",
                    self.spec.chat.prefix
                ));
                text
            }
            Err(e) => self.error_text(message, "inquiry list", &e),
        };
        self.reply(message, text).await;
    }

    /// Reads inquiry `id`, or replies why it cannot be.
    async fn read_inquiry(&self, message: &Incoming, id: &str) -> Option<Inquiry> {
        if !inquiry::is_valid_id(id) {
            let text = format!("{}: `{}` is not an inquiry id", message.user, self.echo(id));
            self.reply(message, text).await;
            return None;
        }
        match self.st2.inquiry(id).await {
            Ok(i) => Some(i),
            Err(e) => {
                let text = match inquiry_state(id, &e) {
                    Some(state) => format!("{}: {state}", message.user),
                    None => self.error_text(message, &format!("inquiry show {id}"), &e),
                };
                self.reply(message, text).await;
                None
            }
        }
    }

    async fn show_inquiry(&self, message: &Incoming, id: &str) {
        let Some(inquiry) = self.read_inquiry(message, id).await else {
            return;
        };
        let started = self.st2.execution_link(id).await.ok();
        let left = time_left(
            started.as_ref().and_then(|l| l.start_timestamp.as_deref()),
            inquiry.ttl,
        );
        let text = inquiry::question(&inquiry, left, &self.spec.chat.prefix);
        self.reply(message, text).await;
    }

    async fn answer_inquiry(&self, message: &Incoming, id: &str, answer: Answer<'_>) {
        let Some(inquiry) = self.read_inquiry(message, id).await else {
            return;
        };
        let st2_user = self
            .sessions
            .as_ref()
            .and_then(|s| s.session_of(&message.user_id))
            .map_or_else(|| message.user.clone(), |s| s.st2_user);
        let audit = |decision: &str, detail: Value| {
            let mut fields = serde_json::json!({
                "user": message.user, "user_id": message.user_id, "st2_user": st2_user,
                "room": message.room.as_ref().map(|r| r.name.clone()), "inquiry": id,
                "decision": decision,
            });
            if let (Value::Object(f), Value::Object(d)) = (&mut fields, detail) {
                f.extend(d);
            }
            self.audit("inquiry", fields);
        };
        if let Err(refusal) =
            inquiry::may_answer(&inquiry, &st2_user, &message.user, &self.spec.access.groups)
        {
            tracing::info!(inquiry = id, user = %message.user, st2_user, decision = "deny", reason = %refusal, "inquiry answer refused");
            audit("deny", serde_json::json!({"reason": refusal.to_string()}));
            let text = format!(
                "{}: you may not answer inquiry {id}: {refusal}",
                message.user
            );
            return self.reply(message, text).await;
        }
        let response: Map<String, Value> = match answer {
            Answer::Fields(text) => match inquiry::parse_answer(&inquiry.schema, text) {
                Ok(r) => r,
                Err(e) => {
                    tracing::info!(inquiry = id, user = %message.user, decision = "invalid", reason = %e, "inquiry answer refused");
                    audit("invalid", serde_json::json!({"reason": e.to_string()}));
                    let text = format!(
                        "{}: your answer to inquiry {id} was not sent: {e}",
                        message.user
                    );
                    return self.reply(message, text).await;
                }
            },
            Answer::YesNo(yes) => {
                let fields = inquiry::fields(&inquiry.schema);
                let Some(name) = inquiry::single_boolean(&fields) else {
                    let text = format!(
                        "{}: inquiry {id} asks more than yes or no; answer with `{}inquiry respond {id} key=value…` (`{}inquiry show {id}` lists its fields)",
                        message.user, self.spec.chat.prefix, self.spec.chat.prefix
                    );
                    return self.reply(message, text).await;
                };
                let mut r = Map::new();
                r.insert(name.to_owned(), Value::Bool(yes));
                r
            }
        };
        let token = match &self.sessions {
            Some(sessions) => match sessions.token_for(&message.user_id) {
                Some(token) => Some(token),
                None if sessions.required() => {
                    let text = format!(
                        "{}: this bot answers as your own StackStorm user; log in first with `{}{} login`",
                        message.user, self.spec.chat.prefix, self.spec.chat.session_command
                    );
                    return self.reply(message, text).await;
                }
                None => None,
            },
            None => None,
        };
        let masked = crate::audit::masked_answer(&inquiry.schema, &response);
        let shown = masked.to_string();
        // Fencing, as for executions: a leader whose lease ran out meanwhile does not answer.
        if !self.leadership.is_leader() {
            tracing::warn!(
                inquiry = id,
                "no longer the leader: the answer is not sent here"
            );
            return;
        }
        let text = match self
            .st2
            .respond_inquiry(id, &response, token.as_ref())
            .await
        {
            Ok(()) => {
                tracing::info!(inquiry = id, user = %message.user, st2_user, decision = "answered", response = %super::capped(&shown), "inquiry answered");
                audit("answered", serde_json::json!({"response": masked}));
                format!(
                    "{}: inquiry {id} answered with {}; the workflow resumes.",
                    message.user,
                    self.echo(&shown)
                )
            }
            Err(e) => {
                audit(
                    "refused_by_stackstorm",
                    serde_json::json!({"status": e.status(), "error": super::capped(&e.user_message())}),
                );
                match inquiry_state(id, &e) {
                    Some(state) => format!("{}: {state}", message.user),
                    None if e.status() == Some(403) => format!(
                        "{}: StackStorm refused your answer to inquiry {id}: {}",
                        message.user,
                        e.user_message()
                    ),
                    None => self.error_text(message, &format!("inquiry respond {id}"), &e),
                }
            }
        };
        self.reply(message, text).await;
    }
}

/// What an answer command gives.
enum Answer<'a> {
    /// `key=value …`.
    Fields(&'a str),
    /// `approve` (true) or `reject` (false) of a single yes/no question.
    YesNo(bool),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_counts_down_from_the_start_and_ttl_minutes() {
        let started =
            humantime::format_rfc3339_micros(SystemTime::now() - Duration::from_secs(600))
                .to_string();
        let left = time_left(Some(&started), 60).unwrap();
        assert!(
            left <= Duration::from_secs(3000) && left > Duration::from_secs(2990),
            "{left:?}"
        );
        assert_eq!(time_left(Some(&started), 5), Some(Duration::ZERO));
        assert_eq!(time_left(Some(&started), 0), None);
        assert_eq!(time_left(None, 60), None);
    }

    #[test]
    fn stackstorms_inquiry_refusals_are_explained() {
        let api = |status, f: &str| St2Error::Api {
            status,
            faultstring: f.to_owned(),
            request_id: None,
        };
        assert_eq!(
            inquiry_state(
                "a1",
                &api(400, "Inquiry \"a1\" timed out and cannot be responded to.")
            )
            .unwrap(),
            "inquiry a1 has expired (its time ran out): it can no longer be answered"
        );
        assert_eq!(
            inquiry_state(
                "a1",
                &api(400, "Inquiry \"a1\" has already been responded to.")
            )
            .unwrap(),
            "inquiry a1 was already answered"
        );
        assert_eq!(
            inquiry_state("a1", &api(404, "")).unwrap(),
            "there is no inquiry a1"
        );
        assert_eq!(inquiry_state("a1", &api(500, "boom")), None);
    }
}
