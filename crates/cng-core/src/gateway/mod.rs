//! The gateway: one entry point, [`Gateway::handle`], for every host.
//!
//! It owns everything a client can observe — routing, CORS, request ids, body limits,
//! authentication and roles, rate limits, alias resolution, translation and errors —
//! so the Cloudflare Worker and the native server only convert their request and
//! response types and inject a [`Backend`], a [`Store`] and the host [`Services`].

mod admin_config;
mod admin_discover;
mod admin_keys;
mod admin_providers;
mod admin_reconcile;
mod admin_status;
mod admin_teams;
mod admin_usage;
mod anthropic;
mod audio;
mod badge;
mod body;
mod chat;
mod completions;
mod cors;
mod embeddings;
mod health;
mod images;
mod models;
mod moderations;
mod ratelimit;
mod responses;
mod route;
mod routes;
mod translations;
mod ui;
mod upload;

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};

pub use body::Body;
pub use ratelimit::{Limiter, RateLimiter, RateStatus, rate_limited};
pub use routes::{Access, Match, Route, match_route};

use crate::alias::{AliasTable, Resolved};
use crate::auth::{self, Principal, Role};
use crate::backend::Backend;
use crate::catalog::{Catalog, ModelInfo, Task};
use crate::config::discovery::ModelSearch;
use crate::config::{LiveCache, LiveConfig};
use crate::error::{Error, ErrorKind};
use crate::ids::{Clock, Entropy, IdSource};
use crate::store::Store;
use crate::usage::reconcile::Analytics;
use crate::usage::{MemoryUsage, SharedSink, UsageEvent};

/// Default limit of a JSON request body: 10 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// Default limit of a multipart upload: 25 MiB, OpenAI's limit for audio files.
pub const DEFAULT_MAX_UPLOAD_BYTES: usize = 25 * 1024 * 1024;

/// Host-provided time, ids and randomness.
pub struct Services {
    pub clock: Box<dyn Clock + Send + Sync>,
    pub ids: Box<dyn IdSource + Send + Sync>,
    pub entropy: Box<dyn Entropy + Send + Sync>,
}

/// How the gateway is set up.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// SHA-256 of the bootstrap admin key (`CNG_ADMIN_KEY`), if one is set.
    pub admin_key_hash: Option<[u8; 32]>,
    pub max_body_bytes: usize,
    /// What `/health` says about the upstream (never a credential).
    pub upstream: String,
    /// Accept any model name, as an OpenAI-shaped model (OpenAI-compatible upstreams,
    /// whose model names cng cannot know).
    pub open_models: bool,
    pub aliases: AliasTable,
    pub catalog: Arc<Catalog>,
    /// How long an instance may serve a cached config document without asking the
    /// store (0 = ask on every request; see `config::live`).
    pub config_ttl_seconds: u64,
    /// Limit of a multipart upload (audio files, images to edit).
    pub max_upload_bytes: usize,
    /// The origin clients reach cng at (`https://ai.example.com`), for the links of
    /// `response_format: url` images; unset: taken from the request's `Host`.
    pub public_url: Option<String>,
    /// Which provider URLs a config document may hold (see
    /// [`crate::routing::url_guard`]); plain `http` to loopback only for tests.
    pub url_policy: crate::routing::UrlPolicy,
}

impl GatewayConfig {
    /// What a config document may hold on this host.
    pub fn doc_rules(&self) -> crate::config::validate::Rules {
        crate::config::validate::Rules {
            open_models: self.open_models,
            url_policy: self.url_policy,
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            admin_key_hash: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            upstream: "none".into(),
            open_models: false,
            aliases: AliasTable::default(),
            catalog: Arc::new(Catalog::builtin().clone()),
            config_ttl_seconds: 0,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            public_url: None,
            url_policy: crate::routing::UrlPolicy::default(),
        }
    }
}

