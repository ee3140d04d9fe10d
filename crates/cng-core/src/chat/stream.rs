//! Workers AI SSE → [`StreamEvent`]s → OpenAI `chat.completion.chunk` (or legacy
//! `text_completion`) events, incrementally.
//!
//! [`StreamReader`] is sans-I/O and owns all per-stream reading state: feed it upstream
//! bytes as they arrive, get dialect-neutral [`StreamEvent`]s; call
//! [`finish`](StreamReader::finish) when the upstream ends, or
//! [`fail`](StreamReader::fail) when it errors. Events for any split of the input are
//! the same. Memory is bounded: the SSE decoder holds at most one event, the `<think>`
//! splitter a tag's length, and text that may be a printed tool call is held only up
//! to [`MAX_HELD_TOOL_TEXT`] before it is released as content.
//!
//! Every upstream format is read by the same code: legacy `{response, tool_calls}`
//! events, OpenAI chunks (with Workers AI's `p` padding and per-chunk incremental
//! usage), the native cumulative `{"response":"","usage"}` event that ends even
//! OpenAI-shaped streams (its usage wins over the running sum), and error events.
//!
//! [`StreamTranscoder`] is the reader with the OpenAI [`ChunkWriter`]: what
//! `/v1/chat/completions` and `/v1/completions` stream.

use serde::Deserialize;
use serde_json::Value;

use super::events::{EventWriter, StreamEvent, Transcoder};
use super::response::{length_heuristic, usage_from_raw, write_chunk};
use super::think::ThinkSplitter;
use super::tools;
use super::{ChatContext, Dialect};
use crate::catalog::Reasoning;
use crate::error::{Error, ErrorKind};
use crate::openai::chat::{
    ChatChunk, ChunkChoice, Delta, FinishReason, FunctionCallDelta, ToolCallDelta, ToolKind, Usage,
};
use crate::openai::completions::{TextChunk, TextChunkChoice};
use crate::sse::{self, EndState, SseDecoder, SseEvent};
use crate::workers_ai::text::{RawToolCall, TextResult};

/// Text that may be a tool call printed as JSON is held back up to this size.
pub const MAX_HELD_TOOL_TEXT: usize = 64 * 1024;

/// The OpenAI chat (or completions) transcoder of one stream.
pub type StreamTranscoder = Transcoder<ChunkWriter>;

impl Transcoder<ChunkWriter> {
    /// A transcoder answering in `ctx.dialect` (chat chunks or `text_completion`).
    pub fn new(ctx: ChatContext) -> Self {
        Self::with_writer(ctx.clone(), ChunkWriter::new(ctx))
    }
}

/// Reads one upstream stream into [`StreamEvent`]s.
#[derive(Debug)]
pub struct StreamReader {
    ctx: ChatContext,
    decoder: SseDecoder,
    sse_events: Vec<SseEvent>,
    choices: Vec<ChoiceState>,
    calls_made: usize,
    usage_sum: Option<Usage>,
    usage_final: Option<Usage>,
    saw_finish: bool,
    done: bool,
}

#[derive(Debug)]
struct ChoiceState {
    index: u32,
    role_sent: bool,
    think: Option<ThinkSplitter>,
    finish: Option<FinishReason>,
    /// The stop string that ended this choice, when the upstream named it.
    stop_sequence: Option<String>,
    calls: Vec<CallState>,
    /// Answer text held while it may still be a tool call printed as text.
    held: Option<String>,
    /// No answer text yet (decides whether to start holding).
    answer_started: bool,
}

#[derive(Debug)]
struct CallState {
    key: CallKey,
    out_index: u32,
}

#[derive(Debug, PartialEq)]
enum CallKey {
    Index(u32),
    Id(String),
    Whole,
}

/// The stop string an OpenAI-shaped server reports in a finishing chunk: vLLM's
/// `choices[].stop_reason`, SGLang's `choices[].matched_stop` (token ids are not
/// stop strings and are ignored). Read only from chunks that carry a finish reason.
#[derive(Deserialize)]
struct StopInfo {
    #[serde(default)]
    choices: Vec<StopChoice>,
}

#[derive(Deserialize)]
struct StopChoice {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    stop_reason: Option<Value>,
    #[serde(default)]
    matched_stop: Option<Value>,
}

impl StreamReader {
    pub fn new(ctx: ChatContext) -> Self {
        Self {
            ctx,
            decoder: SseDecoder::new(),
            sse_events: Vec::new(),
            choices: Vec::new(),
            calls_made: 0,
            usage_sum: None,
            usage_final: None,
            saw_finish: false,
            done: false,
        }
    }

