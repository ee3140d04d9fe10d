//! Anthropic natively: an OpenAI chat request (what cng's chat endpoint hands an
//! OpenAI-schema model) becomes a `POST {base_url}/v1/messages` request, and the
//! Messages answer becomes a `chat.completion` — so clients keep speaking OpenAI while
//! the provider speaks its own API, with its own key (`x-api-key`).
//!
//! Mapping (request): `system`/`developer` messages → `system`; `user` text parts →
//! text blocks; `assistant` `tool_calls` → `tool_use` blocks; `tool` messages →
//! `tool_result` blocks in a user turn; `max_completion_tokens`/`max_tokens` →
//! `max_tokens` (required by Anthropic: [`AnthropicConfig::default_max_tokens`] when
//! absent); `stop` → `stop_sequences`; function `tools` → `tools` with `input_schema`;
//! `tool_choice` `auto`/`required`/`none`/a function → `auto`/`any`/`none`/`tool`.
//! (answer): text blocks joined into `content`; `tool_use` → `tool_calls`;
//! `end_turn`/`stop_sequence` → `stop`, `max_tokens` → `length`, `tool_use` →
//! `tool_calls`, `refusal` → `content_filter`; usage with cached input counted in
//! `prompt_tokens`.
//!
//! Streaming: a streamed request is sent with `"stream": true`, and Anthropic's events
//! are transcoded as they arrive into the OpenAI chunk stream cng-core's chat reader
//! reads from any OpenAI-shaped upstream ([`crate::anthropic_stream`]). Errors before
//! the stream starts (a refused key, a 429, a 529, an answer that is not an event
//! stream) are returned as errors, so a fallback chain can still try its next target;
//! an `error` event mid-stream ends the stream with an error event.

use std::time::Duration;

use bytes::Bytes;
use cng_core::backend::{Backend, InferenceRequest, Input, Output};
use cng_core::catalog::Task;
use cng_core::openai::chat::FinishReason;
use cng_core::routing::UpstreamUrl;
use cng_core::{Error, ErrorKind};
use serde_json::{Map, Value, json};

use crate::anthropic_stream;
use crate::http::{HttpClient, collect_body, media_type, redact};
use crate::rest::{
    DEFAULT_BACKOFF_BASE, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_RETRIES, MAX_ERROR_BODY_BYTES,
    misconfigured, with_retry_after,
};
use crate::retry::{self, Prepared, RetryPolicy};

/// The `anthropic-version` cng speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// How to reach Anthropic. `Debug` redacts the key.
#[derive(Clone)]
pub struct AnthropicConfig {
    /// `https://api.anthropic.com` (or an AI Gateway's `…/anthropic` root).
    pub base_url: UpstreamUrl,
    pub api_key: String,
    /// `max_tokens` when the request sets none (Anthropic requires one).
    pub default_max_tokens: u64,
    pub retries: u32,
    pub backoff_base: Duration,
}

impl AnthropicConfig {
    pub fn new(base_url: UpstreamUrl, api_key: impl Into<String>) -> Self {
        Self {
            base_url,
            api_key: api_key.into(),
            default_max_tokens: 4096,
            retries: DEFAULT_RETRIES,
            backoff_base: DEFAULT_BACKOFF_BASE,
        }
    }
}

impl std::fmt::Debug for AnthropicConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnthropicConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &"[redacted]")
            .field("default_max_tokens", &self.default_max_tokens)
            .finish()
    }
}

/// Anthropic's Messages API behind the OpenAI chat shape.
#[derive(Debug, Clone)]
pub struct AnthropicBackend<H> {
    config: AnthropicConfig,
    client: H,
}

impl<H: HttpClient> AnthropicBackend<H> {
    pub fn new(config: AnthropicConfig, client: H) -> Self {
        Self { config, client }
    }

