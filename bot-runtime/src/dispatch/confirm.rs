//! The dispatcher's confirmation side: a command whose alias a `confirm:` rule names is held
//! back and a prompt posted ([`Dispatcher::run_or_confirm`]); `confirm CODE`, `approve ID`
//! and `reject ID` answer it ([`Dispatcher::confirm_command`]); requests whose time ran out
//! are told so ([`Dispatcher::expire_confirmations`]). On confirmation or approval the
//! command runs through the ordinary execute path as its requester's message. The rules,
//! the store and the texts are in [`crate::confirm`].

use std::time::Instant;

use bot_config::spec::{ConfirmBy, ConfirmSpec};
use serde_json::{Value, json};

use super::{Dispatcher, Resolved};
use crate::backend::{Action, ActionStyle, Incoming, Outgoing, Target};
use crate::confirm::{self, Outcome, Pending, Verb};

/// How many fresh ids are drawn before giving up (the store is nearly full of them).
const ID_ATTEMPTS: usize = 32;

impl Dispatcher {
    /// Runs `command` (resolved, access allowed), or holds it back for the confirmation its
    /// alias needs.
    pub(super) async fn run_or_confirm(
        &self,
        message: &Incoming,
        command: &str,
        resolved: &Resolved,
    ) {
        match self.confirm_rules.rule_for(&resolved.reference) {
            None => self.execute(message, command, resolved, None).await,
            Some(rule) => {
                self.request_confirmation(message, command, resolved, rule)
                    .await
            }
        }
    }

    /// Where a request's prompt and outcome go: the thread of the command (started on the
    /// command's own message where the service has threads), or the direct message.
    fn confirmation_place(&self, message: &Incoming) -> Target {
        match &message.room {
            Some(room) => Target::Room {
                id: room.id.clone(),
                thread: message
                    .thread
                    .clone()
                    .or_else(|| message.message_id.clone())
                    .filter(|_| self.capabilities.threads),
            },
            None => Target::Direct {
                user: message.user_id.clone(),
            },
        }
    }

    /// One audit line about request `p`: `user` is who acted (the requester for a request).
    fn audit_confirmation(&self, event: &str, user: &Incoming, p: &Pending, more: Value) {
        let mut fields = json!({
            "user": user.user, "user_id": user.user_id,
            "room": user.room.as_ref().map(|r| r.name.clone()),
            "confirmation": p.id, "by": confirm::by_text(&p.by),
            "requester": p.request.user, "command": p.resolved.reference,
        });
        if let (Value::Object(f), Value::Object(m)) = (&mut fields, more) {
            f.extend(m);
        }
        self.audit(event, fields);
    }

    async fn request_confirmation(
        &self,
        message: &Incoming,
        command: &str,
        resolved: &Resolved,
        rule: &ConfirmSpec,
    ) {
        let Some(id) = (0..ID_ATTEMPTS)
            .map(|_| confirm::new_id())
            .find(|id| !self.pending.is_known(id))
        else {
            tracing::warn!("no free confirmation id: too many requests waiting");
            let text = format!(
                "{}: too many commands are waiting for a confirmation; try again in a minute",
                message.user
            );
            return self.reply(message, text).await;
        };
        // The message is kept to run the command as it came; its text (up to
        // `MAX_COMMAND_BYTES`) is not needed again: `command` is.
        let request = Incoming {
            text: String::new(),
            ..message.clone()
        };
        let pending = Pending {
            id,
            request,
            command: command.to_owned(),
            resolved: resolved.clone(),
            by: rule.by.clone(),
            within: rule.within,
            deadline: Instant::now() + rule.within,
            thread: self.confirmation_place(message),
        };
        let text = confirm::prompt(&self.spec.chat.prefix, &pending, &self.echo(command));
        // Buttons where the service has them: a press is the presser's typed answer.
        let [(yes_label, yes), (no_label, no)] =
            confirm::answer_commands(&self.spec.chat.prefix, &pending);
        let actions = vec![
            Action {
                label: yes_label.to_owned(),
                style: ActionStyle::Primary,
                command: yes,
            },
            Action {
                label: no_label.to_owned(),
                style: ActionStyle::Danger,
                command: no,
            },
        ];
        tracing::info!(
            alias = %resolved.reference, confirmation = %pending.id,
            by = %confirm::by_text(&pending.by), rule_line = rule.line,
            "command held for confirmation"
        );
        crate::ops::metrics().command("confirmation_requested");
        self.audit_confirmation(
            "confirmation_requested",
            message,
            &pending,
            json!({"text": super::capped(command), "within_secs": rule.within.as_secs()}),
        );
        let target = pending.thread.clone();
        if let Some(pushed_out) = self.pending.insert(pending) {
            self.confirmation_expired(pushed_out).await;
        }
        let mut out = Outgoing::text(target, text);
        out.actions = actions;
        self.send(out).await;
    }

