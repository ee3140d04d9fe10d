//! Drives cng-core's team token booking ([`cng_core::usage::TeamTokens`]) on tokio.
//!
//! The sink queues each team answer's tokens and wakes [`spawn_booker`]'s task, which
//! books them right away (a compare-and-swap on the store), off the request path. What
//! piles up while a booking runs is booked by the next round in one write per team.

use std::path::Path;
use std::sync::Arc;

use cng_core::usage::{SharedSink, TeamTokens};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::store::SqliteStore;

/// The native booking sink: the teams and their spend in the data dir's SQLite file,
/// through a connection of its own.
pub type NativeTeamTokens = TeamTokens<SqliteStore>;

/// The sink in front of `inner`, and what wakes its booking task.
pub fn sink(
    data_dir: &Path,
    inner: SharedSink,
) -> Result<(Arc<NativeTeamTokens>, Arc<Notify>), String> {
    let store = SqliteStore::open(data_dir).map_err(|e| e.message().to_string())?;
    let notify = Arc::new(Notify::new());
    let wake = notify.clone();
    let sink = TeamTokens::new(inner, store).on_pending(move || wake.notify_one());
    Ok((Arc::new(sink), notify))
}

/// Books queued tokens whenever `notify` fires, until `stop` turns true, then once more.
pub fn spawn_booker(
    sink: Arc<NativeTeamTokens>,
    notify: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = notify.notified() => {}
                _ = stop.changed() => break,
            }
            if let Err(e) = sink.book_pending().await {
                tracing::warn!(error = %e.message(), "team tokens not booked yet; will retry");
            }
        }
        if let Err(e) = sink.book_pending().await {
            tracing::warn!(error = %e.message(), "team tokens of the last answers not booked");
        }
    })
}
