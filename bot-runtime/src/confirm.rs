//! Confirmations of dangerous commands (the definition's `confirm:`): which rule applies to
//! an alias ([`ConfirmRules`]), a request waiting for its answer ([`Pending`]), where
//! requests wait ([`PendingConfirmations`], in memory: [`MemoryConfirmations`]), the answer
//! words ([`parse`]) and the texts users read. No I/O here: the chat side is
//! `dispatch/confirm.rs`; docs/confirmations.md is the user's side. Read [`Pending`] first.
//!
//! A request is known by a short id of [`ID_LEN`] characters from [`ID_ALPHABET`]; for
//! `by: self` the id is the code the requester repeats (`!confirm k7m2`), for `by: @group`
//! the id another member names (`!approve c7f3`). Ids are never 24 hexadecimal digits, so
//! `approve`/`reject` tell a confirmation from an inquiry (StackStorm object ids) by shape.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bot_config::acl::{GlobError, GlobMatcher, compile_glob};
use bot_config::spec::{ConfirmBy, ConfirmSpec, GroupSpec};

use crate::backend::{Incoming, Target};
use crate::dispatch::Resolved;

/// The chat command that confirms a `by: self` request (`confirm CODE`).
pub const CONFIRM_WORD: &str = "confirm";
/// Requests waiting at once, at most; past it the one closest to its end expires first.
pub const MAX_PENDING: usize = 1024;
/// Settled requests remembered (so a late answer is told what happened), at most.
pub const MAX_SETTLED: usize = 1024;
/// Length of a request id (and of a `by: self` code).
pub const ID_LEN: usize = 4;
/// The characters of ids: lowercase letters and digits without the look-alikes
/// (`0`/`o`, `1`/`l`/`i`).
pub const ID_ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";

/// The `confirm:` rules, compiled once.
#[derive(Debug)]
pub struct ConfirmRules {
    rules: Vec<(Vec<GlobMatcher>, ConfirmSpec)>,
}

impl ConfirmRules {
    /// Compiles the rules of a definition (their patterns were checked at build time).
    pub fn new(specs: &[ConfirmSpec]) -> Result<Self, GlobError> {
        let mut rules = Vec::with_capacity(specs.len());
        for spec in specs {
            let matchers = spec
                .commands
                .iter()
                .map(|p| compile_glob(p).map(|g| g.compile_matcher()))
                .collect::<Result<Vec<_>, _>>()?;
            rules.push((matchers, spec.clone()));
        }
        Ok(Self { rules })
    }

    /// The first rule whose `commands` match the alias ref `reference`.
    pub fn rule_for(&self, reference: &str) -> Option<&ConfirmSpec> {
        self.rules
            .iter()
            .find(|(matchers, _)| matchers.iter().any(|m| m.is_match(reference)))
            .map(|(_, spec)| spec)
    }

    /// Whether no command needs a confirmation.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// The first of `specs` whose `commands` match `reference`, compiling the patterns on the
/// way (for one-off questions such as `--explain`; the dispatcher uses [`ConfirmRules`]).
pub fn first_rule<'a>(specs: &'a [ConfirmSpec], reference: &str) -> Option<&'a ConfirmSpec> {
    specs.iter().find(|c| {
        c.commands
            .iter()
            .any(|p| compile_glob(p).is_ok_and(|g| g.is_match(reference)))
    })
}

/// A command waiting for its confirmation.
#[derive(Clone, Debug)]
pub struct Pending {
    /// Its id (the code, for `by: self`).
    pub id: String,
    /// The requester's message, kept to run the command exactly as they would have (its
    /// `text` emptied: `command` is what runs).
    pub request: Incoming,
    /// The command as typed (after the prefix).
    pub command: String,
    /// The alias it resolved to.
    pub resolved: Resolved,
    /// Who confirms it.
    pub by: ConfirmBy,
    /// How long it waits.
    pub within: Duration,
    /// When it expires.
    pub deadline: Instant,
    /// Where the prompt was posted (and the outcome goes).
    pub thread: Target,
}

