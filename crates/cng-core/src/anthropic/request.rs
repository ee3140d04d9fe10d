//! Anthropic Messages request → a chat request → Workers AI input.
//!
//! The request is rewritten as a [`ChatRequest`] and planned by [`chat::plan`], so
//! every rule of `/v1/chat/completions` applies (schema generations, clamping into the
//! model's ranges, tools, vision, JSON mode): `system` becomes the system message;
//! `text` and `image` blocks become content parts (base64 images as `data:` URLs);
//! an assistant's `tool_use` blocks become its tool calls (the `input` object as the
//! JSON arguments); a user's `tool_result` blocks become `tool` messages, placed before
//! the rest of that user turn as Anthropic requires them to be; `stop_sequences`
//! becomes `stop`, `tool_choice` `any` becomes `required`, `disable_parallel_tool_use`
//! becomes `parallel_tool_calls: false`, `output_config.format` becomes JSON mode and
//! `output_config.effort` the reasoning effort. Errors name the Anthropic field.

use serde::Deserialize;
use serde_json::Value;

use super::messages::{MessagesRequest, ToolChoice as AnthropicChoice};
use crate::alias::Resolved;
use crate::backend::InferenceRequest;
use crate::chat::{self, ChatContext};
use crate::error::Error;
use crate::ids::{Clock, IdSource};
use crate::openai::chat::{
    Content, ContentPart, FunctionCall, FunctionDefinition, ImageUrl, JsonSchemaFormat, Message,
    NamedFunction, NamedToolChoice, ResponseFormat, Stop, Tool, ToolCall, ToolChoice,
    ToolChoiceMode, ToolKind,
};

/// A planned Messages request.
#[derive(Debug, Clone)]
pub struct MessagesPlan {
    pub request: InferenceRequest,
    /// How to read the answer (through the chat reader).
    pub context: ChatContext,
    /// `msg_…`.
    pub id: String,
    /// The model name the client asked for (echoed).
    pub model: String,
    /// The client asked for a stream.
    pub stream: bool,
    /// The upstream answers JSON but the client wants a stream (JSON mode).
    pub emulate_stream: bool,
    /// Extended thinking was asked for: reasoning is sent as `thinking` blocks.
    pub thinking: bool,
    /// The request's stop sequences (to report which one ended the answer).
    pub stop_sequences: Vec<String>,
    /// Request fields without an equivalent, dropped (for logs and docs).
    pub dropped: Vec<&'static str>,
}

/// One content block of a request message.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Text(String),
    /// An image as a URL (`data:` for base64 sources).
    Image(String),
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        content: String,
        is_error: bool,
        /// The result held images (counted by `count_tokens`; not sent).
        images: usize,
    },
    /// Thinking blocks sent back: models do not read their past reasoning.
    Thinking,
}

