//! OpenAI chat request → Workers AI input, per schema generation.
//!
//! The policy for every field is in `docs/api.md`; in short: roles, content, tools,
//! sampling and JSON mode are mapped to what the model's schema declares, values are
//! clamped into the model's ranges, a parameter the model lacks is dropped (and listed
//! in [`ChatPlan::dropped`]), and a request the model cannot honour at all (images to a
//! text-only model, `n > 1` where only one choice comes back, JSON mode on a model
//! without it) is refused with a 400 that says what to change.

use serde_json::{Map, Value, json};

use crate::alias::Resolved;
use crate::backend::{InferenceRequest, Input};
use crate::catalog::{ChatSchema, ModelInfo, Range, Vision};
use crate::chat::ChatContext;
use crate::error::Error;
use crate::ids::{Clock, IdSource};
use crate::openai::chat::{
    ChatRequest, Content, ContentPart, FunctionCallChoice, Message, ResponseFormat, Tool,
    ToolChoice, ToolChoiceMode, ToolKind,
};

/// Output tokens asked for when the client sets no limit. Workers AI's own defaults
/// are as low as 256 tokens, which cuts answers mid-sentence; OpenAI's behaviour is
/// "as long as the model needs", so cng asks for this much (capped by the model).
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// A translated chat request: what to send upstream and how to read the answer.
#[derive(Debug, Clone)]
pub struct ChatPlan {
    pub request: InferenceRequest,
    pub context: ChatContext,
    /// The client asked for a stream but the upstream can only answer JSON (Workers
    /// AI's JSON mode does not stream): send the JSON completion as a stream.
    pub emulate_stream: bool,
    /// Request fields the model has no equivalent for, dropped (for logs and docs).
    pub dropped: Vec<&'static str>,
}

