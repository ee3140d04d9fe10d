//! The Worker itself (wasm32 only): the fetch handler and the Durable Object classes.

mod convert;
mod kv_store;
mod limiter;
mod services;
mod usage;

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use cng_core::auth;
use cng_core::backend::{Backend, InferenceRequest, Output};
use cng_core::routing::{KeySealer, ProviderRoute, UrlPolicy};
use cng_core::usage::reconcile::Analytics;
use cng_core::{Error, Gateway, GatewayConfig, RequestLog};
use cng_providers::binding::{
    AiBinding, BindingBackend, BindingOptions, Fallback, GatewayOptions, Served,
};
use cng_providers::crypto::MasterKey;
use cng_providers::{GraphqlAnalytics, ProviderRouter, RestBackend, Unconfigured, WorkerFetch};
use http::HeaderValue;
use worker::{Context, Env, event};

pub use kv_store::{CngStore, KvStore};
pub use limiter::{CngRateLimiter, DoLimiter};
use usage::IsolateUsage;

use crate::BACKEND_HEADER;
use crate::settings::{AI_BINDING, Settings};

/// How long an isolate serves the gateway config document before asking KV again.
/// Changes reach every isolate within this plus KV's propagation (up to ~60 s).
const CONFIG_TTL_SECONDS: u64 = 5;

type EdgeBackend = Fallback<BindingBackend, RestBackend<WorkerFetch>>;

/// The configured third-party providers (`providers` in the config document), reached
/// over `fetch`; keys opened with the `CNG_MASTER_KEY` secret.
type EdgeProviders = ProviderRouter<Unconfigured, WorkerFetch>;

/// The backend, shared by the gateway and the request that holds it (to read which path
/// served), and the providers.
struct Shared(Rc<EdgeBackend>, EdgeProviders);

impl Backend for Shared {
    fn run(
        &self,
        request: InferenceRequest,
    ) -> impl Future<Output = Result<Output, Error>> + cng_core::backend::MaybeSend {
        self.0.run(request)
    }

    fn run_on(
        &self,
        provider: &ProviderRoute,
        request: InferenceRequest,
    ) -> impl Future<Output = Result<Output, Error>> + cng_core::backend::MaybeSend {
        self.1.run_on(provider, request)
    }
}

type EdgeGateway = Gateway<Shared, KvStore, DoLimiter>;

/// A gateway and its backend, used by one request at a time.
struct Member {
    gateway: EdgeGateway,
    backend: Rc<EdgeBackend>,
}

/// What every request of an isolate shares, read once from the environment (secrets and
/// vars do not change within an isolate; a new deployment starts new isolates).
///
/// Gateways are long-lived (their config cache lives across requests; usage is the
/// isolate's, see [`IsolateUsage`]) but each serves one request at a time, so that "which path served" belongs
/// to that request: a request takes an idle gateway from the pool, or makes one, and
/// puts it back when its response head is ready. The pool grows to the isolate's
/// highest concurrency.
struct Isolate {
    config: GatewayConfig,
    log_requests: bool,
    rest: Option<RestBackend<WorkerFetch>>,
    binding: BindingOptions,
    providers: EdgeProviders,
    sealer: Option<Arc<dyn KeySealer>>,
    /// `GET /api/usage/reconcile`'s reader (`CNG_CF_ANALYTICS_TOKEN`).
    analytics: Option<Arc<dyn Analytics>>,
    usage: Rc<IsolateUsage>,
    idle: RefCell<Vec<Member>>,
}

thread_local! {
    static ISOLATE: RefCell<Option<Rc<Isolate>>> = const { RefCell::new(None) };
}

fn isolate(env: &Env) -> Rc<Isolate> {
    ISOLATE.with(|cell| {
        if let Some(i) = cell.borrow().as_ref() {
            return i.clone();
        }
        let settings = Settings::from_lookup(|k| env.var(k).ok().map(|v| v.to_string()));
        let url_policy = UrlPolicy {
            allow_loopback_http: settings.allow_loopback_http,
        };
        let config = GatewayConfig {
            admin_key_hash: settings.admin_key.as_deref().map(auth::hash_key),
            upstream: settings.upstream_label(),
            config_ttl_seconds: CONFIG_TTL_SECONDS,
            url_policy,
            ..GatewayConfig::default()
        };
        // A malformed master key is reported once and treated as absent: providers
        // with sealed keys then answer 503 `master_key_missing`, never garbage.
        let master = settings
            .master_key
            .as_deref()
            .and_then(|k| match MasterKey::parse(k) {
                Ok(m) => Some(m),
                Err(e) => {
                    worker::console_error!("cng: {}", e.message());
                    None
                }
            });
        let providers = ProviderRouter::new(Unconfigured, WorkerFetch::default())
            .with_master_key(master.clone())
            .with_url_policy(url_policy)
            .with_gateway_token(settings.ai_gateway_token.clone());
        let sealer = master.map(|m| Arc::new(m) as Arc<dyn KeySealer>);
        let analytics = settings.analytics_config().map(|c| {
            Arc::new(GraphqlAnalytics::new(c, WorkerFetch::default())) as Arc<dyn Analytics>
        });
        let rest = settings
            .rest_config()
            .map(|c| RestBackend::new(c, WorkerFetch::default()));
        let binding = BindingOptions {
            gateway: settings.ai_gateway.as_ref().map(|id| GatewayOptions {
                id: id.clone(),
                skip_cache: false,
                cache_ttl: None,
            }),
        };
        let i = Rc::new(Isolate {
            log_requests: settings.log_requests,
            config,
            rest,
            binding,
            providers,
            sealer,
            analytics,
            usage: Rc::new(IsolateUsage::new(env)),
            idle: RefCell::new(Vec::new()),
        });
        *cell.borrow_mut() = Some(i.clone());
        i
    })
}