/// Reads a message's (or `system`'s) content: a string or a list of blocks.
pub fn parse_blocks(param: &str, content: &Value) -> Result<Vec<Block>, Error> {
    let items = match content {
        Value::String(s) => return Ok(vec![Block::Text(s.clone())]),
        Value::Array(items) => items,
        _ => {
            return Err(Error::invalid_param(
                param.to_string(),
                format!("`{param}` must be a string or a list of content blocks."),
            ));
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(j, b)| parse_block(&format!("{param}[{j}]"), b))
        .collect()
}

#[derive(Deserialize)]
struct ToolUseWire {
    id: String,
    name: String,
    #[serde(default)]
    input: Value,
}

#[derive(Deserialize)]
struct ToolResultWire {
    tool_use_id: String,
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    is_error: Option<bool>,
}

fn parse_block(param: &str, b: &Value) -> Result<Block, Error> {
    let kind = b.get("type").and_then(Value::as_str).unwrap_or("");
    let text = |field: &str| -> Result<String, Error> {
        b.get(field)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                Error::invalid_param(
                    format!("{param}.{field}"),
                    format!("`{param}.{field}` is required (a string)."),
                )
            })
    };
    Ok(match kind {
        "text" => Block::Text(text("text")?),
        "image" => Block::Image(image_url(&format!("{param}.source"), b.get("source"))?),
        "tool_use" => {
            let t: ToolUseWire = crate::openai::parse_value(param, b)?;
            if !(t.input.is_object() || t.input.is_null()) {
                return Err(Error::invalid_param(
                    format!("{param}.input"),
                    format!("`{param}.input` must be an object."),
                ));
            }
            Block::ToolUse {
                id: t.id,
                name: t.name,
                input: t.input,
            }
        }
        "tool_result" => {
            let r: ToolResultWire = crate::openai::parse_value(param, b)?;
            let (content, images) = match &r.content {
                None | Some(Value::Null) => (String::new(), 0),
                Some(Value::String(s)) => (s.clone(), 0),
                Some(other) => {
                    let blocks = parse_blocks(&format!("{param}.content"), other)?;
                    let mut text = String::new();
                    let mut images = 0;
                    for blk in &blocks {
                        match blk {
                            Block::Text(t) => {
                                if !text.is_empty() {
                                    text.push('\n');
                                }
                                text.push_str(t);
                            }
                            Block::Image(_) => images += 1,
                            _ => {}
                        }
                    }
                    (text, images)
                }
            };
            Block::ToolResult {
                tool_use_id: r.tool_use_id,
                content,
                is_error: r.is_error.unwrap_or(false),
                images,
            }
        }
        "thinking" | "redacted_thinking" => Block::Thinking,
        "" => {
            return Err(Error::invalid_param(
                format!("{param}.type"),
                format!("`{param}.type` is required (text, image, tool_use, tool_result)."),
            ));
        }
        other => {
            return Err(Error::invalid_param(
                format!("{param}.type"),
                format!(
                    "`{other}` blocks are not supported: Workers AI models read text, images, \
                     tool_use and tool_result blocks."
                ),
            )
            .with_code("unsupported_parameter"));
        }
    })
}

fn image_url(param: &str, source: Option<&Value>) -> Result<String, Error> {
    let Some(src) = source.filter(|s| s.is_object()) else {
        return Err(Error::invalid_param(
            param.to_string(),
            format!("`{param}` is required: {{\"type\": \"base64\", \"media_type\", \"data\"}}."),
        ));
    };
    let field = |f: &str| src.get(f).and_then(Value::as_str);
    match field("type") {
        Some("base64") => {
            let media = field("media_type").unwrap_or("");
            if !media.starts_with("image/") {
                return Err(Error::invalid_param(
                    format!("{param}.media_type"),
                    "`media_type` must be an image type (image/png, image/jpeg, image/gif, \
                     image/webp).",
                ));
            }
            match field("data") {
                Some(d) if !d.is_empty() => Ok(format!("data:{media};base64,{d}")),
                _ => Err(Error::invalid_param(
                    format!("{param}.data"),
                    format!("`{param}.data` is required (the base64 image)."),
                )),
            }
        }
        Some("url") => match field("url") {
            Some(u) => Ok(u.to_string()),
            None => Err(Error::invalid_param(
                format!("{param}.url"),
                format!("`{param}.url` is required."),
            )),
        },
        Some(other) => Err(Error::invalid_param(
            format!("{param}.type"),
            format!(
                "`{other}` image sources are not supported (file ids refer to Anthropic's \
                 file store): send the image as base64."
            ),
        )
        .with_code("unsupported_parameter")),
        None => Err(Error::invalid_param(
            format!("{param}.type"),
            format!("`{param}.type` is required (base64 or url)."),
        )),
    }
}

/// The `system` text: a string or text blocks, joined.
pub fn system_text(system: Option<&Value>) -> Result<Option<String>, Error> {
    let Some(v) = system.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let blocks = parse_blocks("system", v)?;
    let mut out = String::new();
    for (j, b) in blocks.iter().enumerate() {
        let Block::Text(t) = b else {
            return Err(Error::invalid_param(
                format!("system[{j}]"),
                "`system` takes text blocks only.",
            ));
        };
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(t);
    }
    Ok(Some(out))
}

/// A tool the client defines: `{name, description, input_schema}`.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomTool {
    pub name: String,
    pub description: Option<String>,
    pub input_schema: Value,
}

#[derive(Deserialize)]
struct ToolWire {
    name: String,
    #[serde(default)]
    description: Option<String>,
    input_schema: Value,
}

