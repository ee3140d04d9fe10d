//! Latency percentiles that can be added up: a log-bucketed histogram.
//!
//! Usage is kept per hour, key and model, and a report adds any set of those up; exact
//! percentiles cannot be added, bucket counts can. Buckets are quarter-powers of two
//! (bucket `i ≥ 1` holds `[2^((i-1)/4), 2^(i/4))` ms), so a reported percentile — the
//! geometric middle of its bucket — is within ±9 % of the true value, from 1 ms to
//! about 12 minutes, in at most 80 counters (stored sparsely).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Number of buckets; the last one also holds everything slower.
const BUCKETS: u8 = 80;

/// Counts of latencies per bucket (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Histogram(BTreeMap<u8, u64>);

fn bucket_of(ms: u64) -> u8 {
    if ms < 1 {
        return 0;
    }
    let i = ((ms as f64).log2() * 4.0).floor() as u64 + 1;
    u8::try_from(i.min(u64::from(BUCKETS - 1))).unwrap_or(BUCKETS - 1)
}

/// The value a bucket reports: the geometric middle of its bounds.
fn value_of(bucket: u8) -> f64 {
    if bucket == 0 {
        return 0.0;
    }
    let lo = 2f64.powf(f64::from(bucket - 1) / 4.0);
    let hi = 2f64.powf(f64::from(bucket) / 4.0);
    (lo * hi).sqrt()
}

impl Histogram {
    pub fn record(&mut self, ms: u64) {
        *self.0.entry(bucket_of(ms)).or_insert(0) += 1;
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (b, n) in &other.0 {
            *self.0.entry(*b).or_insert(0) += n;
        }
    }

    pub fn count(&self) -> u64 {
        self.0.values().sum()
    }

    /// The `q`-quantile (0 < q ≤ 1) in milliseconds, rounded; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, c) in &self.0 {
            seen += c;
            if seen >= rank {
                return Some(value_of(*b).round() as u64);
            }
        }
        self.0.keys().last().map(|b| value_of(*b).round() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_nine_percent() {
        let mut h = Histogram::default();
        for ms in 1..=1000u64 {
            h.record(ms);
        }
        for (q, truth) in [(0.5, 500.0), (0.95, 950.0), (0.99, 990.0)] {
            let got = h.quantile(q).unwrap() as f64;
            assert!(
                (got - truth).abs() / truth <= 0.09,
                "p{q}: {got} vs {truth}"
            );
        }
        assert_eq!(Histogram::default().quantile(0.5), None);
    }

    #[test]
    fn merging_is_adding() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        a.record(10);
        b.record(10);
        b.record(5000);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert!(a.quantile(1.0).unwrap() > 4000);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<Histogram>(&json).unwrap(), a);
    }

    #[test]
    fn extremes_are_kept() {
        let mut h = Histogram::default();
        h.record(0);
        h.record(u64::MAX);
        assert_eq!(h.count(), 2);
        assert_eq!(h.quantile(0.5), Some(0));
    }
}
