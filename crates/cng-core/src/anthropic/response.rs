//! A translated answer → an Anthropic `message`.

use serde_json::Value;

use super::messages::{ContentBlock, MessageResponse, MessageUsage, StopReason};
use super::request::MessagesPlan;
use crate::openai::chat::{ChatCompletion, FinishReason};

/// Anthropic's stop reason for a chat finish reason. A stop is a `stop_sequence`
/// only when the upstream named the stop string and it is one the client sent.
pub fn stop_reason(
    finish: FinishReason,
    matched: Option<&str>,
    requested: &[String],
) -> (StopReason, Option<String>) {
    match finish {
        FinishReason::Length => (StopReason::MaxTokens, None),
        FinishReason::ToolCalls | FinishReason::FunctionCall => (StopReason::ToolUse, None),
        FinishReason::ContentFilter => (StopReason::Refusal, None),
        FinishReason::Stop => match matched {
            Some(s) if requested.iter().any(|r| r == s) => {
                (StopReason::StopSequence, Some(s.to_string()))
            }
            _ => (StopReason::EndTurn, None),
        },
    }
}

/// The stop string an OpenAI-shaped result reports (vLLM `stop_reason`, SGLang
/// `matched_stop`), if any.
pub fn matched_stop(result: &Value) -> Option<String> {
    let choice = result.get("choices")?.get(0)?;
    ["stop_reason", "matched_stop"]
        .iter()
        .filter_map(|k| choice.get(*k).and_then(Value::as_str))
        .find(|s| !s.is_empty())
        .map(str::to_string)
}

/// Tool arguments (a JSON text) as the `input` object Anthropic's `tool_use` carries.
/// Arguments that are not a JSON object (a model that broke off mid-call) become `{}`.
pub fn tool_input(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => Value::Object(Default::default()),
    }
}

/// The `message` for a completed chat answer.
pub fn message(plan: &MessagesPlan, c: &ChatCompletion, matched: Option<&str>) -> MessageResponse {
    let mut content = Vec::new();
    let mut finish = FinishReason::Stop;
    if let Some(choice) = c.choices.first() {
        let m = &choice.message;
        finish = choice.finish_reason;
        if plan.thinking {
            if let Some(r) = m.reasoning_content.as_ref().filter(|r| !r.is_empty()) {
                content.push(ContentBlock::Thinking {
                    thinking: r.clone(),
                    signature: String::new(),
                });
            }
        }
        if let Some(t) = m.content.as_ref().filter(|t| !t.is_empty()) {
            content.push(ContentBlock::Text { text: t.clone() });
        }
        for call in m.tool_calls.iter().flatten() {
            content.push(ContentBlock::ToolUse {
                id: call.id.clone(),
                name: call.function.name.clone(),
                input: tool_input(&call.function.arguments),
            });
        }
    }
    let (stop_reason, stop_sequence) = stop_reason(finish, matched, &plan.stop_sequences);
    MessageResponse {
        id: plan.id.clone(),
        kind: "message",
        role: "assistant",
        model: plan.model.clone(),
        content,
        stop_reason: Some(stop_reason),
        stop_sequence,
        usage: c.usage.as_ref().map(MessageUsage::from).unwrap_or_default(),
    }
}