/// Reads `tools`: client tools only (Anthropic's own tools run at Anthropic).
pub fn parse_tools(tools: &[Value]) -> Result<Vec<CustomTool>, Error> {
    let mut out = Vec::with_capacity(tools.len());
    for (i, t) in tools.iter().enumerate() {
        let param = format!("tools[{i}]");
        match t.get("type").and_then(Value::as_str) {
            None | Some("custom") => {}
            Some(other) => {
                return Err(Error::invalid_param(
                    format!("{param}.type"),
                    format!(
                        "`{other}` is a tool Anthropic runs (server or Anthropic-defined \
                         tool); on Workers AI only client tools (`name`, `description`, \
                         `input_schema`) are supported."
                    ),
                )
                .with_code("unsupported_parameter"));
            }
        }
        let w: ToolWire = crate::openai::parse_value(&param, t)?;
        if !w.input_schema.is_object() {
            return Err(Error::invalid_param(
                format!("{param}.input_schema"),
                "`input_schema` must be a JSON Schema object.",
            ));
        }
        out.push(CustomTool {
            name: w.name,
            description: w.description,
            input_schema: w.input_schema,
        });
    }
    Ok(out)
}

/// Translates `req` for the resolved model.
pub fn plan(
    req: &MessagesRequest,
    target: &Resolved,
    ids: &(impl IdSource + ?Sized),
    clock: &(impl Clock + ?Sized),
) -> Result<MessagesPlan, Error> {
    let Some(max_tokens) = req.max_tokens else {
        return Err(Error::invalid_param(
            "max_tokens",
            "`max_tokens` is required: the most tokens the answer may have (as the \
             Anthropic API requires).",
        ));
    };
    if max_tokens == 0 {
        return Err(Error::invalid_param(
            "max_tokens",
            "`max_tokens` must be at least 1.",
        ));
    }
    if req.mcp_servers.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(Error::invalid_param(
            "mcp_servers",
            "The MCP connector runs at Anthropic; Workers AI models cannot call MCP servers. \
             Call the tools from your client instead.",
        )
        .with_code("unsupported_parameter"));
    }
    if req.container.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(Error::invalid_param(
            "container",
            "Containers belong to Anthropic's code execution tool, which Workers AI does not have.",
        )
        .with_code("unsupported_parameter"));
    }
    let (chat_req, origins, mut dropped) = to_chat(req, max_tokens)?;
    let mut plan = chat::plan(&chat_req, target, ids, clock).map_err(|e| remap(e, &origins))?;
    chat::ask_stream_usage(&mut plan.request, &target.model);
    for d in plan.dropped {
        dropped.push(match d {
            "stop" => "stop_sequences",
            "reasoning_effort" => "output_config.effort",
            other => other,
        });
    }
    let mut context = plan.context;
    // Anthropic's tool-use ids look like `toolu_…`.
    context.call_id_prefix = context.call_id_prefix.replacen("call_", "toolu_", 1);
    let id = context.id.replacen("chatcmpl-", "msg_", 1);
    Ok(MessagesPlan {
        request: plan.request,
        context,
        id,
        model: target.requested.clone(),
        stream: req.stream,
        emulate_stream: plan.emulate_stream,
        thinking: req.thinking.as_ref().is_some_and(|t| t.enabled()),
        stop_sequences: req.stop_sequences.clone().unwrap_or_default(),
        dropped,
    })
}

type Translated = (
    crate::openai::chat::ChatRequest,
    Vec<String>,
    Vec<&'static str>,
);