    async fn run_inner(&self, request: InferenceRequest) -> Result<Output, Error> {
        let (Task::TextGeneration | Task::ImageToText, Input::Json(body)) =
            (request.task, &request.input)
        else {
            return Err(Error::invalid_request(
                "an Anthropic provider serves chat completions only",
            ));
        };
        let mut messages = to_messages(body, &request.model, self.config.default_max_tokens)?;
        if request.stream {
            messages["stream"] = Value::Bool(true);
        }
        let mut headers = http::HeaderMap::new();
        let mut key = http::HeaderValue::from_str(&self.config.api_key).map_err(|_| {
            misconfigured("the configured Anthropic key is not a valid header value")
        })?;
        key.set_sensitive(true);
        headers.insert("x-api-key", key);
        headers.insert(
            "anthropic-version",
            http::HeaderValue::from_static(ANTHROPIC_VERSION),
        );
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        let uri = format!("{}/v1/messages", self.config.base_url)
            .parse()
            .map_err(|_| misconfigured("the configured Anthropic URL is not a valid URL"))?;
        let body = serde_json::to_vec(&messages)
            .map_err(|_| Error::internal("the Anthropic request could not be serialised"))?;
        let prepared = Prepared {
            uri,
            headers,
            body: Bytes::from(body),
        };
        let policy = RetryPolicy {
            retries: self.config.retries,
            backoff_base: self.config.backoff_base,
        };
        // Streams are never retried (the crate's policy for every backend): a failed
        // start is returned at once, for a fallback chain to move on.
        let resp = retry::send(&self.client, &prepared, policy, !request.stream).await?;
        let (parts, body) = resp.into_parts();
        let status = parts.status.as_u16();
        if !parts.status.is_success() {
            let bytes = collect_body(body, MAX_ERROR_BODY_BYTES)
                .await
                .unwrap_or_default();
            return Err(with_retry_after(
                map_error(status, &bytes),
                status,
                &parts.headers,
            ));
        }
        if request.stream {
            let media = media_type(&parts.headers);
            if media.as_deref() != Some("text/event-stream") {
                return Err(Error::upstream(format!(
                    "Anthropic answered HTTP {status} with `{}` where an event stream was expected",
                    media.as_deref().unwrap_or("no content type")
                )));
            }
            return Ok(Output::Stream(anthropic_stream::transcode(
                body,
                request.model,
            )));
        }
        let bytes = collect_body(body, DEFAULT_MAX_RESPONSE_BYTES).await?;
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|_| Error::upstream("Anthropic answered a body that is not JSON"))?;
        from_message(&v, &request.model).map(Output::Json)
    }
}

impl<H: HttpClient> Backend for AnthropicBackend<H> {
    async fn run(&self, request: InferenceRequest) -> Result<Output, Error> {
        self.run_inner(request)
            .await
            .map_err(|e| redact(e, &self.config.api_key))
    }
}

fn text_of(param: &str, content: &Value) -> Result<Vec<Value>, Error> {
    match content {
        Value::String(s) => Ok(vec![json!({"type": "text", "text": s})]),
        Value::Null => Ok(Vec::new()),
        Value::Array(parts) => parts
            .iter()
            .enumerate()
            .map(|(i, p)| match (p["type"].as_str(), p["text"].as_str()) {
                (Some("text"), Some(t)) => Ok(json!({"type": "text", "text": t})),
                _ => Err(Error::invalid_param(
                    format!("{param}[{i}]"),
                    "an Anthropic provider takes text parts only (images are not translated yet)",
                )),
            })
            .collect(),
        _ => Err(Error::invalid_param(
            param,
            "must be a string or an array of parts",
        )),
    }
}

