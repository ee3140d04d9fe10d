//! Responses request → Workers AI input.
//!
//! Two routes, decided by the model:
//!
//! - **gpt-oss, not streamed: native.** Workers AI's gpt-oss schema has a Responses
//!   branch (`{input, reasoning}`; Cloudflare's own example adds `instructions`), and
//!   the model answers with a Responses object. `input` is sent as OpenAI items
//!   (message, function_call, function_call_output), `instructions` as is, `reasoning`
//!   with the effort mapped onto low/medium/high (the model cannot reason less than
//!   low), and the other Responses fields the branch's schema points to ("Refer to
//!   OpenAI Responses API docs") by their Responses names: `tools`, `tool_choice`,
//!   `max_output_tokens`, `temperature`, `top_p`, `text`. Streams go through the chat
//!   route: the branch declares no `stream`, and Cloudflare documents gpt-oss
//!   streaming on the messages branch only.
//! - **Every other model, and gpt-oss streams: through chat.** The request becomes a
//!   [`ChatRequest`] and is planned by [`chat::plan`], so every rule of
//!   `/v1/chat/completions` (schema generations, clamping, tools, JSON mode, vision)
//!   applies; errors name the Responses field (`input[2].content`, `text.format`).
//!
//! Stateful features are refused with a 400 that says what to do instead: cng keeps
//! no responses, so `previous_response_id`, `conversation`, `store: true`,
//! `background` and stored `prompt`s cannot work (see `docs/api.md`).

use serde_json::{Map, Value, json};

use super::input::{self, FunctionTool, Input, Item, Part, Role, ToolChoice};
use super::wire::{
    ReasoningConfig, ResponseObject, ResponseStatus, ResponsesRequest, TextConfig, TextFormat,
};
use crate::alias::Resolved;
use crate::backend::{InferenceRequest, Input as ModelInput};
use crate::catalog::{ChatSchema, Task, Vision};
use crate::chat::{self, ChatContext, DEFAULT_MAX_TOKENS, Dialect};
use crate::error::Error;
use crate::ids::{Clock, IdSource};
use crate::openai::chat::{
    Content, ContentPart, FunctionCall, FunctionDefinition, ImageUrl, JsonSchemaFormat, Message,
    NamedFunction, NamedToolChoice, ResponseFormat, Tool, ToolCall, ToolChoice as ChatToolChoice,
    ToolChoiceMode, ToolKind,
};

/// A planned Responses request.
#[derive(Debug, Clone)]
pub struct ResponsesPlan {
    pub request: InferenceRequest,
    /// How to read the answer (through the chat reader).
    pub context: ChatContext,
    /// The response object so far: `in_progress`, no output.
    pub head: ResponseObject,
    /// The client asked for a stream.
    pub stream: bool,
    /// The upstream answers JSON but the client wants a stream (Workers AI's JSON mode
    /// does not stream): the finished answer is sent as events.
    pub emulate_stream: bool,
    /// The native Responses branch of gpt-oss was used.
    pub native: bool,
    /// Request fields without an equivalent, dropped (for logs and docs).
    pub dropped: Vec<&'static str>,
}

/// Reasoning efforts the Responses API defines.
const EFFORTS: &[&str] = &["none", "minimal", "low", "medium", "high", "xhigh"];

