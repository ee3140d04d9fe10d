//! # cng-providers
//!
//! The [`Backend`](cng_core::backend::Backend)s of cng: how an
//! [`InferenceRequest`](cng_core::backend::InferenceRequest) actually reaches a model.
//!
//! - [`RestBackend`]: Workers AI over Cloudflare's REST API
//!   (`POST {api_base}/accounts/{account_id}/ai/run/{model}`, bearer API token). JSON
//!   answers are unwrapped from the API v4 envelope and Workers AI error codes mapped by
//!   [`cng_core::workers_ai::envelope::parse`]; binary answers (PNG, MP3) come back as
//!   [`Output::Bytes`](cng_core::backend::Output::Bytes); SSE streams are passed through
//!   unbuffered.
//! - [`OpenAiBackend`]: any OpenAI-compatible upstream (vLLM, Ollama, OpenAI,
//!   Cloudflare's `/ai/v1`): `POST {base_url}/chat/completions`, the input plus `model`,
//!   answers returned as they are, OpenAI error bodies mapped by status.
//! - [`Unconfigured`]: a 503 that tells the operator what to configure.
//!
//! The HTTP backends are generic over a small [`HttpClient`] trait (send a request,
//! get a streaming response; sleep), so the same code runs natively over reqwest
//! ([`ReqwestClient`], feature `native`) and in a Worker over `worker::Fetch`. Both
//! share one retry policy: non-streaming requests only, on 429, 5xx and connection
//! failures, at most `retries` extra attempts, exponential backoff with full jitter or
//! the upstream's `Retry-After` (capped at 10 s). Streams are never retried.
//!
//! No error a backend returns contains a credential: tokens travel only in headers,
//! transport errors are described from their root cause (never from a `Display` that
//! names the request), and messages are scrubbed of the configured secret as a last
//! guard.
//!
//! In a Worker (feature `worker`, wasm32), [`binding`] runs Workers AI through the `AI`
//! binding and [`binding::Fallback`] retries platform failures through the REST API
//! over [`WorkerFetch`].
//!
//! Backends are combined with enums, not `dyn Backend` (the trait returns
//! `impl Future` and is not object-safe): see [`AnyBackend`].

pub mod ai_gateway;
pub mod analytics;
pub mod anthropic;
pub mod anthropic_stream;
pub mod binding;
pub mod catalog;
pub mod chain;
pub mod crypto;
pub mod http;
#[cfg(feature = "native")]
pub mod native;
pub mod openai;
pub mod rest;
mod retry;
pub mod router;
pub mod unconfigured;
pub mod worker_fetch;

pub use analytics::{AnalyticsConfig, GraphqlAnalytics};
pub use catalog::CatalogSearch;
pub use cng_core;
pub use http::{HttpClient, MaybeSync, collect_body};
#[cfg(feature = "native")]
pub use native::{ReqwestClient, Timeouts};
pub use openai::{OpenAiBackend, OpenAiConfig};
pub use rest::{RestBackend, RestConfig};
pub use retry::MAX_DELAY as MAX_RETRY_DELAY;
pub use router::ProviderRouter;
pub use unconfigured::Unconfigured;
pub use worker_fetch::{FetchTimeouts, WorkerFetch};

#[cfg(feature = "native")]
pub use any::AnyBackend;

#[cfg(feature = "native")]
mod any {
    use cng_core::Error;
    use cng_core::backend::{Backend, InferenceRequest, Output};

    use crate::{OpenAiBackend, ReqwestClient, RestBackend, Unconfigured};

    /// The backend the native server runs: one of the configured kinds, chosen at
    /// start-up.
    #[derive(Debug, Clone)]
    pub enum AnyBackend {
        Rest(RestBackend<ReqwestClient>),
        /// Workers AI through a Cloudflare AI Gateway (`crate::ai_gateway`).
        AiGateway(RestBackend<crate::ai_gateway::GatewayClient<ReqwestClient>>),
        OpenAi(OpenAiBackend<ReqwestClient>),
        Unconfigured(Unconfigured),
    }

    impl Backend for AnyBackend {
        async fn run(&self, request: InferenceRequest) -> Result<Output, Error> {
            match self {
                AnyBackend::Rest(b) => b.run(request).await,
                AnyBackend::AiGateway(b) => b.run(request).await,
                AnyBackend::OpenAi(b) => b.run(request).await,
                AnyBackend::Unconfigured(b) => b.run(request).await,
            }
        }
    }

    impl From<RestBackend<ReqwestClient>> for AnyBackend {
        fn from(b: RestBackend<ReqwestClient>) -> Self {
            Self::Rest(b)
        }
    }

    impl From<OpenAiBackend<ReqwestClient>> for AnyBackend {
        fn from(b: OpenAiBackend<ReqwestClient>) -> Self {
            Self::OpenAi(b)
        }
    }

    impl From<Unconfigured> for AnyBackend {
        fn from(b: Unconfigured) -> Self {
            Self::Unconfigured(b)
        }
    }
}