fn to_chat(req: &MessagesRequest, max_tokens: u32) -> Result<Translated, Error> {
    let mut messages = Vec::new();
    let mut origins = Vec::new();
    let mut dropped = Vec::new();
    if let Some(s) = system_text(req.system.as_ref())? {
        messages.push(Message::System {
            content: Content::Text(s),
            name: None,
        });
        origins.push("system".to_string());
    }
    for (i, m) in req.messages.iter().enumerate() {
        let param = format!("messages[{i}]");
        let blocks = parse_blocks(&format!("{param}.content"), &m.content)?;
        match m.role.as_str() {
            "user" => {
                let mut parts = Vec::new();
                for (j, b) in blocks.into_iter().enumerate() {
                    match b {
                        Block::Text(text) => parts.push(ContentPart::Text { text }),
                        Block::Image(url) => parts.push(ContentPart::ImageUrl {
                            image_url: ImageUrl { url, detail: None },
                        }),
                        Block::ToolResult {
                            tool_use_id,
                            content,
                            is_error,
                            images,
                        } => {
                            if images > 0 {
                                return Err(Error::invalid_param(
                                    format!("{param}.content[{j}].content"),
                                    "Images in a tool_result are not supported: Workers AI \
                                     models read tool results as text. Send the image as an \
                                     image block of the user turn instead.",
                                )
                                .with_code("unsupported_parameter"));
                            }
                            // Chat completions has no error flag on tool results.
                            let content = if is_error {
                                format!("Error: {content}")
                            } else {
                                content
                            };
                            messages.push(Message::Tool {
                                content: Content::Text(content),
                                tool_call_id: tool_use_id,
                            });
                            origins.push(format!("{param}.content[{j}]"));
                        }
                        Block::ToolUse { .. } => {
                            return Err(Error::invalid_param(
                                format!("{param}.content[{j}]"),
                                "`tool_use` blocks belong to assistant messages.",
                            ));
                        }
                        Block::Thinking => {}
                    }
                }
                if !parts.is_empty() {
                    messages.push(Message::User {
                        content: Content::Parts(parts),
                        name: None,
                    });
                    origins.push(param);
                }
            }
            "assistant" => {
                let mut text = String::new();
                let mut calls = Vec::new();
                for (j, b) in blocks.into_iter().enumerate() {
                    match b {
                        Block::Text(t) => text.push_str(&t),
                        Block::ToolUse { id, name, input } => {
                            let input = if input.is_null() {
                                Value::Object(Default::default())
                            } else {
                                input
                            };
                            calls.push(ToolCall {
                                id,
                                kind: ToolKind::Function,
                                function: FunctionCall {
                                    name,
                                    arguments: input.to_string(),
                                },
                            });
                        }
                        Block::Image(_) | Block::ToolResult { .. } => {
                            return Err(Error::invalid_param(
                                format!("{param}.content[{j}]"),
                                "Assistant messages hold text, tool_use and thinking blocks.",
                            ));
                        }
                        Block::Thinking => {}
                    }
                }
                messages.push(Message::Assistant {
                    content: Content::Text(text),
                    tool_calls: calls,
                    function_call: None,
                    name: None,
                    reasoning_content: None,
                });
                origins.push(param);
            }
            other => {
                return Err(Error::invalid_param(
                    format!("{param}.role"),
                    format!(
                        "Unknown role `{other}`: messages are `user` or `assistant` (put system text in `system`)."
                    ),
                ));
            }
        }
    }
    let mut c = chat::blank_request(&req.model)?;
    c.messages = messages;
    c.stream = req.stream;
    c.max_tokens = Some(max_tokens);
    c.temperature = req.temperature;
    c.top_p = req.top_p;
    c.top_k = req.top_k;
    c.stop = req
        .stop_sequences
        .as_ref()
        .filter(|s| !s.is_empty())
        .map(|s| Stop::Many(s.clone()));
    let tools = parse_tools(req.tools.as_deref().unwrap_or(&[]))?;
    if !tools.is_empty() {
        c.tools = Some(
            tools
                .iter()
                .map(|t| Tool {
                    kind: ToolKind::Function,
                    function: FunctionDefinition {
                        name: t.name.clone(),
                        description: t.description.clone(),
                        parameters: Some(t.input_schema.clone()),
                        strict: None,
                    },
                })
                .collect(),
        );
    }
    if let Some(choice) = &req.tool_choice {
        let (mode, no_parallel) = match choice {
            AnthropicChoice::Auto {
                disable_parallel_tool_use,
            } => (
                ToolChoice::Mode(ToolChoiceMode::Auto),
                *disable_parallel_tool_use,
            ),
            AnthropicChoice::Any {
                disable_parallel_tool_use,
            } => (
                ToolChoice::Mode(ToolChoiceMode::Required),
                *disable_parallel_tool_use,
            ),
            AnthropicChoice::Tool {
                name,
                disable_parallel_tool_use,
            } => (
                ToolChoice::Named(NamedToolChoice {
                    function: NamedFunction { name: name.clone() },
                }),
                *disable_parallel_tool_use,
            ),
            AnthropicChoice::None => (ToolChoice::Mode(ToolChoiceMode::None), None),
        };
        if tools.is_empty()
            && !matches!(choice, AnthropicChoice::None | AnthropicChoice::Auto { .. })
        {
            return Err(Error::invalid_param(
                "tool_choice",
                "`tool_choice` asks for a tool, but `tools` is empty.",
            ));
        }
        if !tools.is_empty() {
            c.tool_choice = Some(mode);
            if no_parallel == Some(true) {
                c.parallel_tool_calls = Some(false);
            }
        }
    }
    if let Some(oc) = &req.output_config {
        if let Some(e) = &oc.effort {
            c.reasoning_effort = Some(
                match e.as_str() {
                    "xhigh" | "max" => "high",
                    other => other,
                }
                .to_string(),
            );
        }
        if let Some(f) = &oc.format {
            if f.kind != "json_schema" {
                return Err(Error::invalid_param(
                    "output_config.format.type",
                    format!("Unknown output format `{}`: use `json_schema`.", f.kind),
                ));
            }
            c.response_format = Some(ResponseFormat::JsonSchema {
                json_schema: JsonSchemaFormat {
                    name: None,
                    description: None,
                    schema: f.schema.clone(),
                    strict: None,
                },
            });
        }
    }
    if req
        .thinking
        .as_ref()
        .is_some_and(|t| t.budget_tokens.is_some())
    {
        dropped.push("thinking.budget_tokens");
    }
    for (name, present) in [
        ("metadata", req.metadata.is_some()),
        ("service_tier", req.service_tier.is_some()),
    ] {
        if present {
            dropped.push(name);
        }
    }
    Ok((c, origins, dropped))
}