    /// True once the answer is complete (or failed); further input is ignored.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Feeds upstream bytes; appends the events they complete to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>) {
        if self.done {
            return;
        }
        let mut events = std::mem::take(&mut self.sse_events);
        if let Err(e) = self.decoder.push(bytes, &mut events) {
            events.clear();
            self.sse_events = events;
            self.error(out, e);
            return;
        }
        for ev in events.drain(..) {
            if self.done {
                break;
            }
            self.event(&ev, out);
        }
        self.sse_events = events;
    }

    /// The upstream ended. Completes the answer, or — if it was cut off before the
    /// model finished — ends it with an error; either way the last event is
    /// [`StreamEvent::Done`] or [`StreamEvent::Error`].
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if self.done {
            return;
        }
        let mut events = Vec::new();
        let end = self.decoder.finish(&mut events);
        for ev in &events {
            if self.done {
                return;
            }
            self.event(ev, out);
        }
        if self.done {
            return;
        }
        if end == EndState::Clean && (self.saw_finish || self.usage_final.is_some()) {
            self.complete(out);
        } else {
            let e = Error::new(
                ErrorKind::Upstream,
                "The upstream stream ended before the model finished; the answer is incomplete.",
            )
            .with_code("upstream_stream_truncated");
            self.error(out, e);
        }
    }

    /// The upstream failed mid-way (I/O error, idle timeout): ends with an error.
    pub fn fail(&mut self, err: &Error, out: &mut Vec<StreamEvent>) {
        if !self.done {
            self.error(out, err.clone());
        }
    }

    fn event(&mut self, ev: &SseEvent, out: &mut Vec<StreamEvent>) {
        let data = ev.data.trim();
        if data == "[DONE]" {
            self.complete(out);
            return;
        }
        if data.is_empty() {
            return;
        }
        let raw: TextResult = match serde_json::from_str(data) {
            Ok(r) => r,
            Err(_) => {
                let e = Error::new(
                    ErrorKind::Upstream,
                    "The upstream stream was cut off or sent an event that is not JSON; \
                     the answer is incomplete.",
                )
                .with_code("upstream_stream_truncated");
                self.error(out, e);
                return;
            }
        };
        if ev.event.as_deref() == Some("error") || raw.error.is_some() {
            let e = stream_error(&raw, data);
            self.error(out, e);
            return;
        }
        let openai_shaped = !raw.choices.is_empty() || data.contains("\"choices\"");
        if openai_shaped {
            if let Some(u) = &raw.usage {
                add_usage(&mut self.usage_sum, &usage_from_raw(u));
            }
            let mut finished = false;
            for c in &raw.choices {
                let idx = c.index.unwrap_or(0);
                if let Some(d) = &c.delta {
                    if let Some(r) = d.reasoning() {
                        self.reasoning_delta(idx, r, out);
                    }
                    if let Some(t) = d.text() {
                        self.text_delta(idx, &t, out);
                    }
                    for call in &d.tool_calls {
                        self.tool_call(idx, call, true, out);
                    }
                }
                if let Some(f) = c.finish_reason.as_deref().and_then(FinishReason::parse) {
                    self.choice(idx).finish = Some(f);
                    self.saw_finish = true;
                    finished = true;
                }
            }
            if finished {
                self.read_stop_strings(data);
            }
        } else {
            if let Some(t) = raw.response.as_ref() {
                match t {
                    Value::String(s) => self.text_delta(0, s, out),
                    Value::Null => {}
                    other => self.text_delta(0, &other.to_string(), out),
                }
            }
            for call in &raw.tool_calls {
                self.tool_call(0, call, false, out);
            }
            if let Some(u) = &raw.usage {
                // The native final event: cumulative usage for the whole stream.
                self.usage_final = Some(usage_from_raw(u));
            }
        }
    }

    /// Records which stop string ended each finishing choice (once per choice, so
    /// the second parse of the event costs nothing on the hot path).
    fn read_stop_strings(&mut self, data: &str) {
        let Ok(info) = serde_json::from_str::<StopInfo>(data) else {
            return;
        };
        for c in info.choices {
            let stop = [c.stop_reason, c.matched_stop]
                .into_iter()
                .flatten()
                .find_map(|v| match v {
                    Value::String(s) if !s.is_empty() => Some(s),
                    _ => None,
                });
            if let Some(s) = stop {
                self.choice(c.index.unwrap_or(0)).stop_sequence = Some(s);
            }
        }
    }

    fn choice(&mut self, index: u32) -> &mut ChoiceState {
        let pos = match self.choices.iter().position(|c| c.index == index) {
            Some(p) => p,
            None => {
                let think = match self.ctx.reasoning {
                    Reasoning::ThinkTags => Some(ThinkSplitter::new(true)),
                    _ => Some(ThinkSplitter::new(false)),
                };
                self.choices.push(ChoiceState {
                    index,
                    role_sent: false,
                    think,
                    finish: None,
                    stop_sequence: None,
                    calls: Vec::new(),
                    held: None,
                    answer_started: false,
                });
                self.choices.len() - 1
            }
        };
        &mut self.choices[pos]
    }

    /// Starts choice `index` if it has not started yet.
    fn ensure_start(&mut self, index: u32, out: &mut Vec<StreamEvent>) {
        if self.choice(index).role_sent {
            return;
        }
        self.choice(index).role_sent = true;
        out.push(StreamEvent::Start { choice: index });
    }

    fn reasoning_delta(&mut self, index: u32, text: &str, out: &mut Vec<StreamEvent>) {
        self.ensure_start(index, out);
        out.push(StreamEvent::Reasoning {
            choice: index,
            text: text.to_string(),
        });
    }

    fn text_delta(&mut self, index: u32, text: &str, out: &mut Vec<StreamEvent>) {
        if text.is_empty() {
            return;
        }
        self.ensure_start(index, out);
        let split = match self.choice(index).think.as_mut() {
            Some(t) => t.push(text),
            None => super::think::Split {
                reasoning: String::new(),
                answer: text.to_string(),
            },
        };
        self.emit_split(index, split.reasoning, split.answer, out);
    }

    fn emit_split(
        &mut self,
        index: u32,
        reasoning: String,
        answer: String,
        out: &mut Vec<StreamEvent>,
    ) {
        if !reasoning.is_empty() {
            out.push(StreamEvent::Reasoning {
                choice: index,
                text: reasoning,
            });
        }
        if answer.is_empty() {
            return;
        }
        let may_be_tool = !self.ctx.tools.is_empty();
        let c = self.choice(index);
        if !c.answer_started {
            c.answer_started = true;
            let t = answer.trim_start();
            let looks_like_call = ["{", "[", "<tool_call>", "```", "<|python_tag|>"]
                .iter()
                .any(|p| t.starts_with(p) || (t.len() < p.len() && p.starts_with(t)));
            if may_be_tool && c.calls.is_empty() && looks_like_call {
                c.held = Some(String::new());
            }
        }
        if let Some(h) = c.held.as_mut() {
            h.push_str(&answer);
            if h.len() <= MAX_HELD_TOOL_TEXT {
                return;
            }
            let text = c.held.take().unwrap_or_default();
            out.push(StreamEvent::Text {
                choice: index,
                text,
            });
            return;
        }
        out.push(StreamEvent::Text {
            choice: index,
            text: answer,
        });
    }

    fn tool_call(
        &mut self,
        index: u32,
        call: &RawToolCall,
        fragment: bool,
        out: &mut Vec<StreamEvent>,
    ) {
        self.ensure_start(index, out);
        let key = match (fragment, call.index, call.id()) {
            (true, Some(i), _) => CallKey::Index(i),
            (true, None, Some(id)) => CallKey::Id(id.to_string()),
            _ => CallKey::Whole,
        };
        let existing = if key == CallKey::Whole {
            None
        } else {
            self.choice(index)
                .calls
                .iter()
                .find(|c| c.key == key)
                .map(|c| c.out_index)
        };
        let args = call.arguments();
        match existing {
            Some(out_index) => {
                let Some(args) = args.filter(|a| !a.is_empty()) else {
                    return;
                };
                out.push(StreamEvent::ToolArguments {
                    choice: index,
                    call: out_index,
                    arguments: args,
                });
            }
            None => {
                let Some(name) = call.name() else { return };
                let name = name.to_string();
                let id = match call.id() {
                    Some(id) => id.to_string(),
                    None => self.ctx.call_id(self.calls_made),
                };
                self.calls_made += 1;
                let c = self.choice(index);
                let out_index = c.calls.len() as u32;
                c.calls.push(CallState { key, out_index });
                out.push(StreamEvent::ToolCall {
                    choice: index,
                    call: out_index,
                    id,
                    name,
                    arguments: args.unwrap_or_default(),
                });
            }
        }
    }

    fn complete(&mut self, out: &mut Vec<StreamEvent>) {
        if self.choices.is_empty() {
            self.ensure_start(0, out);
        }
        let usage = self.usage_final.clone().or_else(|| self.usage_sum.clone());
        let completion_tokens = usage.as_ref().map(|u| u.completion_tokens);
        let indices: Vec<u32> = self.choices.iter().map(|c| c.index).collect();
        for index in indices {
            let tail = self.choice(index).think.as_mut().map(|t| t.finish());
            if let Some(split) = tail {
                self.emit_split(index, split.reasoning, split.answer, out);
            }
            if let Some(held) = self.choice(index).held.take() {
                match tools::recover(&held, &self.ctx.tools) {
                    Some(calls) => {
                        for (name, arguments) in calls {
                            let call = RawToolCall {
                                name: Some(name),
                                arguments: Some(Value::String(arguments)),
                                ..RawToolCall::default()
                            };
                            self.tool_call(index, &call, false, out);
                        }
                    }
                    None => out.push(StreamEvent::Text {
                        choice: index,
                        text: held,
                    }),
                }
            }
            let c = self.choice(index);
            let stop_sequence = c.stop_sequence.take();
            let (has_calls, finish) = (!c.calls.is_empty(), c.finish);
            let reason = if has_calls {
                if self.ctx.legacy_functions {
                    FinishReason::FunctionCall
                } else {
                    FinishReason::ToolCalls
                }
            } else {
                finish.unwrap_or_else(|| length_heuristic(&self.ctx, completion_tokens))
            };
            out.push(StreamEvent::Finish {
                choice: index,
                reason,
                stop_sequence,
            });
        }
        out.push(StreamEvent::Done { usage });
        self.done = true;
    }

    fn error(&mut self, out: &mut Vec<StreamEvent>, e: Error) {
        out.push(StreamEvent::Error(e));
        self.done = true;
    }
}

