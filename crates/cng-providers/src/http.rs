//! The HTTP client the backends are written against, so the same backend code runs
//! natively (over reqwest, see `native`) and in a Worker (over `worker::Fetch`).
//!
//! Contract for implementations:
//! - [`HttpClient::send`] resolves when the response head has arrived; the body is a
//!   [`ByteStream`] read as the bytes come.
//! - A failure before any response (connection refused, DNS, TLS, a reset) is an
//!   [`ErrorKind::Upstream`] (502) error; the backends retry those for non-streaming
//!   requests. A response that does not start in time is an
//!   [`ErrorKind::UpstreamTimeout`] (504) error, which is not retried (the upstream may
//!   still be working on the first attempt).
//! - Error messages never contain request headers (where the credentials are).

use std::future::Future;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cng_core::backend::{ByteStream, MaybeSend};
use cng_core::{Error, ErrorKind};
use futures_util::StreamExt;

/// `Sync` on native targets, nothing on wasm32 (the counterpart of
/// [`MaybeSend`]: a backend's future borrows its client across awaits, so on native
/// targets the client must be `Sync` for that future to be `Send`).
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSync: Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Sync + ?Sized> MaybeSync for T {}

/// `Sync` on native targets, nothing on wasm32.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSync {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSync for T {}

/// A minimal HTTP client: one request in, a streaming response out.
pub trait HttpClient: MaybeSync {
    /// Sends a request; resolves when the response head arrives (first byte).
    fn send(
        &self,
        req: http::Request<Bytes>,
    ) -> impl Future<Output = Result<http::Response<ByteStream>, Error>> + MaybeSend;

    /// Sleeps (for retry backoff).
    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + MaybeSend;
}

impl<H: HttpClient + ?Sized> HttpClient for &H {
    fn send(
        &self,
        req: http::Request<Bytes>,
    ) -> impl Future<Output = Result<http::Response<ByteStream>, Error>> + MaybeSend {
        (**self).send(req)
    }

    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + MaybeSend {
        (**self).sleep(d)
    }
}

impl<H: HttpClient + MaybeSend + ?Sized> HttpClient for std::sync::Arc<H> {
    fn send(
        &self,
        req: http::Request<Bytes>,
    ) -> impl Future<Output = Result<http::Response<ByteStream>, Error>> + MaybeSend {
        (**self).send(req)
    }

    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + MaybeSend {
        (**self).sleep(d)
    }
}

/// Reads a whole body into memory, failing with a 502 `upstream response over N bytes`
/// as soon as more than `max_bytes` arrived (the rest is never read). Errors of the
/// stream itself (an idle timeout, a reset) are returned as they are.
pub async fn collect_body(mut body: ByteStream, max_bytes: usize) -> Result<Bytes, Error> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if buf.len().saturating_add(chunk.len()) > max_bytes {
            return Err(Error::new(
                ErrorKind::Upstream,
                format!("upstream response over {max_bytes} bytes"),
            )
            .with_code("upstream_response_too_large"));
        }
        if buf.is_empty() {
            // The common single-chunk case: no copy.
            buf = BytesMut::from(chunk);
        } else {
            buf.extend_from_slice(&chunk);
        }
    }
    Ok(buf.freeze())
}

/// The media type of a response without its parameters, lowercased
/// (`Text/Event-Stream; charset=utf-8` → `text/event-stream`); `None` when absent.
pub fn media_type(headers: &http::HeaderMap) -> Option<String> {
    let v = headers.get(http::header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = v.split(';').next().unwrap_or_default().trim();
    (!essence.is_empty()).then(|| essence.to_ascii_lowercase())
}

/// True for `application/json` and any `+json` type.
pub fn is_json(media_type: &str) -> bool {
    media_type == "application/json" || media_type.ends_with("+json")
}

/// `Retry-After` in whole seconds (the delta-seconds form; HTTP dates are ignored).
pub fn retry_after_seconds(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Returns `err` with every occurrence of `secret` in its message replaced, a last
/// guard against an upstream that echoes the gateway's credential back.
pub(crate) fn redact(err: Error, secret: &str) -> Error {
    if secret.len() < 4 || !err.message().contains(secret) {
        return err;
    }
    let mut out = Error::new(err.kind(), err.message().replace(secret, "[redacted]"));
    if let Some(p) = err.param() {
        out = out.with_param(p);
    }
    if let Some(c) = err.code() {
        out = out.with_code(c);
    }
    if let Some(r) = err.retry_after() {
        out = out.with_retry_after(r);
    }
    out
}

/// A duration for a message: `120s`, `0.25s`.
#[cfg_attr(not(feature = "native"), allow(dead_code))]
pub(crate) fn fmt_secs(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        let s = format!("{:.3}", d.as_secs_f64());
        format!("{}s", s.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_durations() {
        assert_eq!(fmt_secs(Duration::from_secs(120)), "120s");
        assert_eq!(fmt_secs(Duration::from_millis(250)), "0.25s");
        assert_eq!(fmt_secs(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn redacts_secrets() {
        let e = Error::new(ErrorKind::InvalidRequest, "bad key sk-secret-123 here")
            .with_code("c")
            .with_retry_after(3);
        let r = redact(e, "sk-secret-123");
        assert_eq!(r.message(), "bad key [redacted] here");
        assert_eq!(r.code(), Some("c"));
        assert_eq!(r.retry_after(), Some(3));
        assert_eq!(r.kind(), ErrorKind::InvalidRequest);
    }

    #[test]
    fn media_types() {
        let mut h = http::HeaderMap::new();
        assert_eq!(media_type(&h), None);
        h.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("Text/Event-Stream; charset=utf-8"),
        );
        assert_eq!(media_type(&h).as_deref(), Some("text/event-stream"));
        assert!(is_json("application/json"));
        assert!(is_json("application/problem+json"));
        assert!(!is_json("image/png"));
    }
}