/// Translates `req` for the resolved model.
pub fn plan(
    req: &ResponsesRequest,
    target: &Resolved,
    ids: &(impl IdSource + ?Sized),
    clock: &(impl Clock + ?Sized),
) -> Result<ResponsesPlan, Error> {
    refuse_stateful(req)?;
    let input = input::parse_input(req.input.as_ref())?;
    if req.max_output_tokens == Some(0) {
        return Err(Error::invalid_param(
            "max_output_tokens",
            "`max_output_tokens` must be at least 1.",
        ));
    }
    let tool_values = req.tools.clone().unwrap_or_default();
    let tools = input::parse_tools(&tool_values)?;
    let choice = input::parse_tool_choice(req.tool_choice.as_ref())?;
    if let Some(ToolChoice::Function(name)) = &choice {
        if !tools.iter().any(|t| &t.name == name) {
            return Err(Error::invalid_param(
                "tool_choice.name",
                format!("`{name}` is not one of the offered tools."),
            ));
        }
    }
    let effort = req.reasoning.as_ref().and_then(|r| r.effort.as_deref());
    if let Some(e) = effort {
        if !EFFORTS.contains(&e) {
            return Err(Error::invalid_param(
                "reasoning.effort",
                format!(
                    "Unknown reasoning effort `{e}`: use {}.",
                    EFFORTS.join(", ")
                ),
            ));
        }
    }
    let mut dropped = ignored_fields(req);

    let base = ids.fresh_id();
    let now = clock.unix_seconds();
    let head = ResponseObject {
        id: format!("resp_{base}"),
        object: "response",
        created_at: now,
        status: ResponseStatus::InProgress,
        background: false,
        completed_at: None,
        error: None,
        incomplete_details: None,
        instructions: req.instructions.clone(),
        max_output_tokens: req.max_output_tokens,
        metadata: req
            .metadata
            .clone()
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({})),
        model: target.requested.clone(),
        output: Vec::new(),
        parallel_tool_calls: req.parallel_tool_calls.unwrap_or(true),
        previous_response_id: None,
        reasoning: req.reasoning.clone().map(|r| ReasoningConfig {
            effort: r.effort,
            summary: r.summary,
        }),
        store: false,
        temperature: req.temperature,
        text: req.text.clone().unwrap_or(TextConfig {
            format: Some(TextFormat::Text),
            verbosity: None,
        }),
        tool_choice: req
            .tool_choice
            .clone()
            .filter(|v| !v.is_null())
            .unwrap_or_else(|| json!("auto")),
        tools: tool_values,
        top_p: req.top_p,
        truncation: "disabled",
        usage: None,
        user: req.user.clone(),
    };

    let m = &target.model;
    if m.chat_schema == Some(ChatSchema::GptOss) && !req.stream {
        return native(
            req, target, input, &tools, choice, head, &base, now, dropped,
        );
    }

    let (chat_req, origins) = to_chat(req, &input, &tools, choice)?;
    let mut plan = chat::plan(&chat_req, target, ids, clock).map_err(|e| remap(e, &origins))?;
    chat::ask_stream_usage(&mut plan.request, m);
    for d in plan.dropped {
        let name = match d {
            "reasoning_effort" => "reasoning.effort",
            other => other,
        };
        dropped.push(name);
    }
    if req.stream && m.chat_schema == Some(ChatSchema::GptOss) && effort.is_some() {
        // The messages branch, used for gpt-oss streams, declares no reasoning effort.
        if !dropped.contains(&"reasoning.effort") {
            dropped.push("reasoning.effort");
        }
    }
    Ok(ResponsesPlan {
        request: plan.request,
        context: plan.context,
        head,
        stream: req.stream,
        emulate_stream: plan.emulate_stream,
        native: false,
        dropped,
    })
}

fn refuse_stateful(req: &ResponsesRequest) -> Result<(), Error> {
    let refuse = |param: &str, what: &str| {
        Err(Error::invalid_param(
            param,
            format!(
                "{what} cng does not keep responses or conversations: send the whole \
                 conversation in `input` each time (the previous response's `output` items \
                 followed by the new input)."
            ),
        )
        .with_code("unsupported_parameter"))
    };
    if req.previous_response_id.is_some() {
        return refuse(
            "previous_response_id",
            "`previous_response_id` needs a stored response, and",
        );
    }
    if req.conversation.as_ref().is_some_and(|c| !c.is_null()) {
        return refuse("conversation", "`conversation` needs stored state, and");
    }
    if req.store == Some(true) {
        return refuse(
            "store",
            "`store: true` asks to keep the response for later retrieval; leave `store` out \
             or set it to false:",
        );
    }
    if req.background == Some(true) {
        return refuse(
            "background",
            "`background: true` needs a stored response to poll, and",
        );
    }
    if req.prompt.as_ref().is_some_and(|p| !p.is_null()) {
        return Err(Error::invalid_param(
            "prompt",
            "`prompt` refers to a prompt template stored at OpenAI, which cng cannot \
             read: send the text in `instructions` and `input`.",
        )
        .with_code("unsupported_parameter"));
    }
    Ok(())
}

/// Known fields that have no effect on a Workers AI model (listed in the request log).
fn ignored_fields(req: &ResponsesRequest) -> Vec<&'static str> {
    let mut d = Vec::new();
    let fields: [(&'static str, bool); 10] = [
        (
            "include",
            req.include.as_ref().is_some_and(|i| !i.is_empty()),
        ),
        ("service_tier", req.service_tier.is_some()),
        ("safety_identifier", req.safety_identifier.is_some()),
        ("prompt_cache_key", req.prompt_cache_key.is_some()),
        ("top_logprobs", req.top_logprobs.is_some_and(|n| n > 0)),
        ("max_tool_calls", req.max_tool_calls.is_some()),
        ("truncation", req.truncation.as_deref() == Some("auto")),
        (
            "text.verbosity",
            req.text.as_ref().is_some_and(|t| t.verbosity.is_some()),
        ),
        ("user", req.user.is_some()),
        ("stream_options", req.stream_options.is_some()),
    ];
    for (name, present) in fields {
        if present {
            d.push(name);
        }
    }
    d
}