    /// Posts that `p` expired, in its thread, and records it.
    async fn confirmation_expired(&self, p: Pending) {
        tracing::info!(confirmation = %p.id, alias = %p.resolved.reference, "confirmation expired; nothing was run");
        crate::ops::metrics().command("confirmation_expired");
        self.audit_confirmation("confirmation_expired", &p.request, &p, json!({}));
        let text = format!(
            "⌛ {}: confirmation {} of `{}` expired: nothing was run.",
            p.request.user,
            p.id,
            self.echo(&p.command)
        );
        self.send(Outgoing::text(p.thread, text)).await;
    }

    /// Tells of every request whose time ran out by `now` (run about once a second, by the
    /// leader).
    pub async fn expire_confirmations(&self, now: Instant) {
        if self.confirm_rules.is_empty() {
            return;
        }
        for p in self.pending.expire(now) {
            self.confirmation_expired(p).await;
        }
    }

    /// Refuses an answer: logs, audits `confirmation_refused`, replies.
    async fn refuse_confirmation(&self, message: &Incoming, p: &Pending, reason: &str) {
        tracing::info!(confirmation = %p.id, user = %message.user, decision = "deny", reason, "confirmation answer refused");
        self.audit_confirmation(
            "confirmation_refused",
            message,
            p,
            json!({"reason": reason}),
        );
        self.reply(message, format!("{}: {reason}", message.user))
            .await;
    }

    /// `confirm CODE`, `approve ID`, `reject ID` (access already allowed as `bot:confirm`).
    pub(super) async fn confirm_command(&self, message: &Incoming, verb: Verb, id: &str) {
        let prefix = &self.spec.chat.prefix;
        if id.is_empty() {
            let text = format!(
                "{}: say which request: `{prefix}{} CODE` with the code the bot gave you",
                message.user,
                confirm::CONFIRM_WORD
            );
            return self.reply(message, text).await;
        }
        let now = Instant::now();
        if self.pending.get(id).is_some_and(|p| p.deadline <= now) {
            // Its time ran out and the sweep has not told it yet: late, whatever the answer.
            self.expire_confirmations(now).await;
        }
        let Some(p) = self.pending.get(id) else {
            let text = self.no_longer_pending(message, id);
            return self.reply(message, text).await;
        };
        let requester = message.user_id == p.request.user_id;
        let by = p.by.clone();
        match (&by, verb) {
            (_, Verb::Reject) if requester => {
                self.settle_rejected(message, p, true).await;
            }
            (ConfirmBy::Requester, Verb::Confirm) if requester => {
                self.settle_and_run(message, p, Outcome::Confirmed).await;
            }
            (ConfirmBy::Requester, Verb::Approve) if requester => {
                let text = format!(
                    "{}: this one needs your own confirmation: say `{prefix}{} {id}`",
                    message.user,
                    confirm::CONFIRM_WORD
                );
                self.reply(message, text).await;
            }
            (ConfirmBy::Requester, _) => {
                let reason = format!(
                    "confirmation {id} is {}'s: only they can answer it",
                    p.request.user
                );
                self.refuse_confirmation(message, &p, &reason).await;
            }
            (ConfirmBy::Group(group), _) if requester => {
                let reason = format!(
                    "you cannot approve your own request {id}: another member of {group} must (`{prefix}reject {id}` withdraws it)"
                );
                self.refuse_confirmation(message, &p, &reason).await;
            }
            (ConfirmBy::Group(group), _)
                if !confirm::is_member(&message.user, group, &self.spec.access.groups) =>
            {
                let reason = format!(
                    "you may not answer confirmation {id}: only members of {group} other than {} may",
                    p.request.user
                );
                self.refuse_confirmation(message, &p, &reason).await;
            }
            (ConfirmBy::Group(_), Verb::Confirm) => {
                let text = format!(
                    "{}: confirmation {id} is approved with `{prefix}approve {id}` (or refused with `{prefix}reject {id}`)",
                    message.user
                );
                self.reply(message, text).await;
            }
            (ConfirmBy::Group(_), Verb::Approve) => {
                let outcome = Outcome::Approved {
                    by: message.user.clone(),
                };
                self.settle_and_run(message, p, outcome).await;
            }
            (ConfirmBy::Group(_), Verb::Reject) => {
                self.settle_rejected(message, p, false).await;
            }
        }
    }

