//! Workers AI over Cloudflare's REST API:
//! `POST {api_base}/accounts/{account_id}/ai/run/{model}` with a bearer API token.
//!
//! JSON answers come in the API v4 envelope (`{result, success, errors, messages}`),
//! unwrapped by [`cng_core::workers_ai::envelope::parse`], which also maps Workers AI's
//! error codes. Binary answers (PNG, MP3) come raw with their content type; streams as
//! `text/event-stream`, passed through as they arrive.

use std::time::Duration;

use bytes::Bytes;
use cng_core::backend::{Backend, InferenceRequest, Input, Output};
use cng_core::workers_ai::envelope;
use cng_core::{Error, ErrorKind};

use crate::http::{HttpClient, collect_body, is_json, media_type, redact, retry_after_seconds};
use crate::retry::{self, Prepared, RetryPolicy};

/// Cloudflare's API base.
pub const DEFAULT_API_BASE: &str = "https://api.cloudflare.com/client/v4";
/// Extra attempts after the first one, for non-streaming requests.
pub const DEFAULT_RETRIES: u32 = 2;
/// The first backoff step (doubled on each retry, with full jitter).
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(250);
/// The largest response body read into memory (JSON or binary; streams are not read).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Error bodies are read up to this size (or `max_response_bytes` if smaller).
pub(crate) const MAX_ERROR_BODY_BYTES: usize = 1024 * 1024;

/// How to reach Workers AI over REST. `Debug` redacts the token.
#[derive(Clone)]
pub struct RestConfig {
    /// Default [`DEFAULT_API_BASE`]; no trailing slash needed.
    pub api_base: String,
    pub account_id: String,
    /// A Cloudflare API token with the Workers AI permission.
    pub api_token: String,
    /// Extra attempts for non-streaming requests (default 2).
    pub retries: u32,
    /// Default 250 ms.
    pub backoff_base: Duration,
    /// Default 64 MiB.
    pub max_response_bytes: usize,
}

