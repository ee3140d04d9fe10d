//! [`ProviderRouter`]: the host's own backend for Workers AI, plus every provider the
//! config document names, reached through [`Backend::run_on`].
//!
//! The gateway (cng-core) decides *where* a request goes (names, aliases, fallback
//! chains, permissions); this type only knows *how* to reach a configured provider:
//!
//! | `kind` | backend | key |
//! |---|---|---|
//! | `openai-compatible` | [`OpenAiBackend`] on `base_url` | `Authorization: Bearer` |
//! | `workers-ai` (another account) | [`OpenAiBackend`] on its OpenAI-compatible `…/ai/v1` `base_url` | `Authorization: Bearer` |
//! | `anthropic` | [`AnthropicBackend`] on `base_url` (`/v1/messages`) | `x-api-key` (required) |
//! | `ai-gateway-compat` | [`OpenAiBackend`] on `{base}/{account}/{gateway}/compat`, through a [`GatewayClient`] | the provider's key as `Authorization` (BYOK), or none when the gateway stores it; the host's gateway token as `cf-aig-authorization` |
//!
//! A backend is built for each request from the config entry in force: building one is
//! a struct copy and, with a key, one ChaCha20-Poly1305 opening (about a microsecond),
//! so an admin's config change applies to the next request with nothing to invalidate.
//! The URL is checked by the SSRF guard again here (it was checked when the config was
//! saved), so a document written around the API cannot point cng anywhere else.
//! Keys are opened with the host's [`MasterKey`] and live only for the request.

use std::sync::Arc;

use cng_core::backend::{Backend, InferenceRequest, Output};
use cng_core::routing::{ProviderKind, ProviderRoute, UpstreamUrl, UrlPolicy};
use cng_core::{Error, ErrorKind};

use crate::ai_gateway::{AiGatewayConfig, GatewayClient};
use crate::anthropic::{AnthropicBackend, AnthropicConfig};
use crate::crypto::{MASTER_KEY_ENV, MasterKey};
use crate::http::{HttpClient, MaybeSync};
use crate::openai::{OpenAiBackend, OpenAiConfig};

/// Cloudflare's AI Gateway API root, for `ai-gateway-compat` providers without a
/// `base_url`.
pub const AI_GATEWAY_BASE: &str = "https://gateway.ai.cloudflare.com/v1";

/// The host's backend plus the configured providers.
#[derive(Debug, Clone)]
pub struct ProviderRouter<B, H> {
    own: B,
    client: H,
    master: Option<MasterKey>,
    policy: UrlPolicy,
    gateway_token: Option<String>,
}

impl<B, H> ProviderRouter<B, H> {
    /// `own` serves Workers AI (or the single upstream); `client` reaches providers.
    pub fn new(own: B, client: H) -> Self {
        Self {
            own,
            client,
            master: None,
            policy: UrlPolicy::default(),
            gateway_token: None,
        }
    }

    /// Opens sealed provider keys (`CNG_MASTER_KEY`).
    pub fn with_master_key(mut self, key: Option<MasterKey>) -> Self {
        self.master = key;
        self
    }

    /// Which provider URLs are accepted (the same policy the config was saved under).
    pub fn with_url_policy(mut self, policy: UrlPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The `cf-aig-authorization` token for `ai-gateway-compat` providers on an
    /// authenticated gateway (`CNG_AI_GATEWAY_TOKEN`).
    pub fn with_gateway_token(mut self, token: Option<String>) -> Self {
        self.gateway_token = token;
        self
    }

    /// The host's own backend.
    pub fn own(&self) -> &B {
        &self.own
    }

    fn key(&self, p: &ProviderRoute) -> Result<Option<String>, Error> {
        match (&p.config.key, &self.master) {
            (None, _) => Ok(None),
            (Some(sealed), Some(master)) => master.open(&p.name, sealed).map(Some),
            (Some(_), None) => Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "The provider `{}` has a sealed key, but {MASTER_KEY_ENV} is not set on this host; set the master key the key was sealed with.",
                    p.name
                ),
            )
            .with_code("master_key_missing")),
        }
    }

    fn base_url(&self, p: &ProviderRoute, default: Option<&str>) -> Result<UpstreamUrl, Error> {
        let field = format!("providers.{}.base_url", p.name);
        let raw =
            p.config.base_url.as_deref().or(default).ok_or_else(|| {
                misconfigured(format!("`{field}` is missing; set it in the config"))
            })?;
        // The guard's message names the field, never a credential (URLs with userinfo
        // are refused before they are stored).
        UpstreamUrl::parse(&field, raw, self.policy).map_err(|e| misconfigured(e.message()))
    }
}

