//! Cloudflare AI Gateway in front of the upstreams: logging, caching, analytics and
//! rate limits by Cloudflare, with cng's own keys, aliases and budgets in front.
//!
//! URL forms (all under an admin-configured, SSRF-checked base, by default
//! [`DEFAULT_GATEWAY_BASE`]):
//! - Workers AI: `{base}/{account}/{gateway}/workers-ai/{model}` — the REST API's body
//!   and envelope, so [`workers_ai`] is a [`RestBackend`] whose requests are re-pointed
//!   at the gateway;
//! - any provider through the OpenAI-compatible endpoint:
//!   `{base}/{account}/{gateway}/compat/chat/completions` with `model` spelled
//!   `{provider}/{model}` — [`compat`] is an [`OpenAiBackend`] on `…/compat`;
//! - a provider's native route: `{base}/{account}/{gateway}/{provider}` ([`provider_base`]).
//!
//! The gateway is configured per request with `cf-aig-*` headers ([`GatewayOptions`]),
//! added by [`GatewayClient`], a decorator over any [`HttpClient`]: so retries, streaming
//! and error mapping stay the wrapped backend's, and nothing here is duplicated.
//! `cf-aig-metadata` carries the admin's static entries plus the calling key's name and
//! the request id ([`CallMeta`]), so the gateway's logs say who asked. The gateway's
//! answer headers (`cf-aig-cache-status`, `cf-aig-log-id`, `cf-aig-event-id`) are kept in
//! [`ResponseMeta`] for the caller to pass on to the client.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cng_core::Error;
use cng_core::backend::{ByteStream, MaybeSend};
use cng_core::routing::UpstreamUrl;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};

use crate::http::HttpClient;
use crate::openai::{OpenAiBackend, OpenAiConfig};
use crate::rest::{RestBackend, RestConfig, bearer, misconfigured};

/// Cloudflare's AI Gateway API root.
pub const DEFAULT_GATEWAY_BASE: &str = "https://gateway.ai.cloudflare.com/v1";

/// The response headers of the gateway cng passes on to its client.
pub const PASSED_RESPONSE_HEADERS: [&str; 3] =
    ["cf-aig-cache-status", "cf-aig-log-id", "cf-aig-event-id"];

/// How the gateway backs off between its own retries (`cf-aig-backoff`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    Constant,
    Linear,
    Exponential,
}

impl Backoff {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Constant => "constant",
            Self::Linear => "linear",
            Self::Exponential => "exponential",
        }
    }
}

/// The `cf-aig-*` request options (all optional; unset ones send no header and the
/// gateway's dashboard settings apply).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GatewayOptions {
    /// `cf-aig-cache-ttl` (seconds).
    pub cache_ttl: Option<u64>,
    /// `cf-aig-skip-cache: true`.
    pub skip_cache: bool,
    /// `cf-aig-cache-key`.
    pub cache_key: Option<String>,
    /// `cf-aig-request-timeout` (milliseconds).
    pub request_timeout: Option<Duration>,
    /// `cf-aig-max-attempts`.
    pub max_attempts: Option<u32>,
    /// `cf-aig-retry-delay` (milliseconds).
    pub retry_delay: Option<Duration>,
    /// `cf-aig-backoff`.
    pub backoff: Option<Backoff>,
    /// `cf-aig-collect-log`.
    pub collect_log: Option<bool>,
    /// Static `cf-aig-metadata` entries (the gateway keeps at most five in all; cng's
    /// `key` and `request_id` take two).
    pub metadata: BTreeMap<String, String>,
}

/// Where and how to reach one AI Gateway. `Debug` redacts the token.
#[derive(Clone)]
pub struct AiGatewayConfig {
    /// The API root (checked by the SSRF guard when the config was saved).
    pub base_url: UpstreamUrl,
    pub account_id: String,
    pub gateway_id: String,
    /// For authenticated gateways: sent as `cf-aig-authorization: Bearer {token}`.
    pub gateway_token: Option<String>,
    pub options: GatewayOptions,
}

impl std::fmt::Debug for AiGatewayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AiGatewayConfig")
            .field("base_url", &self.base_url)
            .field("account_id", &self.account_id)
            .field("gateway_id", &self.gateway_id)
            .field(
                "gateway_token",
                &self.gateway_token.as_ref().map(|_| "[redacted]"),
            )
            .field("options", &self.options)
            .finish()
    }
}

/// Who is asking, for `cf-aig-metadata` and `cf-aig-event-id`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallMeta {
    /// The cng key's (or team's) name — never the key itself.
    pub key_name: Option<String>,
    /// cng's request id; also sent as `cf-aig-event-id` so a gateway log line and a
    /// cng usage record can be joined.
    pub request_id: Option<String>,
}

