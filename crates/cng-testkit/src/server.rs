//! The HTTP side: routing, recording, directives and rendering answers per flavour.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::RecordedRequest;
use crate::body::{ScriptedBody, Step};
use crate::corpus::{self, Answer, Corpus};

/// Pause between SSE events, so clients really receive them one by one.
const EVENT_GAP: Duration = Duration::from_millis(1);
/// `created` of every synthesised OpenAI object.
const CREATED: u64 = 1_700_000_000;

#[derive(Debug)]
pub(crate) struct Shared {
    corpus: Corpus,
    recorded: Mutex<Vec<RecordedRequest>>,
    flaky: Mutex<HashMap<String, u64>>,
    /// Workers AI inferences served, for the fake analytics API.
    served: Mutex<Vec<crate::analytics::Inference>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub fn new(corpus: Corpus) -> Self {
        Shared {
            corpus,
            recorded: Mutex::new(Vec::new()),
            flaky: Mutex::new(HashMap::new()),
            served: Mutex::new(Vec::new()),
        }
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.recorded).clone()
    }

    pub fn clear(&self) {
        lock(&self.recorded).clear();
        lock(&self.flaky).clear();
        lock(&self.served).clear();
    }

    pub fn case_count(&self) -> usize {
        self.corpus.total
    }
}

/// Accepts connections until the task is aborted; dropping the `JoinSet` then aborts
/// every connection task too.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors and the like: back off briefly.
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        // Small SSE frames must leave at once, not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        connections.spawn(async move {
            let service = service_fn(move |req| handle(Arc::clone(&shared), req));
            // Errors here are clients hanging up or cut-on-purpose bodies.
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Which kind of upstream a route impersonates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    WorkersAi,
    OpenAi,
}

/// What the answer depends on besides the case.
#[derive(Debug)]
struct Ctx {
    flavor: Flavor,
    model: String,
    stream: bool,
    include_usage: bool,
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<ScriptedBody>, Infallible> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let via_ai_gateway = path.contains("/workers-ai/");

    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return Ok(json_response(
                StatusCode::BAD_REQUEST,
                &cf_error_body(5006, &format!("cng-fake-upstream: reading the body: {e}")),
            ));
        }
    };

    if path.starts_with("/__") {
        return Ok(admin(&shared, &parts.method, &path));
    }
    if path.ends_with("/ai/models/search") {
        return Ok(crate::catalog::search(
            &parts.method,
            &parts.headers,
            parts.uri.query(),
        ));
    }

    if path.ends_with("/graphql") {
        let served = lock(&shared.served).clone();
        return Ok(crate::analytics::graphql(
            &parts.method,
            &parts.headers,
            &bytes,
            &served,
        ));
    }
    if parts.method == Method::POST {
        if let (Some(account), Some(model)) =
            (crate::analytics::account_of(&path), model_from_path(&path))
        {
            let at = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            lock(&shared.served).push(crate::analytics::Inference {
                account: account.to_string(),
                model,
                at,
            });
        }
    }

    let json_body: Option<Value> = serde_json::from_slice(&bytes).ok();
    let request_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let recorded_body = match &json_body {
        Some(v) => v.clone(),
        None if bytes.is_empty() => Value::Null,
        None => Value::String(base64::engine::general_purpose::STANDARD.encode(&bytes)),
    };
    let mut headers = BTreeMap::<String, String>::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let body = json_body.unwrap_or(Value::Null);
    let route = if path.ends_with("/chat/completions") {
        let model = body.get("model").and_then(Value::as_str).map(str::to_owned);
        Some((Flavor::OpenAi, model))
    } else {
        model_from_path(&path).map(|model| (Flavor::WorkersAi, Some(model)))
    };
    let directive_text = corpus::raw_request_text(&body)
        .map(|t| t.trim_start().to_owned())
        .filter(|t| t.starts_with('!'));
    let case = match (&route, &directive_text) {
        (Some((_, model)), None) => shared.corpus.find(model.as_deref(), &body),
        _ => None,
    };
    let answered_with = match (&route, &directive_text, case) {
        (None, _, _) => "no-route".to_owned(),
        (Some(_), Some(_), _) => "directive".to_owned(),
        (Some(_), None, Some(case)) => case.name.clone(),
        (Some(_), None, None) => "default".to_owned(),
    };
    lock(&shared.recorded).push(RecordedRequest {
        method: parts.method.to_string(),
        path,
        query: parts.uri.query().map(str::to_owned),
        headers,
        body: recorded_body,
        answered_with: Some(answered_with.clone()),
    });

    let Some((flavor, model)) = route else {
        return Ok(json_response(
            StatusCode::NOT_FOUND,
            &cf_error_body(7000, "No route for that URI"),
        ));
    };
    if parts.method != Method::POST {
        return Ok(json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &cf_error_body(7001, "Method not allowed"),
        ));
    }
    let ctx = Ctx {
        flavor,
        model: model.unwrap_or_default(),
        stream: corpus::is_stream(&body),
        include_usage: body
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            == Some(true),
    };
    let mut res = match (&directive_text, case) {
        (Some(text), _) => directive(&shared, &ctx, text).await,
        (None, Some(case)) => render(&ctx, &case.answer),
        (None, None) => match ctx.flavor {
            Flavor::WorkersAi => {
                crate::media::default_answer((!body.is_null()).then_some(&body), request_type)
                    .unwrap_or_else(|| default_answer(&ctx))
            }
            Flavor::OpenAi => default_answer(&ctx),
        },
    };
    if let Ok(v) = HeaderValue::from_str(&answered_with) {
        res.headers_mut().insert("x-fake-answer", v);
    }
    // As a Cloudflare AI Gateway (`/{account}/{gateway}/workers-ai/…`): its answer
    // headers, for tests that check cng passes them on.
    if via_ai_gateway {
        let h = res.headers_mut();
        h.insert("cf-aig-cache-status", HeaderValue::from_static("MISS"));
        h.insert("cf-aig-log-id", HeaderValue::from_static("fake-log-0001"));
    }
    Ok(res)
}