fn misconfigured(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Unavailable, message).with_code("provider_misconfigured")
}

impl<B, H> Backend for ProviderRouter<B, H>
where
    B: Backend + MaybeSync,
    H: HttpClient + Clone + MaybeSync + cng_core::backend::MaybeSend,
{
    async fn run(&self, request: InferenceRequest) -> Result<Output, Error> {
        self.own.run(request).await
    }

    async fn run_on(
        &self,
        provider: &ProviderRoute,
        request: InferenceRequest,
    ) -> Result<Output, Error> {
        let key = self.key(provider)?;
        match provider.kind() {
            Some(ProviderKind::OpenAi | ProviderKind::WorkersAi) => {
                let mut config = OpenAiConfig::new(self.base_url(provider, None)?.to_string());
                config.api_key = key;
                OpenAiBackend::new(config, self.client.clone())
                    .run(request)
                    .await
            }
            Some(ProviderKind::Anthropic) => {
                let key = key.ok_or_else(|| {
                    misconfigured(format!(
                        "The Anthropic provider `{}` has no key; store one (`cng providers seal`, see docs/providers.md).",
                        provider.name
                    ))
                })?;
                let config = AnthropicConfig::new(self.base_url(provider, None)?, key);
                AnthropicBackend::new(config, self.client.clone())
                    .run(request)
                    .await
            }
            Some(ProviderKind::AiGatewayCompat) => {
                let base = self.base_url(provider, Some(AI_GATEWAY_BASE))?;
                let (account, gateway) = provider
                    .config
                    .gateway
                    .as_deref()
                    .and_then(|g| g.split_once('/'))
                    .ok_or_else(|| {
                        misconfigured(format!(
                            "`providers.{}.gateway` must be `{{account_id}}/{{gateway_id}}`",
                            provider.name
                        ))
                    })?;
                let mut config = AiGatewayConfig::new(base, account, gateway)?;
                config.gateway_token = self.gateway_token.clone();
                let client = GatewayClient::new(Arc::new(config.clone()), self.client.clone())?;
                crate::ai_gateway::compat(&config, key, client)
                    .run(request)
                    .await
            }
            None => Err(misconfigured(format!(
                "`providers.{}.kind` is `{}`, which this build does not know",
                provider.name, provider.config.kind
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
    use std::sync::Mutex;

    use bytes::Bytes;
    use cng_core::backend::{ByteStream, Input};
    use cng_core::catalog::Task;
    use cng_core::routing::config::ProviderConfig;
    use serde_json::{Value, json};

    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    /// Records each request; answers `body` with status 200.
    #[derive(Clone, Default)]
    struct Recorder {
        seen: Arc<Mutex<Vec<http::Request<Bytes>>>>,
        body: &'static str,
    }

    impl HttpClient for Recorder {
        async fn send(
            &self,
            req: http::Request<Bytes>,
        ) -> Result<http::Response<ByteStream>, Error> {
            self.seen.lock().unwrap().push(req);
            let body: ByteStream = Box::pin(futures_util::stream::iter([Ok::<_, Error>(
                Bytes::from_static(self.body.as_bytes()),
            )]));
            Ok(http::Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(body)
                .unwrap())
        }

        async fn sleep(&self, _: std::time::Duration) {}
    }

    struct Own;

    impl Backend for Own {
        async fn run(&self, _: InferenceRequest) -> Result<Output, Error> {
            Ok(Output::Json(json!({"own": true})))
        }
    }

    fn route(name: &str, config: Value) -> ProviderRoute {
        ProviderRoute {
            name: name.into(),
            config: serde_json::from_value::<ProviderConfig>(config).unwrap(),
        }
    }

    fn chat() -> InferenceRequest {
        InferenceRequest {
            model: "gpt-4o-mini".into(),
            task: Task::TextGeneration,
            input: Input::Json(json!({"messages": [{"role": "user", "content": "hi"}]})),
            stream: false,
        }
    }

    const COMPLETION: &str = r#"{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}"#;

    fn router(rec: &Recorder) -> ProviderRouter<Own, Recorder> {
        ProviderRouter::new(Own, rec.clone())
            .with_master_key(Some(MasterKey::parse(HEX).unwrap()))
            .with_gateway_token(Some("aig-token".into()))
    }

    fn header(req: &http::Request<Bytes>, name: &str) -> Option<String> {
        req.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }

    #[tokio::test]
    async fn openai_compatible_providers_get_their_opened_key_and_url() {
        let rec = Recorder {
            body: COMPLETION,
            ..Recorder::default()
        };
        let sealed = MasterKey::parse(HEX)
            .unwrap()
            .seal("groq", [3; 12], "gsk-secret")
            .unwrap();
        let p = route(
            "groq",
            json!({"kind": "openai-compatible", "base_url": "https://api.groq.com/openai/v1", "key": sealed}),
        );
        let out = router(&rec).run_on(&p, chat()).await.unwrap();
        assert!(matches!(out, Output::Json(_)));
        let seen = rec.seen.lock().unwrap();
        assert_eq!(
            seen[0].uri().to_string(),
            "https://api.groq.com/openai/v1/chat/completions"
        );
        assert_eq!(
            header(&seen[0], "authorization").as_deref(),
            Some("Bearer gsk-secret")
        );
        let body: Value = serde_json::from_slice(seen[0].body()).unwrap();
        assert_eq!(body["model"], "gpt-4o-mini");
    }

    #[tokio::test]
    async fn the_host_backend_serves_run() {
        let rec = Recorder::default();
        let out = router(&rec).run(chat()).await.unwrap();
        assert!(matches!(out, Output::Json(v) if v["own"] == true));
        assert!(rec.seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn compat_providers_go_through_the_gateway_with_its_token() {
        let rec = Recorder {
            body: COMPLETION,
            ..Recorder::default()
        };
        let p = route(
            "gemini",
            json!({"kind": "ai-gateway-compat", "gateway": "acct/gw"}),
        );
        let mut req = chat();
        req.model = "google-ai-studio/gemini-2.5-flash".into();
        router(&rec).run_on(&p, req).await.unwrap();
        let seen = rec.seen.lock().unwrap();
        assert_eq!(
            seen[0].uri().to_string(),
            "https://gateway.ai.cloudflare.com/v1/acct/gw/compat/chat/completions"
        );
        assert_eq!(
            header(&seen[0], "cf-aig-authorization").as_deref(),
            Some("Bearer aig-token")
        );
        assert_eq!(
            header(&seen[0], "authorization"),
            None,
            "stored key: none sent"
        );
        let body: Value = serde_json::from_slice(seen[0].body()).unwrap();
        assert_eq!(body["model"], "google-ai-studio/gemini-2.5-flash");
    }

    #[tokio::test]
    async fn anthropic_needs_a_key_and_sealed_keys_need_the_master_key() {
        let rec = Recorder::default();
        let p = route(
            "anthropic",
            json!({"kind": "anthropic", "base_url": "https://api.anthropic.com"}),
        );
        let e = router(&rec).run_on(&p, chat()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.message().contains("no key"), "{}", e.message());
        let p = route(
            "openai",
            json!({"kind": "openai-compatible", "base_url": "https://api.openai.com/v1", "key": "cng1:AAAA"}),
        );
        let e = ProviderRouter::new(Own, rec.clone())
            .run_on(&p, chat())
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("master_key_missing"));
        // A key sealed for another provider does not open.
        let sealed = MasterKey::parse(HEX)
            .unwrap()
            .seal("other", [3; 12], "sk-x")
            .unwrap();
        let p = route(
            "openai",
            json!({"kind": "openai-compatible", "base_url": "https://api.openai.com/v1", "key": sealed}),
        );
        let e = router(&rec).run_on(&p, chat()).await.unwrap_err();
        assert!(!e.message().contains("sk-x"));
        assert!(rec.seen.lock().unwrap().is_empty(), "nothing was sent");
    }

    #[tokio::test]
    async fn a_url_the_guard_refuses_is_never_fetched() {
        let rec = Recorder::default();
        for url in ["http://169.254.169.254/latest", "http://127.0.0.1:9/v1"] {
            let p = route(
                "openai",
                json!({"kind": "openai-compatible", "base_url": url}),
            );
            let e = router(&rec).run_on(&p, chat()).await.unwrap_err();
            assert_eq!(e.code(), Some("provider_misconfigured"), "{url}");
        }
        assert!(rec.seen.lock().unwrap().is_empty());
        // Loopback http when the host allows it (tests).
        let rec = Recorder {
            body: COMPLETION,
            ..Recorder::default()
        };
        let p = route(
            "local",
            json!({"kind": "openai-compatible", "base_url": "http://127.0.0.1:9/v1"}),
        );
        router(&rec)
            .with_url_policy(UrlPolicy {
                allow_loopback_http: true,
            })
            .run_on(&p, chat())
            .await
            .unwrap();
        assert_eq!(rec.seen.lock().unwrap().len(), 1);
    }
}
