//! Any OpenAI-compatible upstream (vLLM, Ollama, llama.cpp, OpenAI, Cloudflare's
//! `/ai/v1`): `POST {base_url}/chat/completions` (or the endpoint of the request's
//! task: `/embeddings`, `/images/generations`, `/audio/speech`, ...), the input object
//! plus `model`, or a multipart upload as it is.
//!
//! Answers are OpenAI's own bodies, returned as they are (no envelope); errors are
//! OpenAI's `{"error": {"message", "type", "code"}}` (or the looser shapes some
//! servers send), mapped by HTTP status.

use std::time::Duration;

use bytes::Bytes;
use cng_core::backend::{Backend, InferenceRequest, Input, Output};
use cng_core::catalog::Task;
use cng_core::{Error, ErrorKind};
use serde_json::Value;

use crate::http::{HttpClient, collect_body, media_type, redact};
use crate::rest::{
    DEFAULT_BACKOFF_BASE, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_RETRIES, MAX_ERROR_BODY_BYTES,
    bearer, misconfigured, with_retry_after,
};
use crate::retry::{self, Prepared, RetryPolicy};

/// How to reach an OpenAI-compatible upstream. `Debug` redacts the key.
#[derive(Clone)]
pub struct OpenAiConfig {
    /// The API root, e.g. `http://localhost:8000/v1` or
    /// `https://api.cloudflare.com/client/v4/accounts/{id}/ai/v1`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer {key}` when set.
    pub api_key: Option<String>,
    /// Extra attempts for non-streaming requests (default 2).
    pub retries: u32,
    /// Default 250 ms.
    pub backoff_base: Duration,
    /// Default 64 MiB.
    pub max_response_bytes: usize,
}

impl OpenAiConfig {
    /// Defaults (no key, 2 retries from 250 ms, 64 MiB) for `base_url`.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            api_key: None,
            retries: DEFAULT_RETRIES,
            backoff_base: DEFAULT_BACKOFF_BASE,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    /// Sets the bearer key.
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }
}

impl std::fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("retries", &self.retries)
            .field("backoff_base", &self.backoff_base)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
}

/// An OpenAI-compatible upstream, through any [`HttpClient`].
#[derive(Debug, Clone)]
pub struct OpenAiBackend<H> {
    config: OpenAiConfig,
    client: H,
}

impl<H: HttpClient> OpenAiBackend<H> {
    pub fn new(config: OpenAiConfig, client: H) -> Self {
        Self { config, client }
    }

    pub fn config(&self) -> &OpenAiConfig {
        &self.config
    }

    pub fn client(&self) -> &H {
        &self.client
    }

    fn prepare(&self, request: InferenceRequest) -> Result<Prepared, Error> {
        let path = endpoint(request.task, matches!(request.input, Input::Bytes { .. }));
        let (body, content_type) = match request.input {
            Input::Json(Value::Object(mut body)) => {
                body.insert("model".to_string(), Value::String(request.model));
                if request.stream {
                    body.insert("stream".to_string(), Value::Bool(true));
                }
                let body = serde_json::to_vec(&body)
                    .map_err(|_| Error::internal("the upstream request could not be serialised"))?;
                (
                    Bytes::from(body),
                    http::HeaderValue::from_static("application/json"),
                )
            }
            Input::Json(_) => {
                return Err(Error::internal(
                    "the input for an OpenAI-compatible upstream must be a JSON object",
                ));
            }
            // A multipart upload (audio, images to edit), which names its model itself.
            Input::Bytes { .. } if !takes_uploads(request.task) => {
                return Err(Error::invalid_request(
                    "this upstream only serves JSON endpoints",
                ));
            }
            Input::Bytes { body, content_type } => (
                body,
                http::HeaderValue::from_str(&content_type).map_err(|_| {
                    Error::invalid_request("the input's content type is not a valid header value")
                })?,
            ),
        };

        let url = format!("{}{path}", self.config.base_url.trim_end_matches('/'));
        let uri = http::Uri::try_from(url)
            .map_err(|_| misconfigured("the configured upstream URL is not a valid URL"))?;
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::CONTENT_TYPE, content_type);
        if let Some(key) = &self.config.api_key {
            headers.insert(
                http::header::AUTHORIZATION,
                bearer(key).ok_or_else(|| {
                    misconfigured("the configured upstream key is not a valid header value")
                })?,
            );
        }
        Ok(Prepared { uri, headers, body })
    }

    async fn run_inner(&self, request: InferenceRequest) -> Result<Output, Error> {
        let stream = request.stream;
        let task = request.task;
        let prepared = self.prepare(request)?;
        let policy = RetryPolicy {
            retries: self.config.retries,
            backoff_base: self.config.backoff_base,
        };
        let resp = retry::send(&self.client, &prepared, policy, !stream).await?;
        let (parts, body) = resp.into_parts();
        let status = parts.status.as_u16();

        if !parts.status.is_success() {
            let max = self.config.max_response_bytes.min(MAX_ERROR_BODY_BYTES);
            let bytes = collect_body(body, max).await.unwrap_or_default();
            let err = map_error(status, &bytes);
            return Err(with_retry_after(err, status, &parts.headers));
        }
        let media = media_type(&parts.headers);
        if media.as_deref() == Some("text/event-stream") {
            return Ok(Output::Stream(body));
        }
        // Speech audio and plain-text transcripts come back as they are.
        if let Some(m) = media
            .as_deref()
            .filter(|m| answers_bytes(task) && !crate::http::is_json(m))
        {
            let content_type = parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or(m)
                .to_string();
            let body = collect_body(body, self.config.max_response_bytes).await?;
            return Ok(Output::Bytes { body, content_type });
        }
        // Whatever the content type says (some servers omit it), the body must be JSON.
        let bytes = collect_body(body, self.config.max_response_bytes).await?;
        serde_json::from_slice(&bytes)
            .map(Output::Json)
            .map_err(|_| {
                Error::upstream(format!(
                    "the upstream answered HTTP {status} with a body that is not JSON"
                ))
            })
    }
}