/// What the host may log about a request (set as a response extension). Never holds
/// a key or a token.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestLog {
    pub request_id: String,
    pub route: &'static str,
    pub model: Option<String>,
    pub key_name: Option<String>,
    pub error: Option<String>,
    /// Request fields the model had no equivalent for (dropped by translation).
    pub dropped: Vec<&'static str>,
    /// Request fields cng does not know (ignored).
    pub ignored: Vec<String>,
    /// The model usage is counted under: the Workers AI id the request resolved to,
    /// or `provider/model` when a configured provider served it.
    pub resolved_model: Option<String>,
    /// The target that served (or failed last), `provider/model`: the `x-cng-target`
    /// response header.
    pub target: Option<String>,
    /// Targets left for the next one, each with why (fallback chains).
    pub fallbacks: Vec<String>,
}

/// The gateway. `L` counts per-key request rates: in memory by default.
pub struct Gateway<B, S, L = RateLimiter> {
    backend: B,
    store: S,
    services: Services,
    config: GatewayConfig,
    limiter: L,
    live: LiveCache,
    usage: SharedSink,
    model_search: Option<Arc<dyn ModelSearch>>,
    analytics: Option<Arc<dyn Analytics>>,
    sealer: Option<Arc<dyn crate::routing::KeySealer>>,
    #[cfg(feature = "access")]
    access: Option<Arc<crate::access::AccessVerifier>>,
}

/// The per-request state handlers share.
pub(crate) struct Ctx<'a> {
    pub principal: Option<Principal>,
    pub log: &'a mut RequestLog,
    /// The config document in force for this request.
    pub live: Arc<LiveConfig>,
}

impl<B: Backend, S: Store> Gateway<B, S, RateLimiter> {
    /// A gateway with the in-memory rate limiter.
    pub fn new(backend: B, store: S, services: Services, config: GatewayConfig) -> Self {
        Self::with_limiter(backend, store, services, config, RateLimiter::default())
    }
}

impl<B: Backend, S: Store, L: Limiter> Gateway<B, S, L> {
    /// A gateway with its own rate limiter.
    pub fn with_limiter(
        backend: B,
        store: S,
        services: Services,
        config: GatewayConfig,
        limiter: L,
    ) -> Self {
        Self {
            backend,
            store,
            services,
            live: LiveCache::new(config.config_ttl_seconds),
            config,
            limiter,
            usage: Arc::new(MemoryUsage::new()),
            model_search: None,
            analytics: None,
            sealer: None,
            #[cfg(feature = "access")]
            access: None,
        }
    }

    /// Counts usage into `sink` instead of memory (the native server: its store).
    pub fn with_usage(mut self, sink: SharedSink) -> Self {
        self.usage = sink;
        self
    }

    /// Reads Cloudflare's model catalog with `search` (`POST /api/discover`, and the
    /// upstream probe of `GET /api/status`).
    pub fn with_model_search(mut self, search: Arc<dyn ModelSearch>) -> Self {
        self.model_search = Some(search);
        self
    }

    /// Reads Cloudflare's count of the account's inferences with `analytics`
    /// (`GET /api/usage/reconcile`; without one that route answers 503).
    pub fn with_analytics(mut self, analytics: Arc<dyn Analytics>) -> Self {
        self.analytics = Some(analytics);
        self
    }

    /// Seals provider keys sent to `PUT /api/providers/{name}/key` (the host's master
    /// key; without one that route answers 503).
    pub fn with_sealer(mut self, sealer: Arc<dyn crate::routing::KeySealer>) -> Self {
        self.sealer = Some(sealer);
        self
    }

    /// Accepts Cloudflare Access assertions (see [`crate::access`]).
    #[cfg(feature = "access")]
    pub fn with_access(mut self, verifier: Arc<crate::access::AccessVerifier>) -> Self {
        self.access = Some(verifier);
        self
    }

