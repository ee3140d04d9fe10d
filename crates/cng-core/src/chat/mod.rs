//! `POST /v1/chat/completions`: translation in both directions.
//!
//! 1. [`plan`] turns an OpenAI [`ChatRequest`] into a Workers AI
//!    [`InferenceRequest`](crate::backend::InferenceRequest) plus a [`ChatContext`];
//! 2. the backend runs it;
//! 3. [`complete`] turns a JSON result into a `chat.completion`, or a
//!    [`StreamTranscoder`] turns the SSE bytes into `chat.completion.chunk` events.
//!
//! The other dialects cng speaks (the Responses API, Anthropic Messages) reuse all of
//! it: they build a [`ChatRequest`], and read answers through [`complete`] and the
//! [`StreamReader`]'s [`StreamEvent`]s with their own [`EventWriter`].

pub mod events;
mod request;
mod response;
mod stream;
pub mod think;
pub mod tools;

pub use events::{EventWriter, StreamEvent, Transcoder};
pub use request::{ChatPlan, DEFAULT_MAX_TOKENS, plan};
pub use response::{complete, completion_to_sse};
pub use stream::{ChunkWriter, MAX_HELD_TOOL_TEXT, StreamReader, StreamTranscoder};

use crate::catalog::Reasoning;
#[cfg(doc)]
use crate::openai::chat::ChatRequest;

/// What reading the answer needs to know about the request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatContext {
    /// `chatcmpl-…`, the id of the completion and of every chunk.
    pub id: String,
    /// Unix seconds, from the injected clock.
    pub created: u64,
    /// The model name the client asked for (echoed).
    pub model: String,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
    /// How the model returns reasoning.
    pub reasoning: Reasoning,
    /// Names of the tools offered (tool calls printed as text are recovered only for these).
    pub tools: Vec<String>,
    /// The client used deprecated `functions`: answer with `function_call`.
    pub legacy_functions: bool,
    /// The output limit sent upstream (a legacy answer that used it all was cut: `length`).
    pub max_tokens: Option<u32>,
    /// Prefix of generated tool-call ids (`call_…_0`, `call_…_1`).
    pub call_id_prefix: String,
    /// Which OpenAI API the answer is written for.
    pub dialect: Dialect,
}

/// The OpenAI API a chat answer is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// `chat.completion` / `chat.completion.chunk`.
    #[default]
    Chat,
    /// The legacy `text_completion` of `/v1/completions` (text only).
    TextCompletion,
}

impl ChatContext {
    pub(crate) fn call_id(&self, n: usize) -> String {
        format!("{}_{n}", self.call_id_prefix)
    }
}

/// A chat request with only `model` set, for the dialects that translate into chat
/// (Responses, Anthropic Messages) to fill in. Built through serde so that fields
/// added to [`ChatRequest`] later start unset here too.
pub(crate) fn blank_request(model: &str) -> Result<crate::openai::chat::ChatRequest, crate::Error> {
    serde_json::from_value(serde_json::json!({"model": model, "messages": []}))
        .map_err(|e| crate::Error::internal(format!("building a chat request: {e}")))
}

/// Asks an OpenAI-compatible upstream for usage in its stream
/// (`stream_options.include_usage`). The Responses and Anthropic dialects report usage
/// at the end of every stream; Workers AI's models send it unasked, but models cng does
/// not know (an OpenAI-compatible upstream in open-model mode: vLLM, OpenAI) send it
/// only when asked.
pub(crate) fn ask_stream_usage(
    request: &mut crate::backend::InferenceRequest,
    model: &crate::catalog::ModelInfo,
) {
    let openai = model.chat_schema == Some(crate::catalog::ChatSchema::OpenAi);
    if !(request.stream && model.unknown && openai) {
        return;
    }
    if let crate::backend::Input::Json(serde_json::Value::Object(input)) = &mut request.input {
        input.insert(
            "stream_options".into(),
            serde_json::json!({"include_usage": true}),
        );
    }
}