/// Writes OpenAI `chat.completion.chunk` events, or `text_completion` chunks for
/// `/v1/completions` (by [`ChatContext::dialect`]), ending in `data: [DONE]`.
#[derive(Debug)]
pub struct ChunkWriter {
    ctx: ChatContext,
}

impl ChunkWriter {
    pub fn new(ctx: ChatContext) -> Self {
        Self { ctx }
    }

    fn write_delta(
        &self,
        index: u32,
        delta: Delta,
        finish_reason: Option<FinishReason>,
        out: &mut Vec<u8>,
    ) {
        if self.ctx.dialect == Dialect::TextCompletion {
            // Text only: role, reasoning and tool deltas have no place in it.
            let text = delta.content.unwrap_or_default();
            if text.is_empty() && finish_reason.is_none() {
                return;
            }
            let chunk = TextChunk {
                id: &self.ctx.id,
                object: "text_completion",
                created: self.ctx.created,
                model: &self.ctx.model,
                choices: vec![TextChunkChoice {
                    text,
                    index,
                    logprobs: None,
                    finish_reason,
                }],
                usage: self.ctx.include_usage.then_some(None),
            };
            sse::write_data(out, &serde_json::to_vec(&chunk).unwrap_or_default());
            return;
        }
        let chunk = ChatChunk {
            id: &self.ctx.id,
            object: "chat.completion.chunk",
            created: self.ctx.created,
            model: &self.ctx.model,
            choices: vec![ChunkChoice {
                index,
                delta,
                logprobs: None,
                finish_reason,
            }],
            usage: self.ctx.include_usage.then_some(None),
            system_fingerprint: None,
        };
        write_chunk(out, &chunk);
    }

