//! [`StreamEvent`]s → Anthropic Messages server-sent events.
//!
//! The sequence Anthropic documents: `message_start` (the message with empty content),
//! per content block `content_block_start`, `content_block_delta`s (`text_delta`,
//! `input_json_delta`, `thinking_delta`) and `content_block_stop`; then
//! `message_delta` with `stop_reason`, `stop_sequence` and the usage, and
//! `message_stop`. Every event is named (`event:` line; Anthropic's SDK skips unnamed
//! events). An upstream failure after the stream started is an `error` event
//! (`{"type":"error","error":{"type","message"}}`) and nothing follows.
//!
//! Workers AI reports usage only at the end, so `message_start` carries zeros and the
//! `message_delta` the totals, input tokens included (usage on `message_delta` is
//! cumulative, per Anthropic's SDK). A block is closed when the next one starts; the
//! writer keeps no text, only which block is open, so memory stays constant.

use serde::Serialize;
use serde_json::{Value, json};

use super::error::error_type;
use super::messages::{MessageUsage, StopReason};
use super::request::MessagesPlan;
use super::response::stop_reason;
use crate::chat::events::write_named_event;
use crate::chat::{EventWriter, StreamEvent};
use crate::error::Error;
use crate::openai::chat::FinishReason;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Thinking,
    Text,
    ToolUse,
}

/// Writes one message's events.
#[derive(Debug)]
pub struct MessagesWriter {
    id: String,
    model: String,
    thinking: bool,
    stops: Vec<String>,
    started: bool,
    open: Option<(u32, BlockKind)>,
    next_block: u32,
    /// (call number, block index) of every tool_use block.
    calls: Vec<(u32, u32)>,
    finish: Option<(FinishReason, Option<String>)>,
    done: bool,
}

#[derive(Serialize)]
struct MessageStart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: StartMessage<'a>,
}

#[derive(Serialize)]
struct StartMessage<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: [Value; 0],
    stop_reason: Option<StopReason>,
    stop_sequence: Option<String>,
    usage: MessageUsage,
}

#[derive(Serialize)]
struct BlockStart {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
    content_block: Value,
}

#[derive(Serialize)]
struct BlockDelta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
    delta: Delta<'a>,
}

/// A block delta: `text_delta`, `input_json_delta` or `thinking_delta`.
#[derive(Serialize)]
#[serde(tag = "type")]
enum Delta<'a> {
    #[serde(rename = "text_delta")]
    Text { text: &'a str },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: &'a str },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a str },
}

#[derive(Serialize)]
struct BlockStop {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
}

#[derive(Serialize)]
struct MessageDelta {
    #[serde(rename = "type")]
    kind: &'static str,
    delta: StopDelta,
    usage: MessageUsage,
}

#[derive(Serialize)]
struct StopDelta {
    stop_reason: StopReason,
    stop_sequence: Option<String>,
}

impl MessagesWriter {
    pub fn new(plan: &MessagesPlan) -> Self {
        Self {
            id: plan.id.clone(),
            model: plan.model.clone(),
            thinking: plan.thinking,
            stops: plan.stop_sequences.clone(),
            started: false,
            open: None,
            next_block: 0,
            calls: Vec::new(),
            finish: None,
            done: false,
        }
    }

    fn ensure_started(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let ev = MessageStart {
            kind: "message_start",
            message: StartMessage {
                id: &self.id,
                kind: "message",
                role: "assistant",
                model: &self.model,
                content: [],
                stop_reason: None,
                stop_sequence: None,
                usage: MessageUsage::default(),
            },
        };
        write_named_event(out, "message_start", &ev);
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if let Some((index, _)) = self.open.take() {
            let ev = BlockStop {
                kind: "content_block_stop",
                index,
            };
            write_named_event(out, "content_block_stop", &ev);
        }
    }

    fn start_block(&mut self, kind: BlockKind, block: Value, out: &mut Vec<u8>) -> u32 {
        self.close(out);
        let index = self.next_block;
        self.next_block += 1;
        let ev = BlockStart {
            kind: "content_block_start",
            index,
            content_block: block,
        };
        write_named_event(out, "content_block_start", &ev);
        self.open = Some((index, kind));
        index
    }

    /// The open block of `kind`, started if another (or none) is open.
    fn block(&mut self, kind: BlockKind, out: &mut Vec<u8>) -> u32 {
        match self.open {
            Some((index, k)) if k == kind => index,
            _ => {
                let block = match kind {
                    BlockKind::Thinking => {
                        json!({"type": "thinking", "thinking": "", "signature": ""})
                    }
                    _ => json!({"type": "text", "text": ""}),
                };
                self.start_block(kind, block, out)
            }
        }
    }

    fn delta(&self, index: u32, delta: Delta<'_>, out: &mut Vec<u8>) {
        let ev = BlockDelta {
            kind: "content_block_delta",
            index,
            delta,
        };
        write_named_event(out, "content_block_delta", &ev);
    }

    fn complete(&mut self, usage: MessageUsage, out: &mut Vec<u8>) {
        self.close(out);
        let (finish, matched) = self.finish.take().unwrap_or((FinishReason::Stop, None));
        let (stop_reason, stop_sequence) = stop_reason(finish, matched.as_deref(), &self.stops);
        let ev = MessageDelta {
            kind: "message_delta",
            delta: StopDelta {
                stop_reason,
                stop_sequence,
            },
            usage,
        };
        write_named_event(out, "message_delta", &ev);
        write_named_event(out, "message_stop", &json!({"type": "message_stop"}));
        self.done = true;
    }

    fn fail(&mut self, e: &Error, out: &mut Vec<u8>) {
        let body =
            json!({"type": "error", "error": {"type": error_type(e), "message": e.message()}});
        write_named_event(out, "error", &body);
        self.done = true;
    }
}

impl EventWriter for MessagesWriter {
    fn write(&mut self, ev: &StreamEvent, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.ensure_started(out);
        match ev {
            StreamEvent::Reasoning { choice: 0, text } if self.thinking => {
                let index = self.block(BlockKind::Thinking, out);
                self.delta(index, Delta::Thinking { thinking: text }, out);
            }
            StreamEvent::Text { choice: 0, text } => {
                let index = self.block(BlockKind::Text, out);
                self.delta(index, Delta::Text { text }, out);
            }
            StreamEvent::ToolCall {
                choice: 0,
                call,
                id,
                name,
                arguments,
            } => {
                let block = json!({"type": "tool_use", "id": id, "name": name, "input": {}});
                let index = self.start_block(BlockKind::ToolUse, block, out);
                self.calls.push((*call, index));
                if !arguments.is_empty() {
                    self.delta(
                        index,
                        Delta::InputJson {
                            partial_json: arguments,
                        },
                        out,
                    );
                }
            }
            StreamEvent::ToolArguments {
                choice: 0,
                call,
                arguments,
            } => {
                // Fragments of an earlier call (interleaved parallel calls) still go to
                // its block: clients accumulate by block index.
                if let Some(&(_, index)) = self.calls.iter().find(|(c, _)| c == call) {
                    self.delta(
                        index,
                        Delta::InputJson {
                            partial_json: arguments,
                        },
                        out,
                    );
                }
            }
            StreamEvent::Finish {
                choice: 0,
                reason,
                stop_sequence,
            } => self.finish = Some((*reason, stop_sequence.clone())),
            StreamEvent::Done { usage } => {
                let usage = usage.as_ref().map(MessageUsage::from).unwrap_or_default();
                self.complete(usage, out);
            }
            StreamEvent::Error(e) => self.fail(e, out),
            _ => {}
        }
    }
}
