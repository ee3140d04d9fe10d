//! Workers AI SSE → OpenAI `chat.completion.chunk` events, incrementally.
//!
//! [`StreamTranscoder`] is sans-I/O and owns all per-stream state: feed it upstream
//! bytes as they arrive ([`push`](StreamTranscoder::push)), get the bytes to send
//! downstream; call [`finish`](StreamTranscoder::finish) when the upstream ends, or
//! [`fail`](StreamTranscoder::fail) when it errors. Output for any split of the input
//! is the same. Memory is bounded: the SSE decoder holds at most one event, the
//! `<think>` splitter a tag's length, and text that may be a printed tool call is held
//! only up to [`MAX_HELD_TOOL_TEXT`] before it is released as content.
//!
//! Every upstream format is read by the same code: legacy `{response, tool_calls}`
//! events, OpenAI chunks (with Workers AI's `p` padding and per-chunk incremental
//! usage), the native cumulative `{"response":"","usage"}` event that ends even
//! OpenAI-shaped streams (its usage wins over the running sum), and error events.

use serde_json::Value;

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

/// The transcoder of one stream.
#[derive(Debug)]
pub struct StreamTranscoder {
    ctx: ChatContext,
    decoder: SseDecoder,
    events: Vec<SseEvent>,
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

impl StreamTranscoder {
    pub fn new(ctx: ChatContext) -> Self {
        Self {
            ctx,
            decoder: SseDecoder::new(),
            events: Vec::new(),
            choices: Vec::new(),
            calls_made: 0,
            usage_sum: None,
            usage_final: None,
            saw_finish: false,
            done: false,
        }
    }

    /// True once the output is complete (`[DONE]` written); further input is ignored.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Feeds upstream bytes; returns the SSE bytes to send (possibly empty).
    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        let mut events = std::mem::take(&mut self.events);
        if let Err(e) = self.decoder.push(bytes, &mut events) {
            events.clear();
            self.events = events;
            self.write_error(&mut out, &e);
            return out;
        }
        for ev in events.drain(..) {
            if self.done {
                break;
            }
            self.event(&ev, &mut out);
        }
        self.events = events;
        out
    }