    /// Who is calling: an API key when one is sent, else a Cloudflare Access
    /// assertion when Access is configured.
    pub(crate) async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, Error> {
        let key = auth::key_from_headers(headers);
        #[cfg(feature = "access")]
        if let (None, Some(access)) = (key, &self.access) {
            let now = self.services.clock.unix_seconds();
            if let Some(p) = access.authenticate(headers, now).await? {
                return Ok(p);
            }
        }
        // Team tokens (`cngt-…`, see crate::teams) before API keys.
        if let Some(team) = key.filter(|k| k.starts_with(crate::teams::token::TOKEN_PREFIX)) {
            let now = self.services.clock.unix_seconds();
            if let Some(rec) = crate::teams::authenticate(&self.store, now, team).await? {
                return Ok(rec.principal());
            }
        }
        auth::authenticate(
            &self.store,
            &*self.services.clock,
            self.config.admin_key_hash.as_ref(),
            key,
        )
        .await
    }

    /// The usage sink.
    pub fn usage(&self) -> &SharedSink {
        &self.usage
    }

    /// The config document in force now.
    pub async fn live_config(&self) -> Result<Arc<LiveConfig>, Error> {
        self.live
            .get(
                &self.store,
                self.services.clock.unix_seconds(),
                &self.config.aliases,
                &self.config.catalog,
            )
            .await
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Answers one HTTP request. Never fails: every error becomes an OpenAI-shaped
    /// error response with CORS headers and the request id.
    pub async fn handle(&self, req: Request<Body>) -> Response<Body> {
        let request_id = request_id(req.headers(), &*self.services.ids);
        let origin_headers = cors::request_headers(req.headers());
        let anthropic_errors = anthropic::is_anthropic_path(req.uri().path());
        let started_ms = self.services.clock.unix_millis();
        let mut log = RequestLog {
            request_id: request_id.clone(),
            route: "-",
            ..RequestLog::default()
        };
        let mut resp = if req.method() == Method::OPTIONS {
            empty(StatusCode::NO_CONTENT)
        } else {
            match self.route(req, &mut log).await {
                Ok(r) => r,
                Err(e) => {
                    log.error = Some(e.message().to_string());
                    error_response(&e)
                }
            }
        };
        if anthropic_errors {
            resp = anthropic::reshape_error(resp, &request_id);
        }
        self.count_usage(&mut resp, &log, started_ms);
        let h = resp.headers_mut();
        if let Some(t) = log
            .target
            .as_deref()
            .and_then(|t| HeaderValue::from_str(t).ok())
        {
            h.insert(HeaderName::from_static("x-cng-target"), t);
        }
        cors::apply(h, &origin_headers);
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            h.insert(HeaderName::from_static("x-request-id"), v);
        }
        resp.extensions_mut().insert(log);
        resp
    }