impl RestConfig {
    /// The defaults for everything but the account and its token.
    pub fn new(account_id: impl Into<String>, api_token: impl Into<String>) -> Self {
        Self {
            api_base: DEFAULT_API_BASE.to_string(),
            account_id: account_id.into(),
            api_token: api_token.into(),
            retries: DEFAULT_RETRIES,
            backoff_base: DEFAULT_BACKOFF_BASE,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

impl std::fmt::Debug for RestConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestConfig")
            .field("api_base", &self.api_base)
            .field("account_id", &self.account_id)
            .field("api_token", &"[redacted]")
            .field("retries", &self.retries)
            .field("backoff_base", &self.backoff_base)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
}

/// Workers AI over the REST API, through any [`HttpClient`].
#[derive(Debug, Clone)]
pub struct RestBackend<H> {
    config: RestConfig,
    client: H,
}

impl<H: HttpClient> RestBackend<H> {
    pub fn new(config: RestConfig, client: H) -> Self {
        Self { config, client }
    }

    pub fn config(&self) -> &RestConfig {
        &self.config
    }

    pub fn client(&self) -> &H {
        &self.client
    }

    fn prepare(&self, request: &InferenceRequest) -> Result<Prepared, Error> {
        check_model_id(&request.model)?;
        let url = format!(
            "{}/accounts/{}/ai/run/{}",
            self.config.api_base.trim_end_matches('/'),
            self.config.account_id,
            request.model
        );
        let uri = http::Uri::try_from(url).map_err(|_| {
            misconfigured("the configured Workers AI API base or account id is not a valid URL")
        })?;
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            bearer(&self.config.api_token).ok_or_else(|| {
                misconfigured("the configured Cloudflare API token is not a valid header value")
            })?,
        );
        let (body, content_type) = match &request.input {
            Input::Json(v) => (
                Bytes::from(serde_json::to_vec(v).map_err(|_| {
                    Error::internal("the Workers AI input could not be serialised")
                })?),
                http::HeaderValue::from_static("application/json"),
            ),
            Input::Bytes { body, content_type } => (
                body.clone(),
                http::HeaderValue::from_str(content_type).map_err(|_| {
                    Error::invalid_request("the input's content type is not a valid header value")
                })?,
            ),
        };
        headers.insert(http::header::CONTENT_TYPE, content_type);
        Ok(Prepared { uri, headers, body })
    }

    async fn run_inner(&self, request: InferenceRequest) -> Result<Output, Error> {
        let prepared = self.prepare(&request)?;
        let policy = RetryPolicy {
            retries: self.config.retries,
            backoff_base: self.config.backoff_base,
        };
        let resp = retry::send(&self.client, &prepared, policy, !request.stream).await?;
        let (parts, body) = resp.into_parts();
        let status = parts.status.as_u16();
        let max = self.config.max_response_bytes;

        if !parts.status.is_success() {
            // An unreadable error body still maps by status.
            let bytes = collect_body(body, max.min(MAX_ERROR_BODY_BYTES))
                .await
                .unwrap_or_default();
            let err = match envelope::parse(status, &bytes) {
                Err(e) => e,
                Ok(_) => Error::from_workers_ai(None, "", status),
            };
            return Err(with_retry_after(err, status, &parts.headers));
        }

        let media = media_type(&parts.headers);
        match media.as_deref() {
            // Streams are passed on untouched, never buffered (also when the request
            // did not ask for one: an event stream is not something to read whole).
            Some("text/event-stream") => Ok(Output::Stream(body)),
            Some(m) if is_json(m) => {
                let bytes = collect_body(body, max).await?;
                Ok(Output::Json(envelope::parse(status, &bytes)?))
            }
            Some(_) => {
                let content_type = parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("application/octet-stream")
                    .to_string();
                let bytes = collect_body(body, max).await?;
                Ok(Output::Bytes {
                    body: bytes,
                    content_type,
                })
            }
            // No content type: an envelope if it reads as one, else raw bytes.
            None => {
                let bytes = collect_body(body, max).await?;
                if serde_json::from_slice::<serde_json::Value>(&bytes).is_ok() {
                    Ok(Output::Json(envelope::parse(status, &bytes)?))
                } else {
                    Ok(Output::Bytes {
                        body: bytes,
                        content_type: "application/octet-stream".to_string(),
                    })
                }
            }
        }
    }
}

impl<H: HttpClient> Backend for RestBackend<H> {
    async fn run(&self, request: InferenceRequest) -> Result<Output, Error> {
        self.run_inner(request)
            .await
            .map_err(|e| redact(e, &self.config.api_token))
    }
}

/// Sets `retry_after` from the `Retry-After` header on a 429.
pub(crate) fn with_retry_after(err: Error, status: u16, headers: &http::HeaderMap) -> Error {
    match retry_after_seconds(headers) {
        Some(s) if status == 429 => err.with_retry_after(s),
        _ => err,
    }
}

/// `Bearer {token}`, marked sensitive (kept out of HTTP/2 header compression tables
/// and of `Debug`).
pub(crate) fn bearer(token: &str) -> Option<http::HeaderValue> {
    let mut v = http::HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
    v.set_sensitive(true);
    Some(v)
}

pub(crate) fn misconfigured(message: &str) -> Error {
    Error::new(ErrorKind::Unavailable, message).with_code("upstream_misconfigured")
}

/// Model ids go into the URL path verbatim (`@cf/meta/llama-3.1-8b-instruct`); refuse
/// anything that could change the path's meaning (`..`, `?`, `#`, `%`, spaces).
fn check_model_id(model: &str) -> Result<(), Error> {
    let chars_ok = model
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '@' | '/' | '.' | '_' | '-' | ':' | '+'));
    let segments_ok = model
        .split('/')
        .all(|s| !s.is_empty() && s != "." && s != "..");
    if model.is_empty() || !chars_ok || !segments_ok {
        return Err(Error::invalid_param(
            "model",
            "The model id contains characters Workers AI model ids never have.",
        )
        .with_code("invalid_model"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids() {
        assert!(check_model_id("@cf/meta/llama-3.1-8b-instruct").is_ok());
        assert!(check_model_id("@hf/thebloke/deepseek-coder-6.7b-instruct-awq").is_ok());
        assert!(check_model_id("@cf/../../user/tokens").is_err());
        assert!(check_model_id("@cf/x?y=1").is_err());
        assert!(check_model_id("@cf//x").is_err());
        assert!(check_model_id("").is_err());
        assert!(check_model_id("@cf/a b").is_err());
    }

    #[test]
    fn debug_redacts_the_token() {
        let c = RestConfig::new("acc", "very-secret-token");
        let d = format!("{c:?}");
        assert!(!d.contains("very-secret-token"));
        assert!(d.contains("[redacted]") && d.contains("acc"));
    }
}
