//! The bot's copy of StackStorm's action aliases: used by the local matcher, for "closest
//! command" suggestions and for listing ambiguous candidates. Refreshed at start, whenever
//! the stream reports an alias change or reconnects, and periodically as a fallback for
//! StackStorm versions that do not send alias events.
//!
//! Each load is a [`Catalogue`]: the matcher's index plus what is derived from it once per
//! load rather than once per chat message (the rendered help lines). Only what matching
//! and help need is kept per alias (see [`Alias::without_settings`]).

use std::ops::Deref;
use std::sync::{Arc, OnceLock, RwLock};

use st2_alias::{Alias, AliasIndex};

use crate::stackstorm::{St2Client, St2Error};

/// One loaded alias list: the index, and what is derived from it at most once.
#[derive(Debug)]
pub struct Catalogue {
    index: AliasIndex,
    /// The help lines as rendered by the dispatcher's help template, in
    /// [`AliasIndex::help_lines`] order; built on the first help request.
    help: OnceLock<HelpLines>,
}

/// Rendered help lines, packed into one string (a catalogue of 10,000 aliases has 30,000
/// lines: one allocation instead of one per line).
#[derive(Debug, Default)]
pub struct HelpLines {
    text: String,
    /// Where each line ends in `text`.
    ends: Vec<u32>,
}

impl HelpLines {
    /// Appends a line.
    pub fn push(&mut self, line: &str) {
        self.text.push_str(line);
        self.ends
            .push(u32::try_from(self.text.len()).unwrap_or(u32::MAX));
    }

    /// Line `i` (empty past the end).
    pub fn get(&self, i: usize) -> &str {
        let end = self.ends.get(i).map_or(0, |&e| e as usize);
        let start = match i {
            0 => 0,
            _ => self.ends.get(i - 1).map_or(end, |&e| e as usize),
        };
        self.text.get(start..end).unwrap_or_default()
    }

    /// How many lines there are.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn shrink_to_fit(&mut self) {
        self.text.shrink_to_fit();
        self.ends.shrink_to_fit();
    }
}

impl Catalogue {
    fn new(aliases: Vec<Alias>) -> Catalogue {
        Catalogue {
            index: AliasIndex::new(aliases),
            help: OnceLock::new(),
        }
    }

    /// The rendered help lines, aligned with [`AliasIndex::help_lines`]: `render` makes
    /// them the first time (once per load).
    pub fn help_lines(&self, render: impl FnOnce(&AliasIndex) -> HelpLines) -> &HelpLines {
        self.help.get_or_init(|| {
            let mut lines = render(&self.index);
            lines.shrink_to_fit();
            lines
        })
    }
}

impl Deref for Catalogue {
    type Target = AliasIndex;
    fn deref(&self) -> &AliasIndex {
        &self.index
    }
}

/// Shared, refreshable alias index.
#[derive(Clone, Debug, Default)]
pub struct AliasCache {
    index: Arc<RwLock<Option<Arc<Catalogue>>>>,
    /// One refresh at a time; callers that waited reuse the result.
    refreshing: Arc<tokio::sync::Mutex<u64>>,
    /// When a refresh was last made because StackStorm contradicted the copy (a deleted
    /// alias): such refreshes are spaced so that chat users cannot drive them.
    last_stale_refresh: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

/// Least time between two refreshes caused by a stale copy.
const STALE_REFRESH_SPACING: std::time::Duration = std::time::Duration::from_secs(10);

impl AliasCache {
    /// An empty cache (nothing known until the first refresh).
    pub fn new() -> Self {
        Self::default()
    }

    /// The current catalogue, if one was loaded.
    pub fn get(&self) -> Option<Arc<Catalogue>> {
        self.index.read().ok().and_then(|g| g.clone())
    }

    /// Replaces the index (tests, and [`AliasCache::refresh`]).
    pub fn set(&self, aliases: Vec<Alias>) {
        self.install(Catalogue::new(aliases));
    }

    fn install(&self, catalogue: Catalogue) {
        if let Ok(mut g) = self.index.write() {
            *g = Some(Arc::new(catalogue));
        }
    }

