//! The Worker's configuration: the native server's variable names, and the binding names
//! of `wrangler.toml`.
//!
//! Read from the Worker's environment (`[vars]` and secrets, which look the same to the
//! code); empty values count as unset, as on the server.

use cng_providers::AnalyticsConfig;
use cng_providers::rest::{DEFAULT_API_BASE, RestConfig};

/// The Cloudflare account whose Workers AI the REST fallback uses.
pub const ACCOUNT_ID: &str = "CLOUDFLARE_ACCOUNT_ID";
/// An API token with the Workers AI permission (a secret): enables the REST fallback.
pub const API_TOKEN: &str = "CLOUDFLARE_API_TOKEN";
/// The REST API base (default Cloudflare's); tests point it at a local fake.
pub const API_BASE: &str = "CNG_CF_API_BASE";
/// An API token with Account Analytics Read (a secret): enables
/// `GET /api/usage/reconcile` (with [`ACCOUNT_ID`]).
pub const ANALYTICS_TOKEN: &str = "CNG_CF_ANALYTICS_TOKEN";
/// The bootstrap admin key (a secret).
pub const ADMIN_KEY: &str = "CNG_ADMIN_KEY";
/// An AI Gateway id: binding calls then go through that gateway (`{gateway: {id}}`).
pub const AI_GATEWAY: &str = "CNG_AI_GATEWAY";
/// The master key that seals and opens provider keys (a secret; see docs/providers.md).
pub const MASTER_KEY: &str = "CNG_MASTER_KEY";
/// `1`/`true`: provider URLs may be plain `http://` to a loopback host (local tests).
pub const ALLOW_LOOPBACK_HTTP: &str = "CNG_ALLOW_LOOPBACK_HTTP";
/// `cf-aig-authorization` for providers of kind `ai-gateway-compat` (a secret).
pub const AI_GATEWAY_TOKEN: &str = "CNG_AI_GATEWAY_TOKEN";
/// `1`/`true`: a log line for every request (default: only for 5xx answers and
/// inferences served by the REST fallback; Workers' own invocation logs list every
/// request, and a `console.log` per request costs CPU).
pub const LOG_REQUESTS: &str = "CNG_LOG_REQUESTS";

/// The Workers AI binding (`[ai] binding = "AI"`).
pub const AI_BINDING: &str = "AI";
/// The KV namespace that holds keys and config.
pub const KV_BINDING: &str = "CNG_KV";
/// The Durable Object namespace through which every store write goes.
pub const STORE_BINDING: &str = "CNG_STORE";
/// The Durable Object namespace of the per-key rate limiters.
pub const LIMITER_BINDING: &str = "CNG_RATE_LIMITER";

/// What the Worker was configured with. `Debug` redacts the secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub account_id: Option<String>,
    pub api_token: Option<String>,
    pub api_base: Option<String>,
    pub admin_key: Option<String>,
    pub ai_gateway: Option<String>,
    pub log_requests: bool,
    pub master_key: Option<String>,
    pub allow_loopback_http: bool,
    pub ai_gateway_token: Option<String>,
    pub analytics_token: Option<String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |v: &Option<String>| v.as_ref().map(|_| "[redacted]");
        f.debug_struct("Settings")
            .field("account_id", &self.account_id)
            .field("api_token", &secret(&self.api_token))
            .field("api_base", &self.api_base)
            .field("admin_key", &secret(&self.admin_key))
            .field("ai_gateway", &self.ai_gateway)
            .field("log_requests", &self.log_requests)
            .field("master_key", &secret(&self.master_key))
            .field("allow_loopback_http", &self.allow_loopback_http)
            .field("ai_gateway_token", &secret(&self.ai_gateway_token))
            .field("analytics_token", &secret(&self.analytics_token))
            .finish()
    }
}

fn truthy(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
}

impl Settings {
    /// Reads every setting through `lookup` (the Worker's `env`).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let var = |k: &str| {
            lookup(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        Self {
            account_id: var(ACCOUNT_ID),
            api_token: var(API_TOKEN),
            api_base: var(API_BASE),
            admin_key: var(ADMIN_KEY),
            ai_gateway: var(AI_GATEWAY),
            log_requests: var(LOG_REQUESTS).is_some_and(|v| truthy(&v)),
            master_key: var(MASTER_KEY),
            allow_loopback_http: var(ALLOW_LOOPBACK_HTTP).is_some_and(|v| truthy(&v)),
            ai_gateway_token: var(AI_GATEWAY_TOKEN),
            analytics_token: var(ANALYTICS_TOKEN),
        }
    }

    /// The REST fallback's configuration, when both the account and the token are set.
    pub fn rest_config(&self) -> Option<RestConfig> {
        let (account, token) = (self.account_id.as_ref()?, self.api_token.as_ref()?);
        let mut config = RestConfig::new(account, token);
        if let Some(base) = &self.api_base {
            config.api_base = base.trim_end_matches('/').to_string();
        }
        Some(config)
    }

    /// The analytics reader's configuration, when both the account and the analytics
    /// token are set (at [`API_BASE`], like the REST fallback).
    pub fn analytics_config(&self) -> Option<AnalyticsConfig> {
        let (account, token) = (self.account_id.as_ref()?, self.analytics_token.as_ref()?);
        let mut config = AnalyticsConfig::new(account, token);
        if let Some(base) = &self.api_base {
            config.api_base = base.trim_end_matches('/').to_string();
        }
        Some(config)
    }

