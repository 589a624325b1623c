//! The simulator's mutable state: aliases, tokens, stream clients, executions (their
//! documents, as `GET /api/v1/executions` serves them), and what it recorded.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use st2_alias::{Alias, AliasIndex};
use tokio::sync::mpsc;

use crate::config::SimConfig;

/// A request as received (credential value included: tests check which one was used).
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedRequest {
    /// Method.
    pub method: String,
    /// Path (without query).
    pub path: String,
    /// Query string.
    pub query: String,
    /// `St2-Api-Key`/`X-Auth-Token` header or query value used, as (kind, value).
    pub credential: Option<(String, String)>,
    /// JSON body, if any.
    pub body: Option<Value>,
}

/// An execution the simulator scheduled.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedExecution {
    /// Execution id.
    pub id: String,
    /// Alias ref.
    pub alias: String,
    /// Action ref.
    pub action: String,
    /// Parameters extracted from the command.
    pub parameters: Value,
    /// `user` from the request.
    pub user: String,
    /// `source_channel`.
    pub source_channel: String,
    /// `source_context` (null for match_and_execute).
    pub source_context: Value,
    /// `notification_route`.
    pub notification_route: Option<String>,
    /// The credential that requested it.
    pub credential: Option<(String, String)>,
}

pub(crate) struct Token {
    pub(crate) value: String,
    pub(crate) user: String,
    pub(crate) expiry: SystemTime,
    pub(crate) revoked: bool,
}

/// An execution's document and what completing it needs.
#[derive(Clone)]
pub(crate) struct StoredExecution {
    /// The `ActionExecutionAPI` document (status, timestamps, result…).
    pub(crate) doc: Value,
    /// The alias that started it (for the result's `extra`), if any.
    pub(crate) alias: Option<Value>,
    /// What the simulated action prints.
    pub(crate) output: String,
}

pub(crate) struct Client {
    pub(crate) filter: Option<globset::GlobSet>,
    pub(crate) tx: mpsc::UnboundedSender<(String, String)>,
}

struct Inner {
    /// Shared with the handlers that read them (a catalogue of thousands is not copied per
    /// request).
    aliases: std::sync::Arc<Vec<Value>>,
    index: std::sync::Arc<AliasIndex>,
    tokens: Vec<Token>,
    clients: Vec<Client>,
    requests: Vec<RecordedRequest>,
    executions: Vec<RecordedExecution>,
    documents: Vec<(String, StoredExecution)>,
    available: bool,
    stream_cut: bool,
    holding: bool,
    /// Executions held running ([`State::hold`]), for [`crate::Sim::release_results`].
    held: Vec<HeldExecution>,
    counter: u64,
    /// Where a paused workflow's result goes once it resumes: (execution id, announcement
    /// route if its notify rule exists, the notify target).
    paused: Vec<(String, Option<String>, Value)>,
}

/// An execution held running: what finishing it needs.
#[derive(Clone, Debug)]
pub(crate) struct HeldExecution {
    /// Execution id.
    pub(crate) id: String,
    /// The notify rule's route (`None`: no rule announces it).
    pub(crate) announce_route: Option<String>,
    /// The announcement's `channel`, `user`, `whisper` and `context`.
    pub(crate) notify: Value,
}

/// Shared state behind the handlers.
pub(crate) struct State {
    pub(crate) config: SimConfig,
    pub(crate) addr: SocketAddr,
    inner: Mutex<Inner>,
    /// Alias-list requests being answered now, and the most there ever were at once.
    alias_lists: (AtomicUsize, AtomicUsize),
}

/// One alias-list request being answered: counted in [`State::alias_lists`] until dropped.
pub(crate) struct AliasListInFlight<'a>(&'a State);

impl Drop for AliasListInFlight<'_> {
    fn drop(&mut self) {
        self.0.alias_lists.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("addr", &self.addr).finish()
    }
}

/// Builds the matcher over alias documents (documents it cannot read are skipped).
pub(crate) fn index_of(aliases: &[Value]) -> AliasIndex {
    let parsed: Vec<Alias> = aliases
        .iter()
        .filter_map(|a| serde_json::from_value(a.clone()).ok())
        .collect();
    AliasIndex::new(parsed)
}

impl State {
    pub(crate) fn new(config: SimConfig, addr: SocketAddr) -> Self {
        let aliases = std::sync::Arc::new(config.aliases.clone());
        let index = std::sync::Arc::new(index_of(&aliases));
        Self {
            config,
            addr,
            inner: Mutex::new(Inner {
                aliases,
                index,
                tokens: Vec::new(),
                clients: Vec::new(),
                requests: Vec::new(),
                executions: Vec::new(),
                documents: Vec::new(),
                available: true,
                stream_cut: false,
                holding: false,
                held: Vec::new(),
                counter: 0,
                paused: Vec::new(),
            }),
            alias_lists: (AtomicUsize::new(0), AtomicUsize::new(0)),
        }
    }

