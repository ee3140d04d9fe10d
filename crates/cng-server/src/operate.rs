//! What the admin side of the native server needs besides the gateway: the usage sink
//! (buffered in memory, written to the SQLite store every few seconds and at shutdown)
//! and the model catalog reader behind `POST /api/discover` and the upstream probe of
//! `GET /api/status`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cng_core::config::discovery::ModelSearch;
use cng_core::usage::BufferedStoreUsage;
use cng_providers::{CatalogSearch, ReqwestClient, RestConfig, Timeouts};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cli::ServeArgs;
use crate::serve::UpstreamEnv;
use crate::store::SqliteStore;

/// How often buffered usage is written. A query (`GET /api/usage`, status, badges)
/// writes first, so this bounds only what a crash could lose.
pub const FLUSH_EVERY: Duration = Duration::from_secs(5);

/// The native usage sink: counts in memory, stored in the data dir's SQLite file (its
/// own connection, so a flush never waits on a request's store access).
pub type NativeUsage = BufferedStoreUsage<SqliteStore>;

pub fn usage_sink(data_dir: &Path) -> Result<Arc<NativeUsage>, String> {
    let store = SqliteStore::open(data_dir).map_err(|e| e.message().to_string())?;
    Ok(Arc::new(BufferedStoreUsage::new(store)))
}

/// Flushes `usage` every [`FLUSH_EVERY`] until `stop` turns true, then once more.
pub fn spawn_flusher(usage: Arc<NativeUsage>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => break,
            }
            if let Err(e) = usage.flush().await {
                tracing::warn!(error = e.message(), "usage not written yet; will retry");
            }
        }
        if let Err(e) = usage.flush().await {
            tracing::warn!(
                error = e.message(),
                "usage of the last seconds could not be written"
            );
        }
    })
}

/// The catalog reader, when the upstream is Workers AI over REST (an
/// OpenAI-compatible upstream has no Cloudflare catalog).
pub fn model_search(args: &ServeArgs, env: &UpstreamEnv) -> Option<Arc<dyn ModelSearch>> {
    if args.upstream.is_some() {
        return None;
    }
    let (Some(account), Some(token)) = (&env.account_id, &env.api_token) else {
        return None;
    };
    let mut config = RestConfig::new(account, token);
    if let Some(base) = &env.api_base {
        config.api_base = base.trim_end_matches('/').to_string();
    }
    let timeouts = Timeouts {
        first_byte: Duration::from_secs(20),
        idle: Duration::from_secs(20),
        ..Timeouts::default()
    };
    let client = ReqwestClient::new(timeouts).ok()?;
    Some(Arc::new(CatalogSearch::new(config, client)))
}
