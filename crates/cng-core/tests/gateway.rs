//! The gateway end to end, natively, with an in-memory store and a scripted backend:
//! routing, CORS, request ids, limits, auth and roles, rate limits, chat and
//! completions (JSON and streamed), models.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cng_core::auth::{self, NewKey, Role};
use cng_core::backend::{Backend, InferenceRequest, Output};
use cng_core::error::Error;
use cng_core::ids::{CountingEntropy, FixedClock, SequentialIds};
use cng_core::store::MemoryStore;
use cng_core::{Body, Gateway, GatewayConfig, Services};
use futures_executor::block_on;
use futures_util::StreamExt;
use http::{Request, Response};
use serde_json::{Value, json};

/// Answers from a script and records what it was asked.
#[derive(Clone, Default)]
struct Scripted {
    seen: Arc<Mutex<Vec<InferenceRequest>>>,
    answer: Arc<Mutex<Option<Answer>>>,
}

#[derive(Clone)]
enum Answer {
    Json(Value),
    Sse(Vec<&'static str>),
    Fail(Error),
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

fn client_key(
    g: &Gateway<Scripted, MemoryStore>,
    name: &str,
    models: Option<Vec<&str>>,
    rpm: Option<u32>,
) -> String {
    let new = NewKey {
        name: name.into(),
        role: Role::Client,
        models: models.map(|m| m.into_iter().map(String::from).collect()),
        rpm,
        expires: None,
    };
    block_on(auth::create_key(
        g.store(),
        &CountingEntropy::default(),
        &FixedClock(0),
        new,
    ))
    .unwrap()
    .0
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

fn post(path: &str, key: Option<&str>, body: Value) -> Request<Body> {
    let mut b = Request::post(path).header("content-type", "application/json");
    if let Some(k) = key {
        b = b.header("authorization", format!("Bearer {k}"));
    }
    b.body(Body::Full(Bytes::from(body.to_string()))).unwrap()
}

fn get(path: &str, key: Option<&str>) -> Request<Body> {
    let mut b = Request::get(path);
    if let Some(k) = key {
        b = b.header("authorization", format!("Bearer {k}"));
    }
    b.body(Body::Empty).unwrap()
}

fn chat_body(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Hello"}]})
}

#[test]
fn health_needs_no_key_and_names_the_upstream() {
    let (g, _) = gateway();
    let r = send(&g, get("/health", None));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["upstream"], "workers-ai-rest");
    assert_eq!(r.headers["access-control-allow-origin"], "*");
    assert!(
        r.headers["x-request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
}

#[test]
fn request_id_is_echoed() {
    let (g, _) = gateway();
    let mut req = get("/health", None);
    req.headers_mut()
        .insert("x-request-id", "trace-42".parse().unwrap());
    assert_eq!(send(&g, req).headers["x-request-id"], "trace-42");
}

#[test]
fn preflight_allows_the_sdk_headers() {
    let (g, _) = gateway();
    let req = Request::options("/v1/chat/completions")
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,x-stainless-os,x-stainless-retry-count",
        )
        .body(Body::Empty)
        .unwrap();
    let r = send(&g, req);
    assert_eq!(r.status, 204);
    assert!(
        r.headers["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("x-stainless-os")
    );
    assert!(
        r.headers["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
}

#[test]
fn unknown_path_is_404_and_wrong_method_405_with_allow() {
    let (g, _) = gateway();
    let r = send(&g, get("/v1/nope", Some(ADMIN)));
    assert_eq!(
        (r.status, r.json()["error"]["type"].as_str()),
        (404, Some("not_found_error"))
    );
    let r = send(&g, get("/v1/chat/completions", Some(ADMIN)));
    assert_eq!(r.status, 405);
    assert_eq!(r.headers["allow"], "POST");
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
}

#[test]
fn auth_cases() {
    let (g, _) = gateway();
    let r = send(&g, post("/v1/chat/completions", None, chat_body("gpt-4o")));
    assert_eq!(r.status, 401);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer")
    );
    let r = send(
        &g,
        post(
            "/v1/chat/completions",
            Some("cng-wrong"),
            chat_body("gpt-4o"),
        ),
    );
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (401, Some("invalid_api_key"))
    );
    assert!(!r.body.contains("cng-wrong"));
    // x-api-key and api-key work too
    let key = client_key(&g, "app", None, None);
    for header in ["x-api-key", "api-key"] {
        let mut req = post("/v1/chat/completions", None, chat_body("gpt-4o"));
        req.headers_mut().insert(header, key.parse().unwrap());
        assert_eq!(send(&g, req).status, 200, "{header}");
    }
    // client key on an admin route
    let r = send(&g, get("/api/keys", Some(&key)));
    assert_eq!(
        (r.status, r.json()["error"]["type"].as_str()),
        (403, Some("permission_error"))
    );
    // admin lists keys without secrets
    let r = send(&g, get("/api/keys", Some(ADMIN)));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"][0]["name"], "app");
    assert!(!r.body.contains(&key) && !r.body.contains("hash"));
    // revoked: stops at once
    block_on(auth::revoke_key(g.store(), "app")).unwrap();
    assert_eq!(
        send(
            &g,
            post("/v1/chat/completions", Some(&key), chat_body("gpt-4o"))
        )
        .status,
        401
    );
}

#[test]
fn allowed_models_are_enforced_by_alias_or_id() {
    let (g, _) = gateway();
    let key = client_key(&g, "narrow", Some(vec!["gpt-4o-mini"]), None);
    assert_eq!(
        send(
            &g,
            post("/v1/chat/completions", Some(&key), chat_body("gpt-4o-mini"))
        )
        .status,
        200
    );
    let r = send(
        &g,
        post("/v1/chat/completions", Some(&key), chat_body("gpt-4o")),
    );
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (403, Some("model_not_allowed"))
    );
    let models = send(&g, get("/v1/models", Some(&key))).json();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["gpt-4o-mini"]);
}

#[test]
fn rate_limit_429_with_headers() {
    let (g, _) = gateway();
    let key = client_key(&g, "slow", None, Some(2));
    for remaining in ["1", "0"] {
        let r = send(
            &g,
            post("/v1/chat/completions", Some(&key), chat_body("gpt-4o")),
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.headers["x-ratelimit-limit"], "2");
        assert_eq!(r.headers["x-ratelimit-remaining"], remaining);
    }
    let r = send(
        &g,
        post("/v1/chat/completions", Some(&key), chat_body("gpt-4o")),
    );
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
    assert!(r.headers.contains_key("retry-after"));
    assert_eq!(r.headers["x-ratelimit-remaining"], "0");
}

#[test]
fn body_limits_and_bad_json() {
    let (g, backend) = gateway();
    // declared too large: refused before reading
    let mut req = post("/v1/chat/completions", Some(ADMIN), json!({}));
    req.headers_mut()
        .insert("content-length", "999999".parse().unwrap());
    assert_eq!(send(&g, req).status, 413);
    // streamed body over the limit
    let chunks: Vec<Result<Bytes, Error>> =
        (0..10).map(|_| Ok(Bytes::from(vec![b' '; 1000]))).collect();
    let req = Request::post("/v1/chat/completions")
        .header("authorization", format!("Bearer {ADMIN}"))
        .body(Body::Stream(Box::pin(futures_util::stream::iter(chunks))))
        .unwrap();
    let r = send(&g, req);
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (413, Some("request_too_large"))
    );
    // malformed JSON names line and column
    let req = Request::post("/v1/chat/completions")
        .header("authorization", format!("Bearer {ADMIN}"))
        .body(Body::Full(Bytes::from_static(
            b"{\"model\": \"gpt-4o\",\n \"messages\": [}",
        )))
        .unwrap();
    let r = send(&g, req);
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 2 column"),
        "{}",
        r.body
    );
    // a wrong media type
    let req = Request::post("/v1/chat/completions")
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", "multipart/form-data; boundary=x")
        .body(Body::Full(Bytes::from_static(b"--x--")))
        .unwrap();
    assert_eq!(send(&g, req).status, 415);
    assert!(
        backend.seen.lock().unwrap().is_empty(),
        "nothing reached the upstream"
    );
}

