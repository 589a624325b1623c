//! Wiring: builds the StackStorm client, the dispatcher and the backend, then runs until the
//! input ends (text backend) or SIGINT/SIGTERM: chat messages go to the dispatcher (each in
//! its own task, bounded by `max_in_flight`), stream events to announcements and the alias
//! cache. Shutdown stops intake, lets in-flight commands finish (bounded), flushes replies.
//!
//! With `ha:` (`crate::ha`), the instance starts as a standby: it stays connected to
//! StackStorm, drops what chat sends it, and speaks only while it holds the lease; a
//! backend that must not hold a second connection ([`backend::standby_connects`]) is
//! connected on promotion and disconnected on demotion.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bot_config::BotSpec;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::Linked;
use crate::aliases::AliasCache;
use crate::backend::{self, BackendError, BackendIo, BackendOptions, ConnState, Outgoing};
use crate::cli::Options;
use crate::dispatch::Dispatcher;
use crate::ha::{Leadership, Role};
use crate::stackstorm::St2Client;
use crate::stackstorm::stream::{self, StreamEvent, StreamState};

/// How often owed results past `stackstorm.result_timeout` are dropped.
const EXPIRY_CHECK: Duration = Duration::from_secs(5);
/// How often commands waiting for a confirmation are checked for expiry.
const CONFIRM_CHECK: Duration = Duration::from_secs(1);
/// How long in-flight commands may take to finish after shutdown starts.
const DRAIN: Duration = Duration::from_secs(10);
/// Text backend, input not a terminal: how long end of input waits for results in flight
/// (`--linger` overrides), so `printf '!local date\n' | demo --simulate` prints the result.
const DEFAULT_LINGER: Duration = Duration::from_secs(30);

/// Runs the bot until its input ends (text backend) or SIGINT/SIGTERM, with any backend
/// and subsystem (tests; executables use [`run_with`] and what their definition needs).
pub async fn run(spec: &BotSpec, st2: St2Client, options: &Options) -> ExitCode {
    run_with(
        spec,
        st2,
        options,
        Linked::everything(),
        CancellationToken::new(),
    )
    .await
}

/// [`run`], also stopping as on SIGTERM when `stop` is cancelled (the bot inside another
/// program: tests).
pub async fn run_until(
    spec: &BotSpec,
    st2: St2Client,
    options: &Options,
    stop: CancellationToken,
) -> ExitCode {
    run_with(spec, st2, options, Linked::everything(), stop).await
}

