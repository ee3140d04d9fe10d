//! Injected sources of time and identifiers.
//!
//! cng-core never reads the system clock nor a random source: adapters inject a
//! [`Clock`] and an [`IdSource`] (the server uses the OS, the Worker uses
//! `Date.now()`/`crypto`), and tests inject [`FixedClock`] and [`SequentialIds`] so
//! every id and timestamp in a snapshot is stable.

use std::sync::atomic::{AtomicU64, Ordering};

/// Wall-clock time.
pub trait Clock {
    /// Seconds since the Unix epoch.
    fn unix_seconds(&self) -> u64;

    /// Milliseconds since the Unix epoch (latency accounting); clocks without a finer
    /// source answer whole seconds.
    fn unix_millis(&self) -> u64 {
        self.unix_seconds().saturating_mul(1000)
    }
}

/// Unique identifiers for responses and tool calls.
pub trait IdSource {
    /// A fresh identifier: lowercase letters and digits, unguessable in production.
    fn fresh_id(&self) -> String;
}

/// A clock stopped at one instant.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub u64);

impl Clock for FixedClock {
    fn unix_seconds(&self) -> u64 {
        self.0
    }
}

/// Deterministic ids `0000000000000001`, `0000000000000002`, ... (tests, snapshots).
#[derive(Debug, Default)]
pub struct SequentialIds(AtomicU64);

impl IdSource for SequentialIds {
    fn fresh_id(&self) -> String {
        let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
        format!("{n:016}")
    }
}

impl<T: Clock + ?Sized> Clock for &T {
    fn unix_seconds(&self) -> u64 {
        (**self).unix_seconds()
    }

    fn unix_millis(&self) -> u64 {
        (**self).unix_millis()
    }
}

impl<T: IdSource + ?Sized> IdSource for &T {
    fn fresh_id(&self) -> String {
        (**self).fresh_id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_ids_count_up() {
        let ids = SequentialIds::default();
        assert_eq!(ids.fresh_id(), "0000000000000001");
        assert_eq!(ids.fresh_id(), "0000000000000002");
    }
}

/// Random bytes for secrets (API keys).
pub trait Entropy {
    /// Fills `buf` with cryptographically secure random bytes.
    fn fill(&self, buf: &mut [u8]);
}

/// Not random at all: a counter pattern. For tests only.
#[derive(Debug, Default)]
pub struct CountingEntropy(AtomicU64);

impl Entropy for CountingEntropy {
    fn fill(&self, buf: &mut [u8]) {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (n as u8).wrapping_mul(31).wrapping_add(i as u8);
        }
    }
}
