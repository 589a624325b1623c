//! Wiring: builds the StackStorm client, the dispatcher and the backend, then runs until the
//! input ends (text backend) or SIGINT/SIGTERM: chat messages go to the dispatcher (each in
//! its own task, bounded by `max_in_flight`), stream events to announcements and the alias
//! cache. Shutdown stops intake, lets in-flight commands finish (bounded), flushes replies.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bot_config::BotSpec;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::aliases::AliasCache;
use crate::backend::{self, BackendIo, BackendOptions, ConnState, Outgoing};
use crate::cli::Options;
use crate::dispatch::Dispatcher;
use crate::stackstorm::St2Client;
use crate::stackstorm::stream::{self, StreamEvent, StreamState};

/// How often owed results past `stackstorm.result_timeout` are dropped.
const EXPIRY_CHECK: Duration = Duration::from_secs(5);
/// How long in-flight commands may take to finish after shutdown starts.
const DRAIN: Duration = Duration::from_secs(10);
/// Text backend, input not a terminal: how long end of input waits for results in flight
/// (`--linger` overrides), so `printf '!local date\n' | demo --simulate` prints the result.
const DEFAULT_LINGER: Duration = Duration::from_secs(30);

/// Runs the bot until its input ends (text backend) or SIGINT/SIGTERM.
pub async fn run(spec: &'static BotSpec, st2: St2Client, options: &Options) -> ExitCode {
    let backend = match backend::build(
        &spec.backend,
        &BackendOptions {
            user: options.user.clone(),
            room: options.room.clone(),
            // No banner among JSON log lines.
            banner_help: (!options
                .log_json
                .unwrap_or(spec.log.format == bot_config::LogFormat::Json))
            .then(|| format!("{}{}", spec.chat.prefix, spec.chat.help_command)),
        },
    ) {
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

    let aliases = AliasCache::new();
    let dispatcher = match Dispatcher::new(
        spec,
        st2.clone(),
        capabilities,
        aliases.clone(),
        outgoing_tx.clone(),
    ) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "invalid bot definition");
            return ExitCode::FAILURE;
        }
    };

    let mut session_store: Option<crate::session::RedbOwedStore> = None;
    let dispatcher = match &spec.auth_page {
        None => dispatcher,
        Some(page) => {
            let sessions = match crate::session::SessionManager::open(page, &spec.name, st2.clone())
            {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot open the session store");
                    eprintln!("{}: {e}", spec.name);
                    return ExitCode::FAILURE;
                }
            };
            sessions.set_command_name(format!("{}{}", spec.chat.prefix, spec.chat.session_command));
            if let Some(admins) = spec.access.groups.iter().find(|g| g.name == "admins") {
                sessions.set_admins(admins.members.iter().map(|m| m.to_string()).collect());
            }
            let (notify_tx, mut notify_rx) = mpsc::channel::<(String, String)>(64);
            let page_shutdown = shutdown.clone();
            let server = sessions.clone();
            tokio::spawn(async move {
                if let Err(e) = server.serve(notify_tx, page_shutdown).await {
                    tracing::error!(error = %e, "login page stopped");
                }
            });
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
            session_store = Some(sessions.owed_store());
            dispatcher.with_sessions(sessions)
        }
    };
    // Owed results: in the session store's file, else in `results_store`, else in memory.
    let owed_store: Box<dyn crate::results::OwedStore> = match (
        session_store,
        options
            .results_store
            .as_deref()
            .or(spec.stackstorm.results_store.as_deref()),
    ) {
        (Some(table), _) => Box::new(table),
        (None, Some(path)) => match crate::session::RedbOwedStore::open(std::path::Path::new(path))
        {
            Ok(store) => Box::new(store),
            Err(e) => {
                tracing::error!(error = %e, "cannot open the results store");
                eprintln!("{}: {e}", spec.name);
                return ExitCode::FAILURE;
            }
        },
        (None, None) => Box::new(crate::results::MemoryOwedStore),
    };
    let ledger = Arc::new(crate::results::Ledger::open(
        &spec.name,
        owed_store,
        options
            .result_timeout
            .unwrap_or(spec.stackstorm.result_timeout),
    ));
    let dispatcher = Arc::new(dispatcher.with_results(ledger.clone()));
    let backend_task = tokio::spawn(backend.run(BackendIo {
        incoming: incoming_tx,
        outgoing: outgoing_rx,
        state: chat_state_tx,
        shutdown: backend_shutdown.clone(),
    }));

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
                            // background, so announcements keep flowing meanwhile.
                            let pass = (ledger.clone(), st2.clone(), route.clone());
                            tokio::spawn(async move {
                                let (ledger, st2, route) = pass;
                                crate::results::recover(&ledger, &st2, &route).await;
                            });
                            if let Err(e) = aliases.refresh(&st2).await {
                                tracing::warn!(error = %e, "cannot load action aliases");
                            }
                        }
                        None => return,
                    },
                    _ = expiry.tick() => {
                        ledger.expire(crate::results::unix_now());
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
    let mut signal = std::pin::pin!(shutdown_signal());
    let mut ended_by_signal = false;
    loop {
        tokio::select! {
            message = incoming_rx.recv() => match message {
                Some(message) => {
                    in_flight.spawn(dispatcher.clone().handle(message));
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
    let _ = stream_task.await;
    events_task.abort();
    chat_watch.abort();
    drop(dispatcher);
    drop(outgoing_tx);
    // Hand the backend what is still queued, then tell it to close.
    let _ = tokio::time::timeout(Duration::from_secs(5), relay_task).await;
    backend_shutdown.cancel();
    let backend_result = tokio::time::timeout(Duration::from_secs(5), backend_task).await;
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

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
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