    fn write_tool_delta(&self, index: u32, delta: ToolCallDelta, out: &mut Vec<u8>) {
        let d = if self.ctx.legacy_functions {
            if delta.index != 0 {
                return; // the deprecated API has a single function call
            }
            Delta {
                function_call: Some(delta.function),
                ..Delta::default()
            }
        } else {
            Delta {
                tool_calls: Some(vec![delta]),
                ..Delta::default()
            }
        };
        self.write_delta(index, d, None, out);
    }

    fn write_usage(&self, usage: &Option<Usage>, out: &mut Vec<u8>) {
        if !self.ctx.include_usage {
            return;
        }
        let usage = Some(Some(usage.clone().unwrap_or_default()));
        if self.ctx.dialect == Dialect::TextCompletion {
            let chunk = TextChunk {
                id: &self.ctx.id,
                object: "text_completion",
                created: self.ctx.created,
                model: &self.ctx.model,
                choices: Vec::new(),
                usage,
            };
            sse::write_data(out, &serde_json::to_vec(&chunk).unwrap_or_default());
        } else {
            let chunk = ChatChunk {
                id: &self.ctx.id,
                object: "chat.completion.chunk",
                created: self.ctx.created,
                model: &self.ctx.model,
                choices: Vec::new(),
                usage,
                system_fingerprint: None,
            };
            write_chunk(out, &chunk);
        }
    }
}

