//! cng's errors in Anthropic's shape: `{"type":"error","error":{"type","message"},
//! "request_id"}`, with the HTTP status cng gives the error.
//!
//! Anthropic's SDKs pick the exception class by status and read `error.type` and
//! `error.message`; the types are Anthropic's documented set.

use serde::Serialize;

use crate::error::{Error, ErrorKind};

/// Anthropic's `error.type` for a cng error.
pub fn error_type(e: &Error) -> &'static str {
    match e.kind() {
        ErrorKind::InvalidRequest
        | ErrorKind::MethodNotAllowed
        | ErrorKind::UnsupportedMediaType
        | ErrorKind::Conflict => "invalid_request_error",
        ErrorKind::PayloadTooLarge => "request_too_large",
        ErrorKind::Authentication => "authentication_error",
        ErrorKind::Permission => "permission_error",
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::RateLimit | ErrorKind::QuotaExceeded => "rate_limit_error",
        ErrorKind::RequestTimeout | ErrorKind::UpstreamTimeout => "timeout_error",
        ErrorKind::Unavailable => "overloaded_error",
        ErrorKind::Upstream | ErrorKind::Internal | ErrorKind::NotImplemented => "api_error",
    }
}

/// The Anthropic error body.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub error: ErrorObject<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<&'a str>,
}

/// `error` of an [`ErrorBody`].
#[derive(Debug, Serialize)]
pub struct ErrorObject<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub message: &'a str,
}

/// `e` as Anthropic error JSON. The OpenAI `param` has no place in Anthropic's body;
/// it is named in the message instead when the message does not already say it.
pub fn to_json(e: &Error, request_id: Option<&str>) -> Vec<u8> {
    let message = match e.param() {
        Some(p) if !e.message().contains(p) => format!("{p}: {}", e.message()),
        _ => e.message().to_string(),
    };
    let body = ErrorBody {
        kind: "error",
        error: ErrorObject {
            kind: error_type(e),
            message: &message,
        },
        request_id,
    };
    serde_json::to_vec(&body).unwrap_or_else(|_| br#"{"type":"error","error":{}}"#.to_vec())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn every_kind_has_an_anthropic_type_and_param_is_in_the_message() {
        let e = Error::invalid_param("max_tokens", "must be at least 1");
        let v: serde_json::Value = serde_json::from_slice(&to_json(&e, Some("req_1"))).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "error", "error": {"type": "invalid_request_error",
                "message": "max_tokens: must be at least 1"}, "request_id": "req_1"})
        );
        assert_eq!(
            error_type(&Error::new(ErrorKind::Unavailable, "x")),
            "overloaded_error"
        );
        assert_eq!(
            error_type(&Error::from_workers_ai(Some(3040), "busy", 429)),
            "rate_limit_error"
        );
    }
}