    async fn route(
        &self,
        req: Request<Body>,
        log: &mut RequestLog,
    ) -> Result<Response<Body>, Error> {
        let route = match match_route(req.method(), req.uri().path()) {
            Match::Found(r) => r,
            Match::WrongMethod(allow) => {
                let e = Error::new(
                    ErrorKind::MethodNotAllowed,
                    format!("{} is not allowed here; use {allow}.", req.method()),
                )
                .with_code("method_not_allowed");
                log.error = Some(e.message().to_string());
                let mut resp = error_response(&e);
                resp.headers_mut()
                    .insert(http::header::ALLOW, HeaderValue::from_static(allow));
                return Ok(resp);
            }
            Match::NotFound => {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("No route for {} {}.", req.method(), req.uri().path()),
                )
                .with_code("unknown_route"));
            }
        };
        log.route = route.name();
        let principal = match route.access() {
            Access::Public => None,
            access => {
                let p = self.authenticate(req.headers()).await?;
                log.key_name = Some(p.name.clone());
                if access == Access::Admin && p.role != Role::Admin {
                    return Err(Error::new(
                        ErrorKind::Permission,
                        "This route needs an admin key.",
                    )
                    .with_code("admin_required"));
                }
                admin_teams::admit(self, req.headers(), &route).await?;
                Some(p)
            }
        };
        let live = self.live_config().await?;
        let mut rate = None;
        let rpm = principal
            .as_ref()
            .and_then(|p| p.rpm.or_else(|| live.default_rpm(p.role)));
        if let Some(limit) = rpm {
            let now = self.services.clock.unix_seconds();
            let name = principal.as_ref().map_or("", |p| p.name.as_str());
            match self.limiter.hit(name, limit, now).await {
                Ok(s) => rate = Some(s),
                Err((e, s)) => {
                    log.error = Some(e.message().to_string());
                    let mut resp = error_response(&e);
                    rate_headers(resp.headers_mut(), &s);
                    return Ok(resp);
                }
            }
        }
        let mut ctx = Ctx {
            principal,
            log,
            live,
        };
        let result = self.dispatch(route, req, &mut ctx).await;
        let mut resp = result.unwrap_or_else(|e| {
            ctx.log.error = Some(e.message().to_string());
            error_response(&e)
        });
        // A limited key sees its budget on every answer, errors included.
        if let Some(s) = rate {
            rate_headers(resp.headers_mut(), &s);
        }
        Ok(resp)
    }

    async fn dispatch(
        &self,
        route: Route,
        req: Request<Body>,
        ctx: &mut Ctx<'_>,
    ) -> Result<Response<Body>, Error> {
        Ok(match route {
            Route::Health => health::handle(self),
            Route::ChatCompletions => chat::handle(self, req, ctx).await?,
            Route::Completions => completions::handle(self, req, ctx).await?,
            Route::Models => models::list(self, ctx),
            Route::Model(id) => models::get(self, ctx, &id)?,
            Route::Embeddings => embeddings::handle(self, req, ctx).await?,
            Route::ImagesGenerations => images::generations(self, req, ctx).await?,
            Route::ImagesEdits => images::edits(self, req, ctx).await?,
            Route::Image(id) => images::serve(self, &id).await?,
            Route::AudioSpeech => audio::speech(self, req, ctx).await?,
            Route::AudioTranscriptions => audio::transcriptions(self, req, ctx).await?,
            Route::AudioTranslations => audio::translations(self, req, ctx).await?,
            Route::Moderations => moderations::handle(self, req, ctx).await?,
            Route::Translations => translations::handle(self, req, ctx).await?,
            Route::Responses => responses::handle(self, req, ctx).await?,
            Route::Messages => anthropic::messages(self, req, ctx).await?,
            Route::MessagesCountTokens => anthropic::count_tokens(self, req, ctx).await?,
            Route::AdminKeys => admin_keys::list(self).await?,
            Route::AdminKeyCreate => admin_keys::create(self, req).await?,
            Route::AdminKey(name) => admin_keys::one(self, req, &name).await?,
            Route::AdminKeyRotate(name) => admin_keys::rotate(self, req, &name).await?,
            Route::AdminTeams => admin_teams::list(self).await?,
            Route::AdminTeamCreate => admin_teams::create(self, req).await?,
            Route::AdminTeam(id) => admin_teams::one(self, req, &id).await?,
            Route::AdminTeamRotate(id) => admin_teams::rotate(self, req, ctx, &id).await?,
            Route::AdminProviders => admin_providers::list(self).await?,
            Route::AdminProviderKey(name) => admin_providers::key(self, req, &name).await?,
            Route::AdminConfig => admin_config::handle(self, req, ctx).await?,
            Route::AdminConfigExport => admin_config::export(ctx),
            Route::AdminConfigImport => admin_config::import(self, req, ctx).await?,
            Route::AdminDiscover => admin_discover::handle(self, req, ctx).await?,
            Route::AdminUsage => admin_usage::handle(self, req, ctx).await?,
            Route::AdminUsageReconcile => admin_reconcile::handle(self, req, ctx).await?,
            Route::AdminStatus => admin_status::handle(self, ctx).await?,
            Route::Badge(model) => badge::handle(self, req, ctx, &model).await?,
            Route::Ui(file) => ui::serve(&file)?,
        })
    }

    /// The model name a request means: an empty `model` takes the config's default
    /// for this endpoint.
    pub(crate) fn requested_name(&self, ctx: &Ctx<'_>, requested: &str, tasks: &[Task]) -> String {
        match ctx.live.default_for(tasks) {
            Some(d) if requested.trim().is_empty() => d.to_string(),
            _ => requested.to_string(),
        }
    }

    /// Resolves a model name for `tasks` on the host's own path (Workers AI or its
    /// single upstream) and checks the caller may use it. Names the config routes to
    /// third-party providers (`openai/…`, a `targets` chain) are for the chat-family
    /// routes only ([`route`]) and are refused here with a message saying so.
    pub(crate) fn resolve(
        &self,
        ctx: &mut Ctx<'_>,
        requested: &str,
        tasks: &[Task],
    ) -> Result<Resolved, Error> {
        let requested = self.requested_name(ctx, requested, tasks);
        let requested = requested.as_str();
        ctx.log.model = Some(requested.to_string());
        if route::provider_targets(&ctx.live, requested)?.is_some() {
            return Err(Error::invalid_param(
                "model",
                format!(
                    "`{requested}` is routed to a configured provider; providers serve chat completions, completions, responses and messages. Use a Workers AI model here."
                ),
            )
            .with_code("model_not_supported"));
        }
        let resolved = self.lookup(&ctx.live, requested, tasks)?;
        ctx.log.resolved_model = Some(resolved.model.id.clone());
        if let Some(p) = &ctx.principal {
            if !p.may_use(requested, &resolved.model.id) {
                return Err(model_not_allowed(requested));
            }
            if !p.may_use_provider(crate::routing::naming::WORKERS_AI) {
                return Err(route::provider_not_allowed(
                    crate::routing::naming::WORKERS_AI,
                    requested,
                ));
            }
        }
        Ok(resolved)
    }

    /// What the host's own path knows of `requested`: aliases, the catalog, enabled
    /// models and per-model overrides. No permission check.
    pub(crate) fn lookup(
        &self,
        live: &Arc<LiveConfig>,
        requested: &str,
        tasks: &[Task],
    ) -> Result<Resolved, Error> {
        // `workers-ai/@cf/…` and `@cf/…#workers-ai` name Workers AI explicitly; a
        // URL-shaped name is refused (crate::routing::naming).
        let named =
            crate::routing::ModelRef::parse(requested, |p| live.doc.providers.contains_key(p))?;
        let requested = match named.provider.as_deref() {
            Some(crate::routing::naming::WORKERS_AI) if !self.config.open_models => {
                named.model.as_str()
            }
            _ => requested,
        };
        let resolved = match live.aliases.resolve_for(requested, &live.catalog, tasks) {
            Err(e) if self.config.open_models && e.kind() == ErrorKind::NotFound => Resolved {
                requested: requested.to_string(),
                alias: None,
                // Unknown to cng: assume a capable OpenAI-shaped model and let the
                // upstream judge images and reasoning. An alias names the upstream's
                // own model.
                model: ModelInfo::open(live.aliases.get(requested).unwrap_or(requested)),
            },
            other => other?,
        };
        let mut resolved = resolved;
        if !self.config.open_models && !live.is_enabled(&resolved.model.id) {
            return Err(Error::model_not_found(requested));
        }
        live.apply_overrides(&mut resolved.model);
        Ok(resolved)
    }

    /// Counts a request that reached a model (see [`crate::usage`]): a whole answer at
    /// once, a stream when it ends or the client leaves.
    fn count_usage(&self, resp: &mut Response<Body>, log: &RequestLog, started_ms: u64) {
        let Some(model) = &log.resolved_model else {
            return;
        };
        let mut event = UsageEvent {
            at: started_ms / 1000,
            key: log.key_name.clone().unwrap_or_else(|| "-".into()),
            model: model.clone(),
            status: resp.status().as_u16(),
            latency_ms: self.services.clock.unix_millis().saturating_sub(started_ms),
            input_tokens: None,
            output_tokens: None,
            stream_error: false,
        };
        let json_body = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/json"));
        match std::mem::replace(resp.body_mut(), Body::Empty) {
            Body::Stream(s) => {
                let reported = resp
                    .extensions()
                    .get::<crate::usage::observe::StreamUsage>()
                    .cloned();
                let counted =
                    crate::usage::observe::CountedStream::new(s, event, self.usage.clone())
                        .with_reported(reported);
                *resp.body_mut() = Body::Stream(Box::pin(counted));
            }
            Body::Full(b) => {
                if event.status < 300 && json_body {
                    let t = crate::usage::observe::tokens_from_json(&b);
                    event.input_tokens = t.input;
                    event.output_tokens = t.output;
                }
                *resp.body_mut() = Body::Full(b);
                self.usage.record(event);
            }
            Body::Empty => self.usage.record(event),
        }
    }
}

