//! The one error type of cng, and its mapping to HTTP and to OpenAI's error body.
//!
//! Every failure a client can see goes through [`Error`]: it knows its HTTP status,
//! its OpenAI `type`, and carries `param` and `code` where they apply, so an SDK can
//! branch on them (`openai.NotFoundError`, `RateLimitError`, ...). Building or rendering
//! an error has no side effect: adapters log once, from the response.
//!
//! Workers AI's internal error codes (the `errors[].code` of the REST envelope, see
//! <https://developers.cloudflare.com/workers-ai/platform/errors/>) are mapped in one
//! table, [`Error::from_workers_ai`].

use http::StatusCode;
use serde::Serialize;

/// The closed set of error categories; each has one HTTP status and one OpenAI `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// 400 `invalid_request_error`: the request can never succeed as sent.
    InvalidRequest,
    /// 401 `authentication_error`: no key, an unknown key, a disabled or expired key.
    Authentication,
    /// 403 `permission_error`: the key is valid but may not do this.
    Permission,
    /// 404 `not_found_error`: unknown model, route or object.
    NotFound,
    /// 405 `invalid_request_error`: the route exists but not for this method.
    MethodNotAllowed,
    /// 408 `timeout_error`: the client (or upstream) took too long to send the request.
    RequestTimeout,
    /// 409 `conflict_error`: a versioned write lost a race.
    Conflict,
    /// 413 `invalid_request_error`: the body is over the limit.
    PayloadTooLarge,
    /// 415 `invalid_request_error`: a body of a media type this route does not read.
    UnsupportedMediaType,
    /// 429 `rate_limit_error`: too many requests; retry later.
    RateLimit,
    /// 429 `insufficient_quota`: a budget or daily allocation is spent.
    QuotaExceeded,
    /// 502 `api_error`: the upstream failed or answered something unusable.
    Upstream,
    /// 503 `api_error`: the gateway is not configured for this, or the upstream is down.
    Unavailable,
    /// 504 `timeout_error`: the upstream did not answer in time.
    UpstreamTimeout,
    /// 500 `api_error`: a bug in cng. Never used for bad input.
    Internal,
    /// 501 `api_error`: a route this build does not serve.
    NotImplemented,
}

impl ErrorKind {
    /// The HTTP status this kind is answered with.
    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::Authentication => StatusCode::UNAUTHORIZED,
            Self::Permission => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimit | Self::QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
            Self::Upstream => StatusCode::BAD_GATEWAY,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::NotImplemented => StatusCode::NOT_IMPLEMENTED,
        }
    }

    /// The OpenAI error `type` string.
    pub fn openai_type(self) -> &'static str {
        match self {
            Self::InvalidRequest
            | Self::MethodNotAllowed
            | Self::PayloadTooLarge
            | Self::UnsupportedMediaType => "invalid_request_error",
            Self::Authentication => "authentication_error",
            Self::Permission => "permission_error",
            Self::NotFound => "not_found_error",
            Self::RequestTimeout | Self::UpstreamTimeout => "timeout_error",
            Self::Conflict => "conflict_error",
            Self::RateLimit => "rate_limit_error",
            Self::QuotaExceeded => "insufficient_quota",
            Self::Upstream | Self::Unavailable | Self::Internal | Self::NotImplemented => {
                "api_error"
            }
        }
    }
}

/// A client-visible failure: kind, a message a user can act on, and the optional
/// `param` (which request field) and `code` (a stable machine-readable reason).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    param: Option<String>,
    code: Option<String>,
    retry_after: Option<u64>,
}

/// OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`.
///
/// `param` and `code` are always present (as `null` when unset), as OpenAI sends them.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub error: ErrorObject<'a>,
}

/// The inner object of [`ErrorBody`].
#[derive(Debug, Serialize)]
pub struct ErrorObject<'a> {
    pub message: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub param: Option<&'a str>,
    pub code: Option<&'a str>,
}

