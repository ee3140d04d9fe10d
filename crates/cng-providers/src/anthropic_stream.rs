//! Anthropic's streamed Messages answer → the OpenAI `chat.completion.chunk` stream that
//! cng-core's chat stream reader ([`cng_core::chat::StreamReader`]) reads from any
//! OpenAI-shaped upstream, so an Anthropic provider streams through the same path as
//! a Workers AI model: the reader does the client-facing work (ids, `include_usage`,
//! the Responses and Anthropic dialects), this module only changes the upstream shape.
//!
//! Anthropic's events and what each becomes:
//!
//! | Anthropic | OpenAI chunk |
//! |---|---|
//! | `message_start` | role chunk (`delta: {role: "assistant", content: ""}`); its usage kept |
//! | `content_block_start` `text` / `thinking` | `content` / `reasoning_content` if it carries text |
//! | `content_block_start` `tool_use` | `tool_calls[{index, id, type, function: {name, arguments: ""}}]` |
//! | `content_block_delta` `text_delta` | `content` |
//! | `content_block_delta` `thinking_delta` | `reasoning_content` |
//! | `content_block_delta` `input_json_delta` | `tool_calls[{index, function: {arguments}}]` |
//! | `content_block_stop` of a tool that streamed no input | `arguments: "{}"` (as the JSON answer says) |
//! | `message_delta` | stop reason and (cumulative) usage kept |
//! | `message_stop` | finish chunk, usage chunk (`choices: []`), `[DONE]` |
//! | `error` | `{"error": {"message"}}`, which the reader turns into an error event |
//! | `ping`, `signature_delta`, other blocks and deltas | nothing (no OpenAI counterpart) |
//!
//! The finish and usage wait for `message_stop` because Anthropic may send more than
//! one `message_delta`, each with cumulative counts. A stream that ends without
//! `message_stop` ends in an error event, never in a silently short answer.
//!
//! [`AnthropicStream`] is sans-I/O: it decodes with cng-core's incremental
//! [`SseDecoder`], keeps only the open content block and a few counters, and gives the
//! same output for any split of the input.

use bytes::Bytes;
use cng_core::Error;
use cng_core::backend::ByteStream;
use cng_core::openai::chat::{
    ChatChunk, ChunkChoice, CompletionTokensDetails, Delta, FinishReason, FunctionCallDelta,
    PromptTokensDetails, ToolCallDelta, ToolKind, Usage,
};
use cng_core::sse::{self, SseDecoder, SseEvent};
use futures_util::StreamExt;
use serde_json::Value;

use crate::anthropic::finish_reason;

/// Anthropic's stream event types (`type` of each event's data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventKind {
    MessageStart,
    ContentBlockStart,
    ContentBlockDelta,
    ContentBlockStop,
    MessageDelta,
    MessageStop,
    Ping,
    Error,
    /// Anthropic may add event types; clients are told to ignore unknown ones.
    Unknown,
}

impl EventKind {
    fn parse(s: &str) -> Self {
        match s {
            "message_start" => Self::MessageStart,
            "content_block_start" => Self::ContentBlockStart,
            "content_block_delta" => Self::ContentBlockDelta,
            "content_block_stop" => Self::ContentBlockStop,
            "message_delta" => Self::MessageDelta,
            "message_stop" => Self::MessageStop,
            "ping" => Self::Ping,
            "error" => Self::Error,
            _ => Self::Unknown,
        }
    }
}

/// What the open content block is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Text,
    Thinking,
    /// The `call`-th tool call of the answer; `has_arguments` once any input was sent.
    ToolUse {
        call: u32,
        has_arguments: bool,
    },
    /// Blocks with no OpenAI counterpart (`redacted_thinking`, server tools, ...).
    Other,
}

/// The content block being streamed (Anthropic streams them one after another).
#[derive(Debug, Clone, Copy)]
struct OpenBlock {
    index: u64,
    kind: BlockKind,
}

/// Token counts as Anthropic reports them: `message_start` first, then each
/// `message_delta` with cumulative values for the fields it carries.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    input: u64,
    cache_read: u64,
    cache_creation: u64,
    output: u64,
    thinking: Option<u64>,
}

