//! Charges team token budgets with what each answer used: one implementation for the
//! native server and the Worker.
//!
//! [`TeamTokens`] is a [`UsageSink`] in front of the real one. An event of a team
//! (`team:{id}`) with token counts is queued, added up per team and UTC day, and handed
//! on to the inner sink unchanged. The queued tokens are booked against the team's
//! `tokens` budget by [`TeamTokens::book_pending`] ([`crate::teams::book_tokens`]: a
//! compare-and-swap on `team_usage/{id}:{day}`).
//!
//! # Why a queue the host drives
//! `record` cannot await (a stream is counted when it ends, possibly in a `Drop`), and
//! cng-core has no runtime to spawn on. So the host decides when booking runs: the
//! native server wakes a task on every queued event ([`TeamTokens::on_pending`]), so
//! booking follows each answer within milliseconds; the Worker books in the
//! `ctx.wait_until` of the request (or of the stream's end) that queued it. Adding up per
//! team and day means a burst costs one compare-and-swap, not one per answer.
//!
//! A tokens budget is checked at admission and charged here, after the answer: a
//! request may run over the limit by its own size, plus what is still queued when the
//! next one is admitted (see docs/providers.md).

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{
    BoxFuture, BucketKey, Counters, MaybeSendSync, SharedSink, UsageEvent, UsageQuery, UsageSink,
};
use crate::error::Error;
use crate::store::Store;
use crate::teams;

const DAY: u64 = 86_400;

/// Told that bookings are queued (the native server: notify the booking task).
pub trait Wake: MaybeSendSync {
    fn wake(&self);
}

impl<F: Fn() + MaybeSendSync> Wake for F {
    fn wake(&self) {
        self()
    }
}

/// Queued tokens, per team id and day (days since the epoch).
type Pending = BTreeMap<(String, u64), u64>;

/// See the module docs.
pub struct TeamTokens<S> {
    inner: SharedSink,
    store: S,
    pending: Mutex<Pending>,
    wake: Option<Box<dyn Wake>>,
}

impl<S> TeamTokens<S> {
    /// Queues team tokens from events on their way to `inner`; books them in `store`
    /// (the store that holds the teams and their spend).
    pub fn new(inner: SharedSink, store: S) -> Self {
        Self {
            inner,
            store,
            pending: Mutex::new(BTreeMap::new()),
            wake: None,
        }
    }

