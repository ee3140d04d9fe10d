//! What a model said, as dialect-neutral events, and the transcoder that writes them
//! in one client dialect.
//!
//! Reading Workers AI's streams is the hard part (five output generations, `<think>`
//! tags split across chunks, tool calls printed as text, per-chunk and cumulative
//! usage, error events); it is done once, by [`StreamReader`](super::stream::StreamReader),
//! which turns upstream bytes into [`StreamEvent`]s. Each client dialect is a small
//! [`EventWriter`] that turns those events into its own SSE: OpenAI chat chunks and
//! `text_completion` chunks ([`ChunkWriter`](super::stream::ChunkWriter)), Responses API
//! events (`crate::responses`), Anthropic Messages events (`crate::anthropic`).
//! [`Transcoder`] joins one reader and one writer; like the reader it is sans-I/O,
//! and its output does not depend on how the input was split.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;

use super::ChatContext;
use super::stream::StreamReader;
use crate::backend::{ByteStream, MaybeSend};
use crate::error::Error;
use crate::openai::chat::{ChatCompletion, FinishReason, Usage};

/// One step of a model's answer. `choice` is the OpenAI choice index (always 0 unless
/// the client asked for `n > 1`); `call` numbers the tool calls of a choice from 0.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The assistant's turn of `choice` begins (sent before anything else of it).
    Start { choice: u32 },
    /// Chain-of-thought text, never part of the answer.
    Reasoning { choice: u32, text: String },
    /// Answer text.
    Text { choice: u32, text: String },
    /// A tool call begins, with its id, name and first arguments fragment (possibly
    /// empty; whole arguments for upstreams that do not stream them).
    ToolCall {
        choice: u32,
        call: u32,
        id: String,
        name: String,
        arguments: String,
    },
    /// More of a tool call's arguments (a JSON text, in fragments).
    ToolArguments {
        choice: u32,
        call: u32,
        arguments: String,
    },
    /// `choice` is complete. `stop_sequence` is the stop string that ended it, when
    /// the upstream says which (vLLM's `stop_reason`, SGLang's `matched_stop`).
    Finish {
        choice: u32,
        reason: FinishReason,
        stop_sequence: Option<String>,
    },
    /// The whole answer is complete; `usage` when the upstream reported it.
    Done { usage: Option<Usage> },
    /// The upstream failed or broke off; nothing follows.
    Error(Error),
}

/// Writes events in one dialect. Writers own their per-stream state (item ids, open
/// blocks, sequence numbers); they are called with every event in order, and must
/// write their dialect's terminal event on [`StreamEvent::Done`] and
/// [`StreamEvent::Error`].
pub trait EventWriter {
    fn write(&mut self, event: &StreamEvent, out: &mut Vec<u8>);
}

/// Writes all of `events` with `writer` (for answers that arrive whole but must be
/// sent as a stream: Workers AI's JSON mode does not stream).
pub fn write_all<W: EventWriter + ?Sized>(writer: &mut W, events: &[StreamEvent]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        writer.write(e, &mut out);
    }
    out
}

/// A finished completion as events: what a stream of it would have said.
pub fn completion_events(c: &ChatCompletion) -> Vec<StreamEvent> {
    let mut events = Vec::new();
    for choice in &c.choices {
        let i = choice.index;
        let m = &choice.message;
        events.push(StreamEvent::Start { choice: i });
        if let Some(r) = m.reasoning_content.as_ref().filter(|r| !r.is_empty()) {
            events.push(StreamEvent::Reasoning {
                choice: i,
                text: r.clone(),
            });
        }
        if let Some(t) = m.content.as_ref().filter(|t| !t.is_empty()) {
            events.push(StreamEvent::Text {
                choice: i,
                text: t.clone(),
            });
        }
        let calls = m
            .tool_calls
            .iter()
            .flatten()
            .map(|c| (c.id.clone(), &c.function))
            .chain(m.function_call.iter().map(|f| (String::new(), f)));
        for (n, (id, f)) in calls.enumerate() {
            events.push(StreamEvent::ToolCall {
                choice: i,
                call: n as u32,
                id,
                name: f.name.clone(),
                arguments: f.arguments.clone(),
            });
        }
        events.push(StreamEvent::Finish {
            choice: i,
            reason: choice.finish_reason,
            stop_sequence: None,
        });
    }
    events.push(StreamEvent::Done {
        usage: c.usage.clone(),
    });
    events
}

