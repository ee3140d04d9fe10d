//! [`StreamEvent`]s → Responses API server-sent events.
//!
//! The event sequence is OpenAI's: `response.created`, `response.in_progress`, then for
//! each output item `response.output_item.added`, `response.content_part.added`, its
//! deltas (`response.output_text.delta`, `response.reasoning_text.delta`,
//! `response.function_call_arguments.delta`), their `.done` events,
//! `response.content_part.done`, `response.output_item.done`; last
//! `response.completed` (or `response.incomplete` when the output limit cut the answer,
//! `response.failed` when the upstream failed). Every event is named (`event:` line)
//! and carries an increasing `sequence_number` from 0; there is no `[DONE]`.
//!
//! Unlike the chat dialect, this protocol repeats the whole text in its `.done` events
//! and the whole response in `response.completed`, so the writer keeps the answer
//! (never the upstream stream). A message or reasoning item is closed as soon as
//! another item starts; function calls stay open until the answer ends, so upstreams
//! that interleave the argument fragments of parallel calls still give whole calls.
//!
//! The same writer builds non-streamed responses ([`ResponsesWriter::silent`]), so a
//! response reads the same streamed or not.

use serde::Serialize;
use serde_json::Value;

use super::wire::{
    IncompleteDetails, IncompleteReason, ItemStatus, OutputItem, OutputText, ReasoningText,
    ResponseError, ResponseObject, ResponseStatus, ResponseUsage,
};
use crate::chat::events::write_named_event;
use crate::chat::{EventWriter, StreamEvent};
use crate::error::{Error, ErrorKind};
use crate::openai::chat::FinishReason;

/// Writes one response's events.
#[derive(Debug)]
pub struct ResponsesWriter {
    resp: ResponseObject,
    /// False: build the response object only, write no bytes.
    emit: bool,
    seq: u64,
    started: bool,
    /// Output index of the open message item, of the open reasoning item.
    open_message: Option<usize>,
    open_reasoning: Option<usize>,
    /// (call number, output index) of every function call item.
    calls: Vec<(u32, usize)>,
    finish: Option<FinishReason>,
    done: bool,
}

/// `{"type": <name>, "sequence_number": n, ...body}`.
#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'a str,
    sequence_number: u64,
    #[serde(flatten)]
    body: T,
}

#[derive(Serialize)]
struct ResponseBody<'a> {
    response: &'a ResponseObject,
}

#[derive(Serialize)]
struct ItemBody<'a> {
    output_index: usize,
    item: &'a OutputItem,
}

#[derive(Serialize)]
struct PartBody<'a, P: Serialize> {
    item_id: &'a str,
    output_index: usize,
    content_index: u32,
    part: P,
}

#[derive(Serialize)]
struct DeltaBody<'a> {
    item_id: &'a str,
    output_index: usize,
    content_index: u32,
    delta: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    logprobs: Option<&'a [Value]>,
}

#[derive(Serialize)]
struct TextDoneBody<'a> {
    item_id: &'a str,
    output_index: usize,
    content_index: u32,
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    logprobs: Option<&'a [Value]>,
}

#[derive(Serialize)]
struct ArgsDeltaBody<'a> {
    item_id: &'a str,
    output_index: usize,
    delta: &'a str,
}

#[derive(Serialize)]
struct ArgsDoneBody<'a> {
    item_id: &'a str,
    output_index: usize,
    name: &'a str,
    arguments: &'a str,
}

const NO_LOGPROBS: &[Value] = &[];

fn event<T: Serialize>(out: &mut Vec<u8>, seq: &mut u64, emit: bool, name: &str, body: T) {
    if emit {
        let env = Envelope {
            kind: name,
            sequence_number: *seq,
            body,
        };
        write_named_event(out, name, &env);
    }
    *seq += 1;
}

impl ResponsesWriter {
    /// A writer of `head` (an `in_progress` response without output) as events.
    pub fn new(head: ResponseObject) -> Self {
        Self::with_emit(head, true)
    }