impl Counts {
    fn merge(&mut self, u: &Value) {
        let set = |field: &mut u64, key: &str| {
            if let Some(n) = u[key].as_u64() {
                *field = n;
            }
        };
        set(&mut self.input, "input_tokens");
        set(&mut self.cache_read, "cache_read_input_tokens");
        set(&mut self.cache_creation, "cache_creation_input_tokens");
        set(&mut self.output, "output_tokens");
        if let Some(n) = u["output_tokens_details"]["thinking_tokens"].as_u64() {
            self.thinking = Some(n);
        }
    }

    /// Cached input (read or written) is input: OpenAI's `prompt_tokens` counts it.
    fn usage(&self) -> Usage {
        let prompt = self.input + self.cache_read + self.cache_creation;
        Usage {
            prompt_tokens: prompt,
            completion_tokens: self.output,
            total_tokens: prompt + self.output,
            prompt_tokens_details: Some(PromptTokensDetails {
                cached_tokens: self.cache_read,
            }),
            completion_tokens_details: self.thinking.map(|t| CompletionTokensDetails {
                reasoning_tokens: t,
            }),
        }
    }
}

/// Transcodes one Anthropic Messages stream into OpenAI chat chunks, incrementally.
#[derive(Debug)]
pub struct AnthropicStream {
    model: String,
    decoder: SseDecoder,
    /// Reused between pushes (decoded events of one push).
    events: Vec<SseEvent>,
    /// The message id from `message_start`.
    id: String,
    role_sent: bool,
    block: Option<OpenBlock>,
    /// Tool calls started so far: the next one's OpenAI `index`.
    calls: u32,
    counts: Counts,
    stop_reason: Option<String>,
    stop_sequence: Option<String>,
    done: bool,
}