    /// Reloads every alias from StackStorm; on failure the old index stays.
    pub async fn refresh(&self, client: &St2Client) -> Result<usize, St2Error> {
        self.refresh_inner(client, false).await
    }

    /// Loads the aliases unless another task loaded them while this one waited.
    pub async fn ensure_loaded(&self, client: &St2Client) -> Result<usize, St2Error> {
        self.refresh_inner(client, true).await
    }

    /// StackStorm answered that it has no alias `reference` (deleted since the copy was
    /// loaded, and the stream event was missed): reload, so the alias is neither matched
    /// locally nor suggested any more.
    pub async fn refresh_stale(&self, client: &St2Client, reference: &str) {
        if !self.stale_refresh_due() {
            return;
        }
        tracing::info!(
            alias = reference,
            "StackStorm no longer has this action alias; reloading the alias list"
        );
        if let Err(e) = self.refresh(client).await {
            tracing::warn!(error = %e, "cannot reload the action aliases");
        }
    }

    /// StackStorm's matcher found no alias for `command`: if the copy still matches it, the
    /// copy is stale (an alias was deleted) and is reloaded before it suggests the alias.
    pub async fn refresh_if_matching(&self, client: &St2Client, command: &str) {
        let stale = self
            .get()
            .is_some_and(|index| index.matches(command).is_ok_and(|m| !m.is_empty()));
        if stale && self.stale_refresh_due() {
            tracing::info!(
                "StackStorm matched no alias where the bot's copy does; reloading the alias list"
            );
            if let Err(e) = self.refresh(client).await {
                tracing::warn!(error = %e, "cannot reload the action aliases");
            }
        }
    }

    /// Whether a stale-copy refresh may run now (and records it).
    fn stale_refresh_due(&self) -> bool {
        let now = std::time::Instant::now();
        let mut last = self
            .last_stale_refresh
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|at| now.duration_since(at) < STALE_REFRESH_SPACING) {
            return false;
        }
        *last = Some(now);
        true
    }

    async fn refresh_inner(
        &self,
        client: &St2Client,
        only_if_missing: bool,
    ) -> Result<usize, St2Error> {
        let mut generation = self.refreshing.lock().await;
        if only_if_missing && let Some(index) = self.get() {
            return Ok(index.len());
        }
        *generation += 1;
        let started = std::time::Instant::now();
        let aliases = client
            .list_aliases_with(|raw| match serde_json::from_str::<Alias>(raw.get()) {
                Ok(alias) => Some(alias.without_settings()),
                Err(e) => {
                    tracing::warn!(error = %e, "skipping an action alias StackStorm sent in an unexpected shape");
                    None
                }
            })
            .await?;
        let n = aliases.len();
        let fetched = started.elapsed();
        // Building the index reads every format (about 50 ms for 10,000 aliases of four
        // formats, more for formats that need parsing): off the runtime's thread, which keeps serving chat and the stream
        // meanwhile (the previous catalogue answers until this one is installed).
        match tokio::task::spawn_blocking(move || Catalogue::new(aliases)).await {
            Ok(catalogue) => {
                self.install(catalogue);
                // The JSON pages and the parse's scratch are free now: give them back (off
                // this thread; it walks the whole heap).
                drop(tokio::task::spawn_blocking(bot_heap::release_freed));
            }
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => {
                tracing::debug!("shutting down: the new alias index was not built");
                return Ok(0);
            }
        }
        tracing::info!(
            aliases = n,
            fetch_ms = fetched.as_millis(),
            total_ms = started.elapsed().as_millis(),
            "action aliases loaded"
        );
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::HelpLines;

    #[test]
    fn packed_help_lines_read_back_as_pushed() {
        let mut lines = HelpLines::default();
        assert!(lines.is_empty());
        for line in ["!deploy {{app}} - Deploys", "", "!ré {{x}} - ünïcode"] {
            lines.push(line);
        }
        lines.shrink_to_fit();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines.get(0), "!deploy {{app}} - Deploys");
        assert_eq!(lines.get(1), "");
        assert_eq!(lines.get(2), "!ré {{x}} - ünïcode");
        assert_eq!(lines.get(3), "", "past the end");
    }
}