impl Error {
    /// A new error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            param: None,
            code: None,
            retry_after: None,
        }
    }

    /// 400 about the request field `param`.
    pub fn invalid_param(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message).with_param(param)
    }

    /// 400 without a specific field.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    /// 404 `model_not_found` for the model the client named.
    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            ErrorKind::NotFound,
            format!(
                "The model `{model}` does not exist or you do not have access to it. \
                 GET /v1/models lists the models and aliases this gateway serves."
            ),
        )
        .with_param("model")
        .with_code("model_not_found")
    }

    /// 502: the upstream answered something cng cannot translate.
    pub fn upstream(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Upstream, message).with_code("upstream_error")
    }

    /// 500: a bug in cng (never bad input).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Sets the request field this error is about.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// Sets the machine-readable code.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Sets the `Retry-After` hint in seconds (429, 503).
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn param(&self) -> Option<&str> {
        self.param.as_deref()
    }

    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// The HTTP status to answer with.
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// The OpenAI error body.
    pub fn body(&self) -> ErrorBody<'_> {
        ErrorBody {
            error: ErrorObject {
                message: &self.message,
                kind: self.kind.openai_type(),
                param: self.param.as_deref(),
                code: self.code.as_deref(),
            },
        }
    }

    /// The OpenAI error body as JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising a struct of strings cannot fail; the fallback keeps this total.
        serde_json::to_vec(&self.body()).unwrap_or_else(|_| br#"{"error":{}}"#.to_vec())
    }

    /// Maps a Workers AI error (`errors[].code` and message of the REST envelope, plus
    /// the HTTP status it came with) to the error the client sees.
    ///
    /// Codes from Cloudflare's error table; unknown codes fall back on the status:
    /// 4xx are the client's to fix (the upstream message is kept, it names the
    /// problem), 401/403 without a known code mean cng's own Cloudflare credentials
    /// were refused (a 502 for the client, the operator must fix it), 5xx are upstream
    /// failures.
    pub fn from_workers_ai(code: Option<u64>, message: &str, http_status: u16) -> Self {
        let upstream_msg = if message.is_empty() {
            "no message".to_string()
        } else {
            message.to_string()
        };
        let code_str = code.map(|c| format!("workers_ai_{c}"));
        let base = match code {
            Some(5007) | Some(3042) => {
                return Self::new(
                    ErrorKind::NotFound,
                    format!("Workers AI does not know this model: {upstream_msg}"),
                )
                .with_param("model")
                .with_code("model_not_found");
            }
            Some(5004) | Some(3003) | Some(3039) | Some(5005) | Some(5019) => Self::new(
                ErrorKind::InvalidRequest,
                format!("Workers AI rejected the request: {upstream_msg}"),
            ),
            Some(5016) => Self::new(
                ErrorKind::Permission,
                format!(
                    "This model requires accepting its license once for the Cloudflare \
                     account (send the prompt `agree` to it): {upstream_msg}"
                ),
            ),
            Some(5018) | Some(3041) | Some(3023) => Self::new(
                ErrorKind::Permission,
                format!("The Cloudflare account may not use this model: {upstream_msg}"),
            ),
            Some(3006) => Self::new(
                ErrorKind::PayloadTooLarge,
                format!("The request is too large for Workers AI: {upstream_msg}"),
            ),
            Some(3007) | Some(3008) => Self::new(
                ErrorKind::UpstreamTimeout,
                format!("Workers AI timed out: {upstream_msg}"),
            ),
            Some(3036) => Self::new(
                ErrorKind::QuotaExceeded,
                format!("The Cloudflare account's Workers AI allocation is spent: {upstream_msg}"),
            ),
            Some(3040) => Self::new(
                ErrorKind::RateLimit,
                format!("Workers AI is out of capacity, retry shortly: {upstream_msg}"),
            )
            .with_retry_after(1),
            _ => match http_status {
                401 | 403 => Self::new(
                    ErrorKind::Upstream,
                    "The gateway's upstream credentials were refused by Cloudflare; \
                     the operator must check the configured API token.",
                ),
                404 => Self::new(
                    ErrorKind::NotFound,
                    format!("Workers AI: not found: {upstream_msg}"),
                ),
                408 => Self::new(
                    ErrorKind::UpstreamTimeout,
                    format!("Workers AI timed out: {upstream_msg}"),
                ),
                413 => Self::new(
                    ErrorKind::PayloadTooLarge,
                    format!("The request is too large for Workers AI: {upstream_msg}"),
                ),
                429 => Self::new(
                    ErrorKind::RateLimit,
                    format!("Workers AI rate limit: {upstream_msg}"),
                ),
                400..=499 => Self::new(
                    ErrorKind::InvalidRequest,
                    format!("Workers AI rejected the request: {upstream_msg}"),
                ),
                _ => Self::new(
                    ErrorKind::Upstream,
                    format!("Workers AI failed (HTTP {http_status}): {upstream_msg}"),
                ),
            },
        };
        match code_str {
            Some(c) => base.with_code(c),
            None => base.with_code("upstream_error"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_all_four_fields_even_when_unset() {
        let json: serde_json::Value =
            serde_json::from_slice(&Error::invalid_request("bad").to_json()).unwrap_or_default();
        assert_eq!(
            json,
            serde_json::json!({"error": {"message": "bad", "type": "invalid_request_error", "param": null, "code": null}})
        );
    }

    #[test]
    fn workers_ai_codes_map_to_status_and_type() {
        let cases = [
            (Some(5007), 400, 404, "not_found_error"),
            (Some(3040), 429, 429, "rate_limit_error"),
            (Some(3036), 429, 429, "insufficient_quota"),
            (Some(3006), 413, 413, "invalid_request_error"),
            (Some(3007), 408, 504, "timeout_error"),
            (Some(5016), 403, 403, "permission_error"),
            (Some(5004), 400, 400, "invalid_request_error"),
            (None, 401, 502, "api_error"),
            (None, 500, 502, "api_error"),
            (Some(9999), 429, 429, "rate_limit_error"),
        ];
        for (code, http, status, kind) in cases {
            let e = Error::from_workers_ai(code, "m", http);
            assert_eq!(e.status().as_u16(), status, "{code:?}");
            assert_eq!(e.kind().openai_type(), kind, "{code:?}");
        }
    }

    #[test]
    fn refused_credentials_do_not_echo_upstream_text() {
        let e = Error::from_workers_ai(None, "token abc123 invalid", 401);
        assert!(!e.message().contains("abc123"));
    }
}
