//! OpenAI's legacy completions API (`POST /v1/completions`): a prompt in, text out.
//!
//! cng serves it through the chat pipeline — the prompt becomes one user message —
//! because every Workers AI text model speaks messages, and answers in the
//! `text_completion` shape.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::chat::{FinishReason, Stop, StreamOptions, Usage};

/// The body of `POST /v1/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct CompletionRequest {
    pub model: String,
    /// A string, or an array of exactly one string; batches and token arrays are refused.
    pub prompt: Value,
    #[serde(default)]
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    /// OpenAI's default for this API is 16 tokens.
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub presence_penalty: Option<f64>,
    pub seed: Option<i64>,
    pub stop: Option<Stop>,
    pub n: Option<u32>,
    pub suffix: Option<String>,
    pub echo: Option<bool>,
    pub logprobs: Option<u32>,
    pub user: Option<String>,
}

/// `text_completion`.
#[derive(Debug, Clone, Serialize)]
pub struct TextCompletion {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<TextChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// One choice of a [`TextCompletion`].
#[derive(Debug, Clone, Serialize)]
pub struct TextChoice {
    pub text: String,
    pub index: u32,
    pub logprobs: Option<Value>,
    pub finish_reason: FinishReason,
}

/// A streamed `text_completion` chunk.
#[derive(Debug, Clone, Serialize)]
pub struct TextChunk<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: Vec<TextChunkChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<Usage>>,
}

/// One choice of a [`TextChunk`].
#[derive(Debug, Clone, Serialize)]
pub struct TextChunkChoice {
    pub text: String,
    pub index: u32,
    pub logprobs: Option<Value>,
    pub finish_reason: Option<FinishReason>,
}