/// One upstream stream read by a [`StreamReader`] and written by `W`.
#[derive(Debug)]
pub struct Transcoder<W> {
    reader: StreamReader,
    writer: W,
    events: Vec<StreamEvent>,
    report: Option<crate::usage::observe::StreamUsage>,
}

impl<W: EventWriter> Transcoder<W> {
    /// A transcoder reading the stream of the request `ctx` describes.
    pub fn with_writer(ctx: ChatContext, writer: W) -> Self {
        Self {
            reader: StreamReader::new(ctx),
            writer,
            events: Vec::new(),
            report: None,
        }
    }

    /// Also hands the stream's final usage to `report` (for usage accounting when
    /// the client did not ask for it in the stream).
    pub fn reporting(mut self, report: crate::usage::observe::StreamUsage) -> Self {
        self.report = Some(report);
        self
    }

    /// True once the output is complete; further input is ignored.
    pub fn is_done(&self) -> bool {
        self.reader.is_done()
    }

    /// Feeds upstream bytes; returns the bytes to send (possibly empty).
    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.push_into(bytes, &mut out);
        out
    }

    /// The upstream ended: completes the answer, or ends it with an error when the
    /// upstream was cut off.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.finish_into(&mut out);
        out
    }

    /// The upstream failed mid-way (I/O error, idle timeout).
    pub fn fail(&mut self, err: &Error) -> Vec<u8> {
        let mut out = Vec::new();
        self.fail_into(err, &mut out);
        out
    }

    /// [`push`](Self::push), appending to `out` (the output of several upstream
    /// chunks can then leave in one write).
    pub fn push_into(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        let mut events = std::mem::take(&mut self.events);
        self.reader.push(bytes, &mut events);
        self.write(events, out);
    }

    /// [`finish`](Self::finish), appending to `out`.
    pub fn finish_into(&mut self, out: &mut Vec<u8>) {
        let mut events = std::mem::take(&mut self.events);
        self.reader.finish(&mut events);
        self.write(events, out);
    }

    /// [`fail`](Self::fail), appending to `out`.
    pub fn fail_into(&mut self, err: &Error, out: &mut Vec<u8>) {
        let mut events = std::mem::take(&mut self.events);
        self.reader.fail(err, &mut events);
        self.write(events, out);
    }

    fn write(&mut self, mut events: Vec<StreamEvent>, out: &mut Vec<u8>) {
        for e in events.drain(..) {
            if let (StreamEvent::Done { usage: Some(u) }, Some(r)) = (&e, &self.report) {
                r.set(u.prompt_tokens, u.completion_tokens);
            }
            self.writer.write(&e, out);
        }
        self.events = events;
    }
}

/// Most output bytes merged into one chunk for the client; more leave at once.
const MAX_MERGED_BYTES: usize = 16 * 1024;

/// Polls that may find the upstream pending while output is held before it is sent.
/// Each such poll wakes the task again, so the upstream's connection task gets a turn
/// in between. Three, because hyper's server polls a pending body twice within one
/// poll of its connection task: the third poll comes after the scheduler ran the
/// other tasks.
const MAX_IDLE_POLLS: u8 = 3;

/// Drives a [`Transcoder`] over the upstream stream: nothing is buffered beyond what
/// the transcoder holds and one merged output chunk (at most [`MAX_MERGED_BYTES`]
/// plus one upstream chunk's output), and the upstream is dropped (closed) as soon as
/// the answer is complete or the client goes away.
///
/// Output that is ready at once leaves as one chunk. The HTTP server writes (one
/// syscall, one TCP segment) whenever the body stream has nothing ready, and an
/// upstream read of many SSE events reaches this stream one HTTP chunk at a time: the
/// HTTP client's connection task hands over one chunk and decodes the next only when
/// it runs again. So when the upstream has nothing ready but output is held, the
/// stream wakes itself and returns `Pending` (up to [`MAX_IDLE_POLLS`] times) before
/// sending: chunks the upstream connection already holds arrive meanwhile and join
/// the same write. It never waits for the network, only for the scheduler's turn:
/// with an upstream that sends events apart in time (a model generating), each event
/// leaves a few microseconds later than it would alone.
pub fn transcode_stream<W>(upstream: ByteStream, t: Transcoder<W>) -> ByteStream
where
    W: EventWriter + MaybeSend + 'static,
{
    Box::pin(TranscodeStream {
        upstream: Some(upstream),
        t,
        out: Vec::new(),
        idle_polls: 0,
    })
}