/// What the gateway said about an answer (the headers in
/// [`PASSED_RESPONSE_HEADERS`]), for the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseMeta(pub Vec<(HeaderName, HeaderValue)>);

impl AiGatewayConfig {
    /// Checks the ids (they go into the URL path) and builds the config.
    pub fn new(
        base_url: UpstreamUrl,
        account_id: impl Into<String>,
        gateway_id: impl Into<String>,
    ) -> Result<Self, Error> {
        let (account_id, gateway_id) = (account_id.into(), gateway_id.into());
        for (field, v) in [("account_id", &account_id), ("gateway_id", &gateway_id)] {
            let ok = !v.is_empty()
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok {
                return Err(misconfigured(&format!(
                    "the AI Gateway {field} must be letters, digits, `-` or `_`"
                )));
            }
        }
        Ok(Self {
            base_url,
            account_id,
            gateway_id,
            gateway_token: None,
            options: GatewayOptions::default(),
        })
    }

    /// `{base}/{account}/{gateway}`.
    pub fn gateway_root(&self) -> String {
        format!("{}/{}/{}", self.base_url, self.account_id, self.gateway_id)
    }

    /// `{base}/{account}/{gateway}/workers-ai/{model}`.
    pub fn workers_ai_url(&self, model: &str) -> String {
        format!("{}/workers-ai/{model}", self.gateway_root())
    }

    /// The OpenAI-compatible root: `{base}/{account}/{gateway}/compat`.
    pub fn compat_base(&self) -> String {
        format!("{}/compat", self.gateway_root())
    }

    /// A provider's native route root, e.g. `…/openai` or `…/anthropic`.
    pub fn provider_base(&self, provider: &str) -> String {
        format!("{}/{provider}", self.gateway_root())
    }

    /// The `cf-aig-*` headers for one call.
    pub fn headers(&self, call: &CallMeta) -> Result<HeaderMap, Error> {
        let mut h = HeaderMap::new();
        let o = &self.options;
        let mut put = |name: &'static str, value: String| -> Result<(), Error> {
            let v = HeaderValue::from_str(&value).map_err(|_| {
                misconfigured(&format!(
                    "the AI Gateway option {name} is not a valid header value"
                ))
            })?;
            h.insert(HeaderName::from_static(name), v);
            Ok(())
        };
        if let Some(t) = o.cache_ttl {
            put("cf-aig-cache-ttl", t.to_string())?;
        }
        if o.skip_cache {
            put("cf-aig-skip-cache", "true".into())?;
        }
        if let Some(k) = &o.cache_key {
            put("cf-aig-cache-key", k.clone())?;
        }
        if let Some(t) = o.request_timeout {
            put("cf-aig-request-timeout", t.as_millis().to_string())?;
        }
        if let Some(n) = o.max_attempts {
            put("cf-aig-max-attempts", n.to_string())?;
        }
        if let Some(d) = o.retry_delay {
            put("cf-aig-retry-delay", d.as_millis().to_string())?;
        }
        if let Some(b) = o.backoff {
            put("cf-aig-backoff", b.as_str().into())?;
        }
        if let Some(c) = o.collect_log {
            put("cf-aig-collect-log", c.to_string())?;
        }
        if let Some(id) = &call.request_id {
            put("cf-aig-event-id", id.clone())?;
        }
        let mut meta: Map<String, Value> = o
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        if let Some(k) = &call.key_name {
            meta.insert("key".into(), Value::String(k.clone()));
        }
        if let Some(id) = &call.request_id {
            meta.insert("request_id".into(), Value::String(id.clone()));
        }
        if !meta.is_empty() {
            put("cf-aig-metadata", Value::Object(meta).to_string())?;
        }
        if let Some(t) = &self.gateway_token {
            // Marked sensitive by `bearer`: kept out of `Debug` and HPACK tables.
            let v = bearer(t)
                .ok_or_else(|| misconfigured("the AI Gateway token is not a valid header value"))?;
            h.insert(HeaderName::from_static("cf-aig-authorization"), v);
        }
        Ok(h)
    }
}

/// An [`HttpClient`] that sends through the gateway: adds the `cf-aig-*` headers,
/// re-points Workers AI REST paths at the gateway's `workers-ai/` route, and keeps the
/// gateway's answer headers in [`ResponseMeta`].
///
/// Make one per request ([`GatewayClient::for_call`]) when the answer headers or the
/// caller's metadata matter; a shared one sends only the static options.
#[derive(Debug, Clone)]
pub struct GatewayClient<H> {
    inner: H,
    config: Arc<AiGatewayConfig>,
    headers: HeaderMap,
    meta: Arc<Mutex<ResponseMeta>>,
}

