//! The Text backend: the terminal. Each line read from standard input is a message from one
//! user in one room (`--user`, `--room`; `--room -` for a direct message); replies are
//! printed to standard output, one message per block.
//!
//! Output shape (stable, used by transcript tests): a reply to the current room is printed as
//! is; one to another room as `[#room] text`; a private one as `[to user] text`. Thread ids
//! are shown as `[#room thread 1]`. End of input closes the incoming side; replies still
//! queued are printed before the backend returns.

use bot_config::TextSpec;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::{
    Backend, BackendError, BackendIo, BackendOptions, BoxFuture, Capabilities, ConnState, Incoming,
    Outgoing, Room, Target, split_pretext,
};

/// The terminal backend.
#[derive(Debug)]
pub struct TextBackend {
    user: String,
    room: Option<String>,
}

impl TextBackend {
    /// The backend for a definition and the command-line options.
    pub fn new(spec: &TextSpec, options: &BackendOptions) -> Self {
        let user = options
            .user
            .clone()
            .or_else(|| (!spec.user.is_empty()).then(|| spec.user.to_string()))
            .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
            .unwrap_or_else(|| "operator".to_owned());
        let room = options
            .room
            .clone()
            .unwrap_or_else(|| spec.room.to_string());
        let room = (!room.is_empty() && room != "-").then_some(room);
        Self { user, room }
    }

    fn render(&self, out: &Outgoing) -> String {
        let (pretext, body) = split_pretext(&out.text);
        let mut text = String::new();
        if let Some(m) = &out.mention {
            text.push_str(&format!("@{m}: "));
        }
        if let Some(p) = pretext {
            text.push_str(p.trim_end());
            text.push('\n');
        }
        text.push_str(body);
        let label = match &out.target {
            Target::Room { id, thread } => {
                let same = self.room.as_deref() == Some(id.as_str());
                match (same, thread) {
                    (true, None) => None,
                    (_, Some(t)) => Some(format!("[{id} thread {t}] ")),
                    (false, None) => Some(format!("[{id}] ")),
                }
            }
            Target::Direct { user } => Some(format!("[to {user}] ")),
        };
        let mut rendered = label.unwrap_or_default();
        rendered.push_str(&text);
        if !rendered.ends_with('\n') {
            rendered.push('\n');
        }
        rendered
    }
}

impl Backend for TextBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_message_len: 100_000,
            rich: false,
            threads: false,
        }
    }

    fn run(self: Box<Self>, io: BackendIo) -> BoxFuture<'static, Result<(), BackendError>> {
        Box::pin(async move {
            let BackendIo {
                incoming,
                mut outgoing,
                state,
                shutdown,
            } = io;
            let _ = state.send(ConnState::Connected);
            let mut stdout = tokio::io::stdout();
            let mut lines = BufReader::new(tokio::io::stdin()).lines();
            let mut incoming = Some(incoming);
            let mut counter = 0u64;
            loop {
                tokio::select! {
                    line = lines.next_line(), if incoming.is_some() => {
                        match line? {
                            Some(line) => {
                                let text = line.trim();
                                if text.is_empty() {
                                    continue;
                                }
                                counter += 1;
                                let message = Incoming {
                                    user_id: self.user.clone(),
                                    user: self.user.clone(),
                                    room: self.room.clone().map(|r| Room { id: r.clone(), name: r }),
                                    text: text.to_owned(),
                                    mentioned: false,
                                    thread: None,
                                    message_id: Some(counter.to_string()),
                                };
                                if let Some(tx) = &incoming
                                    && tx.send(message).await.is_err() {
                                        incoming = None;
                                    }
                            }
                            None => {
                                tracing::debug!("text backend: end of input");
                                incoming = None;
                            }
                        }
                    }
                    reply = outgoing.recv() => {
                        match reply {
                            Some(reply) => {
                                stdout.write_all(self.render(&reply).as_bytes()).await?;
                                stdout.flush().await?;
                            }
                            None => break,
                        }
                    }
                    () = shutdown.cancelled() => {
                        while let Ok(reply) = outgoing.try_recv() {
                            stdout.write_all(self.render(&reply).as_bytes()).await?;
                        }
                        stdout.flush().await?;
                        break;
                    }
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(room: &str) -> TextBackend {
        TextBackend::new(
            &TextSpec {
                user: "alice".into(),
                room: room.to_owned().into(),
            },
            &BackendOptions::default(),
        )
    }

    #[test]
    fn renders_targets() {
        let b = backend("ops");
        let here = Outgoing::text(
            Target::Room {
                id: "ops".into(),
                thread: None,
            },
            "hi",
        );
        assert_eq!(b.render(&here), "hi\n");
        let there = Outgoing::text(
            Target::Room {
                id: "dev".into(),
                thread: None,
            },
            "hi",
        );
        assert_eq!(b.render(&there), "[dev] hi\n");
        let mut dm = Outgoing::text(Target::Direct { user: "bob".into() }, "pre{~}body");
        dm.mention = Some("bob".into());
        assert_eq!(b.render(&dm), "[to bob] @bob: pre\nbody\n");
        assert_eq!(backend("-").room, None);
    }
}