    /// A writer that only builds the final response object (non-streamed answers).
    pub fn silent(head: ResponseObject) -> Self {
        Self::with_emit(head, false)
    }

    fn with_emit(head: ResponseObject, emit: bool) -> Self {
        Self {
            resp: head,
            emit,
            seq: 0,
            started: false,
            open_message: None,
            open_reasoning: None,
            calls: Vec::new(),
            finish: None,
            done: false,
        }
    }

    /// The response as it stands (final once the answer is done).
    pub fn into_response(self) -> ResponseObject {
        self.resp
    }

    fn item_id(&self, prefix: &str) -> String {
        let base = self.resp.id.strip_prefix("resp_").unwrap_or(&self.resp.id);
        format!("{prefix}_{base}_{}", self.resp.output.len())
    }

    fn ensure_started(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let body = ResponseBody {
            response: &self.resp,
        };
        event(out, &mut self.seq, self.emit, "response.created", body);
        let body = ResponseBody {
            response: &self.resp,
        };
        event(out, &mut self.seq, self.emit, "response.in_progress", body);
    }

    fn add_item(&mut self, item: OutputItem, out: &mut Vec<u8>) -> usize {
        let idx = self.resp.output.len();
        self.resp.output.push(item);
        let body = ItemBody {
            output_index: idx,
            item: &self.resp.output[idx],
        };
        event(
            out,
            &mut self.seq,
            self.emit,
            "response.output_item.added",
            body,
        );
        idx
    }

    fn item_done(&mut self, idx: usize, status: ItemStatus, out: &mut Vec<u8>) {
        self.resp.output[idx].set_status(status);
        let body = ItemBody {
            output_index: idx,
            item: &self.resp.output[idx],
        };
        event(
            out,
            &mut self.seq,
            self.emit,
            "response.output_item.done",
            body,
        );
    }

    /// The open message item, opened (with its `output_text` part) if needed.
    fn message(&mut self, out: &mut Vec<u8>) -> usize {
        if let Some(i) = self.open_message {
            return i;
        }
        self.close_reasoning(ItemStatus::Completed, out);
        let item = OutputItem::Message {
            id: self.item_id("msg"),
            status: ItemStatus::InProgress,
            role: "assistant",
            content: Vec::new(),
        };
        let idx = self.add_item(item, out);
        if let OutputItem::Message { content, .. } = &mut self.resp.output[idx] {
            content.push(OutputText::new(String::new()));
        }
        let body = PartBody {
            item_id: self.resp.output[idx].id(),
            output_index: idx,
            content_index: 0,
            part: OutputText::new(String::new()),
        };
        event(
            out,
            &mut self.seq,
            self.emit,
            "response.content_part.added",
            body,
        );
        self.open_message = Some(idx);
        idx
    }

    /// The open reasoning item, opened (with its `reasoning_text` part) if needed.
    fn reasoning(&mut self, out: &mut Vec<u8>) -> usize {
        if let Some(i) = self.open_reasoning {
            return i;
        }
        self.close_message(ItemStatus::Completed, out);
        let item = OutputItem::Reasoning {
            id: self.item_id("rs"),
            summary: Vec::new(),
            content: Vec::new(),
            status: ItemStatus::InProgress,
        };
        let idx = self.add_item(item, out);
        if let OutputItem::Reasoning { content, .. } = &mut self.resp.output[idx] {
            content.push(ReasoningText::new(String::new()));
        }
        let body = PartBody {
            item_id: self.resp.output[idx].id(),
            output_index: idx,
            content_index: 0,
            part: ReasoningText::new(String::new()),
        };
        event(
            out,
            &mut self.seq,
            self.emit,
            "response.content_part.added",
            body,
        );
        self.open_reasoning = Some(idx);
        idx
    }