struct TranscodeStream<W> {
    /// `None` once the answer is complete (the upstream is dropped then).
    upstream: Option<ByteStream>,
    t: Transcoder<W>,
    /// Output not yet handed to the server.
    out: Vec<u8>,
    /// Polls in a row that found the upstream pending while output was held.
    idle_polls: u8,
}

// Nothing is pinned structurally: the upstream is boxed, the writer is only called
// through `&mut`.
impl<W> Unpin for TranscodeStream<W> {}

impl<W: EventWriter> TranscodeStream<W> {
    fn take_out(&mut self) -> Option<Result<Bytes, Error>> {
        self.idle_polls = 0;
        Some(Ok(Bytes::from(std::mem::take(&mut self.out))))
    }
}

impl<W: EventWriter> Stream for TranscodeStream<W> {
    type Item = Result<Bytes, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            let Some(upstream) = this.upstream.as_mut() else {
                return Poll::Ready(if this.out.is_empty() {
                    None
                } else {
                    this.take_out()
                });
            };
            match upstream.as_mut().poll_next(cx) {
                Poll::Ready(item) => {
                    match item {
                        Some(Ok(bytes)) => this.t.push_into(&bytes, &mut this.out),
                        Some(Err(e)) => this.t.fail_into(&e, &mut this.out),
                        None => this.t.finish_into(&mut this.out),
                    }
                    this.idle_polls = 0;
                    if this.t.is_done() {
                        this.upstream = None;
                    } else if this.out.len() >= MAX_MERGED_BYTES {
                        return Poll::Ready(this.take_out());
                    }
                }
                Poll::Pending if this.out.is_empty() => return Poll::Pending,
                Poll::Pending => {
                    this.idle_polls += 1;
                    if this.idle_polls >= MAX_IDLE_POLLS {
                        return Poll::Ready(this.take_out());
                    }
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
            }
        }
    }
}

