//! `POST /v1/completions` (legacy prompt API), through the chat pipeline.

use http::{Request, Response};
use serde_json::{Value, json};

use super::{Body, Ctx, Gateway, Limiter, read_json_body};
use crate::backend::Backend;
use crate::catalog::Task;
use crate::chat::{self, Dialect};
use crate::error::Error;
use crate::openai::chat::{ChatCompletion, ChatRequest};
use crate::openai::completions::{CompletionRequest, TextChoice, TextCompletion};
use crate::openai::parse_json;
use crate::store::Store;

/// OpenAI's default `max_tokens` for this API.
const DEFAULT_MAX_TOKENS: u32 = 16;

pub(super) async fn handle<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    req: Request<Body>,
    ctx: &mut Ctx<'_>,
) -> Result<Response<Body>, Error> {
    let body = read_json_body(req, g.config.max_body_bytes).await?;
    let req = parse_json::<CompletionRequest>(&body)?.value;
    let prompt = prompt_text(&req.prompt)?;
    if req.echo == Some(true) || req.suffix.is_some() || req.logprobs.is_some_and(|l| l > 0) {
        let param = if req.echo == Some(true) {
            "echo"
        } else if req.suffix.is_some() {
            "suffix"
        } else {
            "logprobs"
        };
        return Err(Error::invalid_param(
            param,
            format!("`{param}` is not supported: Workers AI models do not expose it."),
        )
        .with_code("unsupported_parameter"));
    }
    let chat_req = json!({
        "model": req.model,
        "messages": [{"role": "user", "content": prompt}],
        "stream": req.stream.unwrap_or(false),
        "stream_options": req.stream_options.as_ref().map(|o| json!({"include_usage": o.include_usage})),
        "max_tokens": req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        "temperature": req.temperature,
        "top_p": req.top_p,
        "frequency_penalty": req.frequency_penalty,
        "presence_penalty": req.presence_penalty,
        "seed": req.seed,
        "n": req.n,
        "stop": req.stop.as_ref().map(|s| s.to_vec()),
    });
    let chat_req: ChatRequest = serde_json::from_value(chat_req)
        .map_err(|e| Error::invalid_request(format!("Invalid request body: {e}.")))?;
    let (plan, output) = g
        .run_model(
            ctx,
            &chat_req.model,
            &[Task::TextGeneration],
            |target, (ids, clock)| {
                let mut plan = chat::plan(&chat_req, target, ids, clock)?;
                plan.context.dialect = Dialect::TextCompletion;
                plan.context.id = plan.context.id.replacen("chatcmpl-", "cmpl-", 1);
                Ok(plan)
            },
        )
        .await?;
    super::chat::respond(plan, output)
}

/// The prompt as text: a string, or an array of exactly one string.
fn prompt_text(prompt: &Value) -> Result<String, Error> {
    match prompt {
        Value::String(s) => Ok(s.clone()),
        Value::Array(items) if items.len() == 1 && items[0].is_string() => {
            Ok(items[0].as_str().unwrap_or_default().to_string())
        }
        Value::Array(items) if items.iter().all(Value::is_string) => Err(Error::invalid_param(
            "prompt",
            "Send one prompt per request; batches of prompts are not supported.",
        )),
        _ => Err(Error::invalid_param(
            "prompt",
            "`prompt` must be a string (token arrays are not supported).",
        )),
    }
}

/// A finished `text_completion` as a stream (when the upstream answered JSON to a
/// streamed request): one text chunk per choice, its finish, usage if asked, `[DONE]`.
pub(super) fn to_sse(c: &TextCompletion, include_usage: bool) -> Vec<u8> {
    use crate::openai::completions::{TextChunk, TextChunkChoice};
    let mut out = Vec::new();
    let chunk = |choices: Vec<TextChunkChoice>, usage| TextChunk {
        id: &c.id,
        object: "text_completion",
        created: c.created,
        model: &c.model,
        choices,
        usage,
    };
    let usage_field = include_usage.then_some(None);
    for ch in &c.choices {
        let text = TextChunkChoice {
            text: ch.text.clone(),
            index: ch.index,
            logprobs: None,
            finish_reason: None,
        };
        let fin = TextChunkChoice {
            text: String::new(),
            index: ch.index,
            logprobs: None,
            finish_reason: Some(ch.finish_reason),
        };
        for choice in [text, fin] {
            crate::sse::write_data(
                &mut out,
                &serde_json::to_vec(&chunk(vec![choice], usage_field.clone())).unwrap_or_default(),
            );
        }
    }
    if include_usage {
        let last = chunk(Vec::new(), Some(Some(c.usage.clone().unwrap_or_default())));
        crate::sse::write_data(&mut out, &serde_json::to_vec(&last).unwrap_or_default());
    }
    out.extend_from_slice(crate::sse::DONE);
    out
}

/// A chat completion in the `text_completion` shape.
pub(super) fn from_chat(c: ChatCompletion) -> TextCompletion {
    TextCompletion {
        id: c.id,
        object: "text_completion",
        created: c.created,
        model: c.model,
        choices: c
            .choices
            .into_iter()
            .map(|ch| TextChoice {
                text: ch.message.content.unwrap_or_default(),
                index: ch.index,
                logprobs: None,
                finish_reason: ch.finish_reason,
            })
            .collect(),
        usage: c.usage,
    }
}
