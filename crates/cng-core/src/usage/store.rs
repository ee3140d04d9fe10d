//! Usage kept in the gateway's [`Store`]: buffered in memory, flushed in batches.
//!
//! One record per hour, key and model, in one namespace per day (`usage-<day>`, days
//! since the epoch), so reading a range lists only the days it covers. A flush adds
//! the buffered counters to the stored ones with compare-and-swap, retried on a
//! conflict, so several processes (or `cng` and a Worker on one store) never lose
//! each other's counts. A query flushes first: what it returns includes every event
//! recorded before it.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::{BoxFuture, BucketKey, Counters, MemoryUsage, UsageEvent, UsageQuery, UsageSink};
use crate::error::{Error, ErrorKind};
use crate::store::{Expect, Store};

/// Attempts per record when another writer keeps winning.
const CAS_ATTEMPTS: usize = 8;

/// The store namespace of a day.
pub fn namespace(day: u64) -> String {
    format!("usage-{day}")
}

fn record_key(b: &BucketKey) -> String {
    // The key name and model id may hold any printable character but `\n`.
    format!("{:010}\n{}\n{}", b.hour, b.key, b.model)
}

fn parse_key(k: &str) -> Option<BucketKey> {
    let mut parts = k.splitn(3, '\n');
    let hour = parts.next()?.parse().ok()?;
    Some(BucketKey {
        hour,
        key: parts.next()?.to_string(),
        model: parts.next()?.to_string(),
    })
}

/// Usage in a [`Store`] (see the module docs).
#[derive(Debug)]
pub struct BufferedStoreUsage<S> {
    store: S,
    pending: MemoryUsage,
}

impl<S: Store> BufferedStoreUsage<S> {
    pub fn new(store: S) -> Self {
        Self {
            store,
            pending: MemoryUsage::new(),
        }
    }

    /// Writes what is buffered. On failure the counts are kept for the next flush.
    pub async fn flush(&self) -> Result<(), Error> {
        let batch = self.pending.drain();
        let mut failed = BTreeMap::new();
        let mut first_error = None;
        for (key, counters) in batch {
            if let Err(e) = self.add(&key, &counters).await {
                first_error.get_or_insert(e);
                failed.insert(key, counters);
            }
        }
        if !failed.is_empty() {
            self.pending.restore(failed);
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn add(&self, key: &BucketKey, delta: &Counters) -> Result<(), Error> {
        let ns = namespace(key.hour / 86_400);
        let rk = record_key(key);
        for _ in 0..CAS_ATTEMPTS {
            let current = self.store.get(&ns, &rk).await?;
            let (mut total, expect) = match &current {
                Some(v) => (
                    serde_json::from_slice::<Counters>(&v.value).unwrap_or_default(),
                    Expect::Version(v.version),
                ),
                None => (Counters::default(), Expect::Absent),
            };
            total.merge(delta);
            let body = serde_json::to_vec(&total).map_err(|e| Error::internal(e.to_string()))?;
            match self.store.put(&ns, &rk, Bytes::from(body), expect).await {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Conflict => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(
            ErrorKind::Unavailable,
            "usage counters are contended; they will be written on the next flush",
        ))
    }

    /// The stored buckets matching `q` (after a flush).
    pub async fn load(&self, q: &UsageQuery) -> Result<Vec<(BucketKey, Counters)>, Error> {
        // Keep counting even when the store is briefly unavailable.
        let _ = self.flush().await;
        let mut out = Vec::new();
        let (first, last) = (q.from / 86_400, q.to / 86_400);
        // A bounded range: a query never lists more than 400 days.
        for day in first.max(last.saturating_sub(400))..=last {
            for (k, v) in self.store.list(&namespace(day)).await? {
                let Some(b) = parse_key(&k) else { continue };
                if q.matches(&b) {
                    let c = serde_json::from_slice::<Counters>(&v.value).unwrap_or_default();
                    out.push((b, c));
                }
            }
        }
        Ok(out)
    }
}

impl<S: Store + super::MaybeSendSync> UsageSink for BufferedStoreUsage<S> {
    fn record(&self, event: UsageEvent) {
        self.pending.record(event);
    }

    fn query<'a>(
        &'a self,
        q: &'a UsageQuery,
    ) -> BoxFuture<'a, Result<Vec<(BucketKey, Counters)>, Error>> {
        Box::pin(self.load(q))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use crate::usage::tests::event;
    use futures_util::FutureExt;
    use std::sync::Arc;

    #[test]
    fn flushes_add_up_across_writers_on_one_store() {
        let store = Arc::new(MemoryStore::new());
        let a = BufferedStoreUsage::new(ArcStore(store.clone()));
        let b = BufferedStoreUsage::new(ArcStore(store.clone()));
        a.record(event(90_000, "k", "m", 200, 10));
        b.record(event(90_100, "k", "m", 500, 10));
        a.flush().now_or_never().unwrap().unwrap();
        b.flush().now_or_never().unwrap().unwrap();
        a.record(event(90_200, "k", "m", 200, 10)); // still buffered: a query flushes it
        let q = UsageQuery {
            from: 0,
            to: 200_000,
            key: None,
            model: None,
        };
        let rows = b.query(&q).now_or_never().unwrap().unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].1.requests, 2, "b sees what a flushed");
        let rows = a.query(&q).now_or_never().unwrap().unwrap();
        assert_eq!(rows[0].1.requests, 3);
        assert_eq!(rows[0].1.upstream_errors, 1);
        assert_eq!(rows[0].0.hour, 90_000, "90_000 s is a whole hour (25 h)");
    }

    #[test]
    fn keys_round_trip() {
        let b = BucketKey {
            hour: 3600,
            key: "ci-bot".into(),
            model: "@cf/meta/llama-3.1-8b-instruct".into(),
        };
        assert_eq!(parse_key(&record_key(&b)), Some(b));
    }

    /// A store shared by two sinks, as two processes share a file.
    struct ArcStore(Arc<MemoryStore>);
    impl Store for ArcStore {
        async fn get(&self, ns: &str, key: &str) -> Result<Option<crate::store::Versioned>, Error> {
            self.0.get(ns, key).await
        }
        async fn put(&self, ns: &str, key: &str, value: Bytes, e: Expect) -> Result<u64, Error> {
            self.0.put(ns, key, value, e).await
        }
        async fn delete(&self, ns: &str, key: &str, e: Expect) -> Result<bool, Error> {
            self.0.delete(ns, key, e).await
        }
        async fn list(&self, ns: &str) -> Result<Vec<(String, crate::store::Versioned)>, Error> {
            self.0.list(ns).await
        }
    }
}
