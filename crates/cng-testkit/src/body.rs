//! A response body played as a script: data frames, pauses, a stall or a broken connection.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

#[derive(Debug)]
pub(crate) enum Step {
    /// Send these bytes as one frame.
    Data(Bytes),
    /// Wait before the next step.
    Pause(Duration),
    /// Never send anything again, but keep the connection open.
    Stall,
    /// Fail the body: hyper drops the connection without finishing the message.
    Break,
}

/// A body made of [`Step`]s, sent frame by frame.
#[derive(Debug, Default)]
pub(crate) struct ScriptedBody {
    steps: VecDeque<Step>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl ScriptedBody {
    pub fn new(steps: Vec<Step>) -> Self {
        ScriptedBody {
            steps: steps.into(),
            sleep: None,
        }
    }

    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        if bytes.is_empty() {
            ScriptedBody::default()
        } else {
            ScriptedBody::new(vec![Step::Data(bytes)])
        }
    }

    pub fn empty() -> Self {
        ScriptedBody::default()
    }
}

impl Body for ScriptedBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        loop {
            if let Some(sleep) = this.sleep.as_mut() {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.sleep = None;
            }
            match this.steps.pop_front() {
                None => return Poll::Ready(None),
                Some(Step::Data(bytes)) => return Poll::Ready(Some(Ok(Frame::data(bytes)))),
                Some(Step::Pause(d)) => this.sleep = Some(Box::pin(tokio::time::sleep(d))),
                Some(Step::Stall) => {
                    // Stay pending for good; the connection task ends when the client
                    // hangs up or the server is dropped.
                    this.steps.push_front(Step::Stall);
                    return Poll::Pending;
                }
                Some(Step::Break) => {
                    this.steps.clear();
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "cng-fake-upstream: connection cut on purpose",
                    ))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.steps.is_empty() && self.sleep.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match (self.steps.len(), self.steps.front()) {
            (0, _) if self.sleep.is_none() => SizeHint::with_exact(0),
            (1, Some(Step::Data(b))) if self.sleep.is_none() => {
                SizeHint::with_exact(u64::try_from(b.len()).unwrap_or(u64::MAX))
            }
            _ => SizeHint::default(),
        }
    }
}