    /// What an answer to `id`, which is not waiting, is told: how it ended, or that it is
    /// unknown.
    fn no_longer_pending(&self, message: &Incoming, id: &str) -> String {
        match self.pending.outcome(id) {
            Some(Outcome::Expired) => format!(
                "{}: confirmation {id} has expired: nothing was run (run the command again to ask anew)",
                message.user
            ),
            Some(Outcome::Confirmed) => {
                format!("{}: confirmation {id} was already confirmed", message.user)
            }
            Some(Outcome::Approved { by }) => format!(
                "{}: confirmation {id} was already approved by {by}",
                message.user
            ),
            Some(Outcome::Rejected { by }) => format!(
                "{}: confirmation {id} was rejected by {by}: nothing was run",
                message.user
            ),
            None => format!(
                "{}: `{}` is not a pending confirmation (mistyped, or from before a restart?)",
                message.user,
                self.echo(id)
            ),
        }
    }

    /// Rejects `p` (withdrawn by its requester when `withdrawn`): nothing runs.
    async fn settle_rejected(&self, message: &Incoming, p: Pending, withdrawn: bool) {
        let outcome = Outcome::Rejected {
            by: message.user.clone(),
        };
        if self.pending.settle(&p.id, outcome).is_none() {
            // Answered or expired meanwhile: say what happened.
            let text = self.no_longer_pending(message, &p.id);
            return self.reply(message, text).await;
        }
        tracing::info!(confirmation = %p.id, user = %message.user, withdrawn, "confirmation rejected; nothing was run");
        crate::ops::metrics().command("rejected");
        self.audit_confirmation("rejected", message, &p, json!({"withdrawn": withdrawn}));
        let text = if withdrawn {
            format!(
                "{} withdrew `{}` (confirmation {}): nothing was run.",
                message.user,
                self.echo(&p.command),
                p.id
            )
        } else {
            format!(
                "{} rejected {}'s `{}` (confirmation {}): nothing was run.",
                message.user,
                p.request.user,
                self.echo(&p.command),
                p.id
            )
        };
        self.send(Outgoing::text(p.thread.clone(), text)).await;
    }

    /// Settles `p` as confirmed or approved and runs its command as its requester.
    async fn settle_and_run(&self, message: &Incoming, p: Pending, outcome: Outcome) {
        if self.pending.settle(&p.id, outcome.clone()).is_none() {
            let text = self.no_longer_pending(message, &p.id);
            return self.reply(message, text).await;
        }
        let context = match &outcome {
            Outcome::Approved { by } => {
                tracing::info!(confirmation = %p.id, approver = %by, alias = %p.resolved.reference, "command approved");
                crate::ops::metrics().command("approved");
                self.audit_confirmation("approved", message, &p, json!({}));
                let text = format!(
                    "{by} approved {}'s `{}` (confirmation {}): running it.",
                    p.request.user,
                    self.echo(&p.command),
                    p.id
                );
                self.send(Outgoing::text(p.thread.clone(), text)).await;
                json!({"confirmed": confirm::by_text(&p.by), "approved_by": by, "confirmation": p.id})
            }
            _ => {
                tracing::info!(confirmation = %p.id, alias = %p.resolved.reference, "command confirmed");
                crate::ops::metrics().command("confirmed");
                self.audit_confirmation("confirmed", message, &p, json!({}));
                json!({"confirmed": "self", "confirmation": p.id})
            }
        };
        self.execute(&p.request, &p.command, &p.resolved, Some(&context))
            .await;
    }
}