    fn close_message(&mut self, status: ItemStatus, out: &mut Vec<u8>) {
        let Some(idx) = self.open_message.take() else {
            return;
        };
        if let OutputItem::Message { id, content, .. } = &self.resp.output[idx] {
            let text = content.first().map_or("", |p| p.text.as_str());
            let body = TextDoneBody {
                item_id: id,
                output_index: idx,
                content_index: 0,
                text,
                logprobs: Some(NO_LOGPROBS),
            };
            event(
                out,
                &mut self.seq,
                self.emit,
                "response.output_text.done",
                body,
            );
            if let Some(part) = content.first() {
                let body = PartBody {
                    item_id: id,
                    output_index: idx,
                    content_index: 0,
                    part,
                };
                event(
                    out,
                    &mut self.seq,
                    self.emit,
                    "response.content_part.done",
                    body,
                );
            }
        }
        self.item_done(idx, status, out);
    }

    fn close_reasoning(&mut self, status: ItemStatus, out: &mut Vec<u8>) {
        let Some(idx) = self.open_reasoning.take() else {
            return;
        };
        if let OutputItem::Reasoning { id, content, .. } = &self.resp.output[idx] {
            let text = content.first().map_or("", |p| p.text.as_str());
            let body = TextDoneBody {
                item_id: id,
                output_index: idx,
                content_index: 0,
                text,
                logprobs: None,
            };
            event(
                out,
                &mut self.seq,
                self.emit,
                "response.reasoning_text.done",
                body,
            );
            if let Some(part) = content.first() {
                let body = PartBody {
                    item_id: id,
                    output_index: idx,
                    content_index: 0,
                    part,
                };
                event(
                    out,
                    &mut self.seq,
                    self.emit,
                    "response.content_part.done",
                    body,
                );
            }
        }
        self.item_done(idx, status, out);
    }

    fn text(&mut self, text: &str, out: &mut Vec<u8>) {
        let idx = self.message(out);
        if let OutputItem::Message { content, .. } = &mut self.resp.output[idx] {
            if let Some(p) = content.first_mut() {
                p.text.push_str(text);
            }
        }
        let body = DeltaBody {
            item_id: self.resp.output[idx].id(),
            output_index: idx,
            content_index: 0,
            delta: text,
            logprobs: Some(NO_LOGPROBS),
        };
        event(
            out,
            &mut self.seq,
            self.emit,
            "response.output_text.delta",
            body,
        );
    }

    fn reasoning_text(&mut self, text: &str, out: &mut Vec<u8>) {
        let idx = self.reasoning(out);
        if let OutputItem::Reasoning { content, .. } = &mut self.resp.output[idx] {
            if let Some(p) = content.first_mut() {
                p.text.push_str(text);
            }
        }
        let body = DeltaBody {
            item_id: self.resp.output[idx].id(),
            output_index: idx,
            content_index: 0,
            delta: text,
            logprobs: None,
        };
        event(
            out,
            &mut self.seq,
            self.emit,
            "response.reasoning_text.delta",
            body,
        );
    }

    fn call_arguments(&mut self, idx: usize, fragment: &str, out: &mut Vec<u8>) {
        if fragment.is_empty() {
            return;
        }
        if let OutputItem::FunctionCall { arguments, .. } = &mut self.resp.output[idx] {
            arguments.push_str(fragment);
        }
        let body = ArgsDeltaBody {
            item_id: self.resp.output[idx].id(),
            output_index: idx,
            delta: fragment,
        };
        event(
            out,
            &mut self.seq,
            self.emit,
            "response.function_call_arguments.delta",
            body,
        );
    }

    fn tool_call(&mut self, call: u32, call_id: &str, name: &str, args: &str, out: &mut Vec<u8>) {
        self.close_message(ItemStatus::Completed, out);
        self.close_reasoning(ItemStatus::Completed, out);
        let item = OutputItem::FunctionCall {
            id: self.item_id("fc"),
            call_id: call_id.to_string(),
            name: name.to_string(),
            arguments: String::new(),
            status: ItemStatus::InProgress,
        };
        let idx = self.add_item(item, out);
        self.calls.push((call, idx));
        self.call_arguments(idx, args, out);
    }

