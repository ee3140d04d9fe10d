//! How the core asks for an inference, and what it gets back.
//!
//! # Why this shape
//! One trait serves two very different hosts. Natively, the `cng` server runs on a
//! multi-threaded tokio runtime: futures and streams must be `Send` to move between
//! worker threads. In a Cloudflare Worker (wasm32), JavaScript promises and
//! `ReadableStream`s are `!Send`, and forcing `Send` there would need `unsafe`
//! wrappers. So the trait uses return-position `impl Future` (no boxing, no
//! `async-trait` allocation per call) bounded by [`MaybeSend`], which is `Send` on
//! native targets and nothing on wasm32; [`ByteStream`] is likewise `Send` only
//! natively. Because such traits are not object-safe, backends are combined by
//! generics or enums (a `Fallback<A, B>` is itself a `Backend`), never `dyn Backend`.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use futures_core::Stream;
use serde_json::Value;

use crate::error::{Error, ErrorKind};
use crate::routing::ProviderRoute;

/// `Send` on native targets, nothing on wasm32 (see the module docs).
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSend: Send {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + ?Sized> MaybeSend for T {}

/// `Send` on native targets, nothing on wasm32 (see the module docs).
#[cfg(target_arch = "wasm32")]
pub trait MaybeSend {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSend for T {}

/// A stream of body bytes, as it arrives from the upstream.
#[cfg(not(target_arch = "wasm32"))]
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, Error>> + Send>>;
/// A stream of body bytes, as it arrives from the upstream.
#[cfg(target_arch = "wasm32")]
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, Error>>>>;

/// The input of a model.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The model's JSON input schema (most models).
    Json(Value),
    /// Raw bytes with their media type (whisper's audio, FLUX.2's multipart form).
    Bytes { body: Bytes, content_type: String },
}

/// One inference to run.
#[derive(Debug, Clone, PartialEq)]
pub struct InferenceRequest {
    /// The Workers AI model id (`@cf/meta/llama-3.1-8b-instruct`).
    pub model: String,
    /// What the model is asked to do: backends that expose one endpoint per task
    /// (OpenAI-compatible upstreams: `/chat/completions`, `/embeddings`) route by it.
    pub task: crate::catalog::Task,
    pub input: Input,
    /// True when the input asks for an SSE stream (`"stream": true`): the backend must
    /// then answer [`Output::Stream`] and pass the bytes through as they arrive.
    pub stream: bool,
}

/// What a backend answers.
pub enum Output {
    /// A JSON result: the `result` member of the REST envelope, or what the binding
    /// resolves to. Never the envelope itself.
    Json(Value),
    /// Binary output (PNG images, MP3 audio) with its media type.
    Bytes { body: Bytes, content_type: String },
    /// An SSE byte stream (`text/event-stream`), unbuffered.
    Stream(ByteStream),
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::Json(v) => f.debug_tuple("Json").field(v).finish(),
            Output::Bytes { body, content_type } => f
                .debug_struct("Bytes")
                .field("len", &body.len())
                .field("content_type", content_type)
                .finish(),
            Output::Stream(_) => f.write_str("Stream(..)"),
        }
    }
}

/// Runs inferences. Implemented in `cng-providers` (REST API, AI binding, AI Gateway,
/// OpenAI-compatible upstreams) and by test fakes.
///
/// Errors are [`Error`]s already mapped for the client (Workers AI codes through
/// [`Error::from_workers_ai`]); a backend never returns an error text that contains a
/// credential.
pub trait Backend {
    /// Runs `request` on the host's Workers AI path (or its single upstream).
    fn run(
        &self,
        request: InferenceRequest,
    ) -> impl Future<Output = Result<Output, Error>> + MaybeSend;

    /// Runs `request` on a provider the config names (`providers` in the config
    /// document): an OpenAI-compatible API, Anthropic, or a provider behind the AI
    /// Gateway's compat endpoint. `request.model` is the provider's own model id and
    /// `request.input` an OpenAI chat body.
    ///
    /// The default answers 503: a host that injects a plain backend (a test fake, an
    /// embedding application) has no way to reach third-party providers, and says so
    /// instead of sending the request to Workers AI. `cng_providers::ProviderRouter`
    /// implements it.
    fn run_on(
        &self,
        provider: &ProviderRoute,
        request: InferenceRequest,
    ) -> impl Future<Output = Result<Output, Error>> + MaybeSend {
        let name = provider.name.clone();
        drop(request);
        async move {
            Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "The provider `{name}` is configured, but this host was built without provider routing; serve it with `cng serve` or the Worker."
                ),
            )
            .with_code("provider_unavailable"))
        }
    }
}

impl<B: Backend + ?Sized> Backend for &B {
    fn run(
        &self,
        request: InferenceRequest,
    ) -> impl Future<Output = Result<Output, Error>> + MaybeSend {
        (**self).run(request)
    }

    fn run_on(
        &self,
        provider: &ProviderRoute,
        request: InferenceRequest,
    ) -> impl Future<Output = Result<Output, Error>> + MaybeSend {
        (**self).run_on(provider, request)
    }
}
