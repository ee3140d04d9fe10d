//! Text-generation outputs as Workers AI writes them, all generations in one tolerant
//! reader: legacy `{response, tool_calls, usage}`, OpenAI `chat.completion` (and its
//! chunks), the llama-3.3 hybrid of both, and Responses-shaped output (gpt-oss).

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A non-streamed result or one streamed event.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct TextResult {
    /// Legacy text; an object when JSON mode (or llama-3.3 on JSON text) parsed it.
    #[serde(default)]
    pub response: Option<Value>,
    #[serde(default, deserialize_with = "null_default")]
    pub tool_calls: Vec<RawToolCall>,
    #[serde(default)]
    pub usage: Option<RawUsage>,
    #[serde(default, deserialize_with = "null_default")]
    pub choices: Vec<RawChoice>,
    /// Responses API output items (gpt-oss).
    #[serde(default, deserialize_with = "null_default")]
    pub output: Vec<Value>,
    /// An error event inside a stream.
    #[serde(default)]
    pub error: Option<Value>,
    #[serde(default)]
    pub code: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawChoice {
    #[serde(default)]
    pub index: Option<u32>,
    #[serde(default)]
    pub message: Option<RawMessage>,
    #[serde(default)]
    pub delta: Option<RawMessage>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawMessage {
    #[serde(default)]
    pub content: Option<Value>,
    /// glm, qwen3, deepseek spell it `reasoning_content`; nemotron and gpt-oss `reasoning`.
    #[serde(default)]
    pub reasoning_content: Option<String>,
    #[serde(default)]
    pub reasoning: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub tool_calls: Vec<RawToolCall>,
}

impl RawMessage {
    pub fn reasoning(&self) -> Option<&str> {
        self.reasoning_content
            .as_deref()
            .or(self.reasoning.as_deref())
            .filter(|s| !s.is_empty())
    }

    pub fn text(&self) -> Option<String> {
        self.content.as_ref().and_then(value_text)
    }
}

/// A tool call in any of the shapes seen: OpenAI `{id, type, function:{name, arguments}}`
/// (arguments a string, or a fragment in stream deltas) or legacy `{name, arguments}`
/// with arguments an object.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawToolCall {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub index: Option<u32>,
    #[serde(default)]
    pub function: Option<RawFunction>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub arguments: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawFunction {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub arguments: Option<Value>,
}

impl RawToolCall {
    pub fn name(&self) -> Option<&str> {
        self.function
            .as_ref()
            .and_then(|f| f.name.as_deref())
            .or(self.name.as_deref())
            .filter(|s| !s.is_empty())
    }

    /// The arguments as OpenAI wants them: a JSON string (objects are serialised).
    pub fn arguments(&self) -> Option<String> {
        let v = self
            .function
            .as_ref()
            .and_then(|f| f.arguments.as_ref())
            .or(self.arguments.as_ref())?;
        Some(arguments_string(v))
    }

    pub fn id(&self) -> Option<&str> {
        self.id.as_deref().filter(|s| !s.is_empty())
    }
}

/// Serialises tool arguments to OpenAI's JSON-string form.
pub(crate) fn arguments_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
pub(crate) struct RawUsage {
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    #[serde(default)]
    pub completion_tokens: Option<u64>,
    #[serde(default)]
    pub total_tokens: Option<u64>,
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(default)]
    pub prompt_tokens_details: Option<RawPromptDetails>,
    #[serde(default)]
    pub input_tokens_details: Option<RawPromptDetails>,
    #[serde(default)]
    pub completion_tokens_details: Option<RawCompletionDetails>,
    #[serde(default)]
    pub output_tokens_details: Option<RawCompletionDetails>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub(crate) struct RawPromptDetails {
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub(crate) struct RawCompletionDetails {
    #[serde(default)]
    pub reasoning_tokens: Option<u64>,
}

/// Text of a `content`/`response` value: strings as they are, parsed JSON objects
/// (JSON mode) re-serialised, arrays of text parts joined.
pub(crate) fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) if parts.iter().all(|p| p.get("text").is_some()) => Some(
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(""),
        ),
        other => Some(other.to_string()),
    }
}

fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}