impl<H: HttpClient> Backend for OpenAiBackend<H> {
    async fn run(&self, request: InferenceRequest) -> Result<Output, Error> {
        let result = self.run_inner(request).await;
        match &self.config.api_key {
            Some(key) => result.map_err(|e| redact(e, key)),
            None => result,
        }
    }
}

/// The OpenAI endpoint of a task (`bytes`: the input is a multipart upload).
fn endpoint(task: Task, bytes: bool) -> &'static str {
    match (task, bytes) {
        (Task::TextEmbeddings, _) => "/embeddings",
        (Task::TextToImage, false) => "/images/generations",
        (Task::TextToImage, true) => "/images/edits",
        (Task::TextToSpeech, _) => "/audio/speech",
        (Task::AutomaticSpeechRecognition, _) => "/audio/transcriptions",
        // Speech translated into English (text translation has no OpenAI endpoint).
        (Task::Translation, true) => "/audio/translations",
        (Task::TextClassification, _) => "/moderations",
        _ => "/chat/completions",
    }
}

/// Tasks whose OpenAI endpoint takes a multipart upload.
fn takes_uploads(task: Task) -> bool {
    matches!(
        task,
        Task::TextToImage | Task::AutomaticSpeechRecognition | Task::Translation
    )
}

/// Tasks whose OpenAI endpoint may answer something other than JSON (audio, or a
/// transcript as text, SRT or WebVTT).
fn answers_bytes(task: Task) -> bool {
    matches!(
        task,
        Task::TextToSpeech | Task::AutomaticSpeechRecognition | Task::Translation
    )
}

/// What an error body says: message, OpenAI `type`, `code`, `param`.
#[derive(Default)]
struct UpstreamError {
    message: Option<String>,
    kind: Option<String>,
    code: Option<String>,
    param: Option<String>,
}

/// Reads the error shapes seen in the wild: OpenAI/vLLM `{"error": {...}}`, Ollama
/// `{"error": "..."}`, vLLM's older flat `{"object": "error", "message", "type",
/// "code"}`, FastAPI `{"detail": "..."}`, Cloudflare `{"errors": [{"message"}]}`.
fn parse_error_body(body: &[u8]) -> UpstreamError {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return UpstreamError::default();
    };
    let text = |v: &Value| match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let obj = match v.get("error") {
        Some(Value::String(s)) => {
            return UpstreamError {
                message: Some(s.clone()),
                ..Default::default()
            };
        }
        Some(e @ Value::Object(_)) => e,
        _ => &v,
    };
    let message = obj
        .get("message")
        .and_then(text)
        .or_else(|| v.get("detail").and_then(text))
        .or_else(|| {
            v.get("errors")
                .and_then(|e| e.get(0))
                .and_then(|e| e.get("message"))
                .and_then(text)
        });
    UpstreamError {
        message,
        kind: obj.get("type").and_then(text),
        code: obj.get("code").and_then(text),
        param: obj.get("param").and_then(text),
    }
}

