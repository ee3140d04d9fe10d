//! Per-key requests-per-minute limits, in memory (one process).
//!
//! A fixed one-minute window per key, keyed by key name; the window and the count are
//! all the state, so memory is one entry per active key. The Worker replaces this with
//! a limiter that holds across isolates.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use crate::backend::MaybeSend;
use crate::error::{Error, ErrorKind};

/// Counts requests per key and says when one is over its limit. The native server
/// uses [`RateLimiter`] (one process); the Worker one that holds across isolates and
/// locations (a Durable Object per key).
pub trait Limiter {
    /// Counts one request of `key` at `now` (Unix seconds) against `limit` per minute.
    fn hit(
        &self,
        key: &str,
        limit: u32,
        now: u64,
    ) -> impl Future<Output = Result<RateStatus, (Error, RateStatus)>> + MaybeSend;
}

/// The 429 for a key over its limit, with `Retry-After` until the window resets.
pub fn rate_limited(limit: u32, now: u64, reset: u64) -> (Error, RateStatus) {
    let wait = reset.saturating_sub(now).max(1);
    let e = Error::new(
        ErrorKind::RateLimit,
        format!(
            "Rate limit of {limit} requests per minute reached for this key; retry in {wait} s."
        ),
    )
    .with_code("rate_limit_exceeded")
    .with_retry_after(wait);
    (
        e,
        RateStatus {
            limit,
            remaining: 0,
            reset,
        },
    )
}

/// The state of a key's window after a request was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateStatus {
    pub limit: u32,
    pub remaining: u32,
    /// Unix seconds when the window resets.
    pub reset: u64,
}

/// The in-memory limiter.
#[derive(Debug, Default)]
pub struct RateLimiter {
    windows: Mutex<HashMap<String, (u64, u32)>>,
}

impl RateLimiter {
    /// Counts one request of `key` at `now`; `Err` (429 with `Retry-After`) when over.
    pub fn check(
        &self,
        key: &str,
        limit: u32,
        now: u64,
    ) -> Result<RateStatus, (Error, RateStatus)> {
        let window = now - now % 60;
        let reset = window + 60;
        let mut map = match self.windows.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        // Forget finished windows now and then, so the map stays small.
        if map.len() > 4096 {
            map.retain(|_, (w, _)| *w == window);
        }
        let entry = map.entry(key.to_string()).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        if entry.1 >= limit {
            let status = RateStatus {
                limit,
                remaining: 0,
                reset,
            };
            let wait = reset.saturating_sub(now).max(1);
            let e = Error::new(
                ErrorKind::RateLimit,
                format!("Rate limit of {limit} requests per minute reached for this key; retry in {wait} s."),
            )
            .with_code("rate_limit_exceeded")
            .with_retry_after(wait);
            return Err((e, status));
        }
        entry.1 += 1;
        Ok(RateStatus {
            limit,
            remaining: limit - entry.1,
            reset,
        })
    }
}

impl Limiter for RateLimiter {
    async fn hit(
        &self,
        key: &str,
        limit: u32,
        now: u64,
    ) -> Result<RateStatus, (Error, RateStatus)> {
        self.check(key, limit, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_window() {
        let l = RateLimiter::default();
        assert_eq!(l.check("k", 2, 120).unwrap().remaining, 1);
        assert_eq!(l.check("k", 2, 130).unwrap().remaining, 0);
        let (e, s) = l.check("k", 2, 150).unwrap_err();
        assert_eq!(
            (e.status().as_u16(), e.retry_after(), s.reset),
            (429, Some(30), 180)
        );
        assert!(l.check("other", 2, 150).is_ok(), "keys are independent");
        assert!(l.check("k", 2, 180).is_ok(), "a new window starts afresh");
    }
}