    fn close_calls(&mut self, status: ItemStatus, out: &mut Vec<u8>) {
        for (_, idx) in std::mem::take(&mut self.calls) {
            if let OutputItem::FunctionCall {
                id,
                name,
                arguments,
                ..
            } = &self.resp.output[idx]
            {
                let body = ArgsDoneBody {
                    item_id: id,
                    output_index: idx,
                    name,
                    arguments,
                };
                event(
                    out,
                    &mut self.seq,
                    self.emit,
                    "response.function_call_arguments.done",
                    body,
                );
            }
            self.item_done(idx, status, out);
        }
    }

    fn complete(&mut self, usage: Option<ResponseUsage>, out: &mut Vec<u8>) {
        let incomplete = match self.finish {
            Some(FinishReason::Length) => Some(IncompleteReason::MaxOutputTokens),
            Some(FinishReason::ContentFilter) => Some(IncompleteReason::ContentFilter),
            _ => None,
        };
        let item_status = if incomplete.is_some() {
            ItemStatus::Incomplete
        } else {
            ItemStatus::Completed
        };
        let has_answer = self.resp.output.iter().any(|i| {
            matches!(
                i,
                OutputItem::Message { .. } | OutputItem::FunctionCall { .. }
            )
        });
        if !has_answer {
            // An empty answer is an empty message, as a chat completion's `content: ""`.
            self.message(out);
        }
        self.close_reasoning(item_status, out);
        self.close_message(item_status, out);
        self.close_calls(item_status, out);
        self.resp.usage = usage;
        let name = match incomplete {
            Some(reason) => {
                self.resp.status = ResponseStatus::Incomplete;
                self.resp.incomplete_details = Some(IncompleteDetails { reason });
                "response.incomplete"
            }
            None => {
                self.resp.status = ResponseStatus::Completed;
                "response.completed"
            }
        };
        let body = ResponseBody {
            response: &self.resp,
        };
        event(out, &mut self.seq, self.emit, name, body);
        self.done = true;
    }

    fn fail(&mut self, e: &Error, out: &mut Vec<u8>) {
        self.resp.status = ResponseStatus::Failed;
        self.resp.error = Some(ResponseError {
            code: match e.kind() {
                ErrorKind::RateLimit | ErrorKind::QuotaExceeded => "rate_limit_exceeded",
                _ => "server_error",
            },
            message: e.message().to_string(),
        });
        let body = ResponseBody {
            response: &self.resp,
        };
        event(out, &mut self.seq, self.emit, "response.failed", body);
        self.done = true;
    }
}

impl EventWriter for ResponsesWriter {
    fn write(&mut self, ev: &StreamEvent, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.ensure_started(out);
        match ev {
            // One output per response: `n` is not a Responses parameter.
            StreamEvent::Start { .. } => {}
            StreamEvent::Reasoning { choice: 0, text } => self.reasoning_text(text, out),
            StreamEvent::Text { choice: 0, text } => self.text(text, out),
            StreamEvent::ToolCall {
                choice: 0,
                call,
                id,
                name,
                arguments,
            } => self.tool_call(*call, id, name, arguments, out),
            StreamEvent::ToolArguments {
                choice: 0,
                call,
                arguments,
            } => {
                if let Some(&(_, idx)) = self.calls.iter().find(|(c, _)| c == call) {
                    self.call_arguments(idx, arguments, out);
                }
            }
            StreamEvent::Finish {
                choice: 0, reason, ..
            } => self.finish = Some(*reason),
            StreamEvent::Done { usage } => {
                self.complete(usage.as_ref().map(ResponseUsage::from), out)
            }
            StreamEvent::Error(e) => self.fail(e, out),
            _ => {}
        }
    }
}
