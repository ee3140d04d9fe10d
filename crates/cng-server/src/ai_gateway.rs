//! Workers AI through a Cloudflare AI Gateway, configured from the environment.
//!
//! - `CNG_AI_GATEWAY`: `{account_id}/{gateway_id}` (or just `{gateway_id}` with
//!   `CLOUDFLARE_ACCOUNT_ID`); setting it turns the mode on.
//! - `CNG_AI_GATEWAY_BASE`: the API root (default `https://gateway.ai.cloudflare.com/v1`),
//!   checked by the SSRF guard: https only, `http://` to loopback only with
//!   `CNG_ALLOW_LOOPBACK_HTTP=1`.
//! - `CNG_AI_GATEWAY_TOKEN`: for authenticated gateways (`cf-aig-authorization`).
//! - `CNG_AI_GATEWAY_CACHE_TTL` (seconds), `CNG_AI_GATEWAY_SKIP_CACHE=1`,
//!   `CNG_AI_GATEWAY_REQUEST_TIMEOUT_MS`, `CNG_AI_GATEWAY_MAX_ATTEMPTS`.
//!
//! `CLOUDFLARE_API_TOKEN` is still the token Workers AI itself is called with.

use std::sync::Arc;
use std::time::Duration;

use cng_core::routing::{UpstreamUrl, UrlPolicy};
use cng_providers::ai_gateway::{
    self, AiGatewayConfig, DEFAULT_GATEWAY_BASE, GatewayClient, GatewayOptions,
};
use cng_providers::{AnyBackend, ReqwestClient};

/// The AI Gateway settings (see the module docs). `Debug` redacts the token.
#[derive(Clone, Default)]
pub struct AiGatewaySettings {
    /// `{account_id}/{gateway_id}` or `{gateway_id}`.
    pub gateway: String,
    pub base_url: Option<String>,
    pub token: Option<String>,
    pub options: GatewayOptions,
    pub allow_loopback_http: bool,
}

impl std::fmt::Debug for AiGatewaySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AiGatewaySettings")
            .field("gateway", &self.gateway)
            .field("base_url", &self.base_url)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("options", &self.options)
            .finish()
    }
}

impl AiGatewaySettings {
    /// Reads the environment; `Ok(None)` when `CNG_AI_GATEWAY` is unset.
    pub fn from_env() -> Result<Option<Self>, String> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let Some(gateway) = var("CNG_AI_GATEWAY") else {
            return Ok(None);
        };
        let num = |k: &str| -> Result<Option<u64>, String> {
            var(k)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map_err(|_| format!("{k} must be a whole number"))
                })
                .transpose()
        };
        let options = GatewayOptions {
            cache_ttl: num("CNG_AI_GATEWAY_CACHE_TTL")?,
            skip_cache: var("CNG_AI_GATEWAY_SKIP_CACHE").is_some_and(|v| v == "1" || v == "true"),
            request_timeout: num("CNG_AI_GATEWAY_REQUEST_TIMEOUT_MS")?.map(Duration::from_millis),
            max_attempts: num("CNG_AI_GATEWAY_MAX_ATTEMPTS")?
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            ..GatewayOptions::default()
        };
        Ok(Some(Self {
            gateway,
            base_url: var("CNG_AI_GATEWAY_BASE"),
            token: var("CNG_AI_GATEWAY_TOKEN"),
            options,
            allow_loopback_http: var("CNG_ALLOW_LOOPBACK_HTTP").is_some_and(|v| v == "1"),
        }))
    }

    /// The backend, with `account_id` from `CLOUDFLARE_ACCOUNT_ID` when the gateway
    /// setting names only the gateway. Returns it and its label for logs.
    pub fn backend(
        &self,
        account_id: Option<&str>,
        api_token: &str,
        client: ReqwestClient,
    ) -> Result<(AnyBackend, String), String> {
        let (account, gateway) = match self.gateway.split_once('/') {
            Some((a, g)) => (a.to_string(), g.to_string()),
            None => (
                account_id
                    .ok_or("CNG_AI_GATEWAY names no account: write {account_id}/{gateway_id} or set CLOUDFLARE_ACCOUNT_ID")?
                    .to_string(),
                self.gateway.clone(),
            ),
        };
        let policy = UrlPolicy {
            allow_loopback_http: self.allow_loopback_http,
        };
        let base = UpstreamUrl::parse(
            "CNG_AI_GATEWAY_BASE",
            self.base_url.as_deref().unwrap_or(DEFAULT_GATEWAY_BASE),
            policy,
        )
        .map_err(|e| e.message().to_string())?;
        let mut config =
            AiGatewayConfig::new(base, account, gateway).map_err(|e| e.message().to_string())?;
        config.gateway_token = self.token.clone();
        config.options = self.options.clone();
        let label = format!("ai-gateway {}", config.gateway_root());
        let config = Arc::new(config);
        let client =
            GatewayClient::new(config.clone(), client).map_err(|e| e.message().to_string())?;
        Ok((
            AnyBackend::AiGateway(ai_gateway::workers_ai(config, api_token, client)),
            label,
        ))
    }
}

/// True when the config in force routes to a provider through an AI Gateway's compat
/// endpoint (`kind: ai-gateway-compat`), whose calls carry the same metadata.
async fn has_compat_provider(gateway: &crate::serve::NativeGateway) -> bool {
    gateway.live_config().await.is_ok_and(|live| {
        live.doc
            .providers
            .values()
            .any(|p| p.kind == cng_core::routing::ProviderKind::AiGatewayCompat.as_str())
    })
}

/// Who is asking, for `cf-aig-metadata` and `cf-aig-event-id` — only when the upstream
/// is an AI Gateway or a configured provider is reached through one (elsewhere nothing
/// reads it, and the key lookup would be wasted).
/// The request id is the one cng answers with: the client's `x-request-id` when valid,
/// else a fresh one set on the request so the gateway core uses the same. The key's
/// *name* (never the key) comes from the same lookup the core does; a request that
/// does not authenticate gets none.
pub async fn call_meta(
    gateway: &crate::serve::NativeGateway,
    req: &mut http::Request<cng_core::Body>,
) -> cng_providers::ai_gateway::CallMeta {
    let mut call = cng_providers::ai_gateway::CallMeta::default();
    if !gateway.config().upstream.starts_with("ai-gateway") && !has_compat_provider(gateway).await {
        return call;
    }
    let valid =
        |v: &str| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic());
    let id = match req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
    {
        Some(v) if valid(v) => v.to_string(),
        _ => {
            let id = format!("req_{}", gateway.services().ids.fresh_id());
            if let Ok(v) = http::HeaderValue::from_str(&id) {
                req.headers_mut().insert("x-request-id", v);
            }
            id
        }
    };
    call.request_id = Some(id);
    let key = cng_core::auth::key_from_headers(req.headers());
    let clock = &*gateway.services().clock;
    let now = clock.unix_seconds();
    let name = match key {
        Some(k) if k.starts_with(cng_core::teams::token::TOKEN_PREFIX) => {
            cng_core::teams::authenticate(gateway.store(), now, k)
                .await
                .ok()
                .flatten()
                .map(|t| t.principal().name)
        }
        _ => cng_core::auth::authenticate(
            gateway.store(),
            clock,
            gateway.config().admin_key_hash.as_ref(),
            key,
        )
        .await
        .ok()
        .map(|p| p.name),
    };
    call.key_name = name;
    call
}