fn admin(shared: &Shared, method: &Method, path: &str) -> Response<ScriptedBody> {
    match (method, path) {
        (&Method::GET, "/__health") => json_response(StatusCode::OK, &json!({"ok": true})),
        (&Method::GET, "/__requests") => {
            let list = serde_json::to_value(shared.requests()).unwrap_or(Value::Null);
            json_response(StatusCode::OK, &list)
        }
        (&Method::DELETE, "/__requests") => {
            shared.clear();
            let mut res = Response::new(ScriptedBody::empty());
            *res.status_mut() = StatusCode::NO_CONTENT;
            res
        }
        _ => json_response(
            StatusCode::NOT_FOUND,
            &cf_error_body(7000, "No route for that URI"),
        ),
    }
}

/// The model in a Workers AI path: everything after `/ai/run/` (or `/workers-ai/`, the AI
/// Gateway form), percent-decoded.
pub(crate) fn model_from_path(path: &str) -> Option<String> {
    ["/ai/run/", "/workers-ai/"].iter().find_map(|marker| {
        let idx = path.find(marker)?;
        let rest = &path[idx + marker.len()..];
        (!rest.is_empty()).then(|| percent_decode(rest))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let Some(b) = s
                .get(i + 1..i + 3)
                .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------------------
// Directives

async fn directive(shared: &Shared, ctx: &Ctx, text: &str) -> Response<ScriptedBody> {
    let line = text.lines().next().unwrap_or_default();
    let mut words = line.split_whitespace();
    let name = words.next().unwrap_or_default();
    let args: Vec<&str> = words.collect();
    let num = |i: usize| args.get(i).and_then(|a| a.parse::<u64>().ok());
    match (name, num(0)) {
        ("!status", Some(status)) => {
            let Some(status) = u16::try_from(status)
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
            else {
                return bad_directive(ctx, line);
            };
            let code = num(1).unwrap_or(if status == StatusCode::TOO_MANY_REQUESTS {
                3040
            } else {
                3030
            });
            error_answer(ctx, status, code)
        }
        ("!delay-headers", Some(ms)) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            default_answer(ctx)
        }
        ("!stall-after", Some(n)) => {
            let events = default_events(ctx);
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            let mut steps = event_steps(events.into_iter().take(n), EVENT_GAP);
            steps.push(Step::Stall);
            sse_response(steps)
        }
        ("!truncate", _) => {
            let events = default_events(ctx);
            let mut steps = event_steps(events.iter().take(3).cloned(), EVENT_GAP);
            if let Some(next) = events.get(3) {
                steps.push(Step::Pause(EVENT_GAP));
                steps.push(Step::Data(next.slice(..next.len() / 2)));
            }
            steps.push(Step::Pause(EVENT_GAP));
            steps.push(Step::Break);
            sse_response(steps)
        }
        ("!trickle", Some(ms)) => {
            sse_response(event_steps(default_events(ctx), Duration::from_millis(ms)))
        }
        ("!flaky", Some(n)) => {
            let attempt = {
                let mut flaky = lock(&shared.flaky);
                let count = flaky.entry(text.to_owned()).or_insert(0);
                *count += 1;
                *count
            };
            if attempt <= n {
                error_answer(ctx, StatusCode::SERVICE_UNAVAILABLE, 3040)
            } else {
                default_answer(ctx)
            }
        }
        ("!garbage", _) => {
            let mut res = Response::new(ScriptedBody::full(Bytes::from_static(
                b"<html>this is not JSON {\"response\":",
            )));
            res.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            res
        }
        _ => bad_directive(ctx, line),
    }
}

fn bad_directive(ctx: &Ctx, line: &str) -> Response<ScriptedBody> {
    let message = format!(
        "cng-fake-upstream: unknown or malformed directive {line:?} (expected !status S [CODE], \
         !delay-headers MS, !stall-after N, !truncate, !trickle MS, !flaky N or !garbage)"
    );
    render_error(
        ctx,
        StatusCode::BAD_REQUEST,
        &cf_error_body(5006, &message),
        false,
    )
}

fn error_message(code: u64) -> &'static str {
    match code {
        3030 => "internal",
        3040 => "Capacity temporarily exceeded, please try again.",
        3036 => "Account limited: you have used up your daily free allocation of 10,000 neurons.",
        3007 => "Request timeout",
        3006 => "Request is too large",
        5007 => "No such model",
        _ => "cng-fake-upstream: scripted error",
    }
}

fn error_answer(ctx: &Ctx, status: StatusCode, code: u64) -> Response<ScriptedBody> {
    render_error(
        ctx,
        status,
        &cf_error_body(code, error_message(code)),
        status == StatusCode::TOO_MANY_REQUESTS,
    )
}

// ---------------------------------------------------------------------------------------
// Rendering

fn render(ctx: &Ctx, answer: &Answer) -> Response<ScriptedBody> {
    match answer {
        Answer::Json(result) => match ctx.flavor {
            Flavor::WorkersAi => json_response(StatusCode::OK, &envelope(result.clone())),
            Flavor::OpenAi => json_response(StatusCode::OK, &to_openai_completion(ctx, result)),
        },
        Answer::Sse(raw) => {
            let events = split_events(raw);
            let events = match ctx.flavor {
                Flavor::WorkersAi => events,
                Flavor::OpenAi => to_openai_events(ctx, &events),
            };
            sse_response(event_steps(events, EVENT_GAP))
        }
        Answer::Error { status, body } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            render_error(ctx, status, body, status == StatusCode::TOO_MANY_REQUESTS)
        }
        Answer::Binary {
            content_type,
            bytes,
        } => {
            let mut res = Response::new(ScriptedBody::full(bytes.clone()));
            if let Ok(v) = HeaderValue::from_str(content_type) {
                res.headers_mut().insert(CONTENT_TYPE, v);
            }
            res
        }
    }
}

