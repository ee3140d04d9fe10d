//! Fallback chains: an alias may name an ordered list of targets; when one fails in a
//! way another target could fix, the next is tried.
//!
//! The rule ([`should_fall_back`]): a 429 (rate limit or spent quota), a 5xx, or an
//! upstream timeout — and only before the first byte reached the client. A backend
//! returns its error before it hands over a stream, so "an `Err` from `run`" is exactly
//! "before the first byte"; once a stream started, a failure ends that stream and is
//! never replayed elsewhere (the client would see two answers spliced together).
//! A 4xx other than 429 is the request's fault and would fail everywhere: it is
//! answered as it is.

use crate::error::{Error, ErrorKind};

use super::naming::ModelRef;

/// One place a model request can be served: a configured provider and its model id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The configured provider name (`workers-ai` for Workers AI).
    pub provider: String,
    pub model: String,
}

impl Target {
    /// `provider/model`, as the `x-cng-target` response header and usage records show
    /// it.
    pub fn label(&self) -> String {
        format!("{}/{}", self.provider, self.model)
    }
}

/// An ordered, non-empty list of targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetChain(Vec<Target>);

impl TargetChain {
    /// Builds a chain from config entries (`provider/model` or `model#provider`);
    /// `field` names the config member in errors (`aliases.fast.targets[1]`).
    pub fn parse(
        field: &str,
        entries: &[String],
        is_provider: impl Fn(&str) -> bool,
    ) -> Result<Self, Error> {
        if entries.is_empty() {
            return Err(Error::invalid_param(
                field,
                format!("`{field}` must list at least one target"),
            ));
        }
        let mut targets = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let at = format!("{field}[{i}]");
            let r = ModelRef::parse(entry, &is_provider)
                .map_err(|e| Error::invalid_param(&at, format!("`{at}`: {}", e.message())))?;
            let Some(provider) = r.provider else {
                return Err(Error::invalid_param(
                    &at,
                    format!(
                        "`{at}` (`{entry}`) names no configured provider; write `provider/model`"
                    ),
                ));
            };
            targets.push(Target {
                provider,
                model: r.model,
            });
        }
        Ok(Self(targets))
    }

    pub fn targets(&self) -> &[Target] {
        &self.0
    }
}

/// True when `err` (from a target, before any byte was sent on) should move the request
/// on to the next target.
pub fn should_fall_back(err: &Error) -> bool {
    matches!(
        err.kind(),
        ErrorKind::RateLimit
            | ErrorKind::QuotaExceeded
            | ErrorKind::Upstream
            | ErrorKind::Unavailable
            | ErrorKind::UpstreamTimeout
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    fn configured(p: &str) -> bool {
        matches!(p, "openai" | "anthropic")
    }

    #[test]
    fn parses_both_spellings_in_order() {
        let chain = TargetChain::parse(
            "aliases.fast.targets",
            &[
                "openai/gpt-4o-mini".into(),
                "claude-haiku-4-5#anthropic".into(),
                "workers-ai/@cf/meta/llama-3.1-8b-instruct".into(),
            ],
            configured,
        )
        .unwrap();
        let labels: Vec<_> = chain.targets().iter().map(Target::label).collect();
        assert_eq!(
            labels,
            [
                "openai/gpt-4o-mini",
                "anthropic/claude-haiku-4-5",
                "workers-ai/@cf/meta/llama-3.1-8b-instruct"
            ]
        );
    }

    #[test]
    fn errors_name_the_entry() {
        let e =
            TargetChain::parse("aliases.fast.targets", &["gpt-4o".into()], configured).unwrap_err();
        assert_eq!(e.param(), Some("aliases.fast.targets[0]"));
        let e = TargetChain::parse("t", &[], configured).unwrap_err();
        assert_eq!(e.param(), Some("t"));
    }

    #[test]
    fn falls_back_on_429_5xx_and_timeouts_only() {
        for k in [
            ErrorKind::RateLimit,
            ErrorKind::QuotaExceeded,
            ErrorKind::Upstream,
            ErrorKind::Unavailable,
            ErrorKind::UpstreamTimeout,
        ] {
            assert!(should_fall_back(&Error::new(k, "x")), "{k:?}");
        }
        for k in [
            ErrorKind::InvalidRequest,
            ErrorKind::Authentication,
            ErrorKind::Permission,
            ErrorKind::NotFound,
            ErrorKind::PayloadTooLarge,
            ErrorKind::Internal,
        ] {
            assert!(!should_fall_back(&Error::new(k, "x")), "{k:?}");
        }
    }
}