    /// Counts an alias-list request as being answered until the guard is dropped.
    pub(crate) fn alias_list_started(&self) -> AliasListInFlight<'_> {
        let now = self.alias_lists.0.fetch_add(1, Ordering::SeqCst) + 1;
        self.alias_lists.1.fetch_max(now, Ordering::SeqCst);
        AliasListInFlight(self)
    }

    /// The most alias-list requests ever answered at once.
    pub(crate) fn most_alias_lists_at_once(&self) -> usize {
        self.alias_lists.1.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn record(&self, r: RecordedRequest) {
        self.lock().requests.push(r);
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    pub(crate) fn executions(&self) -> Vec<RecordedExecution> {
        self.lock().executions.clone()
    }

    pub(crate) fn available(&self) -> bool {
        self.lock().available
    }

    pub(crate) fn set_available(&self, v: bool) {
        let mut g = self.lock();
        g.available = v;
        if !v {
            g.clients.clear();
        }
    }

    /// Cuts the stream (`true`: clients dropped, reconnections refused with 503, events
    /// published meanwhile lost) or restores it.
    pub(crate) fn set_stream_cut(&self, cut: bool) {
        let mut g = self.lock();
        g.stream_cut = cut;
        if cut {
            g.clients.clear();
        }
    }

    pub(crate) fn stream_cut(&self) -> bool {
        self.lock().stream_cut
    }

    /// While holding, executions started stay `running` for ever.
    pub(crate) fn set_holding(&self, holding: bool) {
        self.lock().holding = holding;
    }

    pub(crate) fn holding(&self) -> bool {
        self.lock().holding
    }

    /// Keeps an execution held running until [`State::release`].
    pub(crate) fn hold(&self, held: HeldExecution) {
        self.lock().held.push(held);
    }

    /// Stops holding; the executions held so far, to be finished.
    pub(crate) fn release(&self) -> Vec<HeldExecution> {
        let mut inner = self.lock();
        inner.holding = false;
        std::mem::take(&mut inner.held)
    }

    /// Keeps an execution's document (newest last, like StackStorm's insertion order).
    pub(crate) fn store_execution(&self, id: &str, stored: StoredExecution) {
        self.lock().documents.push((id.to_owned(), stored));
    }

    /// An execution by id.
    pub(crate) fn execution(&self, id: &str) -> Option<StoredExecution> {
        self.lock()
            .documents
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, e)| e.clone())
    }

    /// Replaces what a simulated execution prints.
    pub(crate) fn set_output(&self, id: &str, output: &str) {
        if let Some((_, e)) = self.lock().documents.iter_mut().find(|(i, _)| i == id) {
            e.output = output.to_owned();
        }
    }

    /// Every execution document, oldest first.
    pub(crate) fn execution_documents(&self) -> Vec<Value> {
        self.lock()
            .documents
            .iter()
            .map(|(_, e)| e.doc.clone())
            .collect()
    }

    /// Changes an execution's document and publishes `st2.execution__update` with it, as
    /// st2stream does for every execution change. The new document.
    pub(crate) fn update_execution(
        &self,
        id: &str,
        change: impl FnOnce(&mut Value),
    ) -> Option<Value> {
        let doc = {
            let mut g = self.lock();
            let (_, stored) = g.documents.iter_mut().find(|(i, _)| i == id)?;
            change(&mut stored.doc);
            stored.doc.clone()
        };
        self.publish("st2.execution__update", doc.to_string());
        Some(doc)
    }

    pub(crate) fn aliases(&self) -> (std::sync::Arc<Vec<Value>>, std::sync::Arc<AliasIndex>) {
        let g = self.lock();
        (g.aliases.clone(), g.index.clone())
    }

    pub(crate) fn add_alias(&self, alias: Value) {
        let reference = alias.get("ref").cloned();
        {
            let mut g = self.lock();
            let aliases = std::sync::Arc::make_mut(&mut g.aliases);
            aliases.retain(|a| a.get("ref") != reference.as_ref());
            aliases.push(alias.clone());
            g.index = std::sync::Arc::new(index_of(&g.aliases));
        }
        self.publish("st2.actionalias__create", alias.to_string());
    }

    /// Deletes the alias whose `ref` is `reference`; publishes `st2.actionalias__delete`
    /// when `publish` (false: as if the stream event was lost). Whether it existed.
    pub(crate) fn remove_alias(&self, reference: &str, publish: bool) -> bool {
        let removed = {
            let mut g = self.lock();
            let at = g
                .aliases
                .iter()
                .position(|a| a.get("ref").and_then(Value::as_str) == Some(reference));
            let removed = at.map(|i| std::sync::Arc::make_mut(&mut g.aliases).remove(i));
            if removed.is_some() {
                g.index = std::sync::Arc::new(index_of(&g.aliases));
            }
            removed
        };
        match removed {
            Some(alias) => {
                if publish {
                    self.publish("st2.actionalias__delete", alias.to_string());
                }
                true
            }
            None => false,
        }
    }

    pub(crate) fn next_id(&self) -> String {
        let mut g = self.lock();
        g.counter += 1;
        format!("{:08x}{:016x}", 0x5f5e_0000u32, g.counter)
    }

    pub(crate) fn issue_token(&self, user: &str, ttl: Duration) -> (String, SystemTime) {
        let value = format!("{:032x}", fastrand_u128(self.next_id().as_bytes()));
        let expiry = SystemTime::now() + ttl;
        self.lock().tokens.push(Token {
            value: value.clone(),
            user: user.to_owned(),
            expiry,
            revoked: false,
        });
        (value, expiry)
    }

    pub(crate) fn issued_tokens(&self) -> Vec<String> {
        self.lock().tokens.iter().map(|t| t.value.clone()).collect()
    }

    pub(crate) fn revoke_tokens(&self) {
        for t in &mut self.lock().tokens {
            t.revoked = true;
        }
    }

    /// `Ok(user)` for a valid credential, else StackStorm's 401 faultstring.
    pub(crate) fn authenticate(
        &self,
        credential: Option<&(String, String)>,
    ) -> Result<String, String> {
        let Some((kind, value)) = credential else {
            return Err("Unauthorized - One of Token or API key required.".into());
        };
        if kind == "api-key" {
            return if self.config.api_keys.iter().any(|k| k == value) {
                Ok("st2admin".into())
            } else {
                Err(format!(
                    "Unauthorized - ApiKey with key_hash={:032x} not found.",
                    fastrand_u128(value.as_bytes())
                ))
            };
        }
        let g = self.lock();
        match g.tokens.iter().find(|t| &t.value == value) {
            None => Err("Unauthorized".into()),
            Some(t) if t.revoked || t.expiry <= SystemTime::now() => {
                Err("Unauthorized - Token has expired.".into())
            }
            Some(t) => Ok(t.user.clone()),
        }
    }

    pub(crate) fn add_client(&self, client: Client) {
        self.lock().clients.push(client);
    }

    pub(crate) fn stream_clients(&self) -> usize {
        let mut g = self.lock();
        g.clients.retain(|c| !c.tx.is_closed());
        g.clients.len()
    }

    pub(crate) fn drop_stream_clients(&self) {
        self.lock().clients.clear();
    }

    /// Sends an event to every connected client whose `events=` filter matches.
    pub(crate) fn publish(&self, event: &str, data: String) {
        let mut g = self.lock();
        g.clients.retain(|c| !c.tx.is_closed());
        for c in &g.clients {
            let wanted = match &c.filter {
                Some(f) => f.is_match(event),
                None => event.starts_with("st2.announcement__"),
            };
            if wanted {
                let _ = c.tx.send((event.to_owned(), data.clone()));
            }
        }
    }

    pub(crate) fn announce(&self, route: &str, payload: Value) {
        let data = json!({"payload": payload, "trace_context": null}).to_string();
        self.publish(&format!("st2.announcement__{route}"), data);
    }

    /// Remembers where a workflow paused on an inquiry announces its result.
    pub(crate) fn pause(&self, id: &str, route: Option<String>, target: Value) {
        self.lock().paused.push((id.to_owned(), route, target));
    }

    /// Takes back what [`State::pause`] kept for `id`.
    pub(crate) fn unpause(&self, id: &str) -> Option<(Option<String>, Value)> {
        let mut g = self.lock();
        let i = g.paused.iter().position(|(p, _, _)| p == id)?;
        let (_, route, target) = g.paused.remove(i);
        Some((route, target))
    }

    pub(crate) fn record_execution(&self, e: RecordedExecution) {
        self.lock().executions.push(e);
    }
}

/// A deterministic 128-bit mix of some bytes and the clock (ids and token values).
fn fastrand_u128(seed: &[u8]) -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(seed);
    let a = h.finish();
    h.write_u64(a);
    (u128::from(a) << 64) | u128::from(h.finish())
}
