//! Per-key rate limits that hold across isolates and locations: one Durable Object per
//! key name ([`CngRateLimiter`]) counts that key's requests in cng-core's fixed
//! one-minute window; the gateway produces the headers and the 429.

use cng_core::Error;
use cng_core::gateway::{Limiter, RateLimiter, RateStatus};
use wasm_bindgen::JsValue;
use worker::{
    DurableObject, Env, Method, ObjectNamespace, Request, RequestInit, Response, State,
    durable_object,
};

use crate::protocol::{self, HitRequest, HitResponse};
use crate::settings::LIMITER_BINDING;

/// The gateway's [`Limiter`] in the Worker.
pub struct DoLimiter {
    ns: Option<ObjectNamespace>,
}

impl DoLimiter {
    pub fn new(env: &Env) -> Self {
        Self {
            ns: env.durable_object(LIMITER_BINDING).ok(),
        }
    }

    async fn call(&self, key: &str, req: &HitRequest) -> Result<HitResponse, String> {
        let ns = self
            .ns
            .as_ref()
            .ok_or_else(|| format!("no Durable Object namespace bound as `{LIMITER_BINDING}`"))?;
        let stub = ns
            .get_by_name(&format!("key:{key}"))
            .map_err(|e| e.to_string())?;
        let body = serde_json::to_string(req).map_err(|e| e.to_string())?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_body(Some(JsValue::from_str(&body)));
        let request = Request::new_with_init("https://cng-rate-limiter/", &init)
            .map_err(|e| e.to_string())?;
        let mut resp = stub
            .fetch_with_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let text = resp.text().await.map_err(|e| e.to_string())?;
        serde_json::from_str(&text).map_err(|e| e.to_string())
    }
}

impl Limiter for DoLimiter {
    async fn hit(
        &self,
        key: &str,
        limit: u32,
        now: u64,
    ) -> Result<RateStatus, (Error, RateStatus)> {
        match self.call(key, &HitRequest { limit, now }).await {
            Ok(resp) => protocol::hit_result(resp, now),
            Err(e) => {
                // A broken limiter must not take the gateway down: let the request through.
                worker::console_error!(
                    "cng: the rate limiter is unavailable ({e}); request allowed"
                );
                Ok(protocol::fail_open(limit, now))
            }
        }
    }
}

/// One key's window. In memory: the window is a minute and an object is only evicted
/// after it has been idle for longer than that, so nothing is lost that still counts.
#[durable_object]
pub struct CngRateLimiter {
    window: RateLimiter,
}

impl DurableObject for CngRateLimiter {
    fn new(_state: State, _env: Env) -> Self {
        Self {
            window: RateLimiter::default(),
        }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let text = req.text().await?;
        match serde_json::from_str::<HitRequest>(&text) {
            Ok(hit) => Response::from_json(&protocol::hit(&self.window, &hit)),
            Err(_) => Response::error("unreadable rate-limit request", 400),
        }
    }
}
