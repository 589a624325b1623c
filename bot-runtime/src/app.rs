//! Wiring: starts the backend and hands every incoming message to the dispatcher until the
//! input ends or a shutdown signal arrives.

use std::process::ExitCode;

use bot_config::BotSpec;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::backend::{self, BackendIo, BackendOptions, ConnState, Outgoing, Target};
use crate::cli::Options;

/// Runs the bot until its input ends (text backend) or SIGINT/SIGTERM.
pub async fn run(spec: &'static BotSpec, options: &Options) -> ExitCode {
    let backend_options = BackendOptions {
        user: options.user.clone(),
        room: options.room.clone(),
    };
    let backend = match backend::build(&spec.backend, &backend_options) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the chat backend");
            return ExitCode::FAILURE;
        }
    };
    let (incoming_tx, mut incoming_rx) = mpsc::channel(256);
    let (outgoing_tx, outgoing_rx) = mpsc::channel::<Outgoing>(256);
    let (state_tx, _state_rx) = watch::channel(ConnState::Connecting);
    let shutdown = CancellationToken::new();
    let backend_task = tokio::spawn(backend.run(BackendIo {
        incoming: incoming_tx,
        outgoing: outgoing_rx,
        state: state_tx,
        shutdown: shutdown.clone(),
    }));
    tracing::info!(bot = %spec.name, backend = spec.backend.kind(), "bot started");
    while let Some(message) = incoming_rx.recv().await {
        let target = match &message.room {
            Some(room) => Target::Room {
                id: room.id.clone(),
                thread: message.thread.clone(),
            },
            None => Target::Direct {
                user: message.user_id.clone(),
            },
        };
        let _ = outgoing_tx
            .send(Outgoing::text(
                target,
                format!("{}: not connected to StackStorm yet", message.user),
            ))
            .await;
    }
    tokio::time::sleep(options.linger).await;
    drop(outgoing_tx);
    match backend_task.await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "chat backend stopped");
            ExitCode::FAILURE
        }
        Err(e) => {
            tracing::error!(error = %e, "chat backend crashed");
            ExitCode::FAILURE
        }
    }
}