/// An OpenAI chat request → an Anthropic Messages request.
pub fn to_messages(body: &Value, model: &str, default_max_tokens: u64) -> Result<Value, Error> {
    let Some(msgs) = body["messages"].as_array() else {
        return Err(Error::invalid_param(
            "messages",
            "`messages` must be an array",
        ));
    };
    let mut system = Vec::new();
    let mut out: Vec<Value> = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let p = format!("messages[{i}].content");
        match m["role"].as_str() {
            Some("system" | "developer") => {
                for b in text_of(&p, &m["content"])? {
                    system.push(b["text"].as_str().unwrap_or_default().to_string());
                }
            }
            Some("user") => {
                out.push(json!({"role": "user", "content": text_of(&p, &m["content"])?}))
            }
            Some("assistant") => {
                let mut blocks = text_of(&p, &m["content"])?;
                for (j, call) in m["tool_calls"].as_array().into_iter().flatten().enumerate() {
                    let args = call["function"]["arguments"].as_str().unwrap_or("{}");
                    let input: Value = serde_json::from_str(args).map_err(|_| {
                        Error::invalid_param(
                            format!("messages[{i}].tool_calls[{j}].function.arguments"),
                            "must be a JSON object in a string",
                        )
                    })?;
                    blocks.push(json!({
                        "type": "tool_use",
                        "id": call["id"],
                        "name": call["function"]["name"],
                        "input": input,
                    }));
                }
                out.push(json!({"role": "assistant", "content": blocks}));
            }
            Some("tool") => {
                let content = text_of(&p, &m["content"])?;
                out.push(json!({"role": "user", "content": [{
                    "type": "tool_result",
                    "tool_use_id": m["tool_call_id"],
                    "content": content,
                }]}));
            }
            _ => {
                return Err(Error::invalid_param(
                    format!("messages[{i}].role"),
                    "must be system, developer, user, assistant or tool",
                ));
            }
        }
    }
    let mut req = Map::new();
    req.insert("model".into(), json!(model));
    let max = body["max_completion_tokens"]
        .as_u64()
        .or_else(|| body["max_tokens"].as_u64())
        .unwrap_or(default_max_tokens);
    req.insert("max_tokens".into(), json!(max));
    req.insert("messages".into(), Value::Array(out));
    if !system.is_empty() {
        req.insert("system".into(), json!(system.join("\n\n")));
    }
    for k in ["temperature", "top_p"] {
        if let Some(v) = body.get(k).filter(|v| v.is_number()) {
            req.insert(k.into(), v.clone());
        }
    }
    match &body["stop"] {
        Value::String(s) => {
            req.insert("stop_sequences".into(), json!([s]));
        }
        Value::Array(a) => {
            req.insert("stop_sequences".into(), Value::Array(a.clone()));
        }
        _ => {}
    }
    if let Some(tools) = body["tools"].as_array() {
        let tools: Vec<Value> = tools
            .iter()
            .map(|t| {
                json!({
                    "name": t["function"]["name"],
                    "description": t["function"]["description"],
                    "input_schema": t["function"].get("parameters").cloned()
                        .unwrap_or_else(|| json!({"type": "object"})),
                })
            })
            .collect();
        req.insert("tools".into(), Value::Array(tools));
    }
    let choice = match &body["tool_choice"] {
        Value::String(s) if s == "auto" => Some(json!({"type": "auto"})),
        Value::String(s) if s == "required" => Some(json!({"type": "any"})),
        Value::String(s) if s == "none" => Some(json!({"type": "none"})),
        Value::Object(o) => {
            Some(json!({"type": "tool", "name": o.get("function").and_then(|f| f.get("name"))}))
        }
        _ => None,
    };
    if let Some(c) = choice {
        req.insert("tool_choice".into(), c);
    }
    Ok(Value::Object(req))
}

/// An Anthropic `message` → an OpenAI `chat.completion` (`model`: the name asked for).
pub fn from_message(msg: &Value, model: &str) -> Result<Value, Error> {
    let Some(blocks) = msg["content"].as_array() else {
        return Err(Error::upstream(
            "Anthropic answered a message without content",
        ));
    };
    let mut text = String::new();
    let mut calls = Vec::new();
    for b in blocks {
        match b["type"].as_str() {
            Some("text") => text.push_str(b["text"].as_str().unwrap_or_default()),
            Some("tool_use") => calls.push(json!({
                "id": b["id"],
                "type": "function",
                "function": {"name": b["name"], "arguments": b["input"].to_string()},
            })),
            _ => {}
        }
    }
    let finish = finish_reason(msg["stop_reason"].as_str());
    let mut message = json!({"role": "assistant", "content": (!text.is_empty()).then_some(text)});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    let u = &msg["usage"];
    let n = |k: &str| u[k].as_u64().unwrap_or(0);
    let prompt =
        n("input_tokens") + n("cache_read_input_tokens") + n("cache_creation_input_tokens");
    let completion = n("output_tokens");
    Ok(json!({
        "id": msg["id"],
        "object": "chat.completion",
        // Anthropic's answer carries no timestamp.
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": n("cache_read_input_tokens")},
        },
    }))
}

