//! Usage accounting: what each key asked of each model, how it went, what it cost.
//!
//! The gateway counts every request that reached a model (an [`UsageEvent`]: key,
//! model, status, latency, tokens) and hands it to an injected [`UsageSink`]. Events
//! are added up per hour, key and model ([`Counters`], mergeable, latency as a
//! [`Histogram`](histogram::Histogram)), which is what `GET /api/usage`, `GET /api/status`
//! and the badges read back.
//!
//! # Why `record` is not async
//! A streamed answer is counted when its stream ends — or when the client goes away
//! and the stream is dropped, where nothing can be awaited. So `record` only hands the
//! event over; a sink that writes somewhere slow does so later: [`MemoryUsage`] adds
//! it in memory, [`BufferedStoreUsage`] buffers and [`flushes`](BufferedStoreUsage::flush)
//! to the [`Store`](crate::store::Store) (the native server on a timer; the Worker in
//! `ctx.wait_until`). Reading back (`query`) is async.

pub mod histogram;
pub mod observe;
pub mod prices;
pub mod reconcile;
pub mod report;
pub mod store;
pub mod teams;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use histogram::Histogram;

pub use store::BufferedStoreUsage;
pub use teams::TeamTokens;

/// `Send + Sync` on native targets (a sink is shared by every request), nothing on
/// wasm32, where a Worker's handles are neither.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSendSync: Send + Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + Sync + ?Sized> MaybeSendSync for T {}
/// `Send + Sync` on native targets, nothing on wasm32.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSendSync {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSendSync for T {}

/// A boxed future, `Send` natively (the sink is a trait object, so its futures are
/// boxed: one allocation per query, none per request).
#[cfg(not(target_arch = "wasm32"))]
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// A boxed future (wasm32: not `Send`).
#[cfg(target_arch = "wasm32")]
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// One request that reached a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageEvent {
    /// When it started, Unix seconds.
    pub at: u64,
    /// The key's name (`-` when none).
    pub key: String,
    /// The Workers AI model id it resolved to (aliases are counted as their model).
    pub model: String,
    pub status: u16,
    /// Until the response head (for streams: until the first upstream byte).
    pub latency_ms: u64,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    /// A stream that ended with an error event after a 200.
    pub stream_error: bool,
}

impl UsageEvent {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status) && !self.stream_error
    }

    /// The model failed (not the client): a 5xx or a broken stream.
    pub fn upstream_error(&self) -> bool {
        self.status >= 500 || self.stream_error
    }
}

/// Added-up usage of one hour, key and model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    pub requests: u64,
    /// Requests that did not succeed (any non-2xx, or a broken stream).
    pub errors: u64,
    /// Of those, the model's or upstream's fault (5xx, broken streams).
    pub upstream_errors: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Requests whose answer reported token usage (streams without
    /// `stream_options.include_usage` do not).
    pub with_tokens: u64,
    pub latency: Histogram,
    /// Last success and last upstream failure, Unix seconds.
    pub last_ok: Option<u64>,
    pub last_error: Option<u64>,
}

impl Counters {
    pub fn add(&mut self, e: &UsageEvent) {
        self.requests += 1;
        if !e.ok() {
            self.errors += 1;
        }
        if e.upstream_error() {
            self.upstream_errors += 1;
            self.last_error = self.last_error.max(Some(e.at));
        }
        if e.ok() {
            self.last_ok = self.last_ok.max(Some(e.at));
        }
        if e.input_tokens.is_some() || e.output_tokens.is_some() {
            self.with_tokens += 1;
            self.input_tokens += e.input_tokens.unwrap_or(0);
            self.output_tokens += e.output_tokens.unwrap_or(0);
        }
        self.latency.record(e.latency_ms);
    }

    pub fn merge(&mut self, o: &Counters) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.upstream_errors += o.upstream_errors;
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.with_tokens += o.with_tokens;
        self.latency.merge(&o.latency);
        self.last_ok = self.last_ok.max(o.last_ok);
        self.last_error = self.last_error.max(o.last_error);
    }
}

/// The unit usage is kept in: an hour of one key on one model.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BucketKey {
    /// Start of the hour, Unix seconds.
    pub hour: u64,
    pub key: String,
    pub model: String,
}

impl BucketKey {
    pub fn of(e: &UsageEvent) -> Self {
        Self {
            hour: e.at - e.at % 3600,
            key: e.key.clone(),
            model: e.model.clone(),
        }
    }
}

