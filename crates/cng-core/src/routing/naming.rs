//! Provider-qualified model names.
//!
//! Three spellings resolve to the same thing:
//! - `openai/gpt-4o-mini` (`provider/model`): the first path segment names a
//!   *configured* provider. Workers AI ids contain slashes too (`@cf/meta/...`), and
//!   OpenAI-compatible upstreams use Hugging Face ids (`meta-llama/Llama-3.1-8B`), so a
//!   first segment that is not a configured provider leaves the name whole.
//! - `gpt-4o-mini#openai` (`model#provider`, as one reference product spells it): the
//!   part after the last `#` must be a configured provider.
//! - `workers-ai/@cf/meta/llama-3.1-8b-instruct`: Workers AI, explicitly.
//!
//! A name that looks like a URL (`https://…`, `//host`) never resolves: no part of a
//! request may steer where cng connects (see [`super::url_guard`]).

use crate::error::Error;

/// The kinds of upstream cng speaks to (closed set: each has its own wire dialect or
/// route through the AI Gateway).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProviderKind {
    /// Workers AI (REST, the binding, or through an AI Gateway).
    WorkersAi,
    /// Any OpenAI-compatible API, called with its own key (OpenAI, Groq, Mistral,
    /// DeepSeek, OpenRouter, …).
    OpenAi,
    /// Anthropic's `/v1/messages`, translated both ways.
    Anthropic,
    /// Any provider the AI Gateway's `/compat/chat/completions` reaches
    /// (`google-ai-studio`, `aws-bedrock`, …), named `{provider}/{model}` there.
    AiGatewayCompat,
}

impl ProviderKind {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WorkersAi => "workers-ai",
            Self::OpenAi => "openai-compatible",
            Self::Anthropic => "anthropic",
            Self::AiGatewayCompat => "ai-gateway-compat",
        }
    }

    /// Parses the config spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "workers-ai" => Self::WorkersAi,
            "openai-compatible" => Self::OpenAi,
            "anthropic" => Self::Anthropic,
            "ai-gateway-compat" => Self::AiGatewayCompat,
            _ => return None,
        })
    }
}

/// The provider name Workers AI always answers to, configured or not.
pub const WORKERS_AI: &str = "workers-ai";

/// A model name split into its provider (when it named one) and the provider's own
/// model id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRef {
    /// The configured provider's name, or `None` for an unqualified name (aliases,
    /// catalog ids, the default upstream's own ids).
    pub provider: Option<String>,
    /// The id the provider knows the model by.
    pub model: String,
}

impl ModelRef {
    /// Splits `name`; `is_provider` says which provider names are configured.
    ///
    /// Errors (400, param `model`) only for names that can never be valid: empty
    /// parts (`openai/`, `#openai`), a `#` naming no configured provider, or anything
    /// shaped like a URL.
    pub fn parse(name: &str, is_provider: impl Fn(&str) -> bool) -> Result<Self, Error> {
        let name = name.trim();
        if looks_like_url(name) {
            return Err(Error::invalid_param(
                "model",
                "a model name may not be a URL; name a model or `provider/model` from GET /v1/models",
            )
            .with_code("model_not_found"));
        }
        if let Some((model, provider)) = name.rsplit_once('#') {
            if model.is_empty() || provider.is_empty() {
                return Err(Error::invalid_param(
                    "model",
                    format!("`{name}` has an empty part; write `model#provider`"),
                ));
            }
            if provider != WORKERS_AI && !is_provider(provider) {
                return Err(Error::invalid_param(
                    "model",
                    format!("`{provider}` in `{name}` is not a configured provider"),
                )
                .with_code("model_not_found"));
            }
            return Ok(Self {
                provider: Some(provider.to_string()),
                model: model.to_string(),
            });
        }
        if let Some((first, rest)) = name.split_once('/')
            && (first == WORKERS_AI || is_provider(first))
        {
            if rest.is_empty() {
                return Err(Error::invalid_param(
                    "model",
                    format!("`{name}` names no model after the provider"),
                ));
            }
            return Ok(Self {
                provider: Some(first.to_string()),
                model: rest.to_string(),
            });
        }
        Ok(Self {
            provider: None,
            model: name.to_string(),
        })
    }
}

/// `scheme://…`, `//host` (scheme-relative) or a backslash trick: a request's model
/// name that a careless router could turn into a fetch.
fn looks_like_url(name: &str) -> bool {
    name.contains("://") || name.starts_with("//") || name.contains('\\')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    fn configured(p: &str) -> bool {
        matches!(p, "openai" | "anthropic" | "groq")
    }

    fn parse(s: &str) -> Result<ModelRef, Error> {
        ModelRef::parse(s, configured)
    }

    #[test]
    fn provider_slash_model() {
        let r = parse("openai/gpt-4o-mini").unwrap();
        assert_eq!(r.provider.as_deref(), Some("openai"));
        assert_eq!(r.model, "gpt-4o-mini");
    }

    #[test]
    fn model_hash_provider() {
        let r = parse("claude-sonnet-4-5#anthropic").unwrap();
        assert_eq!(r.provider.as_deref(), Some("anthropic"));
        assert_eq!(r.model, "claude-sonnet-4-5");
    }

    #[test]
    fn workers_ai_prefix_keeps_the_cf_id_whole() {
        let r = parse("workers-ai/@cf/meta/llama-3.1-8b-instruct").unwrap();
        assert_eq!(r.provider.as_deref(), Some("workers-ai"));
        assert_eq!(r.model, "@cf/meta/llama-3.1-8b-instruct");
    }

    #[test]
    fn unconfigured_prefix_is_part_of_the_model() {
        let r = parse("meta-llama/Llama-3.1-8B-Instruct").unwrap();
        assert_eq!(r.provider, None);
        assert_eq!(r.model, "meta-llama/Llama-3.1-8B-Instruct");
        let r = parse("@cf/meta/llama-3.1-8b-instruct").unwrap();
        assert_eq!(r.provider, None);
    }

    #[test]
    fn hash_must_name_a_configured_provider() {
        let e = parse("gpt-4o#nowhere").unwrap_err();
        assert_eq!(e.status(), http::StatusCode::BAD_REQUEST);
        assert!(e.message().contains("nowhere"));
    }

    #[test]
    fn empty_parts_are_refused() {
        for bad in ["openai/", "#openai", "gpt-4o#"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_never_resolve() {
        for bad in [
            "https://169.254.169.254/latest",
            "http://127.0.0.1:1/x",
            "//evil.example/v1",
            "openai/https://evil.example",
            "x#https://evil",
            "\\\\evil\\share",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(
                e.message().contains("URL") || e.message().contains("configured"),
                "{bad}"
            );
        }
    }

    #[test]
    fn kinds_round_trip() {
        for k in [
            ProviderKind::WorkersAi,
            ProviderKind::OpenAi,
            ProviderKind::Anthropic,
            ProviderKind::AiGatewayCompat,
        ] {
            assert_eq!(ProviderKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(ProviderKind::parse("bogus"), None);
    }
}