/// How a request ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The requester repeated the code; the command ran.
    Confirmed,
    /// Another member approved; the command ran.
    Approved {
        /// The approver's chat name.
        by: String,
    },
    /// A member refused it, or the requester withdrew it; nothing ran.
    Rejected {
        /// Who (the requester, when they withdrew it).
        by: String,
    },
    /// Its time ran out (or it was pushed out by newer requests); nothing ran.
    Expired,
}

/// Where requests wait for their answer. The in-memory store is [`MemoryConfirmations`];
/// a shared one (PostgreSQL under `ha:`) would implement the same calls.
pub trait PendingConfirmations: Send + Sync {
    /// Adds a request. When [`MAX_PENDING`] are waiting, the one closest to its deadline is
    /// settled as expired and returned (its prompt is then answered "expired").
    fn insert(&self, pending: Pending) -> Option<Pending>;
    /// The request with this id, while it waits.
    fn get(&self, id: &str) -> Option<Pending>;
    /// Removes the waiting request `id` and remembers `outcome` for it; `None` when it no
    /// longer waits (so two answers at once settle it once).
    fn settle(&self, id: &str, outcome: Outcome) -> Option<Pending>;
    /// Settles as expired, and returns, every request whose deadline is at or before `now`.
    fn expire(&self, now: Instant) -> Vec<Pending>;
    /// How a recently settled request ended.
    fn outcome(&self, id: &str) -> Option<Outcome>;
    /// Whether `id` is taken (waiting or recently settled).
    fn is_known(&self, id: &str) -> bool {
        self.get(id).is_some() || self.outcome(id).is_some()
    }
}

/// Requests in this process's memory: lost on restart (the requester asks again).
#[derive(Debug, Default)]
pub struct MemoryConfirmations {
    inner: Mutex<Memory>,
}

#[derive(Debug, Default)]
struct Memory {
    waiting: HashMap<String, Pending>,
    settled: HashMap<String, Outcome>,
    /// Settled ids, oldest first (the first to forget).
    settled_order: VecDeque<String>,
}

impl Memory {
    fn remember(&mut self, id: String, outcome: Outcome) {
        if self.settled.insert(id.clone(), outcome).is_none() {
            self.settled_order.push_back(id);
        }
        while self.settled_order.len() > MAX_SETTLED {
            if let Some(old) = self.settled_order.pop_front() {
                self.settled.remove(&old);
            }
        }
    }
}

