//! A StackStorm simulator: the parts of StackStorm's public wire protocol a ChatOps bot
//! uses — API (`/api/v1/actionalias…`, `/api/v1/aliasexecution…`, and for `doctor`
//! `/api/v1/rules` and `/api/v1/executions`), auth (`/auth/tokens`) and
//! stream (`/stream/v1/stream`, server-sent events) — on one loopback port, laid out as
//! StackStorm's stock nginx serves them. It is st2bot's fake for tests and its demo mode.
//!
//! Faithfulness (see `shared/STACKSTORM.md`; messages taken from StackStorm's controllers):
//! the same status codes, JSON shapes and `faultstring`s; alias matching by `st2-alias`,
//! which agrees with StackStorm's own parser on every conformance vector; request bodies
//! checked like StackStorm's schemas (`match` takes only `command`; `match_and_execute`
//! rejects `source_context`); credentials required on every API and stream call, by header
//! or query parameter; tokens expire and can be revoked; no replay on the stream.
//!
//! Completion is simulated: an execution is `running` after half of `result_delay` and
//! `succeeded` after it (each change an `st2.execution__update` event on the stream, and the
//! document served by `GET /api/v1/executions/<id>`), and when its `notification_route`
//! has a rule (stock: `hubot` → `chatops`, `errbot` → `errbot`) an announcement with the
//! alias's `source_context` goes out on the stream, as StackStorm's `chatops.notify` →
//! `post_result` → `post_message` chain does. Tests can cut the stream while results are
//! published ([`Sim::cut_stream`]) and hold executions running ([`Sim::hold_results`]) until
//! they release them ([`Sim::release_results`]).
//!
//! Workflows listed in [`SimConfig::workflows`] pause on an inquiry once running and
//! resume when it is answered through `/api/v1/inquiries` (see `inquiries.rs`).
//!
//! Read [`Sim`] first; [`SimConfig::demo`] has a few realistic packs.

mod api;
mod config;
mod executions;
mod inquiries;
mod rules;
mod state;
mod stream;

use std::net::SocketAddr;
use std::sync::Arc;

pub use config::{SimConfig, demo_aliases, generated_aliases, generated_command};
pub use inquiries::default_schema as default_inquiry_schema;
pub use state::{RecordedExecution, RecordedRequest};

use state::State;

/// A running simulator. Dropping it stops the server.
#[derive(Debug)]
pub struct Sim {
    addr: SocketAddr,
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

impl Sim {
    /// Starts on a free 127.0.0.1 port.
    pub async fn start(config: SimConfig) -> std::io::Result<Sim> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Starts on `addr`.
    pub async fn start_on(addr: SocketAddr, config: SimConfig) -> std::io::Result<Sim> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::new(config, addr));
        let app = api::router(state.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "simulator server stopped");
            }
        });
        Ok(Sim {
            addr,
            state,
            server,
        })
    }

    /// `http://127.0.0.1:<port>`: the base URL (`url:` in a bot definition).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Publishes `st2.announcement__<route>` with `payload`, as `chatops.post_message` does.
    pub fn announce(&self, route: &str, payload: serde_json::Value) {
        self.state.announce(route, payload);
    }

    /// Publishes a raw stream event (for malformed-event tests).
    pub fn send_raw_event(&self, event: &str, data: &str) {
        self.state.publish(event, data.to_owned());
    }

    /// Closes every stream connection (the server side of a disconnect).
    pub fn drop_stream_clients(&self) {
        self.state.drop_stream_clients();
    }

    /// Cuts the stream: every stream connection is closed and reconnections are refused
    /// (503, st2stream down behind nginx) until [`Sim::restore_stream`]; what is published
    /// meanwhile (announcements, execution updates) reaches no one and is never replayed,
    /// as with StackStorm. The API keeps serving.
    pub fn cut_stream(&self) {
        self.state.set_stream_cut(true);
    }

    /// Accepts stream connections again after [`Sim::cut_stream`].
    pub fn restore_stream(&self) {
        self.state.set_stream_cut(false);
    }

    /// While `true`, executions started stay `running` and are never announced (an action
    /// that hangs); those started before keep their course.
    pub fn hold_results(&self, hold: bool) {
        self.state.set_holding(hold);
    }

    /// Stops holding results and finishes every execution held so far: each succeeds (an
    /// `st2.execution__update`) and its notify rule announces it, as if the action had just
    /// returned.
    pub fn release_results(&self) {
        api::release(&self.state);
    }

    /// Expires every pending inquiry now (StackStorm's garbage collector, once an
    /// inquiry's ttl has passed): it becomes `timeout` and its workflow fails. How many.
    pub fn expire_inquiries(&self) -> usize {
        inquiries::expire_all(&self.state)
    }

    /// An execution's document as `GET /api/v1/executions/<id>` serves it.
    pub fn execution_document(&self, id: &str) -> Option<serde_json::Value> {
        self.state.execution(id).map(|e| e.doc)
    }

    /// How many stream clients are connected.
    pub fn stream_clients(&self) -> usize {
        self.state.stream_clients()
    }

    /// Makes every endpoint answer 503 (StackStorm down behind nginx) or serve again.
    pub fn set_available(&self, available: bool) {
        self.state.set_available(available);
    }

    /// Revokes every token issued so far: calls with them answer 401.
    pub fn revoke_tokens(&self) {
        self.state.revoke_tokens();
    }

    /// Adds (or replaces) an action alias and publishes `st2.actionalias__create`.
    pub fn add_alias(&self, alias: serde_json::Value) {
        self.state.add_alias(alias);
    }

    /// Deletes an action alias by `ref` (`pack.name`) and publishes
    /// `st2.actionalias__delete`, as StackStorm does. Whether it existed.
    pub fn remove_alias(&self, reference: &str) -> bool {
        self.state.remove_alias(reference, true)
    }

    /// Deletes an action alias without telling stream clients (a StackStorm whose event
    /// was lost, or a bot that was disconnected). Whether it existed.
    pub fn remove_alias_quietly(&self, reference: &str) -> bool {
        self.state.remove_alias(reference, false)
    }

    /// The most `GET /api/v1/actionalias` requests that were ever being answered at once.
    pub fn most_alias_lists_at_once(&self) -> usize {
        self.state.most_alias_lists_at_once()
    }

    /// How many token requests (`POST /auth/tokens`, granted or refused) arrived so far.
    pub fn token_requests(&self) -> usize {
        self.state
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/tokens"))
            .count()
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests()
    }

    /// Every execution scheduled so far.
    pub fn executions(&self) -> Vec<RecordedExecution> {
        self.state.executions()
    }

    /// Tokens issued so far (`POST /tokens`), newest last.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.state.issued_tokens()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.state.drop_stream_clients();
        self.server.abort();
    }
}
