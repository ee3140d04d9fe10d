//! Running the gateway: choose the upstream, bootstrap the admin key, accept
//! connections, log one line per request, shut down gracefully.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cng_core::alias::AliasTable;
use cng_core::auth::{self, NewKey, Role};
use cng_core::routing::UrlPolicy;
use cng_core::{Gateway, GatewayConfig, RequestLog};
use cng_providers::crypto::MasterKey;
use cng_providers::{
    AnyBackend, OpenAiBackend, OpenAiConfig, ProviderRouter, ReqwestClient, RestBackend,
    RestConfig, Timeouts, Unconfigured,
};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cli::ServeArgs;
use crate::services::os_services;
use crate::store::SqliteStore;

/// Where the upstream is, from the environment (secrets are never flags: they would
/// show in `ps`).
#[derive(Clone, Default)]
pub struct UpstreamEnv {
    pub account_id: Option<String>,
    pub api_token: Option<String>,
    pub api_base: Option<String>,
    pub upstream_key: Option<String>,
    pub admin_key: Option<String>,
    /// `CNG_MASTER_KEY`: opens and seals provider keys (32 bytes, hex or base64).
    pub master_key: Option<String>,
    /// `CNG_CF_ANALYTICS_TOKEN`: reads Cloudflare's GraphQL Analytics API for
    /// `GET /api/usage/reconcile` (Account Analytics Read; with `CLOUDFLARE_ACCOUNT_ID`).
    pub analytics_token: Option<String>,
}

impl UpstreamEnv {
    /// `CLOUDFLARE_ACCOUNT_ID`, `CLOUDFLARE_API_TOKEN`, `CNG_CF_API_BASE`,
    /// `CNG_UPSTREAM_KEY`, `CNG_ADMIN_KEY`, `CNG_MASTER_KEY`, `CNG_CF_ANALYTICS_TOKEN`;
    /// empty values count as unset.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        Self {
            account_id: var("CLOUDFLARE_ACCOUNT_ID"),
            api_token: var("CLOUDFLARE_API_TOKEN"),
            api_base: var("CNG_CF_API_BASE"),
            upstream_key: var("CNG_UPSTREAM_KEY"),
            admin_key: var("CNG_ADMIN_KEY"),
            master_key: var(cng_providers::crypto::MASTER_KEY_ENV),
            analytics_token: var("CNG_CF_ANALYTICS_TOKEN"),
        }
    }
}

/// The native backend: the configured Workers AI path (or `--upstream`) plus every
/// provider the config document names.
pub type NativeBackend = ProviderRouter<AnyBackend, ReqwestClient>;

/// The native gateway type.
pub type NativeGateway = Gateway<NativeBackend, SqliteStore>;

/// How long a connection may take to send a complete request head. Cuts slowloris
/// clients (headers sent a byte at a time hold a connection forever otherwise); it also
/// closes keep-alive connections idle that long (clients reconnect transparently).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(15);

/// What the server holds right now: open connections, and requests whose answer is
/// not finished (a stream counts until its last byte is written or the client leaves).
/// Tests check both return to zero after a fault: nothing leaks.
#[derive(Debug, Default)]
pub struct InFlight {
    connections: std::sync::atomic::AtomicUsize,
    requests: std::sync::atomic::AtomicUsize,
}

impl InFlight {
    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn enter(self: &Arc<Self>, connection: bool) -> InFlightGuard {
        let counter = if connection {
            &self.connections
        } else {
            &self.requests
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        InFlightGuard(self.clone(), connection)
    }
}

/// Counts one connection or request while alive.
struct InFlightGuard(Arc<InFlight>, bool);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let counter = if self.1 {
            &self.0.connections
        } else {
            &self.0.requests
        };
        counter.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A started server.
pub struct Running {
    pub addr: SocketAddr,
    /// The admin key created at first start (shown once), if one was.
    pub created_admin_key: Option<String>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    in_flight: Arc<InFlight>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish (bounded), and waits.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    /// Waits until the server stops (after a signal).
    pub async fn wait(self) {
        let _ = self.task.await;
    }

    /// Live counts of open connections and unfinished requests.
    pub fn in_flight(&self) -> Arc<InFlight> {
        self.in_flight.clone()
    }