/// Translates `req` for the resolved model.
pub fn plan(
    req: &ChatRequest,
    target: &Resolved,
    ids: &(impl IdSource + ?Sized),
    clock: &(impl Clock + ?Sized),
) -> Result<ChatPlan, Error> {
    let m = &target.model;
    let Some(schema) = m.chat_schema else {
        return Err(Error::invalid_param(
            "model",
            format!(
                "{} has no chat interface; pick a chat model from GET /v1/models.",
                target.describe()
            ),
        )
        .with_code("model_not_supported"));
    };
    let openai = schema == ChatSchema::OpenAi;
    if req.messages.is_empty() {
        return Err(Error::invalid_param(
            "messages",
            "`messages` is empty: send at least one message.",
        ));
    }
    let n = req.n.unwrap_or(1);
    if n == 0 {
        return Err(Error::invalid_param("n", "`n` must be at least 1."));
    }
    if n > 1 && !openai {
        return Err(Error::invalid_param(
            "n",
            format!(
                "`n` = {n} is not supported by {}: it returns one choice per request. \
                 Send {n} requests instead, or use a model with an OpenAI-shaped schema.",
                target.describe()
            ),
        )
        .with_code("unsupported_parameter"));
    }
    // cng does not carry token log probabilities back (Workers AI's native schemas
    // have none); asking for them is refused rather than answered with `null`.
    if req.logprobs == Some(true) {
        return Err(Error::invalid_param(
            "logprobs",
            format!(
                "{} does not return log probabilities through cng.",
                target.describe()
            ),
        )
        .with_code("unsupported_parameter"));
    }

    let mut input = Map::new();
    let mut dropped = Vec::new();
    let messages = if openai {
        openai_messages(req, m)?
    } else {
        messages_branch(req, m, &mut input)?
    };
    input.insert("messages".into(), Value::Array(messages));
    if openai && n > 1 {
        input.insert("n".into(), n.into());
    }

    // Output length.
    let requested = req.max_completion_tokens.or(req.max_tokens);
    if requested == Some(0) {
        let param = if req.max_completion_tokens.is_some() {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        return Err(Error::invalid_param(
            param,
            format!("`{param}` must be at least 1."),
        ));
    }
    let limit = output_limit(m, req);
    let max_tokens = match (requested, limit) {
        (Some(r), Some(limit)) => Some(r.min(limit)),
        (Some(r), None) => Some(r),
        (None, _) if m.unknown => None,
        (None, limit) => Some(DEFAULT_MAX_TOKENS.min(limit.unwrap_or(DEFAULT_MAX_TOKENS))),
    };
    if let Some(t) = max_tokens {
        input.insert("max_tokens".into(), t.into());
    }

    // Sampling.
    let sampling: [(&'static str, Option<f64>, Option<Range>, bool); 7] = [
        ("temperature", req.temperature, m.params.temperature, false),
        ("top_p", req.top_p, m.params.top_p, false),
        ("top_k", req.top_k, m.params.top_k, true),
        ("seed", req.seed.map(|s| s as f64), m.params.seed, true),
        (
            "repetition_penalty",
            req.repetition_penalty,
            m.params.repetition_penalty,
            false,
        ),
        (
            "frequency_penalty",
            req.frequency_penalty,
            m.params.frequency_penalty,
            false,
        ),
        (
            "presence_penalty",
            req.presence_penalty,
            m.params.presence_penalty,
            false,
        ),
    ];
    for (name, value, range, integer) in sampling {
        let Some(v) = value else { continue };
        if !v.is_finite() {
            return Err(Error::invalid_param(
                name,
                format!("`{name}` must be a finite number."),
            ));
        }
        match range.or_else(|| openai.then(|| openai_range(name)).flatten()) {
            Some(r) => {
                let v = r.clamp(v);
                let value = if integer {
                    json!(v.round() as i64)
                } else {
                    json!(v)
                };
                input.insert(name.into(), value);
            }
            None => dropped.push(name),
        }
    }

    if let Some(stop) = &req.stop {
        let stops = stop.to_vec();
        if !stops.is_empty() {
            if openai || m.stop {
                input.insert("stop".into(), json!(stops));
            } else {
                dropped.push("stop");
            }
        }
    }

    // JSON mode.
    let mut json_mode = false;
    match &req.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(rf) if openai => {
            json_mode = true;
            input.insert("response_format".into(), openai_response_format(rf));
        }
        Some(rf) if m.json_mode || m.unknown => {
            json_mode = true;
            input.insert("response_format".into(), workers_ai_response_format(rf));
        }
        Some(_) => {
            return Err(Error::invalid_param(
                "response_format",
                format!(
                    "{} has no JSON mode. Use a model that has one (for example \
                     @cf/meta/llama-3.3-70b-instruct-fp8-fast) or ask for JSON in the prompt.",
                    target.describe()
                ),
            )
            .with_code("unsupported_parameter"));
        }
    }

    // Tools.
    let tools = offered_tools(req, target, openai, &mut input)?;

    if let Some(effort) = &req.reasoning_effort {
        if openai && m.reasoning != crate::catalog::Reasoning::None {
            input.insert("reasoning_effort".into(), Value::String(effort.clone()));
        } else {
            dropped.push("reasoning_effort");
        }
    }
    if openai {
        if let Some(p) = req.parallel_tool_calls {
            input.insert("parallel_tool_calls".into(), Value::Bool(p));
        }
        if let Some(bias) = &req.logit_bias {
            input.insert("logit_bias".into(), bias.clone());
        }
    }

    // Workers AI's JSON mode does not stream (json-mode docs): ask for JSON, and stream
    // the finished answer to the client.
    let emulate_stream = req.stream && json_mode && !openai;
    let upstream_stream = req.stream && !emulate_stream;
    if upstream_stream {
        input.insert("stream".into(), Value::Bool(true));
    }

    let context = ChatContext {
        id: format!("chatcmpl-{}", ids.fresh_id()),
        created: clock.unix_seconds(),
        model: target.requested.clone(),
        include_usage: req.stream_options.as_ref().is_some_and(|o| o.include_usage),
        reasoning: m.reasoning,
        tools,
        legacy_functions: req.tools.is_none() && req.functions.is_some(),
        max_tokens,
        call_id_prefix: format!("call_{}", ids.fresh_id()),
        dialect: super::Dialect::Chat,
    };
    Ok(ChatPlan {
        request: InferenceRequest {
            model: m.id.clone(),
            task: crate::catalog::Task::TextGeneration,
            input: Input::Json(Value::Object(input)),
            stream: upstream_stream,
        },
        context,
        emulate_stream,
        dropped,
    })
}

/// The most output tokens that fit: the model's output cap, and what the context
/// window leaves after the prompt. The prompt is estimated (3 bytes a token, a
/// deliberate over-estimate for English; 8 tokens of framing per message) because
/// cng has no tokenizer for every model; prompt + output must fit or Workers AI
/// refuses the request.
fn output_limit(m: &ModelInfo, req: &ChatRequest) -> Option<u32> {
    let prompt: usize = req
        .messages
        .iter()
        .map(|msg| 8 + message_bytes(msg).div_ceil(3))
        .sum();
    let prompt = u32::try_from(prompt).unwrap_or(u32::MAX);
    let by_context = m.context_window.map(|c| c.saturating_sub(prompt).max(1));
    match (m.max_output_tokens, by_context) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn message_bytes(msg: &Message) -> usize {
    let text = |c: &Content| match c {
        Content::Empty => 0,
        Content::Text(s) => s.len(),
        // Images are not text tokens; what they cost is the model's own business.
        Content::Parts(parts) => parts
            .iter()
            .map(|p| match p {
                ContentPart::Text { text } => text.len(),
                _ => 0,
            })
            .sum(),
    };
    match msg {
        Message::System { content, .. }
        | Message::Developer { content, .. }
        | Message::User { content, .. }
        | Message::Tool { content, .. }
        | Message::Function { content, .. } => text(content),
        Message::Assistant {
            content,
            tool_calls,
            ..
        } => {
            let calls: usize = tool_calls
                .iter()
                .map(|c| c.function.name.len() + c.function.arguments.len())
                .sum();
            text(content) + calls
        }
    }
}

/// OpenAI's own ranges, for OpenAI-shaped models whose schema cng could not read.
fn openai_range(name: &str) -> Option<Range> {
    Some(match name {
        "temperature" => Range(Some(0.0), Some(2.0)),
        "top_p" => Range(Some(0.0), Some(1.0)),
        "frequency_penalty" | "presence_penalty" => Range(Some(-2.0), Some(2.0)),
        "seed" => Range(None, None),
        _ => return None,
    })
}

fn openai_response_format(rf: &ResponseFormat) -> Value {
    match rf {
        ResponseFormat::Text => json!({"type": "text"}),
        ResponseFormat::JsonObject => json!({"type": "json_object"}),
        ResponseFormat::JsonSchema { json_schema } => {
            json!({"type": "json_schema", "json_schema": json_schema})
        }
    }
}

/// Workers AI's JSON mode takes the schema itself in `json_schema`, not OpenAI's
/// `{name, schema, strict}` wrapper.
fn workers_ai_response_format(rf: &ResponseFormat) -> Value {
    match rf {
        ResponseFormat::JsonSchema { json_schema } => match &json_schema.schema {
            Some(schema) => json!({"type": "json_schema", "json_schema": schema}),
            None => json!({"type": "json_object"}),
        },
        _ => json!({"type": "json_object"}),
    }
}

/// Messages for the legacy / 2025 / gpt-oss messages branch: `{role, content: string}`.
/// Tool calls in history are written as the JSON the model itself prints
/// (`{"name": …, "parameters": …}`), tool results as `tool` messages.
fn messages_branch(
    req: &ChatRequest,
    m: &ModelInfo,
    input: &mut Map<String, Value>,
) -> Result<Vec<Value>, Error> {
    let mut out = Vec::with_capacity(req.messages.len());
    let mut image: Option<String> = None;
    for (i, msg) in req.messages.iter().enumerate() {
        let (role, content) = match msg {
            Message::System { content, .. } | Message::Developer { content, .. } => {
                ("system", Value::String(check_parts(content, i, m)?))
            }
            Message::User { content, .. } => {
                let text = check_parts(content, i, m)?;
                if m.vision == Vision::ContentParts && content.images().next().is_some() {
                    ("user", openai_parts(content))
                } else {
                    ("user", Value::String(text))
                }
            }
            Message::Assistant {
                content,
                tool_calls,
                function_call,
                ..
            } => {
                let mut text = content.joined_text();
                let calls = tool_calls
                    .iter()
                    .map(|c| &c.function)
                    .chain(function_call.iter());
                for call in calls {
                    let args: Value = serde_json::from_str(&call.arguments)
                        .unwrap_or_else(|_| Value::String(call.arguments.clone()));
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(&json!({"name": call.name, "parameters": args}).to_string());
                }
                ("assistant", Value::String(text))
            }
            Message::Tool { content, .. } | Message::Function { content, .. } => {
                ("tool", Value::String(content.joined_text()))
            }
        };
        if let Message::User { content, .. } = msg {
            for img in content.images() {
                if m.vision != Vision::ImageField {
                    continue;
                }
                if image.is_some() {
                    return Err(Error::invalid_param(
                        format!("messages[{i}].content"),
                        format!("`{}` reads one image per request; send only one.", m.id),
                    ));
                }
                image = Some(data_url_base64(&img.url, i)?);
            }
        }
        out.push(json!({"role": role, "content": content}));
    }
    if let Some(b64) = image {
        input.insert("image".into(), Value::String(b64));
    }
    Ok(out)
}

/// Joins text parts; refuses parts this model cannot take.
fn check_parts(content: &Content, i: usize, m: &ModelInfo) -> Result<String, Error> {
    if let Content::Parts(parts) = content {
        for p in parts {
            match p {
                ContentPart::ImageUrl { .. } if m.vision == Vision::None => {
                    return Err(no_vision(i, m));
                }
                ContentPart::InputAudio { .. } | ContentPart::File { .. } => {
                    return Err(Error::invalid_param(
                        format!("messages[{i}].content"),
                        "audio and file content parts are not supported on chat completions; \
                         use /v1/audio/transcriptions for audio.",
                    ));
                }
                _ => {}
            }
        }
    }
    Ok(content.joined_text())
}

fn no_vision(i: usize, m: &ModelInfo) -> Error {
    Error::invalid_param(
        format!("messages[{i}].content"),
        format!(
            "`{}` cannot read images. Use a vision model such as \
             @cf/meta/llama-4-scout-17b-16e-instruct (alias `gpt-4o`).",
            m.id
        ),
    )
    .with_code("image_not_supported")
}

/// The base64 payload of a `data:` URL. cng-core does no I/O, so images given as
/// `https:` URLs cannot be fetched for models that take raw image data.
fn data_url_base64(url: &str, i: usize) -> Result<String, Error> {
    let param = || format!("messages[{i}].content");
    let Some(rest) = url.strip_prefix("data:") else {
        return Err(Error::invalid_param(
            param(),
            "This model takes image data, not links: send the image inline as a \
             `data:image/...;base64,...` URL.",
        )
        .with_code("image_url_not_supported"));
    };
    match rest.split_once(";base64,") {
        Some((mime, b64)) if mime.starts_with("image/") && !b64.is_empty() => Ok(b64.to_string()),
        _ => Err(Error::invalid_param(
            param(),
            "the image data URL must look like `data:image/png;base64,<data>`.",
        )),
    }
}

/// Messages for OpenAI-shaped models: OpenAI's own shape, `developer` sent as `system`.
fn openai_messages(req: &ChatRequest, m: &ModelInfo) -> Result<Vec<Value>, Error> {
    let mut out = Vec::with_capacity(req.messages.len());
    for (i, msg) in req.messages.iter().enumerate() {
        let v = match msg {
            Message::System { content, name } | Message::Developer { content, name } => with_name(
                json!({"role": "system", "content": check_parts(content, i, m)?}),
                name,
            ),
            Message::User { content, name } => {
                let has_images = content.images().next().is_some();
                let text = check_parts(content, i, m)?;
                let content = if has_images {
                    openai_parts(content)
                } else {
                    Value::String(text)
                };
                with_name(json!({"role": "user", "content": content}), name)
            }
            Message::Assistant {
                content,
                tool_calls,
                function_call,
                name,
                ..
            } => {
                let mut v = json!({"role": "assistant", "content": content.joined_text()});
                let mut calls: Vec<Value> = tool_calls
                    .iter()
                    .map(|c| json!({"id": c.id, "type": "function", "function": c.function}))
                    .collect();
                if let Some(f) = function_call {
                    calls.push(
                        json!({"id": format!("call_{i}"), "type": "function", "function": f}),
                    );
                }
                if !calls.is_empty() {
                    v["tool_calls"] = Value::Array(calls);
                }
                with_name(v, name)
            }
            Message::Tool {
                content,
                tool_call_id,
            } => {
                json!({"role": "tool", "content": content.joined_text(), "tool_call_id": tool_call_id})
            }
            Message::Function { content, name } => {
                json!({"role": "tool", "content": content.joined_text(), "name": name})
            }
        };
        out.push(v);
    }
    Ok(out)
}

fn with_name(mut v: Value, name: &Option<String>) -> Value {
    if let Some(n) = name {
        v["name"] = Value::String(n.clone());
    }
    v
}

fn openai_parts(content: &Content) -> Value {
    let Content::Parts(parts) = content else {
        return Value::String(content.joined_text());
    };
    Value::Array(
        parts
            .iter()
            .filter_map(|p| match p {
                ContentPart::Text { text } => Some(json!({"type": "text", "text": text})),
                ContentPart::ImageUrl { image_url } => {
                    Some(json!({"type": "image_url", "image_url": image_url}))
                }
                _ => None,
            })
            .collect(),
    )
}

/// Puts the offered tools into `input` and returns their names (for reading answers).
///
/// Deprecated `functions`/`function_call` become tools. `tool_choice: "none"` sends no
/// tools; a named choice sends only that tool to models without `tool_choice`;
/// `"required"` cannot be enforced on those models and is sent as "auto" (documented).
fn offered_tools(
    req: &ChatRequest,
    target: &Resolved,
    openai: bool,
    input: &mut Map<String, Value>,
) -> Result<Vec<String>, Error> {
    let from_functions;
    let (tools, param): (&[Tool], &str) = match (&req.tools, &req.functions) {
        (Some(t), _) => (t, "tools"),
        (None, Some(f)) => {
            from_functions = f
                .iter()
                .map(|f| Tool {
                    kind: ToolKind::Function,
                    function: f.clone(),
                })
                .collect::<Vec<_>>();
            (&from_functions, "functions")
        }
        (None, None) => (&[], "tools"),
    };
    if tools.is_empty() {
        return Ok(Vec::new());
    }
    let choice = match (&req.tool_choice, &req.function_call) {
        (Some(ToolChoice::Mode(mode)), _) => Choice::Mode(*mode),
        (Some(ToolChoice::Named(n)), _) => Choice::Named(n.function.name.clone()),
        (None, Some(FunctionCallChoice::Mode(mode))) => Choice::Mode(*mode),
        (None, Some(FunctionCallChoice::Named(n))) => Choice::Named(n.name.clone()),
        (None, None) => Choice::Mode(ToolChoiceMode::Auto),
    };
    // `tool_choice: "none"` sends no tools: fine for any model.
    if matches!(choice, Choice::Mode(ToolChoiceMode::None)) {
        return Ok(Vec::new());
    }
    let m = &target.model;
    if !m.function_calling && !m.unknown {
        return Err(Error::invalid_param(
            param,
            format!(
                "{} does not support tool calling; pick a model with \
                 function calling (for example `gpt-4o`).",
                target.describe()
            ),
        )
        .with_code("unsupported_parameter"));
    }
    let selected: Vec<&Tool> = match &choice {
        Choice::Mode(ToolChoiceMode::None) => return Ok(Vec::new()),
        Choice::Named(name) => {
            let t: Vec<&Tool> = tools.iter().filter(|t| &t.function.name == name).collect();
            if t.is_empty() {
                let param = if req.tool_choice.is_some() {
                    "tool_choice"
                } else {
                    "function_call"
                };
                return Err(Error::invalid_param(
                    param,
                    format!("`{name}` is not one of the offered tools."),
                ));
            }
            if openai { tools.iter().collect() } else { t }
        }
        Choice::Mode(_) => tools.iter().collect(),
    };
    input.insert("tools".into(), json!(selected));
    if openai {
        let tc = match &choice {
            Choice::Mode(mode) => json!(mode),
            Choice::Named(name) => json!({"type": "function", "function": {"name": name}}),
        };
        input.insert("tool_choice".into(), tc);
    }
    Ok(selected.iter().map(|t| t.function.name.clone()).collect())
}

enum Choice {
    Mode(ToolChoiceMode),
    Named(String),
}