impl Isolate {
    fn member(&self, env: &Env) -> Member {
        let ai = env.get_binding::<AiBinding>(AI_BINDING).ok();
        let backend = Rc::new(Fallback::new(
            BindingBackend::new(ai, self.binding.clone()),
            self.rest.clone(),
        ));
        let mut gateway = Gateway::with_limiter(
            Shared(backend.clone(), self.providers.clone()),
            KvStore::new(env),
            services::services(),
            self.config.clone(),
            DoLimiter::new(env),
        )
        .with_usage(self.usage.sink());
        if let Some(sealer) = &self.sealer {
            gateway = gateway.with_sealer(sealer.clone());
        }
        if let Some(analytics) = &self.analytics {
            gateway = gateway.with_analytics(analytics.clone());
        }
        Member { gateway, backend }
    }
}

/// An idle gateway for one request, back to the pool when dropped.
struct Lease {
    member: Option<Member>,
    iso: Rc<Isolate>,
}

impl Lease {
    fn take(iso: Rc<Isolate>, env: &Env) -> Self {
        let member = iso.idle.borrow_mut().pop();
        let member = match member {
            Some(m) => {
                m.gateway.store().forget_writes();
                m.backend.take_served();
                m
            }
            None => iso.member(env),
        };
        Self {
            member: Some(member),
            iso,
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(m) = self.member.take() {
            self.iso.idle.borrow_mut().push(m);
        }
    }
}

/// Work to do after the response is sent (`ctx.wait_until`): anything that must not
/// delay the answer: the request log line, writing usage and booking team tokens.
#[derive(Clone, Default)]
pub struct AfterResponse(Rc<RefCell<Vec<Deferred>>>);

type Deferred = Pin<Box<dyn Future<Output = ()>>>;

impl AfterResponse {
    pub fn push(&self, f: impl Future<Output = ()> + 'static) {
        self.0.borrow_mut().push(Box::pin(f));
    }

    fn hand_over(&self, ctx: &Context) {
        for f in self.0.borrow_mut().drain(..) {
            ctx.wait_until(f);
        }
    }
}

/// The fetch handler: convert, let the gateway answer, convert back.
#[event(fetch)]
pub async fn fetch(
    req: worker::Request,
    env: Env,
    ctx: Context,
) -> worker::Result<worker::Response> {
    let iso = isolate(&env);
    let log_all = iso.log_requests;
    let iso_usage = iso.usage.clone();
    let lease = Lease::take(iso, &env);
    let Some(member) = lease.member.as_ref() else {
        return worker::Response::error("cng: no gateway", 500);
    };
    let after = AfterResponse::default();
    let started = js_sys::Date::now();
    let method = req.inner().method();
    let path = req.path();
    let http_req = convert::request(req).await?;
    let mut resp = member.gateway.handle(http_req).await;
    let served = member.backend.take_served().map(|s| match s {
        Served::Primary => "binding",
        Served::Fallback => "rest",
    });
    drop(lease);
    if let Some(s) = served {
        resp.headers_mut()
            .insert(BACKEND_HEADER, HeaderValue::from_static(s));
    }
    let status = resp.status().as_u16();
    if log_all || status >= 500 || served == Some("rest") {
        let log = resp
            .extensions()
            .get::<RequestLog>()
            .cloned()
            .unwrap_or_default();
        after.push(async move {
            worker::console_log!(
                "{method} {path} status={status} ms={} route={} model={} key={} backend={} request_id={} error={}",
                js_sys::Date::now() - started,
                log.route,
                log.model.as_deref().unwrap_or("-"),
                log.key_name.as_deref().unwrap_or("-"),
                served.unwrap_or("-"),
                log.request_id,
                log.error.as_deref().unwrap_or(""),
            );
        });
    }
    // Usage is written (and team tokens booked) after the answer; a stream is counted
    // when it ends, so its turn comes then.
    match usage::watch_end(resp.body_mut()) {
        Some(ended) => after.push(async move {
            let _ = ended.await;
            iso_usage.settle().await;
        }),
        None => after.push(iso_usage.settle()),
    }
    after.hand_over(&ctx);
    convert::response(resp)
}
