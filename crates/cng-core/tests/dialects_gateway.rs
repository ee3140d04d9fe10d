//! The Responses API and the Anthropic Messages API through the whole gateway, with an
//! in-memory store and a scripted backend: auth by `x-api-key`, error shapes per
//! route dialect (the gateway's own errors included), JSON and streamed answers.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cng_core::auth::{self, NewKey, Role};
use cng_core::backend::{Backend, InferenceRequest, Input, Output};
use cng_core::error::Error;
use cng_core::ids::{CountingEntropy, FixedClock, SequentialIds};
use cng_core::store::MemoryStore;
use cng_core::{Body, Gateway, GatewayConfig, Services};
use futures_executor::block_on;
use futures_util::StreamExt;
use http::{Request, Response};
use serde_json::{Value, json};

#[derive(Clone)]
enum Answer {
    Json(Value),
    Sse(Vec<&'static str>),
    Fail(Error),
}

/// Answers from a script and records what it was asked.
#[derive(Clone, Default)]
struct Scripted {
    seen: Arc<Mutex<Vec<InferenceRequest>>>,
    answer: Arc<Mutex<Option<Answer>>>,
}

impl Scripted {
    fn answer(&self, a: Answer) {
        *self.answer.lock().unwrap() = Some(a);
    }

    fn last_input(&self) -> Value {
        match &self.seen.lock().unwrap().last().unwrap().input {
            Input::Json(v) => v.clone(),
            Input::Bytes { .. } => panic!("bytes"),
        }
    }
}

impl Backend for Scripted {
    async fn run(&self, request: InferenceRequest) -> Result<Output, Error> {
        self.seen.lock().unwrap().push(request);
        match self.answer.lock().unwrap().clone() {
            Some(Answer::Json(v)) => Ok(Output::Json(v)),
            Some(Answer::Sse(chunks)) => Ok(Output::Stream(Box::pin(futures_util::stream::iter(
                chunks
                    .into_iter()
                    .map(|c| Ok(Bytes::from_static(c.as_bytes()))),
            )))),
            Some(Answer::Fail(e)) => Err(e),
            None => Ok(Output::Json(
                json!({"response": "ok", "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}),
            )),
        }
    }
}

const ADMIN: &str = "cng-test-admin-key";
const MODEL: &str = "@cf/meta/llama-3.1-8b-instruct";

fn gateway() -> (Gateway<Scripted, MemoryStore>, Scripted) {
    let backend = Scripted::default();
    let services = Services {
        clock: Box::new(FixedClock(1_800_000_000)),
        ids: Box::new(SequentialIds::default()),
        entropy: Box::new(CountingEntropy::default()),
    };
    let config = GatewayConfig {
        admin_key_hash: Some(auth::hash_key(ADMIN)),
        max_body_bytes: 4096,
        upstream: "workers-ai-rest".into(),
        ..GatewayConfig::default()
    };
    (
        Gateway::new(backend.clone(), MemoryStore::new(), services, config),
        backend,
    )
}

struct Reply {
    status: u16,
    headers: http::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// `(event name, data)` of each SSE frame.
    fn events(&self) -> Vec<(String, Value)> {
        self.body
            .split("\n\n")
            .filter(|f| !f.is_empty())
            .map(|f| {
                let (ev, data) = f.split_once('\n').unwrap();
                (
                    ev.strip_prefix("event: ").unwrap().to_string(),
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap(),
                )
            })
            .collect()
    }
}

fn send(g: &Gateway<Scripted, MemoryStore>, req: Request<Body>) -> Reply {
    block_on(async {
        let resp: Response<Body> = g.handle(req).await;
        let (parts, body) = resp.into_parts();
        let body = match body {
            Body::Empty => String::new(),
            Body::Full(b) => String::from_utf8(b.to_vec()).unwrap(),
            Body::Stream(mut s) => {
                let mut out = Vec::new();
                while let Some(c) = s.next().await {
                    out.extend_from_slice(&c.unwrap());
                }
                String::from_utf8(out).unwrap()
            }
        };
        Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        }
    })
}

/// A POST with the key the way Anthropic's SDK sends it.
fn anthropic_post(path: &str, key: Option<&str>, body: Value) -> Request<Body> {
    let mut b = Request::post(path)
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01");
    if let Some(k) = key {
        b = b.header("x-api-key", k);
    }
    b.body(Body::Full(Bytes::from(body.to_string()))).unwrap()
}

fn openai_post(path: &str, key: Option<&str>, body: Value) -> Request<Body> {
    let mut b = Request::post(path).header("content-type", "application/json");
    if let Some(k) = key {
        b = b.header("authorization", format!("Bearer {k}"));
    }
    b.body(Body::Full(Bytes::from(body.to_string()))).unwrap()
}

fn message_body() -> Value {
    json!({"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}]})
}

fn assert_anthropic_error(r: &Reply, status: u16, kind: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    let v = r.json();
    assert_eq!(v["type"], "error", "{}", r.body);
    assert_eq!(v["error"]["type"], kind, "{}", r.body);
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert!(v["request_id"].is_string(), "{}", r.body);
    assert!(v.get("param").is_none());
}

#[test]
fn messages_with_x_api_key() {
    let (g, backend) = gateway();
    let r = send(
        &g,
        anthropic_post("/v1/messages", Some(ADMIN), message_body()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["content"], json!([{"type": "text", "text": "ok"}]));
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["usage"]["input_tokens"], 3);
    assert_eq!(backend.last_input()["max_tokens"], 64);
}

#[test]
fn gateway_errors_on_messages_routes_are_anthropic_shaped() {
    let (g, _) = gateway();
    // No key, a wrong key: the gateway's own authentication errors.
    assert_anthropic_error(
        &send(&g, anthropic_post("/v1/messages", None, message_body())),
        401,
        "authentication_error",
    );
    assert_anthropic_error(
        &send(
            &g,
            anthropic_post("/v1/messages", Some("cng-nope"), message_body()),
        ),
        401,
        "authentication_error",
    );
    // Without the /v1 prefix, and on count_tokens.
    assert_anthropic_error(
        &send(&g, anthropic_post("/messages", None, message_body())),
        401,
        "authentication_error",
    );
    assert_anthropic_error(
        &send(
            &g,
            anthropic_post("/v1/messages/count_tokens", None, message_body()),
        ),
        401,
        "authentication_error",
    );
    // Wrong method keeps its Allow header.
    let r = send(
        &g,
        Request::get("/v1/messages")
            .header("x-api-key", ADMIN)
            .body(Body::Empty)
            .unwrap(),
    );
    assert_anthropic_error(&r, 405, "invalid_request_error");
    assert_eq!(r.headers["allow"], "POST");
    // Unknown model, bad JSON, missing max_tokens.
    let mut body = message_body();
    body["model"] = json!("claude-imaginary-9");
    assert_anthropic_error(
        &send(&g, anthropic_post("/v1/messages", Some(ADMIN), body)),
        404,
        "not_found_error",
    );
    let r = send(
        &g,
        Request::post("/v1/messages")
            .header("x-api-key", ADMIN)
            .body(Body::Full(Bytes::from_static(b"{oops")))
            .unwrap(),
    );
    assert_anthropic_error(&r, 400, "invalid_request_error");
    let mut body = message_body();
    body.as_object_mut().unwrap().remove("max_tokens");
    let r = send(&g, anthropic_post("/v1/messages", Some(ADMIN), body));
    assert_anthropic_error(&r, 400, "invalid_request_error");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_tokens")
    );
    // Too large a body.
    let mut body = message_body();
    body["messages"][0]["content"] = json!("x".repeat(5000));
    assert_anthropic_error(
        &send(&g, anthropic_post("/v1/messages", Some(ADMIN), body)),
        413,
        "request_too_large",
    );
}

#[test]
fn rate_limited_messages_are_anthropic_429s_with_rate_headers() {
    let (g, _) = gateway();
    let key = block_on(auth::create_key(
        g.store(),
        &CountingEntropy::default(),
        &FixedClock(0),
        NewKey {
            name: "slow".into(),
            role: Role::Client,
            models: None,
            rpm: Some(1),
            expires: None,
        },
    ))
    .unwrap()
    .0;
    assert_eq!(
        send(
            &g,
            anthropic_post("/v1/messages", Some(&key), message_body())
        )
        .status,
        200
    );
    let r = send(
        &g,
        anthropic_post("/v1/messages", Some(&key), message_body()),
    );
    assert_anthropic_error(&r, 429, "rate_limit_error");
    assert!(r.headers.contains_key("x-ratelimit-limit"));
    assert!(r.headers.contains_key("retry-after"));
}

#[test]
fn upstream_failures_on_messages_keep_status_and_retry_after() {
    let (g, backend) = gateway();
    backend.answer(Answer::Fail(Error::from_workers_ai(
        Some(3040),
        "busy",
        429,
    )));
    let r = send(
        &g,
        anthropic_post("/v1/messages", Some(ADMIN), message_body()),
    );
    assert_anthropic_error(&r, 429, "rate_limit_error");
    assert_eq!(r.headers["retry-after"], "1");
}

#[test]
fn openai_routes_keep_openai_errors() {
    let (g, _) = gateway();
    let r = send(
        &g,
        openai_post(
            "/v1/responses",
            None,
            json!({"model": MODEL, "input": "Hi"}),
        ),
    );
    assert_eq!(r.status, 401);
    assert!(r.json()["error"]["type"].is_string());
    assert!(r.json().get("type").is_none());
}

#[test]
fn messages_stream_through_the_gateway() {
    let (g, backend) = gateway();
    backend.answer(Answer::Sse(vec![
        "data: {\"response\":\"Hel\"}\n\n",
        "data: {\"response\":\"lo\"}\n\ndata: {\"response\":\"\",\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\n",
        "data: [DONE]\n\n",
    ]));
    let mut body = message_body();
    body["stream"] = json!(true);
    let r = send(&g, anthropic_post("/v1/messages", Some(ADMIN), body));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let names: Vec<String> = r.events().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let delta = &r.events()[5].1;
    assert_eq!(
        delta["usage"],
        json!({"input_tokens": 5, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 2})
    );
    assert_eq!(backend.last_input()["stream"], true);
}

#[test]
fn count_tokens_estimates_without_an_upstream_call() {
    let (g, backend) = gateway();
    let body = json!({"model": MODEL, "messages": [{"role": "user", "content": "abcdefghi"}]});
    let r = send(
        &g,
        anthropic_post("/v1/messages/count_tokens", Some(ADMIN), body),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"input_tokens": 3 + 8}));
    assert!(backend.seen.lock().unwrap().is_empty());
}

#[test]
fn responses_json_and_stream_through_the_gateway() {
    let (g, backend) = gateway();
    let r = send(
        &g,
        openai_post(
            "/v1/responses",
            Some(ADMIN),
            json!({"model": MODEL, "input": "Hi", "instructions": "Be kind."}),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["output"][0]["content"][0]["text"], "ok");
    assert_eq!(v["usage"]["total_tokens"], 4);
    assert_eq!(backend.last_input()["messages"][0]["role"], "system");

    backend.answer(Answer::Sse(vec![
        "data: {\"response\":\"o\"}\n\ndata: {\"respo",
        "nse\":\"k\"}\n\ndata: {\"response\":\"\",\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\ndata: [DONE]\n\n",
    ]));
    let r = send(
        &g,
        openai_post(
            "/v1/responses",
            Some(ADMIN),
            json!({"model": MODEL, "input": "Hi", "stream": true}),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let events = r.events();
    for (i, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], name.as_str());
        assert_eq!(data["sequence_number"], i as u64);
    }
    let last = &events.last().unwrap().1;
    assert_eq!(last["type"], "response.completed");
    assert_eq!(last["response"]["output"][0]["content"][0]["text"], "ok");
    assert!(!r.body.contains("[DONE]"));
}

#[test]
fn responses_refusals_are_openai_400s() {
    let (g, _) = gateway();
    let r = send(
        &g,
        openai_post(
            "/v1/responses",
            Some(ADMIN),
            json!({"model": MODEL, "input": "Hi", "previous_response_id": "resp_1"}),
        ),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["param"], "previous_response_id");
    assert_eq!(r.json()["error"]["code"], "unsupported_parameter");
}

#[test]
fn gpt_oss_gets_its_native_responses_input() {
    let (g, backend) = gateway();
    backend.answer(Answer::Json(json!({
        "id": "resp_up", "object": "response", "created_at": 1, "model": "@cf/openai/gpt-oss-120b",
        "output": [{"type": "message", "id": "m", "role": "assistant",
                    "content": [{"type": "output_text", "text": "Forty-two."}]}],
        "usage": {"input_tokens": 9, "output_tokens": 3, "total_tokens": 12}
    })));
    let r = send(
        &g,
        openai_post(
            "/v1/responses",
            Some(ADMIN),
            json!({"model": "gpt-5", "input": "The answer?", "instructions": "Be terse.",
                   "reasoning": {"effort": "minimal"}}),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let input = backend.last_input();
    assert_eq!(input["input"], "The answer?");
    assert_eq!(input["instructions"], "Be terse.");
    // gpt-oss cannot reason less than low.
    assert_eq!(input["reasoning"]["effort"], "low");
    assert!(input.get("messages").is_none());
    let v = r.json();
    assert_eq!(v["model"], "gpt-5");
    assert_eq!(v["output"][0]["content"][0]["text"], "Forty-two.");
    assert_eq!(v["usage"]["input_tokens"], 9);
}

#[test]
fn open_model_streams_ask_the_upstream_for_usage() {
    let backend = Scripted::default();
    let services = Services {
        clock: Box::new(FixedClock(1_800_000_000)),
        ids: Box::new(SequentialIds::default()),
        entropy: Box::new(CountingEntropy::default()),
    };
    let config = GatewayConfig {
        admin_key_hash: Some(auth::hash_key(ADMIN)),
        open_models: true,
        ..GatewayConfig::default()
    };
    let g = Gateway::new(backend.clone(), MemoryStore::new(), services, config);
    backend.answer(Answer::Sse(vec![
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}\n\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":1,\"total_tokens\":5}}\n\ndata: [DONE]\n\n",
    ]));
    let r = send(
        &g,
        openai_post(
            "/v1/responses",
            Some(ADMIN),
            json!({"model": "qwen2.5:7b", "input": "Hi", "stream": true}),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        backend.last_input()["stream_options"],
        json!({"include_usage": true})
    );
    let events = r.events();
    let last = &events.last().unwrap().1;
    assert_eq!(last["response"]["usage"]["total_tokens"], 5);
    let mut body = message_body();
    body["model"] = json!("qwen2.5:7b");
    body["stream"] = json!(true);
    let r = send(&g, anthropic_post("/v1/messages", Some(ADMIN), body));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        backend.last_input()["stream_options"],
        json!({"include_usage": true})
    );
}