/// Maps a non-2xx answer by status, keeping the upstream's message (and its `code` and
/// `param`) for the client's own mistakes; 401/403 mean the gateway's key was refused,
/// which is the operator's problem, so the upstream text is dropped.
fn map_error(status: u16, body: &[u8]) -> Error {
    let up = parse_error_body(body);
    let message = up
        .message
        .clone()
        .unwrap_or_else(|| format!("the upstream answered HTTP {status}"));
    let client_error = |kind: ErrorKind| {
        let mut e = Error::new(kind, message.clone());
        if let Some(p) = &up.param {
            e = e.with_param(p);
        }
        match &up.code {
            Some(c) => e.with_code(c),
            None => e,
        }
    };
    match status {
        401 | 403 => Error::upstream(
            "the upstream refused the gateway's key; the operator must check the configured \
             upstream key",
        ),
        404 => client_error(ErrorKind::NotFound),
        408 => Error::new(
            ErrorKind::UpstreamTimeout,
            format!("the upstream timed out: {message}"),
        )
        .with_code("upstream_timeout"),
        413 => client_error(ErrorKind::PayloadTooLarge),
        429 => {
            let quota = up.kind.as_deref() == Some("insufficient_quota")
                || up.code.as_deref() == Some("insufficient_quota");
            client_error(if quota {
                ErrorKind::QuotaExceeded
            } else {
                ErrorKind::RateLimit
            })
        }
        400..=499 => client_error(ErrorKind::InvalidRequest),
        500..=599 => Error::upstream(format!("the upstream failed (HTTP {status}): {message}")),
        _ => Error::upstream(format!(
            "the upstream answered HTTP {status}, which the gateway does not follow; check \
             the configured upstream URL"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_shapes() {
        let e = map_error(
            400,
            br#"{"error":{"message":"too long","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
        );
        assert_eq!(e.kind(), ErrorKind::InvalidRequest);
        assert_eq!(e.message(), "too long");
        assert_eq!(e.param(), Some("messages"));
        assert_eq!(e.code(), Some("context_length_exceeded"));

        let e = map_error(404, br#"{"error":"model 'x' not found"}"#);
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.message(), "model 'x' not found");

        let e = map_error(
            400,
            br#"{"object":"error","message":"bad","type":"BadRequestError","code":400}"#,
        );
        assert_eq!(e.message(), "bad");
        assert_eq!(e.code(), Some("400"));

        let e = map_error(422, br#"{"detail":"field required"}"#);
        assert_eq!(e.kind(), ErrorKind::InvalidRequest);
        assert_eq!(e.message(), "field required");

        let e = map_error(
            429,
            br#"{"error":{"message":"quota","type":"insufficient_quota"}}"#,
        );
        assert_eq!(e.kind(), ErrorKind::QuotaExceeded);

        let e = map_error(
            401,
            br#"{"error":{"message":"Incorrect API key provided: sk-abc"}}"#,
        );
        assert_eq!(e.status().as_u16(), 502);
        assert!(!e.message().contains("sk-abc"));

        let e = map_error(503, b"<html>");
        assert_eq!(e.status().as_u16(), 502);
        let e = map_error(301, b"");
        assert_eq!(e.status().as_u16(), 502);
    }

    #[test]
    fn routes_by_task() {
        assert_eq!(endpoint(Task::TextGeneration, false), "/chat/completions");
        assert_eq!(endpoint(Task::TextEmbeddings, false), "/embeddings");
        assert_eq!(endpoint(Task::TextToImage, false), "/images/generations");
        assert_eq!(endpoint(Task::TextToImage, true), "/images/edits");
        assert_eq!(endpoint(Task::TextToSpeech, false), "/audio/speech");
        assert_eq!(
            endpoint(Task::AutomaticSpeechRecognition, true),
            "/audio/transcriptions"
        );
        assert_eq!(endpoint(Task::Translation, true), "/audio/translations");
        assert_eq!(endpoint(Task::TextClassification, false), "/moderations");
        assert!(
            takes_uploads(Task::AutomaticSpeechRecognition) && !takes_uploads(Task::TextGeneration)
        );
        assert!(answers_bytes(Task::TextToSpeech) && !answers_bytes(Task::TextGeneration));
    }

    #[test]
    fn debug_redacts_the_key() {
        let c = OpenAiConfig::new("http://x/v1").with_api_key("sk-very-secret");
        assert!(!format!("{c:?}").contains("sk-very-secret"));
    }
}
