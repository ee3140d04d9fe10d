//! Reading a Responses request's open-ended parts: `input` items, `tools`,
//! `tool_choice`. Each is checked item by item so that an error names the item
//! (`input[2].content[1]`) and says what to send instead.

use serde::Deserialize;
use serde_json::Value;

use crate::error::Error;

/// Who wrote a message item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
    System,
    Developer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::System => "system",
            Role::Developer => "developer",
        }
    }
}

/// One content part of a message, reduced to what a Workers AI model can take.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// `input_text`, or `output_text` in assistant history.
    Text(String),
    /// `input_image` with an `image_url` (an `https:` or `data:` URL).
    Image { url: String, detail: Option<String> },
    /// `refusal` in assistant history.
    Refusal(String),
}

/// One input item.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Message {
        role: Role,
        parts: Vec<Part>,
    },
    FunctionCall {
        call_id: String,
        name: String,
        arguments: String,
    },
    FunctionCallOutput {
        call_id: String,
        output: String,
    },
    /// A reasoning item sent back from an earlier response: models do not read their
    /// past chain of thought, so it is accepted and not sent.
    Reasoning,
}

impl Item {
    /// The text of a message's text parts, joined with newlines.
    pub fn text(parts: &[Part]) -> String {
        let mut out = String::new();
        for p in parts {
            if let Part::Text(t) | Part::Refusal(t) = p {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(t);
            }
        }
        out
    }
}

/// The request's input: a string (one user message) or items.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Text(String),
    Items(Vec<Item>),
}

/// Reads `input`.
pub fn parse_input(v: Option<&Value>) -> Result<Input, Error> {
    match v {
        None | Some(Value::Null) => Err(Error::invalid_param(
            "input",
            "`input` is required: a string, or a list of input items.",
        )),
        Some(Value::String(s)) => Ok(Input::Text(s.clone())),
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return Err(Error::invalid_param(
                    "input",
                    "`input` is empty: send at least one item.",
                ));
            }
            let items = items
                .iter()
                .enumerate()
                .map(|(i, v)| parse_item(i, v))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Input::Items(items))
        }
        Some(_) => Err(Error::invalid_param(
            "input",
            "`input` must be a string or a list of input items.",
        )),
    }
}

#[derive(Deserialize)]
struct MessageItem {
    role: String,
    content: Value,
}