/// [`run_until`] with only the subsystems `linked` names (executables: their one backend
/// and what their definition uses, `crate::linked`).
pub async fn run_with(
    spec: &BotSpec,
    st2: St2Client,
    options: &Options,
    linked: Linked,
    stop: CancellationToken,
) -> ExitCode {
    let backend_factory = linked.backend;
    let results_file = options
        .results_store
        .as_deref()
        .or(spec.stackstorm.results_store.as_deref());
    if let Err(missing) = required(spec, &linked, options, results_file.is_some()) {
        tracing::error!(error = %missing, "a subsystem is missing from this executable");
        eprintln!("{}: {missing}", spec.name);
        return ExitCode::from(2);
    }
    let backend_options = BackendOptions {
        user: options.user.clone(),
        room: options.room.clone(),
        // No banner among JSON log lines.
        banner_help: (!options
            .log_json
            .unwrap_or(spec.log.format == bot_config::LogFormat::Json))
        .then(|| format!("{}{}", spec.chat.prefix, spec.chat.help_command)),
        msteams_unsigned_inbound: options.msteams_unsigned_inbound.clone(),
    };
    let backend = match backend_factory(&spec.backend, &backend_options) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the chat backend");
            eprintln!("{}: {e}", spec.name);
            return ExitCode::FAILURE;
        }
    };
    let capabilities = backend.capabilities();
    let (incoming_tx, mut incoming_rx) = mpsc::channel(256);
    // Replies: dispatcher → watched queue (`ops::reply_queue`) → backend.
    let (outgoing_tx, queued_rx) = mpsc::channel::<Outgoing>(64);
    let (to_backend_tx, outgoing_rx) = mpsc::channel::<Outgoing>(16);
    let relay_task = tokio::spawn(crate::ops::reply_queue::relay(
        queued_rx,
        to_backend_tx,
        crate::ops::reply_queue::STALL_AFTER,
    ));
    let (chat_state_tx, chat_state) = watch::channel(ConnState::Connecting);
    let (stream_state_tx, stream_state) = watch::channel(StreamState::Down("starting".into()));
    let shutdown = CancellationToken::new();
    let backend_shutdown = CancellationToken::new();
    // The lease outlives intake: it is released once commands in flight are done.
    let lease_shutdown = CancellationToken::new();
    let ha = match (&spec.ha, linked.ha) {
        (Some(ha_spec), Some(start)) => {
            match start(ha_spec, &spec.name, lease_shutdown.clone()).await {
                Ok(ha) => Some(ha),
                Err(e) => {
                    tracing::error!(error = %e, "cannot start high availability");
                    eprintln!("{}: {e}", spec.name);
                    return ExitCode::FAILURE;
                }
            }
        }
        // `required` refused a definition with `ha:` and no HA linked in.
        _ => None,
    };
    let leadership = ha
        .as_ref()
        .map_or_else(Leadership::single, |h| h.leadership.clone());
    let outgoing_rx = if ha.is_some() {
        fence_replies(outgoing_rx, leadership.clone())
    } else {
        outgoing_rx
    };

    let aliases = AliasCache::new();
    let dispatcher = match Dispatcher::new(
        spec,
        st2.clone(),
        capabilities,
        aliases.clone(),
        outgoing_tx.clone(),
    ) {
        Ok(d) => match &ha {
            Some(ha) => d.with_leadership(leadership.clone()).with_shared_audit(ha),
            None => d.with_leadership(leadership.clone()),
        },
        Err(e) => {
            tracing::error!(error = %e, "invalid bot definition");
            return ExitCode::FAILURE;
        }
    };

    let mut session_store: Option<Box<dyn crate::results::OwedStore>> = None;
    let mut session_manager = None;
    let dispatcher = match (&spec.auth_page, linked.sessions) {
        (Some(page), Some(start)) => {
            let admins = match bot_config::acl::UserSet::new(&page.admins, &spec.access.groups) {
                Ok(admins) => admins,
                Err(e) => {
                    // The build checked every pattern: this is a bug, not bad input.
                    tracing::error!(error = %e, "session admins do not compile");
                    eprintln!("{}: auth_page.admins: {e}", spec.name);
                    return ExitCode::FAILURE;
                }
            };
            let (notify_tx, mut notify_rx) = mpsc::channel::<(String, String)>(64);
            let started = start(crate::linked::SessionSetup {
                page,
                bot: &spec.name,
                st2: st2.clone(),
                shared: ha.as_ref(),
                command_name: format!("{}{}", spec.chat.prefix, spec.chat.session_command),
                admins,
                notify: notify_tx,
                shutdown: shutdown.clone(),
            })
            .await;
            let started = match started {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot open the session store");
                    eprintln!("{}: {e}", spec.name);
                    return ExitCode::FAILURE;
                }
            };
            let confirmations = outgoing_tx.clone();
            tokio::spawn(async move {
                while let Some((user, text)) = notify_rx.recv().await {
                    let _ = confirmations
                        .send(Outgoing::text(
                            crate::backend::Target::Direct { user },
                            text,
                        ))
                        .await;
                }
            });
            session_store = started.owed;
            session_manager = Some(started.manager.clone());
            dispatcher.with_sessions(started.manager)
        }
        // `required` refused a definition with `auth_page` and no sessions linked in.
        _ => dispatcher,
    };
    // Owed results: shared in PostgreSQL under `ha:`, else in the session store's file,
    // else in `results_store`, else in memory.
    let owed_store: Box<dyn crate::results::OwedStore> =
        match (&ha, session_store, results_file.zip(linked.results_file)) {
            (Some(ha), _, _) => ha.owed_store(),
            (None, Some(table), _) => table,
            (None, None, Some((path, open))) => match open(std::path::Path::new(path)) {
                Ok(store) => store,
                Err(e) => {
                    tracing::error!(error = %e, "cannot open the results store");
                    eprintln!("{}: {e}", spec.name);
                    return ExitCode::FAILURE;
                }
            },
            (None, None, None) => Box::new(crate::results::MemoryOwedStore),
        };
    let ledger = Arc::new(
        crate::results::Ledger::open(
            &spec.name,
            owed_store,
            options
                .result_timeout
                .unwrap_or(spec.stackstorm.result_timeout),
        )
        .await,
    );
    let dispatcher = Arc::new(dispatcher.with_results(ledger.clone()));
    let ack_handles = dispatcher.keep_ack_handles().map(tokio::spawn);
    let backend_io = BackendIo {
        incoming: incoming_tx,
        outgoing: outgoing_rx,
        state: chat_state_tx,
        shutdown: backend_shutdown.clone(),
    };
    let backend_task = if ha.is_some() && !backend::standby_connects(&spec.backend) {
        tokio::spawn(connect_while_leading(
            backend,
            {
                let backend_spec = spec.backend.clone();
                move || backend_factory(&backend_spec, &backend_options)
            },
            spec.backend.kind(),
            backend_io,
            leadership.clone(),
        ))
    } else {
        tokio::spawn(backend.run(backend_io))
    };
    // A new leader reads the shared state again (the previous leader changed it), then
    // asks StackStorm about the results the previous leader still owed: those that
    // finished while no instance led were announced to no one.
    let promotions = leadership.status().map(|mut status| {
        let (ledger, st2) = (ledger.clone(), st2.clone());
        let route = spec.stackstorm.announcement_route.to_string();
        tokio::spawn(async move {
            loop {
                if !wait_for_role(&mut status, Role::Leader).await {
                    return;
                }
                if let Some(sessions) = &session_manager
                    && let Err(e) = sessions.reload().await
                {
                    tracing::error!(error = %e, "cannot reload the sessions on promotion");
                }
                if let Some(owed) = ledger.reload().await {
                    tracing::info!(owed, "leading: results owed by the previous leader loaded");
                    crate::results::recover(&ledger, &st2, &route).await;
                }
                if !wait_for_role(&mut status, Role::Standby).await {
                    return;
                }
            }
        })
    });

    // Stream: announcements and alias changes.
    let (events_tx, mut events_rx) = mpsc::channel(256);
    let stream_task = tokio::spawn(stream::run_with(
        st2.clone(),
        events_tx,
        stream_state_tx,
        shutdown.clone(),
        stream::StreamOptions {
            execution_updates: dispatcher.live_acks(),
        },
    ));
    let events_task = {
        let dispatcher = dispatcher.clone();
        let aliases = aliases.clone();
        let st2 = st2.clone();
        let refresh_every = spec.stackstorm.alias_refresh;
        let route = spec.stackstorm.announcement_route.to_string();
        let ledger = ledger.clone();
        let leadership = leadership.clone();
        tokio::spawn(async move {
            // Owed results past `result_timeout` are dropped this often (and at each pass).
            let mut expiry = tokio::time::interval(EXPIRY_CHECK);
            expiry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first load comes with the stream's `Connected`; the timer starts after it.
            let mut refresh = tokio::time::interval_at(
                tokio::time::Instant::now() + refresh_every,
                refresh_every,
            );
            refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    event = events_rx.recv() => match event {
                        Some(StreamEvent::Announcement(a)) => dispatcher.announce(a).await,
                        Some(StreamEvent::ExecutionUpdate(u)) => dispatcher.execution_update(u).await,
                        Some(StreamEvent::AliasChanged(kind)) => {
                            tracing::info!(kind, "action aliases changed; reloading");
                            if let Err(e) = aliases.refresh(&st2).await {
                                tracing::warn!(error = %e, "cannot reload action aliases");
                            }
                        }
                        Some(StreamEvent::Connected) => {
                            // A gap (or the start) closes: results published meanwhile
                            // were not replayed. Passes run one at a time, in the
                            // background, so announcements keep flowing meanwhile. Only
                            // the leader owes results (a standby runs its pass when it
                            // is promoted).
                            if leadership.is_leader() {
                                let pass = (ledger.clone(), st2.clone(), route.clone());
                                tokio::spawn(async move {
                                    let (ledger, st2, route) = pass;
                                    crate::results::recover(&ledger, &st2, &route).await;
                                });
                            }
                            if let Err(e) = aliases.refresh(&st2).await {
                                tracing::warn!(error = %e, "cannot load action aliases");
                            }
                        }
                        None => return,
                    },
                    _ = expiry.tick() => {
                        // The leader's to do: a standby's copy of the list is stale.
                        if leadership.is_leader() {
                            ledger.expire(crate::results::unix_now());
                        }
                    }
                    _ = refresh.tick() => {
                        if let Err(e) = aliases.refresh(&st2).await {
                            tracing::debug!(error = %e, "periodic alias refresh failed");
                        }
                    }
                }
            }
        })
    };

    // Confirmations whose time ran out are told so (the leader's: it holds them).
    let confirm_task = (!spec.confirm.is_empty()).then(|| {
        let dispatcher = dispatcher.clone();
        let leadership = leadership.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(CONFIRM_CHECK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if leadership.is_leader() {
                    dispatcher
                        .expire_confirmations(std::time::Instant::now())
                        .await;
                }
            }
        })
    });

    let chat_watch = {
        let mut chat = chat_state.clone();
        tokio::spawn(async move {
            loop {
                let connected = *chat.borrow_and_update() == ConnState::Connected;
                crate::ops::metrics().chat_state(connected);
                if chat.changed().await.is_err() {
                    return;
                }
            }
        })
    };
    let health_listen = options
        .health_listen
        .clone()
        .or_else(|| spec.health_listen.as_ref().map(|l| l.to_string()));
    if let Some(listen) = &health_listen {
        match listen.parse() {
            Ok(addr) => {
                let readiness = crate::ops::health::Readiness {
                    chat: chat_state.clone(),
                    stream: stream_state.clone(),
                    leadership: leadership.clone(),
                };
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    if let Err(e) = crate::ops::health::serve(addr, readiness, shutdown).await {
                        tracing::error!(error = %e, "health endpoint failed");
                    }
                });
            }
            Err(e) => {
                tracing::error!(listen = %listen, error = %e, "invalid health listen address")
            }
        }
    }
    tracing::info!(bot = %spec.name, backend = spec.backend.kind(), "bot started");
    let mut in_flight = JoinSet::new();
    let mut signal = std::pin::pin!(shutdown_signal(stop));
    let mut ended_by_signal = false;
    loop {
        tokio::select! {
            message = incoming_rx.recv() => match message {
                Some(message) if leadership.is_leader() => {
                    in_flight.spawn(dispatcher.clone().handle(message));
                }
                Some(_) => {
                    tracing::debug!("standby: a chat message is the leader's to answer");
                }
                None => break,
            },
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            () = &mut signal => {
                tracing::info!("shutdown requested");
                ended_by_signal = true;
                break;
            }
        }
    }
    // Stop intake; let commands in flight finish, within bounds.
    let drained = tokio::time::timeout(DRAIN, async {
        while in_flight.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    if !drained {
        tracing::warn!(
            abandoned = in_flight.len(),
            "commands still running at shutdown were abandoned"
        );
        in_flight.abort_all();
    }
    // End of input: wait for the results of what was started, within bounds.
    let linger = options.linger.unwrap_or_else(|| {
        let piped = matches!(spec.backend, bot_config::BackendSpec::Text(_))
            && !std::io::IsTerminal::is_terminal(&std::io::stdin());
        if piped {
            DEFAULT_LINGER
        } else {
            Duration::ZERO
        }
    });
    if !ended_by_signal && !linger.is_zero() {
        let mut awaited = dispatcher.results_awaited();
        let timed_out = tokio::select! {
            () = tokio::time::sleep(linger) => true,
            _ = awaited.wait_for(|n| *n == 0) => false,
            () = &mut signal => false,
        };
        let missing = *awaited.borrow();
        if timed_out && missing > 0 {
            tracing::warn!(missing, "results still awaited at the end of --linger");
        }
    }
    shutdown.cancel();
    // Commands in flight are done: hand the lease over now rather than after it expires.
    lease_shutdown.cancel();
    if let Some(ha) = ha {
        let _ = tokio::time::timeout(Duration::from_secs(3), ha.task).await;
    }
    if let Some(task) = promotions {
        task.abort();
    }
    let _ = stream_task.await;
    events_task.abort();
    if let Some(task) = confirm_task {
        task.abort();
    }
    chat_watch.abort();
    drop(dispatcher);
    drop(outgoing_tx);
    // Hand the backend what is still queued, then tell it to close.
    let _ = tokio::time::timeout(Duration::from_secs(5), relay_task).await;
    backend_shutdown.cancel();
    let backend_result = tokio::time::timeout(Duration::from_secs(5), backend_task).await;
    // The acks posted in the last moments: their handles are kept before the end (the
    // task ends once the backend, the last sender, is gone).
    if let Some(task) = ack_handles {
        let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
    }
    match backend_result {
        Ok(Ok(Ok(()))) if drained => ExitCode::SUCCESS,
        Ok(Ok(Ok(()))) => ExitCode::from(3),
        Ok(Ok(Err(e))) => {
            tracing::error!(error = %e, "chat backend stopped");
            eprintln!("{}: {e}", spec.name);
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "chat backend crashed");
            ExitCode::FAILURE
        }
        Err(_) => {
            tracing::warn!("chat backend did not close in time");
            ExitCode::from(3)
        }
    }
}

