//! Workers AI text-generation result → OpenAI `chat.completion`.

use serde::Deserialize;
use serde_json::Value;

use super::ChatContext;
use super::think;
use super::tools;
use crate::catalog::Reasoning;
use crate::error::Error;
use crate::openai::chat::{
    AssistantMessage, ChatChunk, ChatCompletion, Choice, ChunkChoice, CompletionTokensDetails,
    Delta, FinishReason, FunctionCall, FunctionCallDelta, PromptTokensDetails, ToolCall,
    ToolCallDelta, ToolKind, Usage,
};
use crate::sse;
use crate::workers_ai::text::{RawUsage, TextResult, value_text};

/// Translates a non-streamed result (any generation, see [`crate::workers_ai`]).
pub fn complete(ctx: &ChatContext, result: &Value) -> Result<ChatCompletion, Error> {
    let raw = TextResult::deserialize(result).map_err(|e| {
        Error::upstream(format!("Workers AI returned a result cng cannot read: {e}"))
    })?;
    if !result.is_object() {
        return Err(Error::upstream(
            "Workers AI returned a result that is not a JSON object",
        ));
    }
    let usage = raw.usage.as_ref().map(usage_from_raw);
    let completion_tokens = usage.as_ref().map(|u| u.completion_tokens);

    let mut parts: Vec<ChoiceParts> = if !raw.choices.is_empty() {
        raw.choices
            .iter()
            .map(|c| {
                let msg = c.message.as_ref().or(c.delta.as_ref());
                ChoiceParts {
                    index: c.index,
                    content: msg.and_then(|m| m.text()),
                    reasoning: msg.and_then(|m| m.reasoning()).map(str::to_string),
                    tool_calls: msg
                        .map(|m| {
                            m.tool_calls
                                .iter()
                                .filter_map(|t| {
                                    Some((
                                        t.id().map(str::to_string),
                                        t.name()?.to_string(),
                                        t.arguments().unwrap_or_default(),
                                    ))
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    finish: c.finish_reason.as_deref().and_then(FinishReason::parse),
                }
            })
            .collect()
    } else if !raw.output.is_empty() {
        vec![responses_output(&raw.output)]
    } else {
        vec![ChoiceParts {
            index: None,
            content: raw.response.as_ref().and_then(value_text),
            reasoning: None,
            tool_calls: raw
                .tool_calls
                .iter()
                .filter_map(|t| {
                    Some((
                        t.id().map(str::to_string),
                        t.name()?.to_string(),
                        t.arguments().unwrap_or_default(),
                    ))
                })
                .collect(),
            finish: None,
        }]
    };

    let mut call_n = 0;
    let choices = parts
        .iter_mut()
        .enumerate()
        .map(|(i, p)| finish_choice(ctx, p, i, &mut call_n, completion_tokens))
        .collect();
    Ok(ChatCompletion {
        id: ctx.id.clone(),
        object: "chat.completion",
        created: ctx.created,
        model: ctx.model.clone(),
        choices,
        usage,
        system_fingerprint: None,
    })
}

/// What one choice said, before normalisation.
struct ChoiceParts {
    index: Option<u32>,
    content: Option<String>,
    reasoning: Option<String>,
    /// (upstream id, name, arguments JSON string)
    tool_calls: Vec<(Option<String>, String, String)>,
    finish: Option<FinishReason>,
}

fn finish_choice(
    ctx: &ChatContext,
    p: &mut ChoiceParts,
    i: usize,
    call_n: &mut usize,
    completion_tokens: Option<u64>,
) -> Choice {
    let mut content = p.content.take();
    let mut reasoning = p.reasoning.take();
    if let Some(text) = content.as_deref() {
        let implied = ctx.reasoning == Reasoning::ThinkTags;
        let (r, answer) = think::split(text, implied);
        if let Some(r) = r {
            reasoning = Some(match reasoning {
                Some(prev) => format!("{prev}\n{r}"),
                None => r,
            });
            content = Some(answer);
        }
    }
    let mut calls = std::mem::take(&mut p.tool_calls);
    if calls.is_empty() {
        if let Some(found) = content
            .as_deref()
            .and_then(|t| tools::recover(t, &ctx.tools))
        {
            calls = found.into_iter().map(|(n, a)| (None, n, a)).collect();
            content = None;
        }
    }
    let tool_calls: Vec<ToolCall> = calls
        .into_iter()
        .map(|(id, name, arguments)| {
            let id = id.unwrap_or_else(|| ctx.call_id(*call_n));
            *call_n += 1;
            ToolCall {
                id,
                kind: ToolKind::Function,
                function: FunctionCall { name, arguments },
            }
        })
        .collect();
    let finish = if !tool_calls.is_empty() {
        FinishReason::ToolCalls
    } else if let Some(f) = p.finish {
        f
    } else {
        length_heuristic(ctx, completion_tokens)
    };
    // Spec: content is null when the assistant only calls tools; otherwise a string.
    if !tool_calls.is_empty() {
        if content.as_deref().is_some_and(|c| c.trim().is_empty()) {
            content = None;
        }
    } else if content.is_none() {
        content = Some(String::new());
    }
    let mut message = AssistantMessage {
        role: "assistant",
        content,
        reasoning_content: reasoning.filter(|r| !r.is_empty()),
        tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
        function_call: None,
        refusal: None,
    };
    let mut finish_reason = finish;
    if ctx.legacy_functions {
        if let Some(mut calls) = message.tool_calls.take() {
            message.function_call = Some(calls.remove(0).function);
            finish_reason = FinishReason::FunctionCall;
        }
    }
    Choice {
        index: p.index.unwrap_or(i as u32),
        message,
        logprobs: None,
        finish_reason,
    }
}

/// Legacy answers carry no finish reason: an answer that used every token it was
/// allowed was cut off.
pub(super) fn length_heuristic(ctx: &ChatContext, completion_tokens: Option<u64>) -> FinishReason {
    match (ctx.max_tokens, completion_tokens) {
        (Some(max), Some(used)) if used >= u64::from(max) => FinishReason::Length,
        _ => FinishReason::Stop,
    }
}

/// Reads Responses-API output items (gpt-oss): reasoning, message text, function calls.
fn responses_output(items: &[Value]) -> ChoiceParts {
    let mut content = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    let mut has_content = false;
    for item in items {
        match item.get("type").and_then(Value::as_str) {
            Some("message") => {
                for part in item
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(t) = part.get("text").and_then(Value::as_str) {
                        content.push_str(t);
                        has_content = true;
                    }
                }
            }
            Some("reasoning") => {
                let texts = ["content", "summary"]
                    .iter()
                    .filter_map(|k| item.get(*k).and_then(Value::as_array))
                    .flatten()
                    .filter_map(|p| p.get("text").and_then(Value::as_str));
                for t in texts {
                    if !reasoning.is_empty() {
                        reasoning.push('\n');
                    }
                    reasoning.push_str(t);
                }
            }
            Some("function_call") => {
                if let Some(name) = item.get("name").and_then(Value::as_str) {
                    let id = item
                        .get("call_id")
                        .or_else(|| item.get("id"))
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    let args = item
                        .get("arguments")
                        .map(crate::workers_ai::text::arguments_string)
                        .unwrap_or_default();
                    calls.push((id, name.to_string(), args));
                }
            }
            _ => {}
        }
    }
    ChoiceParts {
        index: None,
        content: has_content.then_some(content),
        reasoning: (!reasoning.is_empty()).then_some(reasoning),
        tool_calls: calls,
        finish: None,
    }
}

/// Converts Workers AI usage (OpenAI or Responses spelling) to OpenAI's.
pub(super) fn usage_from_raw(u: &RawUsage) -> Usage {
    let prompt = u.prompt_tokens.or(u.input_tokens).unwrap_or(0);
    let completion = u.completion_tokens.or(u.output_tokens).unwrap_or(0);
    let cached = u
        .prompt_tokens_details
        .as_ref()
        .or(u.input_tokens_details.as_ref())
        .and_then(|d| d.cached_tokens);
    let reasoning = u
        .completion_tokens_details
        .as_ref()
        .or(u.output_tokens_details.as_ref())
        .and_then(|d| d.reasoning_tokens);
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: u.total_tokens.unwrap_or(prompt + completion),
        prompt_tokens_details: cached.map(|c| PromptTokensDetails { cached_tokens: c }),
        completion_tokens_details: reasoning.map(|r| CompletionTokensDetails {
            reasoning_tokens: r,
        }),
    }
}

/// A finished completion as an OpenAI stream (for upstreams that cannot stream, such
/// as Workers AI's JSON mode): role, content, tool calls, finish, usage, `[DONE]`.
pub fn completion_to_sse(c: &ChatCompletion, include_usage: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let usage_field = include_usage.then_some(None);
    let chunk = |choices: Vec<ChunkChoice>, usage: Option<Option<Usage>>| ChatChunk {
        id: &c.id,
        object: "chat.completion.chunk",
        created: c.created,
        model: &c.model,
        choices,
        usage,
        system_fingerprint: None,
    };
    for choice in &c.choices {
        let m = &choice.message;
        let mut deltas = vec![Delta {
            role: Some("assistant"),
            content: Some(String::new()),
            ..Delta::default()
        }];
        if let Some(r) = &m.reasoning_content {
            deltas.push(Delta {
                reasoning_content: Some(r.clone()),
                ..Delta::default()
            });
        }
        if let Some(t) = m.content.as_ref().filter(|t| !t.is_empty()) {
            deltas.push(Delta {
                content: Some(t.clone()),
                ..Delta::default()
            });
        }
        for (i, call) in m.tool_calls.iter().flatten().enumerate() {
            deltas.push(Delta {
                tool_calls: Some(vec![ToolCallDelta {
                    index: i as u32,
                    id: Some(call.id.clone()),
                    kind: Some(ToolKind::Function),
                    function: FunctionCallDelta {
                        name: Some(call.function.name.clone()),
                        arguments: Some(call.function.arguments.clone()),
                    },
                }]),
                ..Delta::default()
            });
        }
        if let Some(f) = &m.function_call {
            deltas.push(Delta {
                function_call: Some(FunctionCallDelta {
                    name: Some(f.name.clone()),
                    arguments: Some(f.arguments.clone()),
                }),
                ..Delta::default()
            });
        }
        for delta in deltas {
            write_chunk(
                &mut out,
                &chunk(
                    vec![ChunkChoice {
                        index: choice.index,
                        delta,
                        logprobs: None,
                        finish_reason: None,
                    }],
                    usage_field.clone(),
                ),
            );
        }
        let finish = ChunkChoice {
            index: choice.index,
            delta: Delta::default(),
            logprobs: None,
            finish_reason: Some(choice.finish_reason),
        };
        write_chunk(&mut out, &chunk(vec![finish], usage_field.clone()));
    }
    if include_usage {
        write_chunk(
            &mut out,
            &chunk(Vec::new(), Some(Some(c.usage.clone().unwrap_or_default()))),
        );
    }
    out.extend_from_slice(sse::DONE);
    out
}

pub(super) fn write_chunk(out: &mut Vec<u8>, chunk: &ChatChunk<'_>) {
    out.extend_from_slice(b"data: ");
    // Serialising these plain structs into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, chunk);
    out.extend_from_slice(b"\n\n");
}