    /// A handle that stops the server when sent `true` (signal handlers use it).
    pub fn stopper(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

fn timeouts(args: &ServeArgs) -> Timeouts {
    Timeouts {
        first_byte: Duration::from_secs(args.first_byte_timeout),
        idle: Duration::from_secs(args.idle_timeout),
        ..Timeouts::default()
    }
}

/// The host's own backend wrapped with the providers of the config: keys opened with
/// `CNG_MASTER_KEY`, URLs under the same policy the config is saved with, the AI
/// Gateway token (if any) for `ai-gateway-compat` providers.
fn native_backend(
    args: &ServeArgs,
    own: AnyBackend,
    master: Option<MasterKey>,
    aig: Option<&crate::ai_gateway::AiGatewaySettings>,
) -> Result<NativeBackend, String> {
    let client = ReqwestClient::new(timeouts(args)).map_err(|e| e.message().to_string())?;
    Ok(ProviderRouter::new(own, client)
        .with_master_key(master)
        .with_url_policy(UrlPolicy {
            allow_loopback_http: args.allow_loopback_http,
        })
        .with_gateway_token(aig.and_then(|a| a.token.clone())))
}

fn backend(
    args: &ServeArgs,
    env: &UpstreamEnv,
    aig: Option<&crate::ai_gateway::AiGatewaySettings>,
) -> Result<(AnyBackend, String), String> {
    let timeouts = timeouts(args);
    let client = || ReqwestClient::new(timeouts).map_err(|e| e.message().to_string());
    if let Some(url) = &args.upstream {
        let mut config = OpenAiConfig::new(url.trim_end_matches('/'));
        if let Some(k) = &env.upstream_key {
            config = config.with_api_key(k);
        }
        let label = format!(
            "openai-compatible {}",
            cng_core::routing::url_guard::redact_url(url)
        );
        return Ok((
            AnyBackend::OpenAi(OpenAiBackend::new(config, client()?)),
            label,
        ));
    }
    if let (Some(aig), Some(token)) = (aig, &env.api_token) {
        return aig.backend(env.account_id.as_deref(), token, client()?);
    }
    match (&env.account_id, &env.api_token) {
        (Some(account), Some(token)) => {
            let mut config = RestConfig::new(account, token);
            if let Some(base) = &env.api_base {
                config.api_base = base.trim_end_matches('/').to_string();
            }
            let label = format!(
                "workers-ai-rest {}",
                cng_core::routing::url_guard::redact_url(&config.api_base)
            );
            Ok((AnyBackend::Rest(RestBackend::new(config, client()?)), label))
        }
        _ => Ok((AnyBackend::Unconfigured(Unconfigured), "none".to_string())),
    }
}

/// Builds the gateway, bootstraps the admin key, binds and serves in the background.
pub async fn start(args: ServeArgs, env: UpstreamEnv) -> Result<Running, String> {
    let aig = crate::ai_gateway::AiGatewaySettings::from_env()?;
    start_with(args, env, aig).await
}

/// [`start`] with the AI Gateway settings given rather than read from the environment.
pub async fn start_with(
    args: ServeArgs,
    env: UpstreamEnv,
    aig: Option<crate::ai_gateway::AiGatewaySettings>,
) -> Result<Running, String> {
    let store = SqliteStore::open(&args.data.data).map_err(|e| e.message().to_string())?;
    let services = os_services();
    let (own, upstream) = backend(&args, &env, aig.as_ref())?;
    let master = env
        .master_key
        .as_deref()
        .map(MasterKey::parse)
        .transpose()
        .map_err(|e| e.message().to_string())?;
    let backend = native_backend(&args, own, master.clone(), aig.as_ref())?;
    // Checked before anything is stored: a misconfiguration stops the start cleanly.
    let access = crate::operate::access_verifier()?;
    let admin_key_hash = env.admin_key.as_deref().map(auth::hash_key);
    // Bind first: a key created for a server that then cannot start would be stored
    // but never shown.
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let mut created_admin_key = None;
    if admin_key_hash.is_none()
        && !auth::has_admin_key(&store, services.clock.unix_seconds())
            .await
            .map_err(|e| e.message().to_string())?
    {
        let name = free_admin_name(&store).await?;
        let new = NewKey {
            name,
            role: Role::Admin,
            models: None,
            rpm: None,
            expires: None,
        };
        let (key, _) = auth::create_key(&store, &*services.entropy, &*services.clock, new)
            .await
            .map_err(|e| e.message().to_string())?;
        created_admin_key = Some(key);
    }
    let config = GatewayConfig {
        admin_key_hash,
        max_body_bytes: args.max_body_bytes,
        max_upload_bytes: args.max_upload_bytes,
        public_url: args.public_url.clone(),
        upstream: upstream.clone(),
        open_models: args.upstream.is_some(),
        // In front of an arbitrary OpenAI-compatible upstream, `gpt-4o` means that
        // upstream's gpt-4o: the Workers AI aliases do not apply.
        aliases: if args.upstream.is_some() {
            AliasTable::empty()
        } else {
            AliasTable::default()
        },
        url_policy: UrlPolicy {
            allow_loopback_http: args.allow_loopback_http,
        },
        ..GatewayConfig::default()
    };
    let usage = crate::operate::usage_sink(&args.data.data)?;
    let (team_tokens, booking) = crate::team_usage::sink(&args.data.data, usage.clone())?;
    let mut gateway =
        Gateway::new(backend, store, services, config).with_usage(team_tokens.clone());
    if let Some(search) = crate::operate::model_search(&args, &env) {
        gateway = gateway.with_model_search(search);
    }
    if let Some(analytics) = crate::operate::analytics(&env) {
        gateway = gateway.with_analytics(analytics);
    }
    if let Some(access) = access {
        gateway = gateway.with_access(access);
    }
    if let Some(master) = master {
        gateway = gateway.with_sealer(Arc::new(master));
    }
    let gateway = Arc::new(gateway);
    tracing::info!(%addr, upstream, data = %args.data.data.display(), "cng listening");
    let in_flight = Arc::new(InFlight::default());
    let counts = in_flight.clone();
    let (tx, rx) = watch::channel(false);
    let flusher = crate::operate::spawn_flusher(usage, rx.clone());
    let booker = crate::team_usage::spawn_booker(team_tokens, booking, rx.clone());
    let grace = Duration::from_secs(args.shutdown_grace);
    let task = tokio::spawn(async move {
        accept_loop(listener, gateway, rx, grace, counts).await;
        // The last seconds of usage are written before the process ends.
        let _ = flusher.await;
        let _ = booker.await;
    });
    Ok(Running {
        addr,
        created_admin_key,
        shutdown: tx,
        in_flight,
        task,
    })
}

async fn accept_loop(
    listener: TcpListener,
    gateway: Arc<NativeGateway>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
    in_flight: Arc<InFlight>,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                // SSE events are small writes: without this, Nagle's algorithm holds
                // each one until the previous is acknowledged (up to 40 ms).
                let _ = stream.set_nodelay(true);
                let gateway = gateway.clone();
                let counts = in_flight.clone();
                let connection = in_flight.enter(true);
                let service = service_fn(move |req| {
                    let gateway = gateway.clone();
                    let counts = counts.clone();
                    async move { Ok::<_, std::convert::Infallible>(serve_one(&gateway, req, peer, &counts).await) }
                });
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                let conn = graceful.watch(conn.into_owned());
                tokio::spawn(async move {
                    let _ = conn.await;
                    drop(connection);
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    tracing::info!(
        grace_secs = grace.as_secs(),
        "shutting down: letting in-flight requests finish"
    );
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over; closing the remaining connections");
    }
}

async fn serve_one(
    gateway: &NativeGateway,
    req: hyper::Request<hyper::body::Incoming>,
    peer: SocketAddr,
    in_flight: &Arc<InFlight>,
) -> hyper::Response<crate::http::OutBody> {
    let guard = in_flight.enter(false);
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let mut req = crate::http::request(req);
    let call = crate::ai_gateway::call_meta(gateway, &mut req).await;
    let (mut resp, aig) =
        cng_providers::ai_gateway::with_passthrough(call, gateway.handle(req)).await;
    // The AI Gateway's cf-aig-cache-status / cf-aig-log-id / cf-aig-event-id, if any.
    for (name, value) in aig.0 {
        resp.headers_mut().insert(name, value);
    }
    let log = resp
        .extensions()
        .get::<RequestLog>()
        .cloned()
        .unwrap_or_default();
    // One line per request. Never a key or token: only the key's name.
    tracing::info!(
        target: "cng::request",
        %method,
        path,
        status = resp.status().as_u16(),
        latency_ms = start.elapsed().as_secs_f64() * 1000.0,
        model = log.model.as_deref().unwrap_or("-"),
        key = log.key_name.as_deref().unwrap_or("-"),
        request_id = log.request_id,
        %peer,
        error = log.error.as_deref().unwrap_or(""),
        dropped = log.dropped.join(","),
    );
    if !log.ignored.is_empty() {
        tracing::debug!(target: "cng::request", request_id = log.request_id, ignored = log.ignored.join(","), "unknown request fields ignored");
    }
    // The request stays counted until hyper drops its body (finished or abandoned).
    crate::http::response(resp).map(|body| {
        http_body_util::BodyExt::boxed_unsync(http_body_util::BodyExt::map_frame(
            body,
            move |frame| {
                let _counted = &guard;
                frame
            },
        ))
    })
}

/// `admin`, or `admin-2`, `admin-3`… when that name is taken by another key.
async fn free_admin_name(store: &SqliteStore) -> Result<String, String> {
    let keys = auth::list_keys(store)
        .await
        .map_err(|e| e.message().to_string())?;
    let taken = |n: &str| keys.iter().any(|k| k.name == n);
    let mut name = "admin".to_string();
    let mut i = 2;
    while taken(&name) {
        name = format!("admin-{i}");
        i += 1;
    }
    Ok(name)
}

/// The data dir of the serve args (for messages).
pub fn data_dir(args: &ServeArgs) -> PathBuf {
    args.data.data.clone()
}