fn model_not_allowed(requested: &str) -> Error {
    Error::new(
        ErrorKind::Permission,
        format!("This key may not use the model `{requested}`."),
    )
    .with_param("model")
    .with_code("model_not_allowed")
}

fn request_id(headers: &HeaderMap, ids: &(dyn IdSource + Send + Sync)) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| format!("req_{}", ids.fresh_id()))
}

fn rate_headers(h: &mut HeaderMap, s: &RateStatus) {
    for (name, value) in [
        ("x-ratelimit-limit", s.limit as u64),
        ("x-ratelimit-remaining", s.remaining as u64),
        ("x-ratelimit-reset", s.reset),
    ] {
        h.insert(HeaderName::from_static(name), HeaderValue::from(value));
    }
}

pub(crate) fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(Body::Empty);
    *r.status_mut() = status;
    r
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, body: &impl serde::Serialize) -> Response<Body> {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let len = bytes.len();
            let mut r = Response::new(Body::Full(Bytes::from(bytes)));
            *r.status_mut() = status;
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r.headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(len));
            r
        }
        Err(e) => error_response(&Error::internal(format!(
            "could not serialise the response: {e}"
        ))),
    }
}

/// An SSE response around `body`.
pub(crate) fn sse(body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    // Tell buffering proxies (nginx) to pass events through as they come.
    h.insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    r
}

/// The OpenAI error response for `e`, with `Retry-After` where it applies.
pub fn error_response(e: &Error) -> Response<Body> {
    let body = e.to_json();
    let len = body.len();
    let mut r = Response::new(Body::Full(Bytes::from(body)));
    *r.status_mut() = e.status();
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    if let Some(s) = e.retry_after() {
        h.insert(http::header::RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

/// Reads a JSON request body within the limit: refuses early on `Content-Length`,
/// and on a body media type that is not JSON.
pub(crate) async fn read_json_body(req: Request<Body>, limit: usize) -> Result<Bytes, Error> {
    if let Some(len) = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > limit as u64 {
            return Err(body::too_large(limit));
        }
    }
    if let Some(ct) = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        let ct = ct.to_ascii_lowercase();
        if !(ct.starts_with("application/json")
            || ct.starts_with("text/plain")
            || ct.contains("+json"))
        {
            return Err(Error::new(
                ErrorKind::UnsupportedMediaType,
                format!("This route reads JSON; the body was sent as `{ct}`. Send `Content-Type: application/json`."),
            )
            .with_code("unsupported_media_type"));
        }
    }
    req.into_body().read_limited(limit).await
}
