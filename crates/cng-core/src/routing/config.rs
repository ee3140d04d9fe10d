//! The config document's `providers` and `targets` members, and their validation
//! (errors name the field: `providers.openai.base_url`, `targets.fast[1]`).
//!
//! ```json
//! "providers": {
//!   "openai":    {"kind": "openai-compatible", "base_url": "https://api.openai.com/v1",
//!                 "key": "cng1:…sealed…"},
//!   "anthropic": {"kind": "anthropic", "base_url": "https://api.anthropic.com",
//!                 "key": "cng1:…"},
//!   "gemini":    {"kind": "ai-gateway-compat", "gateway": "acct/my-gw"}
//! },
//! "targets": {"fast": ["openai/gpt-4o-mini", "workers-ai/@cf/meta/llama-3.1-8b-instruct"]}
//! ```
//!
//! Keys are only ever stored sealed (`cng1:`, see `cng_providers::crypto`): a plaintext
//! key in the document is refused, so no API that returns the document can leak one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::fallback::TargetChain;
use super::naming::{ProviderKind, WORKERS_AI};
use super::url_guard::{UpstreamUrl, UrlPolicy};
use crate::error::Error;

/// The prefix of a sealed provider key.
pub const SEALED_PREFIX: &str = "cng1:";

/// One configured provider.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProviderConfig {
    /// `workers-ai`, `openai-compatible`, `anthropic` or `ai-gateway-compat`.
    pub kind: String,
    /// The API root (https; required except for `ai-gateway-compat`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The provider key, sealed (`cng1:…`). Absent: the gateway's stored key (BYOK off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// For `ai-gateway-compat`: `{account_id}/{gateway_id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
}

/// A configured provider as a backend needs it to serve one request: its name (the
/// associated data of a sealed key, and what logs show) and its config entry. Built by
/// the gateway from the admin-written config only, never from request data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRoute {
    pub name: String,
    pub config: ProviderConfig,
}

impl ProviderRoute {
    /// The provider's kind (validated when the config was saved).
    pub fn kind(&self) -> Option<ProviderKind> {
        ProviderKind::parse(&self.config.kind)
    }
}

/// Checks `providers` and `targets` (see the module docs).
pub fn validate(
    providers: &BTreeMap<String, ProviderConfig>,
    targets: &BTreeMap<String, Vec<String>>,
    policy: UrlPolicy,
) -> Result<(), Error> {
    for (name, p) in providers {
        let at = format!("providers.{name}");
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name != WORKERS_AI
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            return Err(Error::invalid_param(
                &at,
                format!(
                    "`{at}`: provider names are 1-64 of a-z, 0-9 and `-`, and not `workers-ai`"
                ),
            ));
        }
        let Some(kind) = ProviderKind::parse(&p.kind) else {
            return Err(Error::invalid_param(
                format!("{at}.kind"),
                format!(
                    "`{at}.kind` is `{}`; use workers-ai, openai-compatible, anthropic or ai-gateway-compat",
                    p.kind
                ),
            ));
        };
        match (&p.base_url, kind) {
            (Some(url), _) => {
                UpstreamUrl::parse(&format!("{at}.base_url"), url, policy)?;
            }
            (None, ProviderKind::AiGatewayCompat) => {}
            (None, _) => {
                return Err(Error::invalid_param(
                    format!("{at}.base_url"),
                    format!("`{at}.base_url` is required for a {} provider", p.kind),
                ));
            }
        }
        if kind == ProviderKind::AiGatewayCompat {
            let ok = p.gateway.as_deref().is_some_and(|g| {
                g.split_once('/').is_some_and(|(a, b)| {
                    [a, b].iter().all(|s| {
                        !s.is_empty()
                            && s.bytes()
                                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
                    })
                })
            });
            if !ok {
                return Err(Error::invalid_param(
                    format!("{at}.gateway"),
                    format!("`{at}.gateway` must be `{{account_id}}/{{gateway_id}}`"),
                ));
            }
        }
        if let Some(key) = &p.key
            && !key.starts_with(SEALED_PREFIX)
        {
            return Err(Error::invalid_param(
                format!("{at}.key"),
                format!(
                    "`{at}.key` must be sealed (`{SEALED_PREFIX}…`); seal it under CNG_MASTER_KEY (see docs/providers.md), never store it in clear"
                ),
            ));
        }
    }
    for (alias, entries) in targets {
        TargetChain::parse(&format!("targets.{alias}"), entries, |p| {
            providers.contains_key(p)
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;
    use serde_json::json;

    fn check(providers: serde_json::Value, targets: serde_json::Value) -> Result<(), Error> {
        let p: BTreeMap<String, ProviderConfig> = serde_json::from_value(providers).unwrap();
        let t: BTreeMap<String, Vec<String>> = serde_json::from_value(targets).unwrap();
        validate(&p, &t, UrlPolicy::default())
    }

    fn param(providers: serde_json::Value, targets: serde_json::Value) -> String {
        check(providers, targets)
            .unwrap_err()
            .param()
            .unwrap_or("-")
            .to_string()
    }

    #[test]
    fn a_full_example_passes() {
        check(
            json!({
                "openai": {"kind": "openai-compatible", "base_url": "https://api.openai.com/v1", "key": "cng1:AAAA"},
                "anthropic": {"kind": "anthropic", "base_url": "https://api.anthropic.com"},
                "gemini": {"kind": "ai-gateway-compat", "gateway": "acct/my-gw"}
            }),
            json!({"fast": ["openai/gpt-4o-mini", "claude-haiku-4-5#anthropic", "workers-ai/@cf/meta/llama-3.1-8b-instruct"]}),
        )
        .unwrap();
    }

    #[test]
    fn errors_name_the_field() {
        let https = |extra: serde_json::Value| {
            let mut p = json!({"kind": "openai-compatible", "base_url": "https://x.example/v1"});
            for (k, v) in extra.as_object().unwrap() {
                p[k] = v.clone();
            }
            json!({ "openai": p })
        };
        assert_eq!(
            param(https(json!({"kind": "magic"})), json!({})),
            "providers.openai.kind"
        );
        assert_eq!(
            param(
                https(json!({"base_url": "http://169.254.169.254/"})),
                json!({})
            ),
            "providers.openai.base_url"
        );
        assert_eq!(
            param(
                https(json!({"base_url": "http://127.0.0.1:8080/v1"})),
                json!({})
            ),
            "providers.openai.base_url"
        );
        assert_eq!(
            param(https(json!({"key": "sk-plain"})), json!({})),
            "providers.openai.key"
        );
        assert_eq!(
            param(
                json!({"g": {"kind": "ai-gateway-compat", "gateway": "nope"}}),
                json!({})
            ),
            "providers.g.gateway"
        );
        assert_eq!(
            param(
                json!({"workers-ai": {"kind": "workers-ai", "base_url": "https://x"}}),
                json!({})
            ),
            "providers.workers-ai"
        );
        assert_eq!(
            param(
                https(json!({})),
                json!({"fast": ["openai/gpt-4o", "nowhere/x"]})
            ),
            "targets.fast[1]"
        );
        assert_eq!(param(https(json!({})), json!({"fast": []})), "targets.fast");
    }
}
