//! The one retry loop shared by every HTTP backend.
//!
//! Policy: only requests marked retryable (non-streaming ones) are retried, at most
//! `retries` extra attempts, on a 429 or 5xx answer and on a failure before any answer
//! ([`ErrorKind::Upstream`] from [`HttpClient::send`]: refused, DNS, TLS, reset).
//! Timeouts (504) and other 4xx are never retried. The delay is `Retry-After` seconds
//! when the answer has one, else exponential backoff from `backoff_base` with full
//! jitter; either is capped at [`MAX_DELAY`].

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cng_core::backend::ByteStream;
use cng_core::{Error, ErrorKind};

use crate::http::{HttpClient, retry_after_seconds};

/// The longest wait between two attempts, whatever `Retry-After` says.
pub const MAX_DELAY: Duration = Duration::from_secs(10);

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    pub retries: u32,
    pub backoff_base: Duration,
}

/// A POST that can be sent again: `http::Request` is not `Clone`.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub uri: http::Uri,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Prepared {
    fn request(&self) -> http::Request<Bytes> {
        let mut req = http::Request::new(self.body.clone());
        *req.method_mut() = http::Method::POST;
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers.clone();
        req
    }
}

/// Sends `req`, retrying per `policy` when `retryable`. Returns the last response
/// (which may still be a 429 or 5xx, for the caller to map) or the last send error.
pub(crate) async fn send<H: HttpClient>(
    client: &H,
    req: &Prepared,
    policy: RetryPolicy,
    retryable: bool,
) -> Result<http::Response<ByteStream>, Error> {
    let mut attempt: u32 = 0;
    loop {
        let can_retry = retryable && attempt < policy.retries;
        let delay = match client.send(req.request()).await {
            Ok(resp) => {
                let status = resp.status();
                let transient =
                    status == http::StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                if !(can_retry && transient) {
                    return Ok(resp);
                }
                let delay = match retry_after_seconds(resp.headers()) {
                    Some(s) => Duration::from_secs(s).min(MAX_DELAY),
                    None => backoff(policy.backoff_base, attempt),
                };
                tracing::debug!(
                    status = status.as_u16(),
                    attempt,
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "upstream answered a transient error; retrying"
                );
                delay
            }
            Err(e) if can_retry && e.kind() == ErrorKind::Upstream => {
                let delay = backoff(policy.backoff_base, attempt);
                tracing::debug!(
                    error = e.message(),
                    attempt,
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "upstream unreachable; retrying"
                );
                delay
            }
            Err(e) => return Err(e),
        };
        client.sleep(delay).await;
        attempt += 1;
    }
}

/// Full jitter: uniform in `[0, min(MAX_DELAY, base * 2^attempt)]`.
pub(crate) fn backoff(base: Duration, attempt: u32) -> Duration {
    let ceiling = base.saturating_mul(1u32 << attempt.min(20)).min(MAX_DELAY);
    jitter(ceiling)
}

fn jitter(max: Duration) -> Duration {
    let max_ns = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    if max_ns == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(random_u64() % max_ns.saturating_add(1))
}

/// Good-enough randomness without a rand crate (and without the clock, which panics
/// on wasm32-unknown-unknown): std's `RandomState` is seeded from the OS natively and
/// changes keys on every `new()`; a global counter makes each draw distinct anyway.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    RandomState::new().hash_one(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_and_grows() {
        let base = Duration::from_millis(250);
        for attempt in 0..6 {
            let ceiling = (base * (1 << attempt)).min(MAX_DELAY);
            for _ in 0..50 {
                assert!(backoff(base, attempt) <= ceiling);
            }
        }
        assert!(backoff(Duration::from_secs(60), 30) <= MAX_DELAY);
        assert_eq!(backoff(Duration::ZERO, 3), Duration::ZERO);
    }

    #[test]
    fn jitter_varies() {
        let draws: std::collections::HashSet<_> =
            (0..20).map(|_| jitter(Duration::from_secs(1))).collect();
        assert!(draws.len() > 10);
    }
}