fn render_error(
    ctx: &Ctx,
    status: StatusCode,
    cf_body: &Value,
    retry_after: bool,
) -> Response<ScriptedBody> {
    let body = match ctx.flavor {
        Flavor::WorkersAi => cf_body.clone(),
        Flavor::OpenAi => to_openai_error(status, cf_body),
    };
    let mut res = json_response(status, &body);
    if retry_after {
        res.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    res
}

fn default_answer(ctx: &Ctx) -> Response<ScriptedBody> {
    if ctx.stream {
        return sse_response(event_steps(default_events(ctx), EVENT_GAP));
    }
    let body = match ctx.flavor {
        Flavor::WorkersAi => envelope(json!({
            "response": crate::DEFAULT_TEXT,
            "usage": default_usage(),
        })),
        Flavor::OpenAi => json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": CREATED,
            "model": ctx.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": crate::DEFAULT_TEXT},
                "logprobs": null,
                "finish_reason": "stop",
            }],
            "usage": default_usage(),
        }),
    };
    json_response(StatusCode::OK, &body)
}

fn default_usage() -> Value {
    json!({"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2})
}

/// The default stream, one SSE event per element (with its blank-line terminator). Its
/// text spells [`crate::DEFAULT_TEXT`] over several events.
fn default_events(ctx: &Ctx) -> Vec<Bytes> {
    let pieces: Vec<String> = std::iter::once(String::new())
        .chain(crate::DEFAULT_TEXT.chars().map(String::from))
        .chain(std::iter::once(String::new()))
        .collect();
    let mut events: Vec<Value> = Vec::new();
    match ctx.flavor {
        Flavor::WorkersAi => {
            for piece in pieces {
                events.push(json!({"response": piece, "tool_calls": []}));
            }
            events.push(json!({"response": "", "usage": default_usage()}));
        }
        Flavor::OpenAi => {
            events.push(chunk(
                ctx,
                json!({"role": "assistant", "content": ""}),
                None,
            ));
            for piece in crate::DEFAULT_TEXT.chars() {
                events.push(chunk(ctx, json!({"content": piece.to_string()}), None));
            }
            events.push(chunk(ctx, json!({}), Some("stop")));
            if ctx.include_usage {
                events.push(usage_chunk(ctx, default_usage()));
            }
        }
    }
    let mut out: Vec<Bytes> = events.iter().map(sse_event).collect();
    out.push(Bytes::from_static(b"data: [DONE]\n\n"));
    out
}

fn chunk(ctx: &Ctx, delta: Value, finish_reason: Option<&str>) -> Value {
    json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": ctx.model,
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
    })
}