impl AnthropicStream {
    /// A transcoder whose chunks name `model` (the name the client asked for).
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            decoder: SseDecoder::new(),
            events: Vec::new(),
            id: String::new(),
            role_sent: false,
            block: None,
            calls: 0,
            counts: Counts::default(),
            stop_reason: None,
            stop_sequence: None,
            done: false,
        }
    }

    /// True once `[DONE]` or an error was written; further input is ignored.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Feeds Anthropic bytes (any split); returns the OpenAI bytes they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        let mut events = std::mem::take(&mut self.events);
        match self.decoder.push(bytes, &mut events) {
            Ok(()) => {
                for ev in events.drain(..) {
                    if self.done {
                        break;
                    }
                    self.event(&ev, &mut out);
                }
            }
            Err(e) => self.fail(e.message(), &mut out),
        }
        events.clear();
        self.events = events;
        out
    }

    /// The upstream ended: an answer without `message_stop` ends in an error event.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        let mut events = Vec::new();
        // A last event without its blank line still counts; a cut one fails to parse.
        self.decoder.finish(&mut events);
        for ev in &events {
            if self.done {
                return out;
            }
            self.event(ev, &mut out);
        }
        if !self.done {
            self.fail(
                "Anthropic's stream ended before `message_stop`; the answer is incomplete",
                &mut out,
            );
        }
        out
    }

    fn event(&mut self, ev: &SseEvent, out: &mut Vec<u8>) {
        let Ok(data) = serde_json::from_str::<Value>(&ev.data) else {
            self.fail(
                "Anthropic sent a stream event that is not JSON; the answer is incomplete",
                out,
            );
            return;
        };
        // The data's `type` is authoritative; the `event:` line names the same thing.
        let kind = data["type"]
            .as_str()
            .or(ev.event.as_deref())
            .map_or(EventKind::Unknown, EventKind::parse);
        match kind {
            EventKind::MessageStart => {
                let m = &data["message"];
                if let Some(id) = m["id"].as_str() {
                    self.id = id.to_string();
                }
                self.counts.merge(&m["usage"]);
                self.ensure_role(out);
            }
            EventKind::ContentBlockStart => self.block_start(&data, out),
            EventKind::ContentBlockDelta => self.block_delta(&data, out),
            EventKind::ContentBlockStop => self.block_stop(&data, out),
            EventKind::MessageDelta => {
                let d = &data["delta"];
                if let Some(r) = d["stop_reason"].as_str() {
                    self.stop_reason = Some(r.to_string());
                }
                if let Some(s) = d["stop_sequence"].as_str() {
                    self.stop_sequence = Some(s.to_string());
                }
                self.counts.merge(&data["usage"]);
            }
            EventKind::MessageStop => self.complete(out),
            EventKind::Error => {
                let e = &data["error"];
                let kind = e["type"].as_str().unwrap_or("error");
                let said = e["message"].as_str().unwrap_or("no message");
                self.fail(
                    &format!(
                        "Anthropic's stream failed ({kind}): {said}; the answer is incomplete"
                    ),
                    out,
                );
            }
            EventKind::Ping | EventKind::Unknown => {}
        }
    }

    fn block_start(&mut self, data: &Value, out: &mut Vec<u8>) {
        self.ensure_role(out);
        let b = &data["content_block"];
        let index = data["index"].as_u64().unwrap_or_default();
        let kind = match b["type"].as_str() {
            Some("text") => {
                self.text(b["text"].as_str(), out);
                BlockKind::Text
            }
            Some("thinking") => {
                self.reasoning(b["thinking"].as_str(), out);
                BlockKind::Thinking
            }
            Some("tool_use") => {
                let call = self.calls;
                self.calls += 1;
                // Streamed tool input starts as `{}` and arrives in `input_json_delta`s;
                // an input given whole here is sent whole.
                let input = b["input"]
                    .as_object()
                    .filter(|o| !o.is_empty())
                    .map(|o| Value::Object(o.clone()).to_string());
                let has_arguments = input.is_some();
                self.write_tool(
                    ToolCallDelta {
                        index: call,
                        id: b["id"]
                            .as_str()
                            .filter(|s| !s.is_empty())
                            .map(str::to_string),
                        kind: Some(ToolKind::Function),
                        function: FunctionCallDelta {
                            name: b["name"].as_str().map(str::to_string),
                            arguments: Some(input.unwrap_or_default()),
                        },
                    },
                    out,
                );
                BlockKind::ToolUse {
                    call,
                    has_arguments,
                }
            }
            _ => BlockKind::Other,
        };
        self.block = Some(OpenBlock { index, kind });
    }

    fn block_delta(&mut self, data: &Value, out: &mut Vec<u8>) {
        let d = &data["delta"];
        match d["type"].as_str() {
            Some("text_delta") => self.text(d["text"].as_str(), out),
            Some("thinking_delta") => self.reasoning(d["thinking"].as_str(), out),
            Some("input_json_delta") => {
                let index = data["index"].as_u64().unwrap_or_default();
                let Some(OpenBlock {
                    index: open,
                    kind: BlockKind::ToolUse { call, .. },
                }) = self.block
                else {
                    return;
                };
                let fragment = d["partial_json"].as_str().unwrap_or_default();
                if open != index || fragment.is_empty() {
                    return;
                }
                self.block = Some(OpenBlock {
                    index,
                    kind: BlockKind::ToolUse {
                        call,
                        has_arguments: true,
                    },
                });
                self.write_arguments(call, fragment, out);
            }
            // `signature_delta` (a thinking block's signature), `citations_delta`, and
            // anything newer have no place in an OpenAI chunk.
            _ => {}
        }
    }

    fn block_stop(&mut self, data: &Value, out: &mut Vec<u8>) {
        let index = data["index"].as_u64().unwrap_or_default();
        if let Some(OpenBlock {
            index: open,
            kind:
                BlockKind::ToolUse {
                    call,
                    has_arguments: false,
                },
        }) = self.block
            && open == index
        {
            // A tool without parameters streams no input: its arguments are `{}`.
            self.write_arguments(call, "{}", out);
        }
        if self.block.is_some_and(|b| b.index == index) {
            self.block = None;
        }
    }

    fn ensure_role(&mut self, out: &mut Vec<u8>) {
        if self.role_sent {
            return;
        }
        self.role_sent = true;
        self.write_delta(
            Delta {
                role: Some("assistant"),
                content: Some(String::new()),
                ..Delta::default()
            },
            out,
        );
    }

    fn text(&mut self, text: Option<&str>, out: &mut Vec<u8>) {
        let Some(t) = text.filter(|t| !t.is_empty()) else {
            return;
        };
        self.ensure_role(out);
        self.write_delta(
            Delta {
                content: Some(t.to_string()),
                ..Delta::default()
            },
            out,
        );
    }

    fn reasoning(&mut self, text: Option<&str>, out: &mut Vec<u8>) {
        let Some(t) = text.filter(|t| !t.is_empty()) else {
            return;
        };
        self.ensure_role(out);
        self.write_delta(
            Delta {
                reasoning_content: Some(t.to_string()),
                ..Delta::default()
            },
            out,
        );
    }

    fn write_arguments(&self, call: u32, arguments: &str, out: &mut Vec<u8>) {
        self.write_tool(
            ToolCallDelta {
                index: call,
                id: None,
                kind: None,
                function: FunctionCallDelta {
                    name: None,
                    arguments: Some(arguments.to_string()),
                },
            },
            out,
        );
    }

    fn write_tool(&self, call: ToolCallDelta, out: &mut Vec<u8>) {
        self.write_delta(
            Delta {
                tool_calls: Some(vec![call]),
                ..Delta::default()
            },
            out,
        );
    }

    fn write_delta(&self, delta: Delta, out: &mut Vec<u8>) {
        let chunk = self.chunk(
            vec![ChunkChoice {
                index: 0,
                delta,
                logprobs: None,
                finish_reason: None,
            }],
            None,
        );
        write_json(out, serde_json::to_vec(&chunk));
    }

    fn chunk(&self, choices: Vec<ChunkChoice>, usage: Option<Usage>) -> ChatChunk<'_> {
        ChatChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            // Anthropic's events carry no timestamp (the reader writes its own).
            created: 0,
            model: &self.model,
            choices,
            usage: usage.map(Some),
            system_fingerprint: None,
        }
    }

    /// `message_stop`: the finish chunk (with the stop sequence that ended the answer,
    /// as `matched_stop`, which the reader passes on), the usage chunk, `[DONE]`.
    fn complete(&mut self, out: &mut Vec<u8>) {
        self.ensure_role(out);
        let reason: FinishReason = finish_reason(self.stop_reason.as_deref());
        let finish = self.chunk(
            vec![ChunkChoice {
                index: 0,
                delta: Delta::default(),
                logprobs: None,
                finish_reason: Some(reason),
            }],
            None,
        );
        match (&self.stop_sequence, serde_json::to_value(&finish)) {
            (Some(s), Ok(mut v)) => {
                v["choices"][0]["matched_stop"] = Value::String(s.clone());
                write_json(out, serde_json::to_vec(&v));
            }
            _ => write_json(out, serde_json::to_vec(&finish)),
        }
        let usage = self.chunk(Vec::new(), Some(self.counts.usage()));
        write_json(out, serde_json::to_vec(&usage));
        out.extend_from_slice(sse::DONE);
        self.done = true;
    }

    /// Ends the output with an error event; nothing follows it.
    fn fail(&mut self, message: &str, out: &mut Vec<u8>) {
        let body = serde_json::json!({"error": {"message": message}});
        write_json(out, serde_json::to_vec(&body));
        self.done = true;
    }
}