/// Renames an error's `param` from the chat request's field to the Anthropic field.
fn remap(e: Error, origins: &[String]) -> Error {
    let Some(param) = e.param().map(str::to_string) else {
        return e;
    };
    let renamed = if let Some(rest) = param.strip_prefix("messages[") {
        let (idx, tail) = rest.split_once(']').unwrap_or((rest, ""));
        match idx.parse::<usize>().ok().and_then(|i| origins.get(i)) {
            Some(origin) if origin == "system" || origin.contains(".content[") => origin.clone(),
            Some(origin) => format!("{origin}{tail}"),
            None => "messages".to_string(),
        }
    } else {
        match param.as_str() {
            "stop" => "stop_sequences".to_string(),
            "max_completion_tokens" => "max_tokens".to_string(),
            "response_format" => "output_config.format".to_string(),
            "reasoning_effort" => "output_config.effort".to_string(),
            other => other.to_string(),
        }
    };
    e.with_param(renamed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;
    use serde_json::json;

    #[test]
    fn blocks_of_every_kind() {
        let b = parse_blocks(
            "m",
            &json!([
                {"type": "text", "text": "Hi"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}},
                {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "42"}]},
                {"type": "thinking", "thinking": "hm", "signature": "x"}
            ]),
        )
        .unwrap();
        assert_eq!(b[1], Block::Image("data:image/png;base64,AA==".into()));
        assert!(matches!(&b[2], Block::ToolResult { content, .. } if content == "42"));
        assert_eq!(b[3], Block::Thinking);
    }

    #[test]
    fn block_errors_name_the_block() {
        for (content, param) in [
            (
                json!([{"type": "image", "source": {"type": "base64", "media_type": "text/plain", "data": "x"}}]),
                "m[0].source.media_type",
            ),
            (json!([{"type": "document", "source": {}}]), "m[0].type"),
            (
                json!([{"type": "tool_use", "name": "f", "input": {}}]),
                "m[0].id",
            ),
            (json!([{"type": "text"}]), "m[0].text"),
            (json!(7), "m"),
        ] {
            let e = parse_blocks("m", &content).unwrap_err();
            assert_eq!(e.param(), Some(param), "{content}");
        }
    }

    #[test]
    fn server_tools_are_refused() {
        let e = parse_tools(&[json!({"type": "web_search_20250305", "name": "web_search"})])
            .unwrap_err();
        assert_eq!(e.param(), Some("tools[0].type"));
        let e = parse_tools(&[json!({"name": "f"})]).unwrap_err();
        assert_eq!(e.param(), Some("tools[0].input_schema"));
    }
}