/// Refuses to start when the definition or a flag needs a subsystem this executable was
/// built without. Executables are built from the definition they run, so only a flag
/// (`--results-store`, `--simulate` is checked where it starts) can ask for one; the
/// definition's own keys are checked too, for callers that fill [`Linked`] by hand.
fn required(
    spec: &BotSpec,
    linked: &Linked,
    options: &Options,
    results_file: bool,
) -> Result<(), crate::linked::Missing> {
    use crate::linked::Missing;
    if spec.ha.is_some() && linked.ha.is_none() {
        return Err(Missing {
            what: "`ha`",
            key: "ha",
        });
    }
    if spec.auth_page.is_some() && linked.sessions.is_none() {
        return Err(Missing {
            what: "`auth_page`",
            key: "auth_page",
        });
    }
    // The owed list goes to the database under `ha:`, to the session file with
    // `auth_page`: a results file is opened only without both.
    let needs_file = results_file && spec.ha.is_none() && spec.auth_page.is_none();
    if needs_file && linked.results_file.is_none() {
        return Err(Missing {
            what: if options.results_store.is_some() {
                "`--results-store`"
            } else {
                "`stackstorm.results_store`"
            },
            key: "stackstorm.results_store",
        });
    }
    Ok(())
}

/// Passes replies on to the backend only while this instance leads: one that was composed
/// before the lease ran out is dropped (the new leader answers instead).
fn fence_replies(
    mut replies: mpsc::Receiver<Outgoing>,
    leadership: Leadership,
) -> mpsc::Receiver<Outgoing> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Some(reply) = replies.recv().await {
            if leadership.is_leader() {
                if tx.send(reply).await.is_err() {
                    return;
                }
            } else {
                tracing::warn!("no longer the leader: a reply was not posted");
            }
        }
    });
    rx
}