fn usage_chunk(ctx: &Ctx, usage: Value) -> Value {
    json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": ctx.model,
        "choices": [],
        "usage": usage,
    })
}

fn sse_event(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

/// Splits raw SSE bytes after each blank line (`\n\n` or `\r\n\r\n`); a trailing partial
/// event is kept as the last piece.
fn split_events(raw: &Bytes) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < raw.len() {
        let end = if raw[i..].starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if raw[i..].starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        };
        match end {
            Some(end) => {
                out.push(raw.slice(start..end));
                start = end;
                i = end;
            }
            None => i += 1,
        }
    }
    if start < raw.len() {
        out.push(raw.slice(start..));
    }
    out
}

fn event_steps(events: impl IntoIterator<Item = Bytes>, gap: Duration) -> Vec<Step> {
    let mut steps = Vec::new();
    for (i, event) in events.into_iter().enumerate() {
        if i > 0 {
            steps.push(Step::Pause(gap));
        }
        steps.push(Step::Data(event));
    }
    steps
}

fn sse_response(steps: Vec<Step>) -> Response<ScriptedBody> {
    let mut res = Response::new(ScriptedBody::new(steps));
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

fn json_response(status: StatusCode, body: &Value) -> Response<ScriptedBody> {
    let mut res = Response::new(ScriptedBody::full(body.to_string()));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

fn envelope(result: Value) -> Value {
    json!({"result": result, "success": true, "errors": [], "messages": []})
}

fn cf_error_body(code: u64, message: &str) -> Value {
    json!({
        "result": null,
        "success": false,
        "errors": [{"code": code, "message": message}],
        "messages": [],
    })
}

// ---------------------------------------------------------------------------------------
// Workers AI shapes -> OpenAI shapes (for the OpenAI-compatible route)

fn to_openai_error(status: StatusCode, cf_body: &Value) -> Value {
    if cf_body.get("error").is_some() {
        return cf_body.clone();
    }
    let first = cf_body.pointer("/errors/0");
    let message = first
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("upstream error");
    let code = first
        .and_then(|e| e.get("code"))
        .cloned()
        .unwrap_or(Value::Null);
    let kind = match status.as_u16() {
        400 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        _ => "server_error",
    };
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

/// Legacy tool calls (`{name, arguments}`) as OpenAI tool calls.
fn to_openai_tool_calls(calls: &[Value]) -> Vec<Value> {
    calls
        .iter()
        .enumerate()
        .map(|(i, call)| {
            if call.get("function").is_some() {
                return call.clone();
            }
            let arguments = match call.get("arguments") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => "{}".to_owned(),
            };
            json!({
                "id": format!("call_{i}"),
                "type": "function",
                "function": {
                    "name": call.get("name").cloned().unwrap_or(Value::Null),
                    "arguments": arguments,
                },
            })
        })
        .collect()
}

fn to_openai_completion(ctx: &Ctx, result: &Value) -> Value {
    if result.get("choices").is_some() {
        return result.clone();
    }
    let content = match result.get("response") {
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(Value::Null) | None => Value::Null,
        Some(other) => Value::String(other.to_string()),
    };
    let tool_calls = result
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(|c| to_openai_tool_calls(c))
        .unwrap_or_default();
    let mut message = json!({"role": "assistant", "content": content});
    let finish_reason = if tool_calls.is_empty() {
        "stop"
    } else {
        message["tool_calls"] = Value::Array(tool_calls);
        "tool_calls"
    };
    json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": CREATED,
        "model": ctx.model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason}],
        "usage": result.get("usage").cloned().unwrap_or_else(default_usage),
    })
}

