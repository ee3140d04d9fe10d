//! Anthropic Messages API wire types (`POST /v1/messages`,
//! `POST /v1/messages/count_tokens`), as Anthropic documents them and its official
//! Python SDK types them (`anthropic.types`).
//!
//! Requests are tolerant (unknown fields are ignored and logged); `messages[].content`
//! and `tools` are kept as JSON and read block by block in [`super::request`], so an
//! error names the block (`messages[1].content[0].source`).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// The body of `POST /v1/messages` (and of `count_tokens`, which has no `max_tokens`).
#[derive(Debug, Clone, Deserialize)]
pub struct MessagesRequest {
    pub model: String,
    pub messages: Vec<InputMessage>,
    /// Required by `/v1/messages` (checked there), absent from `count_tokens`.
    pub max_tokens: Option<u32>,
    /// A string, or a list of text blocks.
    pub system: Option<Value>,
    pub stop_sequences: Option<Vec<String>>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<f64>,
    pub tools: Option<Vec<Value>>,
    pub tool_choice: Option<ToolChoice>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub stream: bool,
    pub thinking: Option<Thinking>,
    pub output_config: Option<OutputConfig>,
    pub metadata: Option<Value>,
    pub service_tier: Option<String>,
    pub container: Option<Value>,
    pub mcp_servers: Option<Value>,
}

/// One message of the conversation.
#[derive(Debug, Clone, Deserialize)]
pub struct InputMessage {
    pub role: String,
    /// A string, or a list of content blocks.
    pub content: Value,
}

/// `tool_choice`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolChoice {
    Auto {
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    Any {
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    Tool {
        name: String,
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    None,
}

/// `thinking`: extended thinking on or off.
#[derive(Debug, Clone, Deserialize)]
pub struct Thinking {
    #[serde(rename = "type")]
    pub kind: String,
    pub budget_tokens: Option<u32>,
}

impl Thinking {
    /// Whether the client wants to see thinking blocks.
    pub fn enabled(&self) -> bool {
        matches!(self.kind.as_str(), "enabled" | "adaptive")
    }
}

/// `output_config`: effort and a JSON output format.
#[derive(Debug, Clone, Deserialize)]
pub struct OutputConfig {
    pub effort: Option<String>,
    pub format: Option<OutputFormat>,
}

/// `output_config.format`.
#[derive(Debug, Clone, Deserialize)]
pub struct OutputFormat {
    #[serde(rename = "type")]
    pub kind: String,
    pub schema: Option<Value>,
}

// ---------------------------------------------------------------------------
// Responses

/// A `message` object.
#[derive(Debug, Clone, Serialize)]
pub struct MessageResponse {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub role: &'static str,
    /// The model name the client asked for (echoed).
    pub model: String,
    pub content: Vec<ContentBlock>,
    pub stop_reason: Option<StopReason>,
    pub stop_sequence: Option<String>,
    pub usage: MessageUsage,
}

/// A content block of an answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    /// Extended thinking: the model's reasoning (no signature: it is not Anthropic's).
    Thinking {
        thinking: String,
        signature: String,
    },
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
}

/// Why the model stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndTurn,
    MaxTokens,
    StopSequence,
    ToolUse,
    Refusal,
}

/// `usage`. Anthropic counts cached prompt tokens apart from `input_tokens`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MessageUsage {
    pub input_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub output_tokens: u64,
}

impl From<&crate::openai::chat::Usage> for MessageUsage {
    fn from(u: &crate::openai::chat::Usage) -> Self {
        let cached = u
            .prompt_tokens_details
            .as_ref()
            .map_or(0, |d| d.cached_tokens)
            .min(u.prompt_tokens);
        Self {
            input_tokens: u.prompt_tokens - cached,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: cached,
            output_tokens: u.completion_tokens,
        }
    }
}

/// The answer of `count_tokens`.
#[derive(Debug, Clone, Serialize)]
pub struct TokenCount {
    pub input_tokens: u64,
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}