/// Runs the chat backend only while this instance leads (`ha:` with a chat service that
/// must not hold a second connection): connects on promotion, disconnects on demotion, and
/// forwards replies to whichever connection is current.
/// `first` is the backend built at start; `rebuild` makes the next one after a demotion.
async fn connect_while_leading(
    first: Box<dyn backend::Backend>,
    mut rebuild: impl FnMut() -> Result<Box<dyn backend::Backend>, BackendError> + Send,
    kind: &'static str,
    io: BackendIo,
    leadership: Leadership,
) -> Result<(), BackendError> {
    let BackendIo {
        incoming,
        mut outgoing,
        state,
        shutdown,
    } = io;
    let Some(mut status) = leadership.status() else {
        // Without a lease there is nothing to wait for.
        return first
            .run(BackendIo {
                incoming,
                outgoing,
                state,
                shutdown,
            })
            .await;
    };
    let mut next = Some(first);
    loop {
        tokio::select! {
            led = wait_for_role(&mut status, Role::Leader) => {
                if !led {
                    return Ok(());
                }
            }
            () = shutdown.cancelled() => return Ok(()),
        }
        let backend = match next.take() {
            Some(b) => b,
            None => rebuild()?,
        };
        tracing::info!(backend = kind, "leading: connecting to chat");
        let (to_backend, from_queue) = mpsc::channel::<Outgoing>(16);
        let connection = CancellationToken::new();
        let mut run = backend.run(BackendIo {
            incoming: incoming.clone(),
            outgoing: from_queue,
            state: state.clone(),
            shutdown: connection.clone(),
        });
        let demoted = loop {
            tokio::select! {
                reply = outgoing.recv() => match reply {
                    Some(reply) => {
                        if to_backend.send(reply).await.is_err() {
                            break false;
                        }
                    }
                    None => break false,
                },
                _ = wait_for_role(&mut status, Role::Standby) => break true,
                () = shutdown.cancelled() => break false,
                result = &mut run => return result,
            }
        };
        drop(to_backend);
        connection.cancel();
        let closed = tokio::time::timeout(Duration::from_secs(5), &mut run).await;
        if !demoted {
            return closed.unwrap_or(Ok(()));
        }
        tracing::warn!(
            backend = kind,
            "no longer the leader: chat connection closed"
        );
        let _ = state.send(ConnState::Connecting);
    }
}