impl EventWriter for ChunkWriter {
    fn write(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        match event {
            StreamEvent::Start { choice } => {
                let delta = Delta {
                    role: Some("assistant"),
                    content: Some(String::new()),
                    ..Delta::default()
                };
                self.write_delta(*choice, delta, None, out);
            }
            StreamEvent::Reasoning { choice, text } => {
                let delta = Delta {
                    reasoning_content: Some(text.clone()),
                    ..Delta::default()
                };
                self.write_delta(*choice, delta, None, out);
            }
            StreamEvent::Text { choice, text } => {
                let delta = Delta {
                    content: Some(text.clone()),
                    ..Delta::default()
                };
                self.write_delta(*choice, delta, None, out);
            }
            StreamEvent::ToolCall {
                choice,
                call,
                id,
                name,
                arguments,
            } => {
                let delta = ToolCallDelta {
                    index: *call,
                    id: Some(id.clone()),
                    kind: Some(ToolKind::Function),
                    function: FunctionCallDelta {
                        name: Some(name.clone()),
                        arguments: Some(arguments.clone()),
                    },
                };
                self.write_tool_delta(*choice, delta, out);
            }
            StreamEvent::ToolArguments {
                choice,
                call,
                arguments,
            } => {
                let delta = ToolCallDelta {
                    index: *call,
                    id: None,
                    kind: None,
                    function: FunctionCallDelta {
                        name: None,
                        arguments: Some(arguments.clone()),
                    },
                };
                self.write_tool_delta(*choice, delta, out);
            }
            StreamEvent::Finish { choice, reason, .. } => {
                self.write_delta(*choice, Delta::default(), Some(*reason), out);
            }
            StreamEvent::Done { usage } => {
                self.write_usage(usage, out);
                out.extend_from_slice(sse::DONE);
            }
            StreamEvent::Error(e) => {
                sse::write_data(out, &e.to_json());
                out.extend_from_slice(sse::DONE);
            }
        }
    }
}

fn add_usage(sum: &mut Option<Usage>, u: &Usage) {
    let s = sum.get_or_insert_with(Usage::default);
    s.prompt_tokens += u.prompt_tokens;
    s.completion_tokens += u.completion_tokens;
    s.total_tokens += u.total_tokens;
    if let Some(d) = &u.prompt_tokens_details {
        s.prompt_tokens_details
            .get_or_insert_with(Default::default)
            .cached_tokens += d.cached_tokens;
    }
    if let Some(d) = &u.completion_tokens_details {
        s.completion_tokens_details
            .get_or_insert_with(Default::default)
            .reasoning_tokens += d.reasoning_tokens;
    }
}

/// An error event inside the stream: `{"error": "..." | {"message", "code"}, "code"?}`.
fn stream_error(raw: &TextResult, data: &str) -> Error {
    let (message, code) = match &raw.error {
        Some(Value::String(s)) => (s.clone(), raw.code),
        Some(Value::Object(o)) => (
            o.get("message")
                .and_then(Value::as_str)
                .unwrap_or("upstream error")
                .to_string(),
            o.get("code").and_then(Value::as_u64).or(raw.code),
        ),
        _ => (data.chars().take(200).collect(), raw.code),
    };
    match code {
        Some(_) => Error::from_workers_ai(code, &message, 500),
        // No Workers AI code: the event may come from any upstream (an OpenAI-shaped
        // server, a provider's translated stream), so it is not named Workers AI.
        None => Error::upstream(format!("The model's stream failed: {message}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn stream_errors_name_workers_ai_only_when_it_sent_a_code() {
        let raw: TextResult =
            serde_json::from_str(r#"{"error":{"message":"Overloaded"}}"#).unwrap();
        let e = stream_error(&raw, "");
        assert!(!e.message().contains("Workers AI"), "{}", e.message());
        assert!(e.message().contains("Overloaded"));
        let raw: TextResult =
            serde_json::from_str(r#"{"error":"Capacity temporarily exceeded","code":3040}"#)
                .unwrap();
        let e = stream_error(&raw, "");
        assert_eq!(e.code(), Some("workers_ai_3040"), "{}", e.message());
    }
}