/// Appends `data: <json>` (serialising cng's plain chunk types into a Vec cannot fail).
fn write_json(out: &mut Vec<u8>, json: serde_json::Result<Vec<u8>>) {
    if let Ok(json) = json {
        sse::write_data(out, &json);
    }
}

/// Transcodes an Anthropic response body as it arrives. Transport errors are passed
/// on as they are (the chat reader reports them), and the upstream is dropped as soon
/// as the answer is complete.
pub fn transcode(upstream: ByteStream, model: impl Into<String>) -> ByteStream {
    struct State {
        upstream: ByteStream,
        t: AnthropicStream,
        ended: bool,
    }
    let state = State {
        upstream,
        t: AnthropicStream::new(model),
        ended: false,
    };
    Box::pin(futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if st.ended {
                return None;
            }
            let out = match st.upstream.next().await {
                Some(Ok(bytes)) => st.t.push(&bytes),
                Some(Err(e)) => {
                    st.ended = true;
                    return Some((Err::<Bytes, Error>(e), st));
                }
                None => st.t.finish(),
            };
            st.ended = st.t.is_done();
            if !out.is_empty() {
                return Some((Ok(Bytes::from(out)), st));
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        reason = "test code"
    )]

    use cng_core::ErrorKind;
    use cng_core::catalog::Reasoning;
    use cng_core::chat::{ChatContext, Dialect, StreamEvent, StreamReader};

    use super::*;

    /// One Anthropic event as Anthropic sends it: a named event and its JSON data.
    fn ev(name: &str, data: &str) -> String {
        format!("event: {name}\ndata: {data}\n\n")
    }

    fn message_start(input_tokens: u64) -> String {
        ev(
            "message_start",
            &format!(
                r#"{{"type":"message_start","message":{{"id":"msg_01","type":"message","role":"assistant","content":[],"model":"claude-haiku-4-5","stop_reason":null,"stop_sequence":null,"usage":{{"input_tokens":{input_tokens},"output_tokens":1}}}}}}"#
            ),
        )
    }

    fn ping() -> String {
        ev("ping", r#"{"type": "ping"}"#)
    }

    fn text_block(index: u64, parts: &[&str]) -> String {
        let mut s = ev(
            "content_block_start",
            &format!(
                r#"{{"type":"content_block_start","index":{index},"content_block":{{"type":"text","text":""}}}}"#
            ),
        );
        for p in parts {
            s += &ev(
                "content_block_delta",
                &format!(
                    r#"{{"type":"content_block_delta","index":{index},"delta":{{"type":"text_delta","text":{}}}}}"#,
                    Value::String((*p).to_string())
                ),
            );
        }
        s + &block_stop(index)
    }

    fn tool_block(index: u64, id: &str, name: &str, fragments: &[&str]) -> String {
        let mut s = ev(
            "content_block_start",
            &format!(
                r#"{{"type":"content_block_start","index":{index},"content_block":{{"type":"tool_use","id":"{id}","name":"{name}","input":{{}}}}}}"#
            ),
        );
        for f in fragments {
            s += &ev(
                "content_block_delta",
                &format!(
                    r#"{{"type":"content_block_delta","index":{index},"delta":{{"type":"input_json_delta","partial_json":{}}}}}"#,
                    Value::String((*f).to_string())
                ),
            );
        }
        s + &block_stop(index)
    }

    fn block_stop(index: u64) -> String {
        ev(
            "content_block_stop",
            &format!(r#"{{"type":"content_block_stop","index":{index}}}"#),
        )
    }

    fn message_delta(stop_reason: &str, usage: &str) -> String {
        ev(
            "message_delta",
            &format!(
                r#"{{"type":"message_delta","delta":{{"stop_reason":"{stop_reason}","stop_sequence":null}},"usage":{usage}}}"#
            ),
        )
    }

    fn message_stop() -> String {
        ev("message_stop", r#"{"type":"message_stop"}"#)
    }

    fn text_stream() -> String {
        [
            message_start(25),
            text_block(0, &["Hello", ", wörld"]),
            ping(),
            message_delta("end_turn", r#"{"output_tokens":15}"#),
            message_stop(),
        ]
        .concat()
    }

    fn two_tools_stream() -> String {
        [
            message_start(472),
            ping(),
            text_block(0, &["Checking both."]),
            tool_block(
                1,
                "toolu_01A",
                "get_weather",
                &["", "{\"loca", "tion\": \"Oslo", "\"}"],
            ),
            tool_block(2, "toolu_01B", "get_time", &["{\"tz\":", " \"CET\"}"]),
            message_delta("tool_use", r#"{"output_tokens":89}"#),
            message_stop(),
        ]
        .concat()
    }

    fn thinking_stream() -> String {
        [
            message_start(30),
            ev(
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
            ),
            ev(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Two plus two "}}"#,
            ),
            ev(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"is four."}}"#,
            ),
            ev(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"}}"#,
            ),
            block_stop(0),
            text_block(1, &["4"]),
            message_delta(
                "end_turn",
                r#"{"output_tokens":40,"output_tokens_details":{"thinking_tokens":31}}"#,
            ),
            message_stop(),
        ]
        .concat()
    }

    fn max_tokens_stream() -> String {
        [
            ev(
                "message_start",
                r#"{"type":"message_start","message":{"id":"msg_02","type":"message","role":"assistant","content":[],"model":"claude-haiku-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}"#,
            ),
            text_block(0, &["Once upon a"]),
            // Cumulative counts, the last `message_delta` wins.
            message_delta("max_tokens", r#"{"output_tokens":2}"#),
            message_delta(
                "max_tokens",
                r#"{"input_tokens":10,"cache_read_input_tokens":100,"cache_creation_input_tokens":7,"output_tokens":4}"#,
            ),
            message_stop(),
        ]
        .concat()
    }

    fn error_stream() -> String {
        [
            message_start(12),
            text_block(0, &["Partial"]),
            ev(
                "error",
                r#"{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}"#,
            ),
            // Nothing after an error is read.
            message_delta("end_turn", r#"{"output_tokens":3}"#),
            message_stop(),
        ]
        .concat()
    }

    fn all_cases() -> Vec<(&'static str, String)> {
        vec![
            ("text", text_stream()),
            ("two tools", two_tools_stream()),
            ("thinking", thinking_stream()),
            ("max tokens", max_tokens_stream()),
            ("error", error_stream()),
            (
                "truncated",
                [message_start(3), text_block(0, &["cut"])].concat(),
            ),
        ]
    }

    fn transcode_chunks(chunks: &[&[u8]]) -> Vec<u8> {
        let mut t = AnthropicStream::new("claude-haiku-4-5");
        let mut out = Vec::new();
        for c in chunks {
            out.extend(t.push(c));
        }
        out.extend(t.finish());
        assert!(t.is_done());
        out
    }

    /// The output for the whole input at once, checked against every two-way split
    /// and a byte-by-byte feed.
    fn transcode_all(input: &str) -> String {
        let b = input.as_bytes();
        let whole = transcode_chunks(&[b]);
        for i in 0..=b.len() {
            assert_eq!(
                transcode_chunks(&[&b[..i], &b[i..]]),
                whole,
                "split at byte {i}"
            );
        }
        let bytes: Vec<&[u8]> = b.chunks(1).collect();
        assert_eq!(transcode_chunks(&bytes), whole, "byte by byte");
        String::from_utf8(whole).unwrap()
    }

    /// The output read as cng-core's chat reader reads an OpenAI-shaped upstream.
    fn read(output: &str) -> Vec<StreamEvent> {
        let ctx = ChatContext {
            id: "chatcmpl-test".into(),
            created: 1,
            model: "claude-haiku-4-5".into(),
            include_usage: true,
            reasoning: Reasoning::Separate,
            tools: vec!["get_weather".into(), "get_time".into()],
            legacy_functions: false,
            max_tokens: None,
            call_id_prefix: "call_test".into(),
            dialect: Dialect::Chat,
        };
        let mut r = StreamReader::new(ctx);
        let mut events = Vec::new();
        r.push(output.as_bytes(), &mut events);
        r.finish(&mut events);
        events
    }

    fn data_lines(output: &str) -> Vec<Value> {
        output
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    }

    #[test]
    fn every_case_gives_the_same_output_for_every_split() {
        for (name, input) in all_cases() {
            let out = transcode_all(&input);
            assert!(!out.is_empty(), "{name}");
            // CRLF line endings are the same stream.
            let crlf = transcode_chunks(&[input.replace('\n', "\r\n").as_bytes()]);
            assert_eq!(String::from_utf8(crlf).unwrap(), out, "{name} with CRLF");
        }
    }

    #[test]
    fn text_becomes_openai_chunks_in_the_workers_ai_shape() {
        let out = transcode_all(&text_stream());
        let chunk = |rest: &str| {
            format!(
                r#"data: {{"id":"msg_01","object":"chat.completion.chunk","created":0,"model":"claude-haiku-4-5","choices":[{rest}],"system_fingerprint":null}}"#
            ) + "\n\n"
        };
        let expected = [
            chunk(r#"{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}"#),
            chunk(r#"{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}"#),
            chunk(r#"{"index":0,"delta":{"content":", wörld"},"logprobs":null,"finish_reason":null}"#),
            chunk(r#"{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}"#),
            r#"data: {"id":"msg_01","object":"chat.completion.chunk","created":0,"model":"claude-haiku-4-5","choices":[],"usage":{"prompt_tokens":25,"completion_tokens":15,"total_tokens":40,"prompt_tokens_details":{"cached_tokens":0}},"system_fingerprint":null}"#.to_string() + "\n\n",
            "data: [DONE]\n\n".to_string(),
        ]
        .concat();
        assert_eq!(out, expected);

        let events = read(&out);
        assert_eq!(events[0], StreamEvent::Start { choice: 0 });
        let text: String = events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Text { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(text, "Hello, wörld");
        let n = events.len();
        assert!(matches!(
            events[n - 2],
            StreamEvent::Finish {
                reason: FinishReason::Stop,
                ..
            }
        ));
        let StreamEvent::Done { usage: Some(u) } = &events[n - 1] else {
            panic!("{events:?}")
        };
        assert_eq!((u.prompt_tokens, u.completion_tokens), (25, 15));
    }

    #[test]
    fn two_tool_uses_become_two_streamed_tool_calls() {
        let out = transcode_all(&two_tools_stream());
        // Only the two starts carry empty arguments: empty `partial_json` is not sent.
        assert_eq!(out.matches(r#""arguments":"""#).count(), 2, "{out}");
        let events = read(&out);
        let mut calls: Vec<(u32, String, String, String)> = Vec::new();
        for e in &events {
            match e {
                StreamEvent::ToolCall {
                    call,
                    id,
                    name,
                    arguments,
                    ..
                } => calls.push((*call, id.clone(), name.clone(), arguments.clone())),
                StreamEvent::ToolArguments {
                    call, arguments, ..
                } => calls[*call as usize].3.push_str(arguments),
                _ => {}
            }
        }
        assert_eq!(calls.len(), 2, "{events:?}");
        assert_eq!(
            (calls[0].1.as_str(), calls[0].2.as_str()),
            ("toolu_01A", "get_weather")
        );
        assert_eq!(
            (calls[1].1.as_str(), calls[1].2.as_str()),
            ("toolu_01B", "get_time")
        );
        let a: Value = serde_json::from_str(&calls[0].3).unwrap();
        let b: Value = serde_json::from_str(&calls[1].3).unwrap();
        assert_eq!(a, serde_json::json!({"location": "Oslo"}));
        assert_eq!(b, serde_json::json!({"tz": "CET"}));
        assert!(
            events
                .iter()
                .any(|e| matches!(e, StreamEvent::Text { text, .. } if text == "Checking both."))
        );
        assert!(events.iter().any(|e| matches!(
            e,
            StreamEvent::Finish {
                reason: FinishReason::ToolCalls,
                ..
            }
        )));
        // The OpenAI indices are the tool calls' order, not Anthropic's block indices.
        let indices: Vec<u64> = data_lines(&out)
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["index"].as_u64())
            .collect();
        assert_eq!(indices, vec![0, 0, 0, 0, 1, 1, 1]);
    }

    #[test]
    fn a_tool_without_input_gets_empty_object_arguments() {
        let input = [
            message_start(5),
            tool_block(0, "toolu_1", "get_time", &[]),
            message_delta("tool_use", r#"{"output_tokens":9}"#),
            message_stop(),
        ]
        .concat();
        let events = read(&transcode_all(&input));
        let args: String = events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::ToolCall { arguments, .. }
                | StreamEvent::ToolArguments { arguments, .. } => Some(arguments.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(args, "{}");
    }

    #[test]
    fn thinking_becomes_reasoning_content_and_signatures_are_dropped() {
        let out = transcode_all(&thinking_stream());
        assert!(!out.contains("EqQBCgIYAhIM"), "{out}");
        let events = read(&out);
        let reasoning: String = events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Reasoning { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(reasoning, "Two plus two is four.");
        assert!(
            events
                .iter()
                .any(|e| matches!(e, StreamEvent::Text { text, .. } if text == "4"))
        );
        let Some(StreamEvent::Done { usage: Some(u) }) = events.last() else {
            panic!("{events:?}")
        };
        assert_eq!(u.completion_tokens, 40);
        assert_eq!(
            u.completion_tokens_details
                .as_ref()
                .unwrap()
                .reasoning_tokens,
            31
        );
    }

    #[test]
    fn max_tokens_is_length_and_cached_input_counts_as_prompt() {
        let out = transcode_all(&max_tokens_stream());
        let events = read(&out);
        assert!(events.iter().any(|e| matches!(
            e,
            StreamEvent::Finish {
                reason: FinishReason::Length,
                ..
            }
        )));
        let Some(StreamEvent::Done { usage: Some(u) }) = events.last() else {
            panic!("{events:?}")
        };
        assert_eq!(u.prompt_tokens, 117);
        assert_eq!(u.completion_tokens, 4);
        assert_eq!(u.total_tokens, 121);
        assert_eq!(u.prompt_tokens_details.as_ref().unwrap().cached_tokens, 100);
    }

    #[test]
    fn stop_sequences_and_refusals_map_like_the_json_answer() {
        let input = [
            message_start(5),
            text_block(0, &["a b"]),
            ev(
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"stop_sequence","stop_sequence":"END"},"usage":{"output_tokens":3}}"#,
            ),
            message_stop(),
        ]
        .concat();
        let events = read(&transcode_all(&input));
        assert!(events.iter().any(|e| matches!(
            e,
            StreamEvent::Finish { reason: FinishReason::Stop, stop_sequence: Some(s), .. } if s == "END"
        )), "{events:?}");

        let input = [
            message_start(5),
            message_delta("refusal", r#"{"output_tokens":0}"#),
            message_stop(),
        ]
        .concat();
        let events = read(&transcode_all(&input));
        assert!(events.iter().any(|e| matches!(
            e,
            StreamEvent::Finish {
                reason: FinishReason::ContentFilter,
                ..
            }
        )));
    }

    #[test]
    fn a_mid_stream_error_ends_in_an_error_the_reader_reports() {
        let out = transcode_all(&error_stream());
        assert!(!out.contains("[DONE]"), "{out}");
        let last = data_lines(&out).pop().unwrap();
        assert!(
            last["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Overloaded")
        );
        let events = read(&out);
        assert!(
            events
                .iter()
                .any(|e| matches!(e, StreamEvent::Text { text, .. } if text == "Partial"))
        );
        let Some(StreamEvent::Error(e)) = events.last() else {
            panic!("{events:?}")
        };
        assert_eq!(e.kind(), ErrorKind::Upstream);
        assert!(e.message().contains("overloaded_error"), "{}", e.message());
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, StreamEvent::Finish { .. }))
        );
    }

    #[test]
    fn a_stream_cut_before_message_stop_is_an_error_not_a_short_answer() {
        // Cut after the stop reason: the reader must not see a finished answer.
        let input = [
            message_start(3),
            text_block(0, &["cut"]),
            message_delta("end_turn", r#"{"output_tokens":2}"#),
        ]
        .concat();
        let events = read(&transcode_all(&input));
        let Some(StreamEvent::Error(e)) = events.last() else {
            panic!("{events:?}")
        };
        assert!(e.message().contains("message_stop"), "{}", e.message());
        // A cut inside an event too.
        let whole = text_stream();
        let events = read(&transcode_all(&whole[..whole.len() - 10]));
        assert!(matches!(events.last(), Some(StreamEvent::Error(_))));
    }

    #[test]
    fn pings_and_unknown_events_change_nothing() {
        let plain = [
            message_start(25),
            text_block(0, &["Hello", ", wörld"]),
            message_delta("end_turn", r#"{"output_tokens":15}"#),
            message_stop(),
        ]
        .concat();
        let noisy = [
            ping(),
            message_start(25),
            ping(),
            text_block(0, &["Hello", ", wörld"]),
            ev("future_event", r#"{"type":"future_event","x":1}"#),
            ": a comment\n\n".to_string(),
            ping(),
            message_delta("end_turn", r#"{"output_tokens":15}"#),
            ping(),
            message_stop(),
        ]
        .concat();
        assert_eq!(transcode_all(&noisy), transcode_all(&plain));
    }

    #[test]
    fn an_event_that_is_not_json_is_an_error() {
        let input = [
            message_start(3),
            "event: content_block_delta\ndata: {\"type\n\n".into(),
        ]
        .concat();
        let events = read(&transcode_all(&input));
        assert!(matches!(events.last(), Some(StreamEvent::Error(_))));
    }

    #[test]
    fn output_follows_input_event_by_event() {
        // Nothing is held back: each text delta is written as soon as it is complete.
        let mut t = AnthropicStream::new("m");
        assert!(!t.push(message_start(1).as_bytes()).is_empty());
        t.push(
            br#"event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

"#,
        );
        for i in 0..1000 {
            let delta = format!(
                "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"w{i} \"}}}}\n\n"
            );
            let out = String::from_utf8(t.push(delta.as_bytes())).unwrap();
            assert!(out.contains(&format!("w{i} ")), "{out}");
        }
        assert!(!t.is_done());
    }

    #[tokio::test]
    async fn transport_errors_pass_through_and_the_upstream_is_dropped_when_done() {
        let parts: Vec<Result<Bytes, Error>> = vec![
            Ok(Bytes::from(message_start(1))),
            Err(Error::new(ErrorKind::UpstreamTimeout, "idle for 30s")),
            Ok(Bytes::from(message_stop())),
        ];
        let mut s = transcode(Box::pin(futures_util::stream::iter(parts)), "m");
        assert!(s.next().await.unwrap().is_ok());
        let e = s.next().await.unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UpstreamTimeout);
        assert!(s.next().await.is_none());

        // After `[DONE]` the rest of the upstream is not read.
        let parts: Vec<Result<Bytes, Error>> = vec![
            Ok(Bytes::from(text_stream())),
            Err(Error::internal("read after the end")),
        ];
        let mut s = transcode(Box::pin(futures_util::stream::iter(parts)), "m");
        let out = s.next().await.unwrap().unwrap();
        assert!(out.ends_with(sse::DONE));
        assert!(s.next().await.is_none());
    }
}
