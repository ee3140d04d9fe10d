//! The backend used when no upstream is configured: every inference is a 503 that
//! tells the operator what to set.

use cng_core::backend::{Backend, InferenceRequest, MaybeSend, Output};
use cng_core::{Error, ErrorKind};

/// The message of [`Unconfigured`]'s error.
pub const UNCONFIGURED_MESSAGE: &str = "No upstream is configured. Set CLOUDFLARE_ACCOUNT_ID and \
     CLOUDFLARE_API_TOKEN (Workers AI REST API), or start cng with --upstream URL (and \
     CNG_UPSTREAM_KEY) for an OpenAI-compatible upstream.";

/// Answers every inference with 503 `upstream_not_configured`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unconfigured;

impl Unconfigured {
    /// The error every call answers.
    pub fn error() -> Error {
        Error::new(ErrorKind::Unavailable, UNCONFIGURED_MESSAGE)
            .with_code("upstream_not_configured")
    }
}

impl Backend for Unconfigured {
    fn run(
        &self,
        _request: InferenceRequest,
    ) -> impl Future<Output = Result<Output, Error>> + MaybeSend {
        std::future::ready(Err(Self::error()))
    }
}