#[test]
fn chat_json_resolves_alias_and_echoes_it() {
    let (g, backend) = gateway();
    let r = send(
        &g,
        post("/v1/chat/completions", Some(ADMIN), chat_body("gpt-4o")),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["model"], "gpt-4o");
    assert_eq!(v["choices"][0]["message"]["content"], "ok");
    assert_eq!(
        backend.seen.lock().unwrap()[0].model,
        "@cf/meta/llama-4-scout-17b-16e-instruct"
    );
    // without the /v1 prefix too
    assert_eq!(
        send(
            &g,
            post("/chat/completions", Some(ADMIN), chat_body("gpt-4o"))
        )
        .status,
        200
    );
}

#[test]
fn chat_stream_is_transcoded() {
    let (g, backend) = gateway();
    *backend.answer.lock().unwrap() = Some(Answer::Sse(vec![
        "data: {\"response\":\"Hel\"}\n\n",
        "data: {\"response\":\"lo\"}\n\ndata: {\"response\":\"\",\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n",
        "data: [DONE]\n\n",
    ]));
    let mut body = chat_body("gpt-4o-mini");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let r = send(&g, post("/v1/chat/completions", Some(ADMIN), body));
    assert_eq!(r.status, 200);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert!(backend.seen.lock().unwrap()[0].stream);
    let events: Vec<&str> = r.body.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.last(), Some(&"data: [DONE]"));
    assert!(
        r.body.contains("\"content\":\"Hel\"") && r.body.contains("\"finish_reason\":\"stop\"")
    );
    assert!(r.body.contains("\"total_tokens\":5"));
}