    /// What `/health` says about the upstream: the binding, and the REST fallback's
    /// base URL (without userinfo or query) when it is configured. Never a credential.
    pub fn upstream_label(&self) -> String {
        match self.rest_config() {
            Some(c) => format!(
                "workers-ai-binding, rest fallback {}",
                cng_core::routing::url_guard::redact_url(&c.api_base)
            ),
            None => "workers-ai-binding".to_string(),
        }
    }

    /// Where the REST fallback goes, for logs.
    pub fn api_base(&self) -> &str {
        self.api_base.as_deref().unwrap_or(DEFAULT_API_BASE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Settings {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn reads_the_servers_names_and_ignores_empty_values() {
        let s = settings(&[
            ("CLOUDFLARE_ACCOUNT_ID", " acc "),
            ("CLOUDFLARE_API_TOKEN", "tok"),
            ("CNG_CF_API_BASE", "http://127.0.0.1:9/client/v4/"),
            ("CNG_ADMIN_KEY", ""),
            ("CNG_AI_GATEWAY", "gw1"),
        ]);
        assert_eq!(s.account_id.as_deref(), Some("acc"));
        assert_eq!(s.admin_key, None);
        assert_eq!(s.ai_gateway.as_deref(), Some("gw1"));
        assert!(!s.log_requests);
        assert!(settings(&[("CNG_LOG_REQUESTS", "TRUE")]).log_requests);
        assert!(!settings(&[("CNG_LOG_REQUESTS", "0")]).log_requests);
        assert!(settings(&[("CNG_ALLOW_LOOPBACK_HTTP", "1")]).allow_loopback_http);
        assert!(!s.allow_loopback_http);
        let secret = settings(&[
            ("CNG_MASTER_KEY", "mk-secret"),
            ("CNG_AI_GATEWAY_TOKEN", "gw-secret"),
        ]);
        assert_eq!(secret.master_key.as_deref(), Some("mk-secret"));
        let shown = format!("{secret:?}");
        assert!(
            !shown.contains("mk-secret") && !shown.contains("gw-secret"),
            "{shown}"
        );
        let rest = s.rest_config().unwrap();
        assert_eq!(rest.api_base, "http://127.0.0.1:9/client/v4");
        assert_eq!(
            (rest.account_id.as_str(), rest.api_token.as_str()),
            ("acc", "tok")
        );
    }

    #[test]
    fn analytics_need_the_account_and_their_own_token() {
        assert!(
            settings(&[("CNG_CF_ANALYTICS_TOKEN", "at")])
                .analytics_config()
                .is_none()
        );
        let s = settings(&[
            ("CLOUDFLARE_ACCOUNT_ID", "a"),
            ("CLOUDFLARE_API_TOKEN", "t"),
            ("CNG_CF_ANALYTICS_TOKEN", "analytics-secret"),
            ("CNG_CF_API_BASE", "http://127.0.0.1:9/client/v4/"),
        ]);
        let c = s.analytics_config().unwrap();
        assert_eq!(
            (
                c.account_id.as_str(),
                c.api_token.as_str(),
                c.api_base.as_str()
            ),
            ("a", "analytics-secret", "http://127.0.0.1:9/client/v4")
        );
        assert!(!format!("{s:?}").contains("analytics-secret"));
        assert!(
            settings(&[
                ("CLOUDFLARE_ACCOUNT_ID", "a"),
                ("CLOUDFLARE_API_TOKEN", "t")
            ])
            .analytics_config()
            .is_none(),
            "the inference token is not used for analytics"
        );
    }

    #[test]
    fn the_rest_fallback_needs_account_and_token() {
        assert!(
            settings(&[("CLOUDFLARE_ACCOUNT_ID", "a")])
                .rest_config()
                .is_none()
        );
        assert!(
            settings(&[("CLOUDFLARE_API_TOKEN", "t")])
                .rest_config()
                .is_none()
        );
        let s = settings(&[
            ("CLOUDFLARE_ACCOUNT_ID", "a"),
            ("CLOUDFLARE_API_TOKEN", "t"),
        ]);
        assert_eq!(s.rest_config().unwrap().api_base, DEFAULT_API_BASE);
        assert_eq!(s.api_base(), DEFAULT_API_BASE);
    }

    #[test]
    fn labels_and_debug_never_show_secrets() {
        let s = settings(&[
            ("CLOUDFLARE_ACCOUNT_ID", "a"),
            ("CLOUDFLARE_API_TOKEN", "secret-token"),
            ("CNG_CF_API_BASE", "https://user:pw@example.com/v4?token=x"),
            ("CNG_ADMIN_KEY", "cng-admin-secret"),
        ]);
        assert_eq!(
            s.upstream_label(),
            "workers-ai-binding, rest fallback https://example.com/v4"
        );
        let d = format!("{s:?}");
        assert!(!d.contains("secret-token") && !d.contains("cng-admin-secret"));
        assert_eq!(Settings::default().upstream_label(), "workers-ai-binding");
    }
}