    /// The upstream ended. Completes the stream, or — if it was cut off before the
    /// model finished — ends it with an error event; either way `[DONE]` is last.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        let mut events = Vec::new();
        let end = self.decoder.finish(&mut events);
        for ev in &events {
            if self.done {
                return out;
            }
            self.event(ev, &mut out);
        }
        if self.done {
            return out;
        }
        if end == EndState::Clean && (self.saw_finish || self.usage_final.is_some()) {
            self.complete(&mut out);
        } else {
            let e = Error::new(
                ErrorKind::Upstream,
                "The upstream stream ended before the model finished; the answer is incomplete.",
            )
            .with_code("upstream_stream_truncated");
            self.write_error(&mut out, &e);
        }
        out
    }

    /// The upstream failed mid-way (I/O error, idle timeout): ends the stream with an
    /// error event and `[DONE]`.
    pub fn fail(&mut self, err: &Error) -> Vec<u8> {
        let mut out = Vec::new();
        if !self.done {
            self.write_error(&mut out, err);
        }
        out
    }

    fn event(&mut self, ev: &SseEvent, out: &mut Vec<u8>) {
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
                self.write_error(out, &e);
                return;
            }
        };
        if ev.event.as_deref() == Some("error") || raw.error.is_some() {
            let e = stream_error(&raw, data);
            self.write_error(out, &e);
            return;
        }
        let openai_shaped = !raw.choices.is_empty() || data.contains("\"choices\"");
        if openai_shaped {
            if let Some(u) = &raw.usage {
                add_usage(&mut self.usage_sum, &usage_from_raw(u));
            }
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
                }
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
                    calls: Vec::new(),
                    held: None,
                    answer_started: false,
                });
                self.choices.len() - 1
            }
        };
        &mut self.choices[pos]
    }

    /// Sends the role chunk of choice `index` if it has not been sent yet.
    fn ensure_role(&mut self, index: u32, out: &mut Vec<u8>) {
        if self.choice(index).role_sent {
            return;
        }
        self.choice(index).role_sent = true;
        let delta = Delta {
            role: Some("assistant"),
            content: Some(String::new()),
            ..Delta::default()
        };
        self.write_delta(index, delta, None, out);
    }

    fn reasoning_delta(&mut self, index: u32, text: &str, out: &mut Vec<u8>) {
        self.ensure_role(index, out);
        let delta = Delta {
            reasoning_content: Some(text.to_string()),
            ..Delta::default()
        };
        self.write_delta(index, delta, None, out);
    }

    fn text_delta(&mut self, index: u32, text: &str, out: &mut Vec<u8>) {
        if text.is_empty() {
            return;
        }
        self.ensure_role(index, out);
        let split = match self.choice(index).think.as_mut() {
            Some(t) => t.push(text),
            None => super::think::Split {
                reasoning: String::new(),
                answer: text.to_string(),
            },
        };
        self.emit_split(index, split.reasoning, split.answer, out);
    }

    fn emit_split(&mut self, index: u32, reasoning: String, answer: String, out: &mut Vec<u8>) {
        if !reasoning.is_empty() {
            let delta = Delta {
                reasoning_content: Some(reasoning),
                ..Delta::default()
            };
            self.write_delta(index, delta, None, out);
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
            self.write_content(index, text, out);
            return;
        }
        self.write_content(index, answer, out);
    }

    fn write_content(&mut self, index: u32, text: String, out: &mut Vec<u8>) {
        let delta = Delta {
            content: Some(text),
            ..Delta::default()
        };
        self.write_delta(index, delta, None, out);
    }

    fn tool_call(&mut self, index: u32, call: &RawToolCall, fragment: bool, out: &mut Vec<u8>) {
        self.ensure_role(index, out);
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
        let delta = match existing {
            Some(out_index) => {
                let args = args.filter(|a| !a.is_empty());
                if args.is_none() {
                    return;
                }
                ToolCallDelta {
                    index: out_index,
                    id: None,
                    kind: None,
                    function: FunctionCallDelta {
                        name: None,
                        arguments: args,
                    },
                }
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
                ToolCallDelta {
                    index: out_index,
                    id: Some(id),
                    kind: Some(ToolKind::Function),
                    function: FunctionCallDelta {
                        name: Some(name),
                        arguments: Some(args.unwrap_or_default()),
                    },
                }
            }
        };
        self.write_tool_delta(index, delta, out);
    }

    fn write_tool_delta(&mut self, index: u32, delta: ToolCallDelta, out: &mut Vec<u8>) {
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

    fn complete(&mut self, out: &mut Vec<u8>) {
        if self.choices.is_empty() {
            self.ensure_role(0, out);
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
                    None => self.write_content(index, held, out),
                }
            }
            let c = self.choice(index);
            let reason = if !c.calls.is_empty() {
                if self.ctx.legacy_functions {
                    FinishReason::FunctionCall
                } else {
                    FinishReason::ToolCalls
                }
            } else {
                c.finish
                    .unwrap_or_else(|| length_heuristic(&self.ctx, completion_tokens))
            };
            self.write_delta(index, Delta::default(), Some(reason), out);
        }
        if self.ctx.include_usage && self.ctx.dialect == Dialect::TextCompletion {
            let chunk = TextChunk {
                id: &self.ctx.id,
                object: "text_completion",
                created: self.ctx.created,
                model: &self.ctx.model,
                choices: Vec::new(),
                usage: Some(Some(usage.clone().unwrap_or_default())),
            };
            sse::write_data(out, &serde_json::to_vec(&chunk).unwrap_or_default());
        } else if self.ctx.include_usage {
            let chunk = ChatChunk {
                id: &self.ctx.id,
                object: "chat.completion.chunk",
                created: self.ctx.created,
                model: &self.ctx.model,
                choices: Vec::new(),
                usage: Some(Some(usage.unwrap_or_default())),
                system_fingerprint: None,
            };
            write_chunk(out, &chunk);
        }
        out.extend_from_slice(sse::DONE);
        self.done = true;
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

    fn write_error(&mut self, out: &mut Vec<u8>, e: &Error) {
        sse::write_data(out, &e.to_json());
        out.extend_from_slice(sse::DONE);
        self.done = true;
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
    Error::from_workers_ai(code, &message, 500)
}