/// Appends one SSE event with an `event:` line (the Responses and Anthropic dialects
/// name every event; Anthropic's SDK skips events without a name).
pub fn write_named_event(out: &mut Vec<u8>, name: &str, data: &impl serde::Serialize) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    // Serialising these plain structs into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, data);
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        reason = "test code"
    )]
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};

    use futures_util::StreamExt;

    use super::*;
    use crate::catalog::Reasoning;
    use crate::chat::{Dialect, StreamTranscoder};

    fn ctx() -> ChatContext {
        ChatContext {
            id: "chatcmpl-test".into(),
            created: 1_700_000_000,
            model: "m".into(),
            include_usage: true,
            reasoning: Reasoning::None,
            tools: Vec::new(),
            legacy_functions: false,
            max_tokens: None,
            call_id_prefix: "call_test".into(),
            dialect: Dialect::Chat,
        }
    }

    /// Workers AI's legacy stream: `n` text events, the last with usage, `[DONE]`.
    fn events(n: usize, pad: usize) -> Vec<Bytes> {
        let mut v: Vec<Bytes> = (0..n)
            .map(|i| {
                let usage = if i + 1 == n {
                    r#","usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}"#
                } else {
                    ""
                };
                Bytes::from(format!(
                    "data: {{\"response\":\"w{i}{}\"{usage}}}\n\n",
                    "x".repeat(pad)
                ))
            })
            .collect();
        v.push(Bytes::from_static(b"data: [DONE]\n\n"));
        v
    }

    /// What the transcoder writes for `chunks`, fed one at a time.
    fn sequential(chunks: &[Bytes]) -> Vec<u8> {
        let mut t = StreamTranscoder::new(ctx());
        let mut out = Vec::new();
        for c in chunks {
            out.extend(t.push(c));
        }
        out.extend(t.finish());
        out
    }

    fn upstream(chunks: Vec<Bytes>) -> ByteStream {
        Box::pin(futures_util::stream::iter(chunks.into_iter().map(Ok)))
    }

    struct CountWakes(AtomicUsize);

    impl Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn chunks_ready_at_once_leave_as_one() {
        let chunks = events(20, 3);
        let expected = sequential(&chunks);
        let out: Vec<Bytes> = transcode_stream(upstream(chunks), StreamTranscoder::new(ctx()))
            .map(|r| r.unwrap())
            .collect()
            .await;
        assert_eq!(out.len(), 1, "one write for a burst");
        assert_eq!(out[0], expected);
    }

    #[tokio::test]
    async fn merged_chunks_are_bounded() {
        // ~200 KB of output, all ready at once: several chunks, none far over the cap.
        let chunks = events(400, 400);
        let expected = sequential(&chunks);
        let out: Vec<Bytes> = transcode_stream(upstream(chunks), StreamTranscoder::new(ctx()))
            .map(|r| r.unwrap())
            .collect()
            .await;
        assert!(out.len() > 5, "{} chunks", out.len());
        assert!(out.iter().all(|c| c.len() < MAX_MERGED_BYTES + 2048));
        assert_eq!(out.concat(), expected);
    }

    #[test]
    fn held_output_leaves_without_more_upstream_data() {
        // One event, then an upstream that never sends again: the event must leave
        // after a few polls (each waking the task), not wait for more bytes.
        let first = events(1, 0).remove(0);
        let up: ByteStream = Box::pin(
            futures_util::stream::iter([Ok(first)]).chain(futures_util::stream::pending()),
        );
        let mut s = transcode_stream(up, StreamTranscoder::new(ctx()));
        let wakes = Arc::new(CountWakes(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let mut polls = 0;
        let got = loop {
            polls += 1;
            assert!(
                polls <= MAX_IDLE_POLLS as usize,
                "held past {MAX_IDLE_POLLS} polls"
            );
            match s.as_mut().poll_next(&mut cx) {
                Poll::Ready(Some(Ok(b))) => break b,
                Poll::Ready(other) => panic!("unexpected {other:?}"),
                Poll::Pending => {
                    assert_eq!(
                        wakes.0.load(Ordering::SeqCst),
                        polls,
                        "a held poll wakes itself"
                    )
                }
            }
        };
        let text = std::str::from_utf8(&got).unwrap();
        assert!(text.contains("\"role\":\"assistant\""), "{text}");
        assert!(text.contains("w0"), "{text}");
        // Nothing held now: the next poll waits for the upstream, without a self-wake.
        let before = wakes.0.load(Ordering::SeqCst);
        assert!(s.as_mut().poll_next(&mut cx).is_pending());
        assert_eq!(wakes.0.load(Ordering::SeqCst), before);
    }

    #[tokio::test]
    async fn events_apart_in_time_leave_apart() {
        // A model generating: each event arrives after a pause and leaves on its own.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
        let rx: ByteStream = Box::pin(futures_util::stream::poll_fn(move |cx| {
            rx.poll_recv(cx).map(|b| b.map(Ok))
        }));
        let mut s = transcode_stream(rx, StreamTranscoder::new(ctx()));
        let all = events(3, 0);
        for (i, e) in all.iter().take(3).enumerate() {
            tx.send(e.clone()).unwrap();
            let got = tokio::time::timeout(std::time::Duration::from_secs(5), s.next())
                .await
                .expect("an event waits for nothing but its turn")
                .unwrap()
                .unwrap();
            assert!(
                std::str::from_utf8(&got)
                    .unwrap()
                    .contains(&format!("w{i}"))
            );
        }
        tx.send(all[3].clone()).unwrap();
        drop(tx);
        let rest: Vec<Bytes> = s.map(|r| r.unwrap()).collect().await;
        assert!(
            std::str::from_utf8(&rest.concat())
                .unwrap()
                .ends_with("data: [DONE]\n\n")
        );
    }
}
