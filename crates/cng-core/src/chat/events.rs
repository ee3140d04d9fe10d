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

use bytes::Bytes;
use futures_util::StreamExt;

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
        let mut events = std::mem::take(&mut self.events);
        self.reader.push(bytes, &mut events);
        self.write(events)
    }

    /// The upstream ended: completes the answer, or ends it with an error when the
    /// upstream was cut off.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut events = std::mem::take(&mut self.events);
        self.reader.finish(&mut events);
        self.write(events)
    }

    /// The upstream failed mid-way (I/O error, idle timeout).
    pub fn fail(&mut self, err: &Error) -> Vec<u8> {
        let mut events = std::mem::take(&mut self.events);
        self.reader.fail(err, &mut events);
        self.write(events)
    }

    fn write(&mut self, mut events: Vec<StreamEvent>) -> Vec<u8> {
        let mut out = Vec::new();
        for e in events.drain(..) {
            if let (StreamEvent::Done { usage: Some(u) }, Some(r)) = (&e, &self.report) {
                r.set(u.prompt_tokens, u.completion_tokens);
            }
            self.writer.write(&e, &mut out);
        }
        self.events = events;
        out
    }
}

/// Drives a [`Transcoder`] over the upstream stream, chunk by chunk: nothing is
/// buffered beyond what the transcoder holds, and the upstream is dropped (closed) as
/// soon as the answer is complete or the client goes away.
pub fn transcode_stream<W>(upstream: ByteStream, t: Transcoder<W>) -> ByteStream
where
    W: EventWriter + MaybeSend + 'static,
{
    struct State<W> {
        upstream: ByteStream,
        t: Transcoder<W>,
        ended: bool,
    }
    let state = State {
        upstream,
        t,
        ended: false,
    };
    let s = futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if st.ended {
                return None;
            }
            let out = match st.upstream.next().await {
                Some(Ok(bytes)) => st.t.push(&bytes),
                Some(Err(e)) => st.t.fail(&e),
                None => st.t.finish(),
            };
            st.ended = st.t.is_done();
            if !out.is_empty() {
                return Some((Ok(Bytes::from(out)), st));
            }
        }
    });
    Box::pin(s)
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