#[derive(Deserialize)]
struct FunctionCallItem {
    call_id: String,
    name: String,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct FunctionCallOutputItem {
    call_id: String,
    output: Value,
}

fn parse_item(i: usize, v: &Value) -> Result<Item, Error> {
    let param = format!("input[{i}]");
    let Some(obj) = v.as_object() else {
        return Err(Error::invalid_param(
            param.clone(),
            format!(
                "`{param}` must be an object (a message, function_call or function_call_output item)."
            ),
        ));
    };
    let kind = match obj.get("type") {
        None | Some(Value::Null) => "message",
        Some(Value::String(s)) => s.as_str(),
        Some(_) => {
            return Err(Error::invalid_param(
                format!("{param}.type"),
                format!("`{param}.type` must be a string."),
            ));
        }
    };
    match kind {
        "message" => {
            let m: MessageItem = crate::openai::parse_value(&param, v)?;
            let role = match m.role.as_str() {
                "user" => Role::User,
                "assistant" => Role::Assistant,
                "system" => Role::System,
                "developer" => Role::Developer,
                other => {
                    return Err(Error::invalid_param(
                        format!("{param}.role"),
                        format!(
                            "Unknown role `{other}`: use user, assistant, system or developer."
                        ),
                    ));
                }
            };
            let parts = parse_parts(&format!("{param}.content"), &m.content)?;
            Ok(Item::Message { role, parts })
        }
        "function_call" => {
            let c: FunctionCallItem = crate::openai::parse_value(&param, v)?;
            Ok(Item::FunctionCall {
                call_id: c.call_id,
                name: c.name,
                arguments: c.arguments.unwrap_or_default(),
            })
        }
        "function_call_output" => {
            let o: FunctionCallOutputItem = crate::openai::parse_value(&param, v)?;
            let output = match &o.output {
                Value::String(s) => s.clone(),
                other => {
                    let p = format!("{param}.output");
                    let parts = parse_parts(&p, other)?;
                    if parts.iter().any(|p| matches!(p, Part::Image { .. })) {
                        return Err(Error::invalid_param(
                            p,
                            "Images in a function_call_output are not supported: Workers AI \
                             models read tool results as text. Send the image in a user \
                             message instead.",
                        )
                        .with_code("unsupported_parameter"));
                    }
                    Item::text(&parts)
                }
            };
            Ok(Item::FunctionCallOutput {
                call_id: o.call_id,
                output,
            })
        }
        "reasoning" => Ok(Item::Reasoning),
        "item_reference" => Err(Error::invalid_param(
            param,
            "`item_reference` points at an item OpenAI stored; cng does not keep responses. \
             Send the item itself.",
        )
        .with_code("unsupported_parameter")),
        other => Err(Error::invalid_param(
            format!("{param}.type"),
            format!(
                "`{other}` items are not supported: Workers AI models have no hosted tools. \
                 Send message, function_call, function_call_output or reasoning items."
            ),
        )
        .with_code("unsupported_parameter")),
    }
}

fn parse_parts(param: &str, content: &Value) -> Result<Vec<Part>, Error> {
    let items = match content {
        Value::String(s) => return Ok(vec![Part::Text(s.clone())]),
        Value::Array(items) => items,
        _ => {
            return Err(Error::invalid_param(
                param.to_string(),
                format!("`{param}` must be a string or a list of content parts."),
            ));
        }
    };
    let mut parts = Vec::with_capacity(items.len());
    for (j, p) in items.iter().enumerate() {
        let pp = format!("{param}[{j}]");
        let kind = p.get("type").and_then(Value::as_str).unwrap_or("");
        let text = |field: &str| -> Result<String, Error> {
            p.get(field)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| {
                    Error::invalid_param(
                        format!("{pp}.{field}"),
                        format!("`{pp}.{field}` is required (a string)."),
                    )
                })
        };
        let part = match kind {
            "input_text" | "output_text" | "text" => Part::Text(text("text")?),
            "refusal" => Part::Refusal(text("refusal")?),
            "input_image" => {
                if let Some(url) = p.get("image_url").and_then(Value::as_str) {
                    Part::Image {
                        url: url.to_string(),
                        detail: p.get("detail").and_then(Value::as_str).map(str::to_string),
                    }
                } else if p.get("file_id").is_some_and(|f| !f.is_null()) {
                    return Err(Error::invalid_param(
                        format!("{pp}.file_id"),
                        "File ids refer to OpenAI's file store, which cng does not have: \
                         send the image as `image_url` (a `data:image/...;base64,...` URL).",
                    )
                    .with_code("unsupported_parameter"));
                } else {
                    return Err(Error::invalid_param(
                        format!("{pp}.image_url"),
                        format!("`{pp}.image_url` is required."),
                    ));
                }
            }
            "input_file" | "input_audio" => {
                return Err(Error::invalid_param(
                    pp,
                    format!(
                        "`{kind}` parts are not supported: Workers AI chat models read text \
                         and images. Use /v1/audio/transcriptions for audio."
                    ),
                )
                .with_code("unsupported_parameter"));
            }
            "" => {
                return Err(Error::invalid_param(
                    format!("{pp}.type"),
                    format!("`{pp}.type` is required (input_text, input_image, ...)."),
                ));
            }
            other => {
                return Err(Error::invalid_param(
                    format!("{pp}.type"),
                    format!("Unknown content part type `{other}`."),
                ));
            }
        };
        parts.push(part);
    }
    Ok(parts)
}

/// A function tool: `{type: "function", name, description, parameters, strict}`.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionTool {
    pub name: String,
    pub description: Option<String>,
    pub parameters: Option<Value>,
    pub strict: Option<bool>,
}

#[derive(Deserialize)]
struct FunctionToolWire {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Value>,
    #[serde(default)]
    strict: Option<bool>,
}

/// Reads `tools`: function tools only (the hosted tools — web search, file search,
/// code interpreter, ... — run on OpenAI's servers).
pub fn parse_tools(tools: &[Value]) -> Result<Vec<FunctionTool>, Error> {
    let mut out = Vec::with_capacity(tools.len());
    for (i, t) in tools.iter().enumerate() {
        let param = format!("tools[{i}]");
        match t.get("type").and_then(Value::as_str) {
            Some("function") => {}
            Some(other) => {
                return Err(Error::invalid_param(
                    format!("{param}.type"),
                    format!(
                        "`{other}` tools are OpenAI-hosted and not available on Workers AI; \
                         only `function` tools are supported."
                    ),
                )
                .with_code("unsupported_parameter"));
            }
            None => {
                return Err(Error::invalid_param(
                    format!("{param}.type"),
                    format!("`{param}.type` is required (`function`)."),
                ));
            }
        }
        let w: FunctionToolWire = crate::openai::parse_value(&param, t)?;
        out.push(FunctionTool {
            name: w.name,
            description: w.description,
            parameters: w.parameters,
            strict: w.strict,
        });
    }
    Ok(out)
}