/// The gpt-oss Responses branch.
#[allow(
    clippy::too_many_arguments,
    reason = "one call site, all of them needed"
)]
fn native(
    req: &ResponsesRequest,
    target: &Resolved,
    input: Input,
    tools: &[FunctionTool],
    choice: Option<ToolChoice>,
    head: ResponseObject,
    base: &str,
    now: u64,
    mut dropped: Vec<&'static str>,
) -> Result<ResponsesPlan, Error> {
    let m = &target.model;
    let mut body = Map::new();
    let mut prompt_bytes = req.instructions.as_ref().map_or(0, String::len);
    let mut items_count = 1;
    let input_value = match &input {
        Input::Text(s) => {
            prompt_bytes += s.len();
            Value::String(s.clone())
        }
        Input::Items(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item {
                    Item::Message { role, parts } => {
                        if let Some(j) = parts.iter().position(|p| matches!(p, Part::Image { .. }))
                        {
                            if m.vision == Vision::None {
                                return Err(no_vision(format!("input[{i}].content[{j}]"), target));
                            }
                        }
                        let text = Item::text(parts);
                        prompt_bytes += text.len();
                        out.push(json!({"role": role.as_str(), "content": text}));
                    }
                    Item::FunctionCall {
                        call_id,
                        name,
                        arguments,
                    } => {
                        prompt_bytes += name.len() + arguments.len();
                        out.push(json!({"type": "function_call", "call_id": call_id,
                            "name": name, "arguments": arguments}));
                    }
                    Item::FunctionCallOutput { call_id, output } => {
                        prompt_bytes += output.len();
                        out.push(json!({"type": "function_call_output", "call_id": call_id,
                            "output": output}));
                    }
                    Item::Reasoning => {}
                }
            }
            items_count = out.len().max(1);
            if out.is_empty() {
                return Err(Error::invalid_param(
                    "input",
                    "`input` has no message: send at least one message item.",
                ));
            }
            Value::Array(out)
        }
    };
    body.insert("input".into(), input_value);
    if let Some(i) = &req.instructions {
        body.insert("instructions".into(), Value::String(i.clone()));
    }
    if let Some(r) = &req.reasoning {
        let mut reasoning = Map::new();
        if let Some(e) = &r.effort {
            // gpt-oss reasons at low, medium or high; it cannot stop reasoning.
            let e = match e.as_str() {
                "none" | "minimal" => "low",
                "xhigh" => "high",
                other => other,
            };
            reasoning.insert("effort".into(), Value::String(e.to_string()));
        }
        if let Some(s) = &r.summary {
            reasoning.insert("summary".into(), Value::String(s.clone()));
        }
        if !reasoning.is_empty() {
            body.insert("reasoning".into(), Value::Object(reasoning));
        }
    }
    let mut tool_names = Vec::new();
    if !tools.is_empty() && choice != Some(ToolChoice::None) {
        if !m.function_calling && !m.unknown {
            return Err(Error::invalid_param(
                "tools",
                format!("{} does not support tool calling.", target.describe()),
            )
            .with_code("unsupported_parameter"));
        }
        let list: Vec<Value> = tools
            .iter()
            .map(|t| {
                prompt_bytes += t.name.len()
                    + t.description.as_ref().map_or(0, String::len)
                    + t.parameters.as_ref().map_or(0, |p| p.to_string().len());
                let mut v = json!({"type": "function", "name": t.name});
                if let Some(d) = &t.description {
                    v["description"] = Value::String(d.clone());
                }
                if let Some(p) = &t.parameters {
                    v["parameters"] = p.clone();
                }
                if let Some(s) = t.strict {
                    v["strict"] = Value::Bool(s);
                }
                v
            })
            .collect();
        tool_names = tools.iter().map(|t| t.name.clone()).collect();
        body.insert("tools".into(), Value::Array(list));
        if let Some(c) = &choice {
            let v = match c {
                ToolChoice::Auto => json!("auto"),
                ToolChoice::Required => json!("required"),
                ToolChoice::Function(name) => json!({"type": "function", "name": name}),
                ToolChoice::None => json!("none"),
            };
            body.insert("tool_choice".into(), v);
        }
        if let Some(p) = req.parallel_tool_calls {
            body.insert("parallel_tool_calls".into(), Value::Bool(p));
        }
    }
    // Output length: as on chat completions, an unset limit asks for
    // DEFAULT_MAX_TOKENS (Workers AI's own default is 256), both capped by what the
    // context window leaves after the (estimated, 3 bytes a token) prompt.
    let prompt = u32::try_from(prompt_bytes.div_ceil(3) + 8 * items_count).unwrap_or(u32::MAX);
    let limit = match (m.max_output_tokens, m.context_window) {
        (Some(a), Some(c)) => Some(a.min(c.saturating_sub(prompt).max(1))),
        (a, c) => a.or(c.map(|c| c.saturating_sub(prompt).max(1))),
    };
    let max = req
        .max_output_tokens
        .unwrap_or(DEFAULT_MAX_TOKENS)
        .min(limit.unwrap_or(u32::MAX));
    body.insert("max_output_tokens".into(), max.into());
    for (name, value, range) in [
        ("temperature", req.temperature, m.params.temperature),
        ("top_p", req.top_p, m.params.top_p),
    ] {
        let Some(v) = value else { continue };
        if !v.is_finite() {
            return Err(Error::invalid_param(
                name,
                format!("`{name}` must be a finite number."),
            ));
        }
        match range {
            Some(r) => {
                body.insert(name.into(), json!(r.clamp(v)));
            }
            None => dropped.push(name),
        }
    }
    match req.text.as_ref().and_then(|t| t.format.as_ref()) {
        None | Some(TextFormat::Text) => {}
        Some(f) if m.json_mode || m.unknown => {
            body.insert("text".into(), json!({"format": f}));
        }
        Some(_) => return Err(no_json_mode(target)),
    }
    let context = ChatContext {
        id: format!("chatcmpl-{base}"),
        created: now,
        model: target.requested.clone(),
        include_usage: false,
        reasoning: m.reasoning,
        tools: tool_names,
        legacy_functions: false,
        max_tokens: Some(max),
        call_id_prefix: format!("call_{base}"),
        dialect: Dialect::Chat,
    };
    Ok(ResponsesPlan {
        request: InferenceRequest {
            model: m.id.clone(),
            task: Task::TextGeneration,
            input: ModelInput::Json(Value::Object(body)),
            stream: false,
        },
        context,
        head,
        stream: false,
        emulate_stream: false,
        native: true,
        dropped,
    })
}