    /// Calls `wake` whenever an event queued tokens.
    pub fn on_pending(mut self, wake: impl Wake + 'static) -> Self {
        self.wake = Some(Box::new(wake));
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        match self.pending.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Whether tokens wait to be booked.
    pub fn has_pending(&self) -> bool {
        !self.lock().is_empty()
    }

    /// Puts entries back (a booking that failed), added to what was queued meanwhile.
    fn restore(&self, entries: Pending) {
        let mut g = self.lock();
        for (k, n) in entries {
            let slot = g.entry(k).or_default();
            *slot = slot.saturating_add(n);
        }
    }
}

impl<S: Store> TeamTokens<S> {
    /// Books everything queued. What could not be booked (the store failed, or the
    /// spend record stayed contended) is queued again for the next call, and the first
    /// error is returned. Tokens of a team that no longer exists are dropped.
    pub async fn book_pending(&self) -> Result<(), Error> {
        let batch = std::mem::take(&mut *self.lock());
        let mut failed = Pending::new();
        let mut first_error = None;
        for ((id, day), tokens) in batch {
            let booked = match teams::token::load(&self.store, &id).await {
                Ok(Some((rec, _))) => {
                    teams::book_tokens(&self.store, &rec, day * DAY, tokens).await
                }
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = booked {
                first_error.get_or_insert(e);
                failed.insert((id, day), tokens);
            }
        }
        if !failed.is_empty() {
            self.restore(failed);
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl<S: Store + MaybeSendSync> UsageSink for TeamTokens<S> {
    fn record(&self, event: UsageEvent) {
        let tokens = event
            .input_tokens
            .unwrap_or(0)
            .saturating_add(event.output_tokens.unwrap_or(0));
        if let (Some(id), true) = (event.key.strip_prefix("team:"), tokens > 0) {
            {
                let mut g = self.lock();
                let slot = g.entry((id.to_string(), event.at / DAY)).or_default();
                *slot = slot.saturating_add(tokens);
            }
            if let Some(w) = &self.wake {
                w.wake();
            }
        }
        self.inner.record(event);
    }

    fn query<'a>(
        &'a self,
        q: &'a UsageQuery,
    ) -> BoxFuture<'a, Result<Vec<(BucketKey, Counters)>, Error>> {
        self.inner.query(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Expect, MemoryStore, Versioned};
    use crate::teams::{Budget, BudgetUnit, NS_TEAM_USAGE, NS_TEAMS, TeamRecord, TeamSpec};
    use crate::usage::MemoryUsage;
    use bytes::Bytes;
    use futures_util::FutureExt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// A store that counts writes and can refuse them.
    #[derive(Default)]
    struct Counting {
        inner: MemoryStore,
        puts: AtomicUsize,
        refuse: AtomicBool,
    }

    impl Store for Counting {
        async fn get(&self, ns: &str, key: &str) -> Result<Option<Versioned>, Error> {
            self.inner.get(ns, key).await
        }
        async fn put(&self, ns: &str, key: &str, value: Bytes, e: Expect) -> Result<u64, Error> {
            if self.refuse.load(Ordering::SeqCst) {
                return Err(Error::new(crate::ErrorKind::Unavailable, "store down"));
            }
            self.puts.fetch_add(1, Ordering::SeqCst);
            self.inner.put(ns, key, value, e).await
        }
        async fn delete(&self, ns: &str, key: &str, e: Expect) -> Result<bool, Error> {
            self.inner.delete(ns, key, e).await
        }
        async fn list(&self, ns: &str) -> Result<Vec<(String, Versioned)>, Error> {
            self.inner.list(ns).await
        }
    }

    impl Store for Arc<Counting> {
        async fn get(&self, ns: &str, key: &str) -> Result<Option<Versioned>, Error> {
            (**self).get(ns, key).await
        }
        async fn put(&self, ns: &str, key: &str, value: Bytes, e: Expect) -> Result<u64, Error> {
            (**self).put(ns, key, value, e).await
        }
        async fn delete(&self, ns: &str, key: &str, e: Expect) -> Result<bool, Error> {
            (**self).delete(ns, key, e).await
        }
        async fn list(&self, ns: &str) -> Result<Vec<(String, Versioned)>, Error> {
            (**self).list(ns).await
        }
    }

    fn team(store: &Counting, id: &str, budget: Option<Budget>) {
        let rec = TeamRecord {
            spec: TeamSpec {
                id: id.into(),
                budget,
                ..TeamSpec::default()
            },
            token_hash: "h".into(),
            previous: None,
            created_at: 0,
            rotated_at: None,
        };
        let body = Bytes::from(serde_json::to_vec(&rec).unwrap());
        store
            .inner
            .put(NS_TEAMS, id, body, Expect::Absent)
            .now_or_never()
            .unwrap()
            .unwrap();
    }

    fn spent(store: &Counting, key: &str) -> Option<String> {
        store
            .inner
            .get(NS_TEAM_USAGE, key)
            .now_or_never()
            .unwrap()
            .unwrap()
            .map(|v| String::from_utf8(v.value.to_vec()).unwrap())
    }

    fn event(at: u64, key: &str, input: Option<u64>, output: Option<u64>) -> UsageEvent {
        UsageEvent {
            at,
            key: key.into(),
            model: "m".into(),
            status: 200,
            latency_ms: 1,
            input_tokens: input,
            output_tokens: output,
            stream_error: false,
        }
    }

    const TOKENS: Option<Budget> = Some(Budget {
        unit: BudgetUnit::Tokens,
        per_day: 1000,
    });

    #[test]
    fn team_tokens_are_added_up_per_day_and_booked_in_one_write() {
        let store = Arc::new(Counting::default());
        team(&store, "green", TOKENS);
        let inner = Arc::new(MemoryUsage::new());
        let woken = Arc::new(AtomicUsize::new(0));
        let w = woken.clone();
        let sink = TeamTokens::new(inner.clone(), store.clone()).on_pending(move || {
            w.fetch_add(1, Ordering::SeqCst);
        });
        let day = 20_000 * DAY;
        sink.record(event(day + 5, "team:green", Some(7), Some(3)));
        sink.record(event(day + 9, "team:green", Some(1), None));
        sink.record(event(day + DAY, "team:green", None, Some(4))); // the next day
        sink.record(event(day + 9, "alice", Some(50), Some(50))); // not a team
        sink.record(event(day + 9, "team:green", None, None)); // no usage reported
        assert_eq!(woken.load(Ordering::SeqCst), 3);
        assert!(sink.has_pending());
        // Every event still reaches the inner sink.
        let all = UsageQuery {
            from: 0,
            to: u64::MAX / 2,
            key: None,
            model: None,
        };
        let rows = inner.query(&all).now_or_never().unwrap().unwrap();
        assert_eq!(rows.iter().map(|(_, c)| c.requests).sum::<u64>(), 5);

        sink.book_pending().now_or_never().unwrap().unwrap();
        assert!(!sink.has_pending());
        assert_eq!(spent(&store, "green:20000").as_deref(), Some("11"));
        assert_eq!(spent(&store, "green:20001").as_deref(), Some("4"));
        assert_eq!(
            store.puts.load(Ordering::SeqCst),
            2,
            "one write per team and day"
        );
        // Nothing queued: booking writes nothing.
        sink.book_pending().now_or_never().unwrap().unwrap();
        assert_eq!(store.puts.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn only_tokens_budgets_are_charged_and_gone_teams_are_dropped() {
        let store = Arc::new(Counting::default());
        team(
            &store,
            "reqs",
            Some(Budget {
                unit: BudgetUnit::Requests,
                per_day: 9,
            }),
        );
        team(&store, "free", None);
        let sink = TeamTokens::new(Arc::new(MemoryUsage::new()), store.clone());
        for who in ["team:reqs", "team:free", "team:gone"] {
            sink.record(event(DAY, who, Some(5), Some(5)));
        }
        sink.book_pending().now_or_never().unwrap().unwrap();
        assert!(!sink.has_pending());
        assert_eq!(store.puts.load(Ordering::SeqCst), 0);
        assert_eq!(spent(&store, "reqs:1"), None);
    }

    #[test]
    fn a_failed_booking_is_kept_for_the_next_one() {
        let store = Arc::new(Counting::default());
        team(&store, "green", TOKENS);
        let sink = TeamTokens::new(Arc::new(MemoryUsage::new()), store.clone());
        sink.record(event(DAY, "team:green", Some(2), Some(2)));
        store.refuse.store(true, Ordering::SeqCst);
        let e = sink.book_pending().now_or_never().unwrap().unwrap_err();
        assert_eq!(e.message(), "store down");
        assert!(sink.has_pending());
        sink.record(event(DAY + 1, "team:green", Some(1), None));
        store.refuse.store(false, Ordering::SeqCst);
        sink.book_pending().now_or_never().unwrap().unwrap();
        assert_eq!(spent(&store, "green:1").as_deref(), Some("5"));
    }
}
