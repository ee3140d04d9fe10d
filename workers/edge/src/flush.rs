//! When an isolate writes the usage it buffered: at most once every [`FLUSH_EVERY_MS`].
//!
//! Each request's `ctx.wait_until` (or, for a stream, the wait that ends with the
//! stream) asks [`FlushSchedule::schedule`]: the first asker after a flush waits until
//! [`FLUSH_EVERY_MS`] have passed since that flush started, then flushes; everyone
//! else leaves it to that one. So a burst of requests costs one flush (one Durable
//! Object round per hour, key and model it touched), not one per request, and every
//! counted event is written within [`FLUSH_EVERY_MS`] of its request's end unless the
//! isolate is evicted first — which bounds what an eviction can lose. A query of usage
//! (`GET /api/usage`, status, badges) flushes first anyway, outside this schedule.
//!
//! Platform-independent (times are plain milliseconds), so it is tested natively.

/// The least time between two flushes of one isolate.
pub const FLUSH_EVERY_MS: u64 = 10_000;

/// A scheduled flush that has not started this long after it was due went away with
/// its `wait_until` (the runtime cancels those 30 s after the response); the next
/// asker schedules a new one instead of waiting for it forever.
const ABANDONED_AFTER_MS: u64 = 30_000;

/// See the module docs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FlushSchedule {
    /// When the last flush started.
    last_start: Option<u64>,
    /// When the scheduled flush is due, if one is.
    due: Option<u64>,
}

impl FlushSchedule {
    /// Events may be waiting at `now`: how long the caller must wait before it flushes,
    /// or `None` when an already scheduled flush will take them.
    pub fn schedule(&mut self, now: u64) -> Option<u64> {
        if self
            .due
            .is_some_and(|due| now <= due.saturating_add(ABANDONED_AFTER_MS))
        {
            return None;
        }
        let due = self
            .last_start
            .map_or(now, |last| last.saturating_add(FLUSH_EVERY_MS).max(now));
        self.due = Some(due);
        Some(due - now)
    }

    /// The scheduled flush starts at `now` (it takes every event recorded so far; later
    /// ones need a new schedule).
    pub fn start(&mut self, now: u64) {
        self.due = None;
        self.last_start = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_request_flushes_at_once_and_a_burst_shares_one_flush() {
        let mut s = FlushSchedule::default();
        assert_eq!(s.schedule(1_000), Some(0));
        s.start(1_000);
        // A burst right after: one of them waits out the interval, the others leave it.
        assert_eq!(s.schedule(1_200), Some(9_800));
        assert_eq!(s.schedule(1_300), None);
        assert_eq!(s.schedule(10_999), None);
        s.start(11_000);
        // After a quiet spell, the next request flushes at once.
        assert_eq!(s.schedule(60_000), Some(0));
    }

    #[test]
    fn events_of_a_running_flush_get_the_next_one() {
        let mut s = FlushSchedule::default();
        s.schedule(0);
        s.start(0);
        // While the flush writes (it drained at its start), an event arrives.
        assert_eq!(s.schedule(50), Some(9_950));
    }

    #[test]
    fn at_most_one_flush_per_interval() {
        let mut s = FlushSchedule::default();
        let mut starts = Vec::new();
        // A request every 100 ms for a minute; each flush starts when it is due.
        let mut pending: Option<u64> = None;
        for now in (0..60_000).step_by(100) {
            if pending.is_some_and(|due| due <= now) {
                s.start(now);
                starts.push(now);
                pending = None;
            }
            if let Some(wait) = s.schedule(now) {
                pending = Some(now + wait);
            }
        }
        assert!(starts.windows(2).all(|w| w[1] - w[0] >= FLUSH_EVERY_MS));
        assert_eq!(starts.len(), 6, "{starts:?}");
    }

    #[test]
    fn an_abandoned_schedule_is_replaced() {
        let mut s = FlushSchedule::default();
        s.schedule(0);
        s.start(0);
        assert_eq!(s.schedule(100), Some(9_900)); // due at 10 000, then never started
        assert_eq!(s.schedule(40_000), None);
        assert_eq!(s.schedule(40_001), Some(0));
    }
}
