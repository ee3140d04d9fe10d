//! The Worker itself (wasm32 only): the fetch handler and the Durable Object classes.

mod convert;
mod kv_store;
mod limiter;
mod services;

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use cng_core::auth;
use cng_core::{Gateway, GatewayConfig, RequestLog};
use cng_providers::binding::{
    AiBinding, BindingBackend, BindingOptions, Fallback, GatewayOptions, Served,
};
use cng_providers::{RestBackend, WorkerFetch};
use http::HeaderValue;
use worker::{Context, Env, event};

pub use kv_store::{CngStore, KvStore};
pub use limiter::{CngRateLimiter, DoLimiter};

use crate::BACKEND_HEADER;
use crate::settings::{AI_BINDING, Settings};

/// What every request of an isolate shares: read once from the environment (secrets and
/// vars do not change within an isolate; a new deployment starts new isolates).
struct Isolate {
    config: GatewayConfig,
    rest: Option<RestBackend<WorkerFetch>>,
    binding: BindingOptions,
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
        let config = GatewayConfig {
            admin_key_hash: settings.admin_key.as_deref().map(auth::hash_key),
            upstream: settings.upstream_label(),
            ..GatewayConfig::default()
        };
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
            config,
            rest,
            binding,
        });
        *cell.borrow_mut() = Some(i.clone());
        i
    })
}

/// Work to do after the response is sent (`ctx.wait_until`): anything that must not
/// delay the answer, such as log lines today and usage accounting or cache writes.
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
    let ai = env.get_binding::<AiBinding>(AI_BINDING).ok();
    let backend = Fallback::new(
        BindingBackend::new(ai, iso.binding.clone()),
        iso.rest.clone(),
    );
    let gateway = Gateway::with_limiter(
        &backend,
        KvStore::new(&env),
        services::services(),
        iso.config.clone(),
        DoLimiter::new(&env),
    );
    let after = AfterResponse::default();
    let started = js_sys::Date::now();
    let method = req.inner().method();
    let path = req.path();
    let http_req = convert::request(req).await?;
    let mut resp = gateway.handle(http_req).await;
    let served = backend.served().map(|s| match s {
        Served::Primary => "binding",
        Served::Fallback => "rest",
    });
    if let Some(s) = served {
        resp.headers_mut()
            .insert(BACKEND_HEADER, HeaderValue::from_static(s));
    }
    let status = resp.status().as_u16();
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
    after.hand_over(&ctx);
    convert::response(resp)
}