/// A legacy stream's events as `chat.completion.chunk` events. A stream that already has
/// OpenAI chunks passes through, less the Workers AI native `{"response", "usage"}`
/// events an OpenAI-compatible upstream would not send. Error events and anything
/// unparsable pass through as they are.
fn to_openai_events(ctx: &Ctx, events: &[Bytes]) -> Vec<Bytes> {
    let parsed: Vec<Option<Value>> = events
        .iter()
        .map(|e| {
            let text = String::from_utf8_lossy(e);
            let data = text.lines().find_map(|l| l.strip_prefix("data:"))?;
            serde_json::from_str::<Value>(data.trim()).ok()
        })
        .collect();
    let is_legacy = |v: &Value| {
        v.get("choices").is_none() && (v.get("response").is_some() || v.get("usage").is_some())
    };
    if parsed.iter().flatten().any(|v| v.get("choices").is_some()) {
        return events
            .iter()
            .zip(&parsed)
            .filter(|(_, v)| !v.as_ref().is_some_and(is_legacy))
            .map(|(e, _)| e.clone())
            .collect();
    }
    let mut out = Vec::with_capacity(events.len() + 2);
    let mut converted = false;
    let mut tool_calls = false;
    for (event, parsed) in events.iter().zip(parsed) {
        let is_done = String::from_utf8_lossy(event)
            .lines()
            .find_map(|l| l.strip_prefix("data:"))
            .is_some_and(|d| d.trim() == "[DONE]");
        if is_done && converted {
            let reason = if tool_calls { "tool_calls" } else { "stop" };
            out.push(sse_event(&chunk(ctx, json!({}), Some(reason))));
            out.push(event.clone());
            continue;
        }
        let Some(v) = parsed.filter(is_legacy) else {
            out.push(event.clone());
            continue;
        };
        if !converted {
            out.push(sse_event(&chunk(
                ctx,
                json!({"role": "assistant", "content": ""}),
                None,
            )));
            converted = true;
        }
        if let Some(calls) = v
            .get("tool_calls")
            .and_then(Value::as_array)
            .filter(|c| !c.is_empty())
        {
            tool_calls = true;
            let calls: Vec<Value> = to_openai_tool_calls(calls)
                .into_iter()
                .enumerate()
                .map(|(i, mut c)| {
                    c["index"] = json!(i);
                    c
                })
                .collect();
            out.push(sse_event(&chunk(ctx, json!({"tool_calls": calls}), None)));
        }
        match v.get("response") {
            Some(Value::String(s)) if !s.is_empty() => {
                out.push(sse_event(&chunk(ctx, json!({"content": s}), None)));
            }
            Some(other) if !other.is_string() && !other.is_null() => {
                out.push(sse_event(&chunk(
                    ctx,
                    json!({"content": other.to_string()}),
                    None,
                )));
            }
            _ => {}
        }
        if let Some(usage) = v.get("usage") {
            out.push(sse_event(&usage_chunk(ctx, usage.clone())));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        reason = "test code"
    )]

    use super::*;

    #[test]
    fn model_paths() {
        assert_eq!(
            model_from_path("/client/v4/accounts/abc/ai/run/@cf/meta/llama-3.1-8b-instruct")
                .as_deref(),
            Some("@cf/meta/llama-3.1-8b-instruct")
        );
        assert_eq!(
            model_from_path("/client/v4/accounts/abc/ai/run/%40cf/x").as_deref(),
            Some("@cf/x")
        );
        assert_eq!(model_from_path("/v1/chat/completions"), None);
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("a%"), "a%");
    }

    #[test]
    fn splits_events_keeping_partial_tail() {
        let raw = Bytes::from_static(b"data: a\n\ndata: b\r\n\r\ndata: c");
        let parts = split_events(&raw);
        assert_eq!(parts.len(), 3);
        assert_eq!(&parts[0][..], b"data: a\n\n");
        assert_eq!(&parts[1][..], b"data: b\r\n\r\n");
        assert_eq!(&parts[2][..], b"data: c");
    }
}
