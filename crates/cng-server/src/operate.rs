//! What the admin side of the native server needs besides the gateway: the usage sink
//! (buffered in memory, written to the SQLite store every few seconds and at shutdown),
//! the model catalog reader behind `POST /api/discover` and the upstream probe of
//! `GET /api/status`, the analytics reader behind `GET /api/usage/reconcile`, and the
//! optional Cloudflare Access verifier.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cng_core::access::{AccessConfig, AccessVerifier, CertSource};
use cng_core::config::discovery::ModelSearch;
use cng_core::usage::reconcile::Analytics;
use cng_core::usage::{BoxFuture, BufferedStoreUsage};
use cng_core::{Error, ErrorKind};
use cng_providers::{
    AnalyticsConfig, CatalogSearch, GraphqlAnalytics, HttpClient, ReqwestClient, RestConfig,
    Timeouts, collect_body,
};
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

/// Cloudflare's GraphQL Analytics API, when `CNG_CF_ANALYTICS_TOKEN` and
/// `CLOUDFLARE_ACCOUNT_ID` are set (at `CNG_CF_API_BASE`, like the REST upstream).
/// Independent of the upstream: the account's analytics are worth comparing whatever
/// serves the requests.
pub fn analytics(env: &UpstreamEnv) -> Option<Arc<dyn Analytics>> {
    let (Some(account), Some(token)) = (&env.account_id, &env.analytics_token) else {
        if env.analytics_token.is_some() {
            tracing::warn!(
                "CNG_CF_ANALYTICS_TOKEN is set but CLOUDFLARE_ACCOUNT_ID is not: /api/usage/reconcile stays off"
            );
        }
        return None;
    };
    let mut config = AnalyticsConfig::new(account, token);
    if let Some(base) = &env.api_base {
        config.api_base = base.trim_end_matches('/').to_string();
    }
    let timeouts = Timeouts {
        first_byte: Duration::from_secs(30),
        idle: Duration::from_secs(30),
        ..Timeouts::default()
    };
    let client = ReqwestClient::new(timeouts).ok()?;
    Some(Arc::new(GraphqlAnalytics::new(config, client)))
}

/// The team's Access signing keys, over HTTPS.
struct HttpCerts {
    url: String,
    client: ReqwestClient,
}

impl CertSource for HttpCerts {
    fn fetch(&self) -> BoxFuture<'_, Result<Vec<u8>, Error>> {
        Box::pin(async move {
            let uri = http::Uri::try_from(self.url.as_str()).map_err(|_| {
                Error::new(
                    ErrorKind::Unavailable,
                    "the Access team domain is not a valid host",
                )
            })?;
            let mut req = http::Request::new(Bytes::new());
            *req.uri_mut() = uri;
            let resp = self.client.send(req).await?;
            let status = resp.status();
            let body = collect_body(resp.into_body(), 1024 * 1024).await?;
            if !status.is_success() {
                return Err(Error::new(
                    ErrorKind::Upstream,
                    format!("HTTP {}", status.as_u16()),
                ));
            }
            Ok(body.to_vec())
        })
    }
}

/// Cloudflare Access, when `CNG_ACCESS_TEAM_DOMAIN` and `CNG_ACCESS_AUD` are set (both
/// or neither). `CNG_ACCESS_ADMINS` and `CNG_ACCESS_CLIENTS` are comma-separated
/// addresses or `@domain`s (docs/operating.md).
pub fn access_verifier() -> Result<Option<Arc<AccessVerifier>>, String> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let list = |k: &str| -> Vec<String> {
        var(k)
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    let (team, aud) = match (var("CNG_ACCESS_TEAM_DOMAIN"), var("CNG_ACCESS_AUD")) {
        (None, None) => return Ok(None),
        (Some(t), Some(a)) => (t, a),
        _ => {
            return Err(
                "Cloudflare Access needs both CNG_ACCESS_TEAM_DOMAIN and CNG_ACCESS_AUD".into(),
            );
        }
    };
    let team = team
        .trim()
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_string();
    let config = AccessConfig {
        team_domain: team,
        audience: aud.trim().to_string(),
        admins: list("CNG_ACCESS_ADMINS"),
        clients: list("CNG_ACCESS_CLIENTS"),
    };
    let timeouts = Timeouts {
        first_byte: Duration::from_secs(10),
        idle: Duration::from_secs(10),
        ..Timeouts::default()
    };
    let client = ReqwestClient::new(timeouts).map_err(|e| e.message().to_string())?;
    let certs = HttpCerts {
        url: config.certs_url(),
        client,
    };
    tracing::info!(
        team = config.team_domain,
        "Cloudflare Access assertions are verified"
    );
    Ok(Some(Arc::new(AccessVerifier::new(config, Arc::new(certs)))))
}