/// `tool_choice`.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolChoice {
    None,
    Auto,
    Required,
    Function(String),
}

/// Reads `tool_choice`: a mode, or `{type: "function", name}`.
pub fn parse_tool_choice(v: Option<&Value>) -> Result<Option<ToolChoice>, Error> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let bad = |msg: String| Error::invalid_param("tool_choice", msg);
    match v {
        Value::String(s) => match s.as_str() {
            "none" => Ok(Some(ToolChoice::None)),
            "auto" => Ok(Some(ToolChoice::Auto)),
            "required" => Ok(Some(ToolChoice::Required)),
            other => Err(bad(format!(
                "Unknown `tool_choice` `{other}`: use none, auto, required or \
                 {{\"type\": \"function\", \"name\": ...}}."
            ))),
        },
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            Some("function") => match o.get("name").and_then(Value::as_str) {
                Some(name) => Ok(Some(ToolChoice::Function(name.to_string()))),
                None => Err(Error::invalid_param(
                    "tool_choice.name",
                    "`tool_choice.name` is required.",
                )),
            },
            Some(other) => Err(bad(format!(
                "`tool_choice` of type `{other}` is not supported: cng serves function \
                 tools only; use none, auto, required or a named function."
            ))
            .with_code("unsupported_parameter")),
            None => Err(Error::invalid_param(
                "tool_choice.type",
                "`tool_choice.type` is required.",
            )),
        },
        _ => Err(bad(
            "`tool_choice` must be a string or an object.".to_string()
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;
    use serde_json::json;

    #[test]
    fn easy_messages_typed_items_and_parts() {
        let input = json!([
            {"role": "user", "content": "Hi"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello", "annotations": []}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": "42"}]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"role": "user", "content": [{"type": "input_text", "text": "Look"}, {"type": "input_image", "image_url": "data:image/png;base64,AA=="}]}
        ]);
        let Input::Items(items) = parse_input(Some(&input)).unwrap() else {
            panic!()
        };
        assert_eq!(items.len(), 6);
        assert_eq!(
            items[3],
            Item::FunctionCallOutput {
                call_id: "c1".into(),
                output: "42".into()
            }
        );
        assert!(matches!(&items[5], Item::Message { parts, .. } if parts.len() == 2));
    }

    #[test]
    fn errors_name_the_item() {
        let cases = [
            (json!([{"role": "user"}]), "input[0].content"),
            (json!([{"role": "robot", "content": "x"}]), "input[0].role"),
            (
                json!(["x", {"type": "web_search_call", "id": "w"}]),
                "input[0]",
            ),
            (
                json!([{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]),
                "input[0].content[0].file_id",
            ),
            (
                json!([{"type": "function_call", "name": "f"}]),
                "input[0].call_id",
            ),
            (json!([{"type": "item_reference", "id": "x"}]), "input[0]"),
            (json!([]), "input"),
        ];
        for (input, param) in cases {
            let e = parse_input(Some(&input)).unwrap_err();
            assert_eq!(e.param(), Some(param), "{input}: {}", e.message());
            assert_eq!(e.status().as_u16(), 400);
        }
    }

    #[test]
    fn tools_and_choices() {
        let t = parse_tools(&[json!({"type": "function", "name": "f", "parameters": {}})]).unwrap();
        assert_eq!(t[0].name, "f");
        let e = parse_tools(&[json!({"type": "web_search"})]).unwrap_err();
        assert_eq!(e.param(), Some("tools[0].type"));
        assert_eq!(
            parse_tool_choice(Some(&json!({"type": "function", "name": "f"}))).unwrap(),
            Some(ToolChoice::Function("f".into()))
        );
        assert!(parse_tool_choice(Some(&json!({"type": "file_search"}))).is_err());
        assert!(parse_tool_choice(Some(&json!("sometimes"))).is_err());
    }
}
