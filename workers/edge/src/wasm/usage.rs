//! The isolate's usage: counted in memory, written to the store object in
//! `ctx.wait_until` (see [`crate::flush`]), and team tokens booked there too.

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use cng_core::backend::ByteStream;
use cng_core::usage::{BufferedStoreUsage, SharedSink, TeamTokens};
use cng_core::{Body, Error};
use futures_channel::oneshot;
use futures_util::Stream;
use worker::{Delay, Env};

use super::KvStore;
use crate::flush::FlushSchedule;

/// Usage counters and team bookings of one isolate (its gateways share them).
pub struct IsolateUsage {
    counters: Arc<BufferedStoreUsage<KvStore>>,
    teams: Arc<TeamTokens<KvStore>>,
    schedule: RefCell<FlushSchedule>,
}

fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

impl IsolateUsage {
    // On wasm32 nothing is `Send`, and the gateway's sink is an `Arc` (it is shared by
    // threads natively).
    #[allow(clippy::arc_with_non_send_sync, reason = "one thread in an isolate")]
    pub fn new(env: &Env) -> Self {
        let counters = Arc::new(BufferedStoreUsage::new(KvStore::new(env)));
        let teams = Arc::new(TeamTokens::new(counters.clone(), KvStore::new(env)));
        Self {
            counters,
            teams,
            schedule: RefCell::new(FlushSchedule::default()),
        }
    }

    /// The sink every gateway of the isolate counts into.
    pub fn sink(&self) -> SharedSink {
        self.teams.clone()
    }

    /// After a request's answer (for a stream: after its end): books the team tokens it
    /// spent, then writes the counters when the schedule says so. Run in `wait_until`.
    pub async fn settle(self: Rc<Self>) {
        if self.teams.has_pending() {
            if let Err(e) = self.teams.book_pending().await {
                worker::console_error!("cng: team tokens not booked yet: {}", e.message());
            }
        }
        let wait = self.schedule.borrow_mut().schedule(now_ms());
        let Some(wait) = wait else { return };
        if wait > 0 {
            Delay::from(Duration::from_millis(wait)).await;
        }
        self.schedule.borrow_mut().start(now_ms());
        if let Err(e) = self.counters.flush().await {
            worker::console_error!("cng: usage not written yet: {}", e.message());
        }
    }
}

/// A streamed body that says when it is over: it ended, or it was dropped (the client
/// went away). Either way the gateway's counting stream inside has recorded its event
/// by then (on its end; on drop, because `inner` drops before `done`).
struct Ended {
    inner: ByteStream,
    done: Option<oneshot::Sender<()>>,
}

impl Stream for Ended {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(None) = polled {
            if let Some(done) = self.done.take() {
                let _ = done.send(());
            }
        }
        polled
    }
}

/// For a streamed body: wraps it, and returns what resolves when it is over.
pub fn watch_end(body: &mut Body) -> Option<oneshot::Receiver<()>> {
    let Body::Stream(_) = body else { return None };
    let Body::Stream(inner) = std::mem::replace(body, Body::Empty) else {
        return None;
    };
    let (tx, rx) = oneshot::channel();
    *body = Body::Stream(Box::pin(Ended {
        inner,
        done: Some(tx),
    }));
    Some(rx)
}
