//! CORS: browser apps (and the official SDKs running in a browser) may call cng.
//!
//! Every response allows any origin; a preflight gets back exactly the headers it asked
//! for, so the SDKs' `x-stainless-*` headers, `anthropic-version` and anything a client
//! adds pass. Credentials are bearer keys, never cookies, so `*` is safe.

use http::HeaderMap;
use http::header::{self, HeaderValue};

/// The request headers CORS needs (taken before the request is consumed).
#[derive(Debug, Clone, Default)]
pub struct OriginHeaders {
    requested_headers: Option<HeaderValue>,
}

pub fn request_headers(h: &HeaderMap) -> OriginHeaders {
    OriginHeaders {
        requested_headers: h.get(header::ACCESS_CONTROL_REQUEST_HEADERS).cloned(),
    }
}

const DEFAULT_ALLOW_HEADERS: &str = "authorization, content-type, x-api-key, api-key, \
    anthropic-version, anthropic-beta, openai-organization, openai-project, x-request-id, \
    x-stainless-arch, x-stainless-lang, x-stainless-os, x-stainless-package-version, \
    x-stainless-retry-count, x-stainless-runtime, x-stainless-runtime-version, \
    x-stainless-timeout, x-stainless-helper-method, x-stainless-async";

pub fn apply(h: &mut HeaderMap, o: &OriginHeaders) {
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        o.requested_headers
            .clone()
            .unwrap_or_else(|| HeaderValue::from_static(DEFAULT_ALLOW_HEADERS)),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(
            "x-request-id, retry-after, x-ratelimit-limit, x-ratelimit-remaining, x-ratelimit-reset, x-cng-backend",
        ),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
}