#[test]
fn upstream_errors_keep_their_status() {
    let (g, backend) = gateway();
    *backend.answer.lock().unwrap() = Some(Answer::Fail(Error::from_workers_ai(
        Some(3040),
        "busy",
        429,
    )));
    let r = send(
        &g,
        post("/v1/chat/completions", Some(ADMIN), chat_body("gpt-4o")),
    );
    assert_eq!(
        (r.status, r.json()["error"]["type"].as_str()),
        (429, Some("rate_limit_error"))
    );
    assert_eq!(r.headers["retry-after"], "1");
}

#[test]
fn completions_use_the_text_completion_shape() {
    let (g, backend) = gateway();
    let r = send(
        &g,
        post(
            "/v1/completions",
            Some(ADMIN),
            json!({"model": "gpt-3.5-turbo", "prompt": "Say hi"}),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["text"], "ok");
    assert!(v["id"].as_str().unwrap().starts_with("cmpl-"));
    let seen = backend.seen.lock().unwrap();
    let cng_core::backend::Input::Json(input) = &seen[0].input else {
        panic!()
    };
    assert_eq!(input["max_tokens"], 16, "OpenAI's default for this API");
    assert_eq!(input["messages"][0]["content"], "Say hi");
    drop(seen);
    let r = send(
        &g,
        post(
            "/v1/completions",
            Some(ADMIN),
            json!({"model": "gpt-3.5-turbo", "prompt": [1, 2]}),
        ),
    );
    assert_eq!(
        (r.status, r.json()["error"]["param"].as_str()),
        (400, Some("prompt"))
    );
}

#[test]
fn completions_stream() {
    let (g, backend) = gateway();
    *backend.answer.lock().unwrap() = Some(Answer::Sse(vec![
        "data: {\"response\":\"Hi\"}\n\ndata: [DONE]\n\n",
    ]));
    let r = send(
        &g,
        post(
            "/v1/completions",
            Some(ADMIN),
            json!({"model": "gpt-3.5-turbo", "prompt": "x", "stream": true}),
        ),
    );
    assert!(
        r.body.contains("\"object\":\"text_completion\"") && r.body.contains("\"text\":\"Hi\""),
        "{}",
        r.body
    );
    assert!(!r.body.contains("chat.completion"));
    assert!(r.body.ends_with("data: [DONE]\n\n"));
}

#[test]
fn models_list_and_get_with_slashes() {
    let (g, _) = gateway();
    let v = send(&g, get("/v1/models", Some(ADMIN))).json();
    let data = v["data"].as_array().unwrap();
    assert!(data.len() > 50);
    let gpt4o = data.iter().find(|m| m["id"] == "gpt-4o").unwrap();
    assert_eq!(
        gpt4o["alias_for"],
        "@cf/meta/llama-4-scout-17b-16e-instruct"
    );
    let r = send(
        &g,
        get(
            "/v1/models/@cf/meta/llama-4-scout-17b-16e-instruct",
            Some(ADMIN),
        ),
    );
    assert_eq!(r.status, 200);
    assert!(
        r.json()["aliases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "gpt-4o")
    );
    assert_eq!(
        send(&g, get("/v1/models/gpt-4o", Some(ADMIN))).json()["object"],
        "model"
    );
    assert_eq!(send(&g, get("/v1/models/nope", Some(ADMIN))).status, 404);
}

#[test]
fn wrong_task_model_is_a_clear_400() {
    let (g, backend) = gateway();
    let r = send(
        &g,
        post("/v1/chat/completions", Some(ADMIN), chat_body("dall-e-3")),
    );
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/v1/images/generations")
    );
    assert!(backend.seen.lock().unwrap().is_empty());
}

#[test]
fn json_mode_stream_is_answered_as_sse_from_a_json_upstream() {
    let (g, backend) = gateway();
    *backend.answer.lock().unwrap() = Some(Answer::Json(
        json!({"response": {"a": 1}, "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}}),
    ));
    let mut body = chat_body("@cf/meta/llama-3.3-70b-instruct-fp8-fast");
    body["stream"] = json!(true);
    body["response_format"] = json!({"type": "json_object"});
    let r = send(&g, post("/v1/chat/completions", Some(ADMIN), body));
    assert!(
        !backend.seen.lock().unwrap()[0].stream,
        "Workers AI JSON mode does not stream"
    );
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert!(r.body.contains(r#""content":"{\"a\":1}""#), "{}", r.body);
    assert!(r.body.ends_with("data: [DONE]\n\n"));
}

#[test]
fn a_limited_key_sees_its_budget_on_errors_too() {
    let (g, _) = gateway();
    let key = client_key(&g, "limited", None, Some(5));
    let r = send(
        &g,
        post(
            "/v1/chat/completions",
            Some(&key),
            chat_body("gpt-17-ultra"),
        ),
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.headers["x-ratelimit-remaining"], "4");
}

#[test]
fn tool_choice_none_is_fine_on_a_model_without_tools_and_logprobs_are_refused() {
    let (g, backend) = gateway();
    let mut body = chat_body("@cf/meta/llama-guard-3-8b");
    body["tools"] =
        json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
    body["tool_choice"] = json!("none");
    assert_eq!(
        send(&g, post("/v1/chat/completions", Some(ADMIN), body.clone())).status,
        200
    );
    let cng_core::backend::Input::Json(input) = &backend.seen.lock().unwrap()[0].input else {
        panic!()
    };
    assert!(input.get("tools").is_none());
    body["tool_choice"] = json!("auto");
    let r = send(&g, post("/v1/chat/completions", Some(ADMIN), body));
    assert_eq!(
        (r.status, r.json()["error"]["param"].as_str()),
        (400, Some("tools"))
    );
    let mut body = chat_body("gpt-4o");
    body["logprobs"] = json!(true);
    let r = send(&g, post("/v1/chat/completions", Some(ADMIN), body));
    assert_eq!(
        (r.status, r.json()["error"]["param"].as_str()),
        (400, Some("logprobs"))
    );
}

#[test]
fn completions_stream_from_a_json_upstream_stays_text_completion() {
    let (g, backend) = gateway();
    // An upstream that answers JSON although a stream was asked for.
    *backend.answer.lock().unwrap() = Some(Answer::Json(
        json!({"response": "Hi there", "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}}),
    ));
    let body = json!({"model": "gpt-3.5-turbo", "prompt": "x", "stream": true, "stream_options": {"include_usage": true}});
    let r = send(&g, post("/v1/completions", Some(ADMIN), body));
    assert!(
        r.body.contains(r#""object":"text_completion""#) && r.body.contains(r#""text":"Hi there""#),
        "{}",
        r.body
    );
    assert!(!r.body.contains("chat.completion"));
    assert!(r.body.contains(r#""total_tokens":4"#));
    assert!(r.body.ends_with("data: [DONE]\n\n"));
}

#[test]
fn open_models_accept_any_name_and_images() {
    let backend = Scripted::default();
    let services = Services {
        clock: Box::new(FixedClock(0)),
        ids: Box::new(SequentialIds::default()),
        entropy: Box::new(CountingEntropy::default()),
    };
    let config = GatewayConfig {
        admin_key_hash: Some(auth::hash_key(ADMIN)),
        open_models: true,
        aliases: cng_core::alias::AliasTable::empty(),
        ..GatewayConfig::default()
    };
    let g = Gateway::new(backend.clone(), MemoryStore::new(), services, config);
    let body = json!({"model": "llava:13b", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]});
    let r = send(&g, post("/v1/chat/completions", Some(ADMIN), body));
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = backend.seen.lock().unwrap();
    assert_eq!(seen[0].model, "llava:13b");
    let cng_core::backend::Input::Json(input) = &seen[0].input else {
        panic!()
    };
    assert_eq!(input["messages"][0]["content"][1]["type"], "image_url");
}