/// Waits until the leadership status reports `role`; `false` when it will never change.
async fn wait_for_role(status: &mut watch::Receiver<crate::ha::LeaseStatus>, role: Role) -> bool {
    status.wait_for(|s| s.role == role).await.is_ok()
}

/// Resolves on SIGINT or SIGTERM, or when `stop` is cancelled.
async fn shutdown_signal(stop: CancellationToken) {
    tokio::select! {
        () = stop.cancelled_owned() => {}
        () = os_signal() => {}
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn os_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::backend::{Backend, BoxFuture, Capabilities, Target};

    /// A chat connection that records when it is open and what it was asked to post.
    struct FakeChat {
        open: Arc<AtomicUsize>,
        posted: mpsc::UnboundedSender<String>,
    }

    fn fake_chat(
        open: &Arc<AtomicUsize>,
        posted: &mpsc::UnboundedSender<String>,
    ) -> Box<dyn Backend> {
        Box::new(FakeChat {
            open: open.clone(),
            posted: posted.clone(),
        })
    }

    impl Backend for FakeChat {
        fn capabilities(&self) -> Capabilities {
            Capabilities {
                max_message_len: 4000,
                rich: false,
                edit: false,
                threads: false,
                buttons: false,
            }
        }

        fn run(self: Box<Self>, mut io: BackendIo) -> BoxFuture<'static, Result<(), BackendError>> {
            Box::pin(async move {
                self.open.fetch_add(1, Ordering::SeqCst);
                let _ = io.state.send(ConnState::Connected);
                loop {
                    tokio::select! {
                        reply = io.outgoing.recv() => match reply {
                            Some(reply) => { let _ = self.posted.send(reply.text); }
                            None => break,
                        },
                        () = io.shutdown.cancelled() => break,
                    }
                }
                self.open.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            })
        }
    }

    async fn eventually(what: &str, check: impl Fn() -> bool) {
        for _ in 0..200 {
            if check() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never: {what}");
    }

    #[tokio::test]
    async fn a_standby_connects_to_chat_only_while_it_leads() {
        let open = Arc::new(AtomicUsize::new(0));
        let made = Arc::new(AtomicUsize::new(1));
        let (posted_tx, mut posted) = mpsc::unbounded_channel();
        let first = fake_chat(&open, &posted_tx);
        let rebuild = {
            let (open, made) = (open.clone(), made.clone());
            move || {
                made.fetch_add(1, Ordering::SeqCst);
                Ok(fake_chat(&open, &posted_tx))
            }
        };
        let leadership = Leadership::new_standby("test".into());
        let (incoming, _incoming_rx) = mpsc::channel(4);
        let (replies, outgoing) = mpsc::channel(4);
        let (state, _state_rx) = watch::channel(ConnState::Connecting);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(connect_while_leading(
            first,
            rebuild,
            "fake",
            BackendIo {
                incoming,
                outgoing,
                state,
                shutdown: shutdown.clone(),
            },
            leadership.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            open.load(Ordering::SeqCst),
            0,
            "a standby holds no connection"
        );

        leadership.set_role_for_test(true);
        eventually("connected on promotion", || {
            open.load(Ordering::SeqCst) == 1
        })
        .await;
        replies
            .send(Outgoing::text(Target::Direct { user: "u".into() }, "hello"))
            .await
            .unwrap();
        assert_eq!(posted.recv().await.as_deref(), Some("hello"));

        leadership.set_role_for_test(false);
        eventually("disconnected on demotion", || {
            open.load(Ordering::SeqCst) == 0
        })
        .await;

        leadership.set_role_for_test(true);
        eventually("connected again", || open.load(Ordering::SeqCst) == 1).await;
        assert_eq!(
            made.load(Ordering::SeqCst),
            2,
            "a fresh connection after a demotion"
        );

        shutdown.cancel();
        let ended = tokio::time::timeout(Duration::from_secs(5), task).await;
        assert!(matches!(ended, Ok(Ok(Ok(())))), "{ended:?}");
        assert_eq!(open.load(Ordering::SeqCst), 0);
    }
}