/// Anthropic's `stop_reason` → OpenAI's `finish_reason` (for the JSON answer and the
/// stream alike): `end_turn`, `stop_sequence` and anything unknown (`pause_turn`) →
/// `stop`.
pub(crate) fn finish_reason(stop_reason: Option<&str>) -> FinishReason {
    match stop_reason {
        Some("max_tokens") => FinishReason::Length,
        Some("tool_use") => FinishReason::ToolCalls,
        Some("refusal") => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

/// Anthropic's `{"type": "error", "error": {"type", "message"}}` → a cng error.
fn map_error(status: u16, body: &[u8]) -> Error {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let said = v["error"]["message"].as_str().unwrap_or("no message");
    match status {
        400 | 413 | 422 => Error::invalid_request(format!("Anthropic refused the request: {said}")),
        401 | 403 => Error::new(
            ErrorKind::Upstream,
            "Anthropic refused cng's provider key; the operator must check it",
        )
        .with_code("upstream_error"),
        404 => Error::new(ErrorKind::NotFound, format!("Anthropic: {said}"))
            .with_code("model_not_found"),
        429 => Error::new(
            ErrorKind::RateLimit,
            format!("Anthropic rate limit: {said}"),
        ),
        529 => Error::new(
            ErrorKind::Unavailable,
            "Anthropic is overloaded; retry shortly",
        ),
        _ => Error::upstream(format!("Anthropic answered HTTP {status}: {said}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use std::sync::{Arc, Mutex};

    use cng_core::backend::ByteStream;
    use cng_core::routing::UrlPolicy;

    use super::*;

    #[derive(Clone)]
    struct Canned {
        seen: Arc<Mutex<Vec<http::Request<Bytes>>>>,
        status: u16,
        content_type: &'static str,
        body: &'static str,
    }

    impl HttpClient for Canned {
        async fn send(
            &self,
            req: http::Request<Bytes>,
        ) -> Result<http::Response<ByteStream>, Error> {
            self.seen.lock().unwrap().push(req);
            // In small pieces, as a network delivers a stream.
            let pieces: Vec<Result<Bytes, Error>> = self
                .body
                .as_bytes()
                .chunks(7)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            let body: ByteStream = Box::pin(futures_util::stream::iter(pieces));
            Ok(http::Response::builder()
                .status(self.status)
                .header("content-type", self.content_type)
                .header("retry-after", "3")
                .body(body)
                .unwrap())
        }
        async fn sleep(&self, _: Duration) {}
    }

    fn backend(status: u16, body: &'static str) -> (AnthropicBackend<Canned>, Canned) {
        backend_typed(status, "application/json", body)
    }

    fn backend_typed(
        status: u16,
        content_type: &'static str,
        body: &'static str,
    ) -> (AnthropicBackend<Canned>, Canned) {
        let c = Canned {
            seen: Arc::default(),
            status,
            content_type,
            body,
        };
        let base = UpstreamUrl::parse(
            "b",
            "http://127.0.0.1:9",
            UrlPolicy {
                allow_loopback_http: true,
            },
        )
        .unwrap();
        let mut cfg = AnthropicConfig::new(base, "sk-ant-secret");
        cfg.retries = 0;
        (AnthropicBackend::new(cfg, c.clone()), c)
    }

    fn chat(body: Value, stream: bool) -> InferenceRequest {
        InferenceRequest {
            model: "claude-haiku-4-5".into(),
            task: Task::TextGeneration,
            input: Input::Json(body),
            stream,
        }
    }

    #[test]
    fn a_chat_request_becomes_a_messages_request() {
        let body = json!({
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "rain"}
            ],
            "max_tokens": 50, "temperature": 0.2, "stop": "END",
            "tools": [{"type": "function", "function": {"name": "weather", "description": "w", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": "required"
        });
        let m = to_messages(&body, "claude-haiku-4-5", 4096).unwrap();
        assert_eq!(m["system"], "Be brief.");
        assert_eq!(m["max_tokens"], 50);
        assert_eq!(m["stop_sequences"], json!(["END"]));
        assert_eq!(m["tool_choice"], json!({"type": "any"}));
        assert_eq!(
            m["tools"][0]["input_schema"]["properties"]["city"]["type"],
            "string"
        );
        assert_eq!(
            m["messages"][1]["content"][0],
            json!({"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}})
        );
        assert_eq!(m["messages"][2]["content"][0]["type"], "tool_result");
        assert_eq!(m["messages"][2]["content"][0]["tool_use_id"], "call_1");
        let m = to_messages(
            &json!({"messages": [{"role": "user", "content": "hi"}]}),
            "c",
            4096,
        )
        .unwrap();
        assert_eq!(m["max_tokens"], 4096);
    }

    #[tokio::test]
    async fn the_answer_becomes_a_chat_completion() {
        let (b, c) = backend(
            200,
            r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-haiku-4-5","content":[{"type":"text","text":"Let me check."},{"type":"tool_use","id":"toolu_1","name":"weather","input":{"city":"Oslo"}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":7}}"#,
        );
        let out = b
            .run(chat(
                json!({"messages": [{"role": "user", "content": "hi"}]}),
                false,
            ))
            .await
            .unwrap();
        let Output::Json(v) = out else { panic!() };
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(v["choices"][0]["message"]["content"], "Let me check.");
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            r#"{"city":"Oslo"}"#
        );
        assert_eq!(v["usage"]["prompt_tokens"], 15);
        assert_eq!(v["usage"]["total_tokens"], 22);
        let seen = c.seen.lock().unwrap();
        assert_eq!(seen[0].uri().to_string(), "http://127.0.0.1:9/v1/messages");
        assert_eq!(seen[0].headers()["x-api-key"], "sk-ant-secret");
        assert_eq!(seen[0].headers()["anthropic-version"], ANTHROPIC_VERSION);
        assert!(seen[0].headers().get("authorization").is_none());
    }

    #[tokio::test]
    async fn errors_map_by_status_without_the_key() {
        let (b, _) = backend(
            429,
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
        );
        let e = b
            .run(chat(
                json!({"messages": [{"role": "user", "content": "hi"}]}),
                false,
            ))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::RateLimit);
        assert_eq!(e.retry_after(), Some(3));
        let (b, _) = backend(
            401,
            r#"{"type":"error","error":{"type":"authentication_error","message":"bad key sk-ant-secret"}}"#,
        );
        let e = b
            .run(chat(
                json!({"messages": [{"role": "user", "content": "hi"}]}),
                false,
            ))
            .await
            .unwrap_err();
        assert!(!e.message().contains("sk-ant-secret"));
        assert_eq!(e.kind(), ErrorKind::Upstream);
        let (b, _) = backend(
            529,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        let e = b
            .run(chat(
                json!({"messages": [{"role": "user", "content": "hi"}]}),
                false,
            ))
            .await
            .unwrap_err();
        assert!(cng_core::routing::should_fall_back(&e));
    }

    /// A streamed answer as Anthropic documents it: a text block, a tool call in
    /// `input_json_delta` fragments, a ping, the stop reason and cumulative usage.
    const STREAM: &str = "event: message_start
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_9\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-haiku-4-5\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":20,\"output_tokens\":1}}}

event: content_block_start
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}

event: ping
data: {\"type\": \"ping\"}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Checking.\"}}

event: content_block_stop
data: {\"type\":\"content_block_stop\",\"index\":0}

event: content_block_start
data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_9\",\"name\":\"weather\",\"input\":{}}}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \\\"Os\"}}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"lo\\\"}\"}}

event: content_block_stop
data: {\"type\":\"content_block_stop\",\"index\":1}

event: message_delta
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":12}}

event: message_stop
data: {\"type\":\"message_stop\"}

";

    async fn collect(out: Output) -> String {
        let Output::Stream(mut s) = out else {
            panic!("not a stream: {out:?}")
        };
        let mut all = Vec::new();
        while let Some(chunk) = futures_util::StreamExt::next(&mut s).await {
            all.extend_from_slice(&chunk.unwrap());
        }
        String::from_utf8(all).unwrap()
    }

    #[tokio::test]
    async fn streams_are_requested_and_transcoded() {
        let (b, c) = backend_typed(200, "text/event-stream; charset=utf-8", STREAM);
        let out = b
            .run(chat(
                json!({"messages": [{"role": "user", "content": "hi"}]}),
                true,
            ))
            .await
            .unwrap();
        let text = collect(out).await;
        let sent: Value = serde_json::from_slice(c.seen.lock().unwrap()[0].body()).unwrap();
        assert_eq!(sent["stream"], true);
        assert_eq!(sent["model"], "claude-haiku-4-5");

        // What cng-core's chat reader makes of it.
        let ctx = cng_core::chat::ChatContext {
            id: "chatcmpl-1".into(),
            created: 1,
            model: "claude-haiku-4-5".into(),
            include_usage: true,
            reasoning: cng_core::catalog::Reasoning::None,
            tools: vec!["weather".into()],
            legacy_functions: false,
            max_tokens: None,
            call_id_prefix: "call_1".into(),
            dialect: cng_core::chat::Dialect::Chat,
        };
        let mut t = cng_core::chat::StreamTranscoder::new(ctx);
        let mut client = t.push(text.as_bytes());
        client.extend(t.finish());
        let client = String::from_utf8(client).unwrap();
        let chunks: Vec<Value> = client
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        let content: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(content, "Checking.");
        let calls: Vec<&Value> = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
            .collect();
        assert_eq!(calls[0]["id"], "toolu_9");
        assert_eq!(calls[0]["function"]["name"], "weather");
        let args: String = calls
            .iter()
            .filter_map(|c| c["function"]["arguments"].as_str())
            .collect();
        assert_eq!(args, r#"{"city": "Oslo"}"#);
        assert!(
            chunks
                .iter()
                .any(|c| c["choices"][0]["finish_reason"] == "tool_calls")
        );
        let usage = &chunks.last().unwrap()["usage"];
        assert_eq!(usage["prompt_tokens"], 20);
        assert_eq!(usage["completion_tokens"], 12);
        assert!(client.ends_with("data: [DONE]\n\n"), "{client}");
    }

    #[tokio::test]
    async fn stream_failures_before_the_first_byte_stay_errors() {
        let req = || {
            chat(
                json!({"messages": [{"role": "user", "content": "hi"}]}),
                true,
            )
        };
        // Overloaded: an error a fallback chain moves on from.
        let (mut b, c) = backend(
            529,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        b.config.retries = 2;
        let e = b.run(req()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(cng_core::routing::should_fall_back(&e));
        assert_eq!(c.seen.lock().unwrap().len(), 1, "streams are not retried");
        // A key echoed back is redacted here too.
        let (b, _) = backend(
            401,
            r#"{"type":"error","error":{"type":"authentication_error","message":"bad key sk-ant-secret"}}"#,
        );
        let e = b.run(req()).await.unwrap_err();
        assert!(!e.message().contains("sk-ant-secret"));
        // A success that is not an event stream is not handed over as one.
        let (b, _) = backend(200, r#"{"id":"msg_1","content":[]}"#);
        let e = b.run(req()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Upstream);
        assert!(e.message().contains("event stream"), "{}", e.message());
    }

    #[tokio::test]
    async fn a_mid_stream_error_reaches_the_client_as_an_error() {
        let (b, _) = backend_typed(
            200,
            "text/event-stream",
            "event: message_start
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_9\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"m\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}

event: error
data: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}

",
        );
        let out = b
            .run(chat(
                json!({"messages": [{"role": "user", "content": "hi"}]}),
                true,
            ))
            .await
            .unwrap();
        let text = collect(out).await;
        assert!(text.contains(r#"{"error":{"message":"#), "{text}");
        assert!(text.contains("overloaded_error"), "{text}");
        assert!(!text.contains("[DONE]"), "{text}");
    }
}