impl MemoryConfirmations {
    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl PendingConfirmations for MemoryConfirmations {
    fn insert(&self, pending: Pending) -> Option<Pending> {
        let mut m = self.lock();
        let pushed_out = if m.waiting.len() >= MAX_PENDING {
            let first = m
                .waiting
                .values()
                .min_by_key(|p| p.deadline)
                .map(|p| p.id.clone());
            first.and_then(|id| {
                let p = m.waiting.remove(&id)?;
                m.remember(id, Outcome::Expired);
                Some(p)
            })
        } else {
            None
        };
        m.waiting.insert(pending.id.clone(), pending);
        pushed_out
    }

    fn get(&self, id: &str) -> Option<Pending> {
        self.lock().waiting.get(id).cloned()
    }

    fn settle(&self, id: &str, outcome: Outcome) -> Option<Pending> {
        let mut m = self.lock();
        let p = m.waiting.remove(id)?;
        m.remember(id.to_owned(), outcome);
        Some(p)
    }

    fn expire(&self, now: Instant) -> Vec<Pending> {
        let mut m = self.lock();
        let ids: Vec<String> = m
            .waiting
            .values()
            .filter(|p| p.deadline <= now)
            .map(|p| p.id.clone())
            .collect();
        let mut out: Vec<Pending> = ids
            .into_iter()
            .filter_map(|id| {
                let p = m.waiting.remove(&id)?;
                m.remember(id, Outcome::Expired);
                Some(p)
            })
            .collect();
        out.sort_by_key(|p| p.deadline);
        out
    }

    fn outcome(&self, id: &str) -> Option<Outcome> {
        self.lock().settled.get(id).cloned()
    }
}

/// A new random id (from the process's random source; a clock-and-counter fallback).
pub fn new_id() -> String {
    let bytes = crate::session::random_key().unwrap_or_else(|| {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        (u64::from(nanos) ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_le_bytes()
    });
    let mut n = u64::from_le_bytes(bytes);
    let base = ID_ALPHABET.len() as u64;
    (0..ID_LEN)
        .map(|_| {
            let c = ID_ALPHABET[(n % base) as usize];
            n /= base;
            char::from(c)
        })
        .collect()
}

/// Whether `word` has the shape of a confirmation id (not of an inquiry's object id).
pub fn is_id(word: &str) -> bool {
    word.len() == ID_LEN && word.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// An answer word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// `confirm CODE`.
    Confirm,
    /// `approve ID`.
    Approve,
    /// `reject ID`.
    Reject,
}

/// Reads a command (after the prefix) as an answer to a confirmation: `confirm [CODE]`
/// always, `approve ID` / `reject ID` when `ID` has the shape of a confirmation id
/// ([`is_id`]; otherwise they are inquiry answers). The id is lowercased; it is empty when
/// none was given.
pub fn parse(command: &str) -> Option<(Verb, String)> {
    let mut words = command.split_whitespace();
    let verb = match words.next()? {
        CONFIRM_WORD => Verb::Confirm,
        "approve" => Verb::Approve,
        "reject" => Verb::Reject,
        _ => return None,
    };
    let id = words.next().unwrap_or_default();
    if verb != Verb::Confirm && !is_id(id) {
        return None;
    }
    let id = if id.len() <= 64 { id } else { "" };
    Some((verb, id.to_ascii_lowercase()))
}

/// Whether `user` (a chat name) is a member of group `group` (members may be globs).
pub fn is_member(user: &str, group: &str, groups: &[GroupSpec]) -> bool {
    groups.iter().filter(|g| g.name == group).any(|g| {
        g.members
            .iter()
            .any(|m| compile_glob(m).is_ok_and(|p| p.is_match(user)))
    })
}

/// `self` or `@group`, as the definition and the audit trail write it.
pub fn by_text(by: &ConfirmBy) -> String {
    match by {
        ConfirmBy::Requester => "self".to_owned(),
        ConfirmBy::Group(g) => format!("@{g}"),
    }
}

/// The commands that answer a request, as (label, command text) pairs in the order a
/// prompt offers them: what a button would deliver back as if its presser typed it.
pub fn answer_commands(prefix: &str, pending: &Pending) -> [(&'static str, String); 2] {
    let id = &pending.id;
    match pending.by {
        ConfirmBy::Requester => [
            ("Confirm", format!("{prefix}{CONFIRM_WORD} {id}")),
            ("Cancel", format!("{prefix}reject {id}")),
        ],
        ConfirmBy::Group(_) => [
            ("Approve", format!("{prefix}approve {id}")),
            ("Reject", format!("{prefix}reject {id}")),
        ],
    }
}

/// A duration as chat shows it (`1m`, `10m`, `1h 30m`).
fn shown(d: Duration) -> String {
    crate::inquiry::time_left_text(d)
}

/// The prompt: what will run, who must answer, how and by when. `command` is the typed
/// command as echoed (capped, defused).
pub fn prompt(prefix: &str, pending: &Pending, command: &str) -> String {
    let [(_, yes), (_, no)] = answer_commands(prefix, pending);
    let user = &pending.request.user;
    let alias = &pending.resolved.reference;
    let within = shown(pending.within);
    match &pending.by {
        ConfirmBy::Requester => format!(
            "{user}: `{command}` ({alias}) needs your confirmation. Say `{yes}` within {within} to run it, or `{no}` to cancel."
        ),
        ConfirmBy::Group(group) => format!(
            "{user}: `{command}` ({alias}) needs the approval of another member of {group}. {group}: say `{yes}` within {within} to run it, or `{no}` to refuse it (confirmation {id}).",
            id = pending.id
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Room;

    fn pending(id: &str, by: ConfirmBy, deadline: Instant) -> Pending {
        Pending {
            id: id.to_owned(),
            request: Incoming {
                user_id: "U1".into(),
                user: "alice".into(),
                room: Some(Room {
                    id: "C1".into(),
                    name: "ops".into(),
                }),
                text: "!pack install foo".into(),
                mentioned: false,
                thread: None,
                message_id: Some("m1".into()),
            },
            command: "pack install foo".into(),
            resolved: Resolved {
                reference: "packs.pack_install".into(),
                name: "pack_install".into(),
                representation: "pack install {{packs}}".into(),
                match_multiple: false,
            },
            by,
            within: Duration::from_secs(600),
            deadline,
            thread: Target::Room {
                id: "C1".into(),
                thread: Some("m1".into()),
            },
        }
    }

    #[test]
    fn the_first_rule_whose_commands_match_applies() {
        let specs = [
            ConfirmSpec {
                commands: vec!["core.remote*".into()].into(),
                by: ConfirmBy::Requester,
                within: Duration::from_secs(60),
                line: 3,
            },
            ConfirmSpec {
                commands: vec!["core.*".into(), "packs.uninstall".into()].into(),
                by: ConfirmBy::Group("oncall".into()),
                within: Duration::from_secs(600),
                line: 4,
            },
        ];
        let rules = ConfirmRules::new(&specs).unwrap();
        assert_eq!(rules.rule_for("core.remote_sudo").unwrap().line, 3);
        assert_eq!(rules.rule_for("core.local").unwrap().line, 4);
        assert_eq!(rules.rule_for("packs.uninstall").unwrap().line, 4);
        assert!(rules.rule_for("packs.install").is_none());
        assert!(!rules.is_empty());
    }

    #[test]
    fn answers_are_parsed_and_inquiry_ids_left_to_inquiries() {
        assert_eq!(parse("confirm K7M2"), Some((Verb::Confirm, "k7m2".into())));
        assert_eq!(parse("confirm"), Some((Verb::Confirm, String::new())));
        assert_eq!(parse("approve c7f3"), Some((Verb::Approve, "c7f3".into())));
        assert_eq!(
            parse("reject  c7f3 now"),
            Some((Verb::Reject, "c7f3".into()))
        );
        // A StackStorm object id is an inquiry's; no id at all is the inquiry command's too.
        assert_eq!(parse("approve 5f0c0ffee0000000000000a1"), None);
        assert_eq!(parse("approve"), None);
        assert_eq!(parse("approve c7f"), None);
        assert_eq!(parse("approve c7-3"), None);
        assert_eq!(parse("confirmation c7f3"), None);
        assert_eq!(parse("deploy"), None);
        let long = format!("confirm {}", "x".repeat(100));
        assert_eq!(parse(&long), Some((Verb::Confirm, String::new())));
    }

    #[test]
    fn ids_use_the_alphabet_and_differ() {
        let ids: std::collections::HashSet<String> = (0..200).map(|_| new_id()).collect();
        assert!(ids.len() > 190, "{} distinct of 200", ids.len());
        for id in &ids {
            assert!(is_id(id), "{id}");
            assert!(id.bytes().all(|b| ID_ALPHABET.contains(&b)), "{id}");
        }
    }

    #[test]
    fn a_request_is_settled_once_and_its_outcome_remembered() {
        let store = MemoryConfirmations::default();
        let later = Instant::now() + Duration::from_secs(600);
        assert!(
            store
                .insert(pending("c7f3", ConfirmBy::Group("oncall".into()), later))
                .is_none()
        );
        assert!(store.is_known("c7f3"));
        assert_eq!(store.get("c7f3").unwrap().request.user, "alice");
        let approved = Outcome::Approved { by: "bob".into() };
        assert!(store.settle("c7f3", approved.clone()).is_some());
        assert!(store.settle("c7f3", Outcome::Confirmed).is_none());
        assert!(store.get("c7f3").is_none());
        assert_eq!(store.outcome("c7f3"), Some(approved));
        assert!(store.is_known("c7f3"));
        assert!(!store.is_known("zzzz"));
    }

    #[test]
    fn requests_expire_at_their_deadline_oldest_first() {
        let store = MemoryConfirmations::default();
        let now = Instant::now();
        store.insert(pending(
            "bbbb",
            ConfirmBy::Requester,
            now + Duration::from_secs(20),
        ));
        store.insert(pending(
            "aaaa",
            ConfirmBy::Requester,
            now + Duration::from_secs(10),
        ));
        store.insert(pending(
            "cccc",
            ConfirmBy::Requester,
            now + Duration::from_secs(30),
        ));
        assert!(store.expire(now).is_empty());
        let gone: Vec<String> = store
            .expire(now + Duration::from_secs(25))
            .into_iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(gone, ["aaaa", "bbbb"]);
        assert_eq!(store.outcome("aaaa"), Some(Outcome::Expired));
        assert!(store.get("cccc").is_some());
        assert!(store.settle("aaaa", Outcome::Confirmed).is_none());
    }

    #[test]
    fn the_store_is_bounded_and_pushes_out_the_request_closest_to_its_end() {
        let store = MemoryConfirmations::default();
        let now = Instant::now();
        for i in 0..MAX_PENDING {
            let deadline = now + Duration::from_secs(100 + i as u64);
            assert!(
                store
                    .insert(pending(&format!("{i:04}"), ConfirmBy::Requester, deadline))
                    .is_none()
            );
        }
        let out = store
            .insert(pending(
                "new1",
                ConfirmBy::Requester,
                now + Duration::from_secs(50),
            ))
            .expect("one pushed out");
        assert_eq!(out.id, "0000");
        assert_eq!(store.outcome("0000"), Some(Outcome::Expired));
        assert!(store.get("new1").is_some());
        // Settled outcomes are bounded too.
        for i in 0..(MAX_SETTLED + 10) {
            store.settle(&format!("{i:04}"), Outcome::Confirmed);
        }
        assert!(store.lock().settled.len() <= MAX_SETTLED);
    }

    #[test]
    fn prompts_say_what_runs_who_answers_and_how() {
        let later = Instant::now() + Duration::from_secs(600);
        let p = pending("c7f3", ConfirmBy::Group("oncall".into()), later);
        assert_eq!(
            prompt("!", &p, "pack install foo"),
            "alice: `pack install foo` (packs.pack_install) needs the approval of another member of oncall. oncall: say `!approve c7f3` within 10m to run it, or `!reject c7f3` to refuse it (confirmation c7f3)."
        );
        assert_eq!(
            answer_commands("!", &p),
            [
                ("Approve", "!approve c7f3".to_owned()),
                ("Reject", "!reject c7f3".to_owned())
            ]
        );
        let mut s = pending("k7m2", ConfirmBy::Requester, later);
        s.within = Duration::from_secs(60);
        assert_eq!(
            prompt("!", &s, "pack install foo"),
            "alice: `pack install foo` (packs.pack_install) needs your confirmation. Say `!confirm k7m2` within 1m to run it, or `!reject k7m2` to cancel."
        );
    }

    #[test]
    fn members_are_matched_by_name_or_glob() {
        let groups = vec![GroupSpec {
            name: "oncall".into(),
            members: vec!["alice".into(), "ops-*".into()].into(),
        }];
        assert!(is_member("alice", "oncall", &groups));
        assert!(is_member("ops-eve", "oncall", &groups));
        assert!(!is_member("carol", "oncall", &groups));
        assert!(!is_member("alice", "admins", &groups));
    }
}