/// Which usage to read back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageQuery {
    /// Unix seconds, inclusive; hours overlapping `[from, to]` are returned.
    pub from: u64,
    pub to: u64,
    pub key: Option<String>,
    pub model: Option<String>,
}

impl UsageQuery {
    pub fn matches(&self, b: &BucketKey) -> bool {
        b.hour + 3600 > self.from
            && b.hour <= self.to
            && self.key.as_ref().is_none_or(|k| *k == b.key)
            && self.model.as_ref().is_none_or(|m| *m == b.model)
    }
}

/// Where usage goes and comes back from (see the module docs).
pub trait UsageSink: MaybeSendSync {
    /// Counts one event. Must not block: a sink with slow storage buffers.
    fn record(&self, event: UsageEvent);

    /// The hourly buckets matching `q`.
    fn query<'a>(
        &'a self,
        q: &'a UsageQuery,
    ) -> BoxFuture<'a, Result<Vec<(BucketKey, Counters)>, Error>>;
}

/// The sink a gateway holds.
pub type SharedSink = Arc<dyn UsageSink>;

/// Usage in memory (the default; tests and embedders without storage). Keeps
/// [`MemoryUsage::RETENTION_HOURS`] hours.
#[derive(Debug, Default)]
pub struct MemoryUsage {
    buckets: Mutex<BTreeMap<BucketKey, Counters>>,
}

impl MemoryUsage {
    /// 31 days.
    pub const RETENTION_HOURS: u64 = 31 * 24;

    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<BucketKey, Counters>> {
        match self.buckets.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Takes every bucket out (what a buffered sink flushes).
    pub fn drain(&self) -> BTreeMap<BucketKey, Counters> {
        std::mem::take(&mut *self.lock())
    }

    /// Puts buckets back (a flush that failed).
    pub fn restore(&self, buckets: BTreeMap<BucketKey, Counters>) {
        let mut g = self.lock();
        for (k, c) in buckets {
            g.entry(k).or_default().merge(&c);
        }
    }

    pub fn snapshot(&self, q: &UsageQuery) -> Vec<(BucketKey, Counters)> {
        self.lock()
            .iter()
            .filter(|(k, _)| q.matches(k))
            .map(|(k, c)| (k.clone(), c.clone()))
            .collect()
    }
}

impl UsageSink for MemoryUsage {
    fn record(&self, event: UsageEvent) {
        let key = BucketKey::of(&event);
        let mut g = self.lock();
        let oldest = key.hour.saturating_sub(Self::RETENTION_HOURS * 3600);
        if g.keys().next().is_some_and(|k| k.hour < oldest) {
            g.retain(|k, _| k.hour >= oldest);
        }
        g.entry(key).or_default().add(&event);
    }

    fn query<'a>(
        &'a self,
        q: &'a UsageQuery,
    ) -> BoxFuture<'a, Result<Vec<(BucketKey, Counters)>, Error>> {
        let out = self.snapshot(q);
        Box::pin(async move { Ok(out) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    pub(crate) fn event(at: u64, key: &str, model: &str, status: u16, ms: u64) -> UsageEvent {
        UsageEvent {
            at,
            key: key.into(),
            model: model.into(),
            status,
            latency_ms: ms,
            input_tokens: Some(10),
            output_tokens: Some(5),
            stream_error: false,
        }
    }

    #[test]
    fn memory_sink_adds_up_per_hour_key_and_model() {
        let s = MemoryUsage::new();
        s.record(event(7200, "a", "m", 200, 10));
        s.record(event(7300, "a", "m", 502, 20));
        s.record(event(7300, "b", "m", 200, 30));
        s.record(event(10800, "a", "m", 200, 40));
        let q = UsageQuery {
            from: 7200,
            to: 10799,
            key: Some("a".into()),
            model: None,
        };
        let rows = s.query(&q).now_or_never().unwrap().unwrap();
        assert_eq!(rows.len(), 1);
        let c = &rows[0].1;
        assert_eq!((c.requests, c.errors, c.upstream_errors), (2, 1, 1));
        assert_eq!((c.input_tokens, c.output_tokens), (20, 10));
        assert_eq!((c.last_ok, c.last_error), (Some(7200), Some(7300)));
    }

    #[test]
    fn client_errors_are_not_the_models_fault() {
        let e = event(1, "a", "m", 400, 1);
        assert!(!e.ok() && !e.upstream_error());
        let mut s = event(1, "a", "m", 200, 1);
        s.stream_error = true;
        assert!(!s.ok() && s.upstream_error());
    }
}