fn no_vision(param: String, target: &Resolved) -> Error {
    Error::invalid_param(
        param,
        format!(
            "{} cannot read images. Use a vision model such as \
             @cf/meta/llama-4-scout-17b-16e-instruct (alias `gpt-4o`).",
            target.describe()
        ),
    )
    .with_code("image_not_supported")
}

fn no_json_mode(target: &Resolved) -> Error {
    Error::invalid_param(
        "text.format",
        format!(
            "{} has no JSON mode. Use a model that has one (for example \
             @cf/meta/llama-3.3-70b-instruct-fp8-fast) or ask for JSON in the prompt.",
            target.describe()
        ),
    )
    .with_code("unsupported_parameter")
}

/// The chat request for `req`, and for each of its messages the Responses field it
/// came from (to name it in errors).
fn to_chat(
    req: &ResponsesRequest,
    input: &Input,
    tools: &[FunctionTool],
    choice: Option<ToolChoice>,
) -> Result<(crate::openai::chat::ChatRequest, Vec<String>), Error> {
    let mut messages: Vec<Message> = Vec::new();
    let mut origins: Vec<String> = Vec::new();
    if let Some(i) = &req.instructions {
        messages.push(Message::System {
            content: Content::Text(i.clone()),
            name: None,
        });
        origins.push("instructions".into());
    }
    match input {
        Input::Text(s) => {
            messages.push(Message::User {
                content: Content::Text(s.clone()),
                name: None,
            });
            origins.push("input".into());
        }
        Input::Items(items) => {
            for (i, item) in items.iter().enumerate() {
                let origin = format!("input[{i}]");
                match item {
                    Item::Message { role, parts } => {
                        let content = Content::Parts(parts.iter().map(chat_part).collect());
                        let msg = match role {
                            Role::User => Message::User {
                                content,
                                name: None,
                            },
                            Role::System => Message::System {
                                content,
                                name: None,
                            },
                            Role::Developer => Message::Developer {
                                content,
                                name: None,
                            },
                            Role::Assistant => Message::Assistant {
                                content: Content::Text(Item::text(parts)),
                                tool_calls: Vec::new(),
                                function_call: None,
                                name: None,
                                reasoning_content: None,
                            },
                        };
                        messages.push(msg);
                        origins.push(origin);
                    }
                    Item::FunctionCall {
                        call_id,
                        name,
                        arguments,
                    } => {
                        let call = ToolCall {
                            id: call_id.clone(),
                            kind: ToolKind::Function,
                            function: FunctionCall {
                                name: name.clone(),
                                arguments: arguments.clone(),
                            },
                        };
                        // Calls of one turn belong to one assistant message.
                        if let Some(Message::Assistant { tool_calls, .. }) = messages.last_mut() {
                            tool_calls.push(call);
                        } else {
                            messages.push(Message::Assistant {
                                content: Content::Empty,
                                tool_calls: vec![call],
                                function_call: None,
                                name: None,
                                reasoning_content: None,
                            });
                            origins.push(origin);
                        }
                    }
                    Item::FunctionCallOutput { call_id, output } => {
                        messages.push(Message::Tool {
                            content: Content::Text(output.clone()),
                            tool_call_id: call_id.clone(),
                        });
                        origins.push(origin);
                    }
                    Item::Reasoning => {}
                }
            }
        }
    }
    if !messages
        .iter()
        .any(|m| !matches!(m, Message::System { .. } | Message::Developer { .. }))
    {
        return Err(Error::invalid_param(
            "input",
            "`input` has no message: send at least one message item.",
        ));
    }
    let mut c = chat::blank_request(&req.model)?;
    c.messages = messages;
    c.stream = req.stream;
    c.max_completion_tokens = req.max_output_tokens;
    c.temperature = req.temperature;
    c.top_p = req.top_p;
    c.parallel_tool_calls = req.parallel_tool_calls;
    c.reasoning_effort = req.reasoning.as_ref().and_then(|r| r.effort.clone());
    c.response_format = match req.text.as_ref().and_then(|t| t.format.as_ref()) {
        None | Some(TextFormat::Text) => None,
        Some(TextFormat::JsonObject) => Some(ResponseFormat::JsonObject),
        Some(TextFormat::JsonSchema {
            name,
            schema,
            description,
            strict,
        }) => Some(ResponseFormat::JsonSchema {
            json_schema: JsonSchemaFormat {
                name: name.clone(),
                description: description.clone(),
                schema: schema.clone(),
                strict: *strict,
            },
        }),
    };
    if !tools.is_empty() {
        c.tools = Some(
            tools
                .iter()
                .map(|t| Tool {
                    kind: ToolKind::Function,
                    function: FunctionDefinition {
                        name: t.name.clone(),
                        description: t.description.clone(),
                        parameters: t.parameters.clone(),
                        strict: t.strict,
                    },
                })
                .collect(),
        );
    }
    c.tool_choice = choice.map(|ch| match ch {
        ToolChoice::None => ChatToolChoice::Mode(ToolChoiceMode::None),
        ToolChoice::Auto => ChatToolChoice::Mode(ToolChoiceMode::Auto),
        ToolChoice::Required => ChatToolChoice::Mode(ToolChoiceMode::Required),
        ToolChoice::Function(name) => ChatToolChoice::Named(NamedToolChoice {
            function: NamedFunction { name },
        }),
    });
    Ok((c, origins))
}