impl<H: HttpClient + Clone> GatewayClient<H> {
    pub fn new(config: Arc<AiGatewayConfig>, inner: H) -> Result<Self, Error> {
        Self::with_call(config, inner, &CallMeta::default())
    }

    fn with_call(config: Arc<AiGatewayConfig>, inner: H, call: &CallMeta) -> Result<Self, Error> {
        Ok(Self {
            headers: config.headers(call)?,
            inner,
            config,
            meta: Arc::default(),
        })
    }

    /// A client for one request: its metadata, its own answer headers.
    pub fn for_call(&self, call: &CallMeta) -> Result<Self, Error> {
        Self::with_call(self.config.clone(), self.inner.clone(), call)
    }

    /// The gateway's answer headers of the last response this client received.
    pub fn response_meta(&self) -> ResponseMeta {
        self.meta.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// `…/accounts/{account}/ai/run/{model}` (what [`RestBackend`] builds on the
    /// gateway root) → `…/workers-ai/{model}`; other URIs unchanged.
    fn route(&self, uri: &http::Uri) -> Result<http::Uri, Error> {
        let rest_run = format!(
            "{}/accounts/{}/ai/run/",
            self.config.gateway_root(),
            self.config.account_id
        );
        let s = uri.to_string();
        match s.strip_prefix(&rest_run) {
            Some(model) => self
                .config
                .workers_ai_url(model)
                .parse()
                .map_err(|_| misconfigured("the AI Gateway URL is not a valid URL")),
            None => Ok(uri.clone()),
        }
    }
}

impl<H: HttpClient + Clone + MaybeSend> HttpClient for GatewayClient<H> {
    fn send(
        &self,
        mut req: http::Request<Bytes>,
    ) -> impl Future<Output = Result<http::Response<ByteStream>, Error>> + MaybeSend {
        let routed = self.route(req.uri());
        // Per-request metadata set by the host for this task, else the client's own.
        #[cfg(feature = "native")]
        let per_call = CALL.try_with(|c| self.config.headers(c)).ok();
        #[cfg(not(feature = "native"))]
        let per_call: Option<Result<HeaderMap, Error>> = None;
        async move {
            *req.uri_mut() = routed?;
            let headers = match per_call {
                Some(h) => h?,
                None => self.headers.clone(),
            };
            for (k, v) in &headers {
                req.headers_mut().insert(k.clone(), v.clone());
            }
            let resp = self.inner.send(req).await?;
            let passed: Vec<(HeaderName, HeaderValue)> = PASSED_RESPONSE_HEADERS
                .iter()
                .filter_map(|n| {
                    let v = resp.headers().get(*n)?;
                    Some((HeaderName::from_static(n), v.clone()))
                })
                .collect();
            #[cfg(feature = "native")]
            let _ = PASSTHROUGH.try_with(|slot| {
                if let Ok(mut m) = slot.lock() {
                    *m = ResponseMeta(passed.clone());
                }
            });
            if let Ok(mut m) = self.meta.lock() {
                *m = ResponseMeta(passed);
            }
            Ok(resp)
        }
    }

    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + MaybeSend {
        self.inner.sleep(d)
    }
}

#[cfg(feature = "native")]
tokio::task_local! {
    /// The answer headers of the gateway for the request being served on this task.
    static PASSTHROUGH: Arc<Mutex<ResponseMeta>>;
    /// Who is asking, for the request being served on this task.
    static CALL: CallMeta;
}

/// Runs `f` (a whole gateway request) and returns, with its output, the gateway's
/// answer headers of the last upstream call made inside it — so a shared backend can
/// still hand each client its own `cf-aig-cache-status` and `cf-aig-log-id`. Native
/// only (a tokio task-local); the response head of a stream is in by the time `f`
/// returns, so streams get them too.
/// `call` (the key's name, the request id) goes into `cf-aig-metadata` and
/// `cf-aig-event-id` of every gateway call made inside `f`.
#[cfg(feature = "native")]
pub async fn with_passthrough<F: Future>(call: CallMeta, f: F) -> (F::Output, ResponseMeta) {
    let slot = Arc::new(Mutex::new(ResponseMeta::default()));
    let out = PASSTHROUGH.scope(slot.clone(), CALL.scope(call, f)).await;
    let meta = slot.lock().map(|m| m.clone()).unwrap_or_default();
    (out, meta)
}

/// Workers AI through the gateway: the REST backend (body, envelope, retries, error
/// mapping) on `{base}/{account}/{gateway}/workers-ai/{model}`. `api_token` is the
/// Cloudflare API token Workers AI itself needs (the gateway forwards it).
pub fn workers_ai<H: HttpClient + Clone + MaybeSend>(
    config: Arc<AiGatewayConfig>,
    api_token: impl Into<String>,
    client: GatewayClient<H>,
) -> RestBackend<GatewayClient<H>> {
    let mut rest = RestConfig::new(config.account_id.clone(), api_token);
    rest.api_base = config.gateway_root();
    RestBackend::new(rest, client)
}

/// Any provider through the gateway's OpenAI-compatible endpoint; requests name their
/// model `{provider}/{model}`. `provider_key` is sent as `Authorization` (BYOK); leave
/// it out when the key is stored in the gateway.
pub fn compat<H: HttpClient + Clone + MaybeSend>(
    config: &AiGatewayConfig,
    provider_key: Option<String>,
    client: GatewayClient<H>,
) -> OpenAiBackend<GatewayClient<H>> {
    let mut cfg = OpenAiConfig::new(config.compat_base());
    cfg.api_key = provider_key;
    OpenAiBackend::new(cfg, client)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
    use super::*;
    use cng_core::backend::{Backend, InferenceRequest, Input, Output};
    use cng_core::catalog::Task;
    use cng_core::routing::UrlPolicy;
    use serde_json::json;

    /// Records every request; answers with a canned status, headers and body.
    #[derive(Clone, Default)]
    struct Recorder {
        seen: Arc<Mutex<Vec<http::Request<Bytes>>>>,
        status: u16,
        headers: Vec<(&'static str, &'static str)>,
        body: &'static str,
    }

    impl HttpClient for Recorder {
        async fn send(
            &self,
            req: http::Request<Bytes>,
        ) -> Result<http::Response<ByteStream>, Error> {
            self.seen.lock().unwrap().push(req);
            let mut b = http::Response::builder().status(self.status);
            for (k, v) in &self.headers {
                b = b.header(*k, *v);
            }
            let body: ByteStream = Box::pin(futures_util::stream::once(async {
                Ok(Bytes::from_static(self.body.as_bytes()))
            }));
            // `self.body` is 'static, so the stream does not borrow self.
            let _ = &body;
            Ok(b.body(body).unwrap())
        }

        async fn sleep(&self, _: Duration) {}
    }

    fn config() -> AiGatewayConfig {
        let base = UpstreamUrl::parse(
            "ai_gateway.base_url",
            "http://127.0.0.1:9/v1",
            UrlPolicy {
                allow_loopback_http: true,
            },
        )
        .unwrap();
        let mut c = AiGatewayConfig::new(base, "acct123", "my-gw").unwrap();
        c.gateway_token = Some("gw-token-secret".into());
        c.options = GatewayOptions {
            cache_ttl: Some(3600),
            skip_cache: true,
            cache_key: Some("team-a".into()),
            request_timeout: Some(Duration::from_millis(5000)),
            max_attempts: Some(3),
            retry_delay: Some(Duration::from_millis(200)),
            backoff: Some(Backoff::Exponential),
            collect_log: Some(true),
            metadata: BTreeMap::from([("env".to_string(), "test".to_string())]),
        };
        c
    }

    fn chat(model: &str) -> InferenceRequest {
        InferenceRequest {
            model: model.into(),
            task: Task::TextGeneration,
            input: Input::Json(json!({"messages": [{"role": "user", "content": "hi"}]})),
            stream: false,
        }
    }

    #[tokio::test]
    async fn workers_ai_goes_to_the_gateway_route_with_every_header() {
        let rec = Recorder {
            status: 200,
            headers: vec![
                ("content-type", "application/json"),
                ("cf-aig-cache-status", "HIT"),
                ("cf-aig-log-id", "log-01"),
            ],
            body: r#"{"success":true,"result":{"response":"hello"},"errors":[],"messages":[]}"#,
            ..Default::default()
        };
        let cfg = Arc::new(config());
        let client = GatewayClient::new(cfg.clone(), rec.clone())
            .unwrap()
            .for_call(&CallMeta {
                key_name: Some("ci-key".into()),
                request_id: Some("req_42".into()),
            })
            .unwrap();
        let backend = workers_ai(cfg, "cf-api-token", client.clone());
        let out = backend
            .run(chat("@cf/meta/llama-3.1-8b-instruct"))
            .await
            .unwrap();
        assert!(matches!(out, Output::Json(v) if v["response"] == "hello"));

        let seen = rec.seen.lock().unwrap();
        let req = &seen[0];
        assert_eq!(
            req.uri().to_string(),
            "http://127.0.0.1:9/v1/acct123/my-gw/workers-ai/@cf/meta/llama-3.1-8b-instruct"
        );
        let h = |n: &str| req.headers().get(n).unwrap().to_str().unwrap().to_string();
        assert_eq!(h("authorization"), "Bearer cf-api-token");
        assert_eq!(h("cf-aig-authorization"), "Bearer gw-token-secret");
        assert_eq!(h("cf-aig-cache-ttl"), "3600");
        assert_eq!(h("cf-aig-skip-cache"), "true");
        assert_eq!(h("cf-aig-cache-key"), "team-a");
        assert_eq!(h("cf-aig-request-timeout"), "5000");
        assert_eq!(h("cf-aig-max-attempts"), "3");
        assert_eq!(h("cf-aig-retry-delay"), "200");
        assert_eq!(h("cf-aig-backoff"), "exponential");
        assert_eq!(h("cf-aig-collect-log"), "true");
        assert_eq!(h("cf-aig-event-id"), "req_42");
        let meta: Value = serde_json::from_str(&h("cf-aig-metadata")).unwrap();
        assert_eq!(
            meta,
            json!({"env": "test", "key": "ci-key", "request_id": "req_42"})
        );
        drop(seen);

        let passed = client.response_meta().0;
        assert_eq!(
            passed,
            vec![
                (
                    HeaderName::from_static("cf-aig-cache-status"),
                    HeaderValue::from_static("HIT")
                ),
                (
                    HeaderName::from_static("cf-aig-log-id"),
                    HeaderValue::from_static("log-01")
                ),
            ]
        );
    }

    #[tokio::test]
    async fn compat_sends_provider_slash_model_with_the_byok_key() {
        let rec = Recorder {
            status: 200,
            headers: vec![("content-type", "application/json")],
            body: r#"{"id":"x","object":"chat.completion","choices":[]}"#,
            ..Default::default()
        };
        let cfg = Arc::new(config());
        let client = GatewayClient::new(cfg.clone(), rec.clone()).unwrap();
        let backend = compat(&cfg, Some("sk-provider".into()), client);
        backend
            .run(chat("google-ai-studio/gemini-2.0-flash"))
            .await
            .unwrap();
        let seen = rec.seen.lock().unwrap();
        let req = &seen[0];
        assert_eq!(
            req.uri().to_string(),
            "http://127.0.0.1:9/v1/acct123/my-gw/compat/chat/completions"
        );
        assert_eq!(req.headers()["authorization"], "Bearer sk-provider");
        let body: Value = serde_json::from_slice(req.body()).unwrap();
        assert_eq!(body["model"], "google-ai-studio/gemini-2.0-flash");
        // A shared client sends no per-call metadata and no event id.
        assert!(req.headers().get("cf-aig-event-id").is_none());
        assert_eq!(req.headers()["cf-aig-metadata"], r#"{"env":"test"}"#);
    }

    #[tokio::test]
    async fn gateway_errors_never_echo_the_tokens() {
        let rec = Recorder {
            status: 401,
            headers: vec![("content-type", "application/json")],
            body: r#"{"success":false,"errors":[{"code":2009,"message":"Unauthorized gw-token-secret cf-api-token"}]}"#,
            ..Default::default()
        };
        let cfg = Arc::new(config());
        let client = GatewayClient::new(cfg.clone(), rec).unwrap();
        let err = workers_ai(cfg, "cf-api-token", client)
            .run(chat("@cf/meta/llama-3.1-8b-instruct"))
            .await
            .unwrap_err();
        assert!(!err.message().contains("cf-api-token"), "{}", err.message());
        assert!(
            !err.message().contains("gw-token-secret"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn ids_that_could_change_the_path_are_refused_and_debug_redacts() {
        let base = UpstreamUrl::parse("b", DEFAULT_GATEWAY_BASE, UrlPolicy::default()).unwrap();
        for bad in ["", "a/b", "..", "a?b"] {
            assert!(
                AiGatewayConfig::new(base.clone(), bad, "gw").is_err(),
                "{bad}"
            );
            assert!(
                AiGatewayConfig::new(base.clone(), "acct", bad).is_err(),
                "{bad}"
            );
        }
        let c = config();
        assert!(!format!("{c:?}").contains("gw-token-secret"));
        assert_eq!(
            c.provider_base("anthropic"),
            "http://127.0.0.1:9/v1/acct123/my-gw/anthropic"
        );
    }
}