fn chat_part(p: &Part) -> ContentPart {
    match p {
        Part::Text(t) => ContentPart::Text { text: t.clone() },
        Part::Refusal(r) => ContentPart::Refusal { refusal: r.clone() },
        Part::Image { url, detail } => ContentPart::ImageUrl {
            image_url: ImageUrl {
                url: url.clone(),
                detail: detail.clone(),
            },
        },
    }
}

/// Renames an error's `param` from the chat request's field to the Responses field.
fn remap(e: Error, origins: &[String]) -> Error {
    let Some(param) = e.param().map(str::to_string) else {
        return e;
    };
    let renamed = if let Some(rest) = param.strip_prefix("messages[") {
        let (idx, tail) = rest.split_once(']').unwrap_or((rest, ""));
        match idx.parse::<usize>().ok().and_then(|i| origins.get(i)) {
            // A message made from a string (`input`, `instructions`) has no parts.
            Some(origin) if origin == "input" || origin == "instructions" => origin.clone(),
            Some(origin) => format!("{origin}{tail}"),
            None => "input".to_string(),
        }
    } else {
        match param.as_str() {
            "messages" => "input".to_string(),
            "max_completion_tokens" | "max_tokens" => "max_output_tokens".to_string(),
            "response_format" => "text.format".to_string(),
            "reasoning_effort" => "reasoning.effort".to_string(),
            other => other.to_string(),
        }
    };
    e.with_param(renamed)
}
