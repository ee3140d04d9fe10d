//! Property tests of every parser a client or an upstream can feed: the SSE decoder,
//! the chat stream transcoder, chat request JSON (through the whole gateway), upstream
//! JSON answers, auth headers and the route table.
//!
//! Two properties throughout: **no panic** on any input, and for the incremental
//! parsers **any split of the input yields the same output** as feeding it whole.
//!
//! The case counts here keep `cargo test --workspace` quick (a few seconds in debug).
//! For a long run: `PROPTEST_CASES=20000 cargo test -p cng-core --release --test
//! parsers_prop` (see docs/reliability.md; the cargo-fuzz targets in `fuzz/` cover the
//! same parsers with coverage guidance).
//!
//! Adding a parser: write a `proptest!` block with a generator of plausible input
//! (`prop_oneof!` of structured and raw bytes) and assert no panic plus, if it is
//! incremental, equality of outputs over `splits(...)`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use bytes::Bytes;
use cng_core::alias::AliasTable;
use cng_core::auth::{self, NewKey, Role};
use cng_core::backend::{Backend, InferenceRequest, Output};
use cng_core::catalog::Catalog;
use cng_core::chat::{self, ChatContext, StreamTranscoder};
use cng_core::error::Error;
use cng_core::gateway::{Match, match_route};
use cng_core::ids::{CountingEntropy, FixedClock, SequentialIds};
use cng_core::openai::{chat::ChatRequest, parse_json};
use cng_core::sse::{SseDecoder, SseEvent};
use cng_core::store::MemoryStore;
use cng_core::{Body, Gateway, GatewayConfig, Services};
use futures_executor::block_on;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Method, Request};
use proptest::prelude::*;
use serde_json::{Value, json};

fn config(cases: u32) -> ProptestConfig {
    // PROPTEST_CASES (if set) wins, for long runs.
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        max_shrink_iters: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Cuts `input` at the given (sorted, deduplicated, in-range) points.
fn splits<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.sort_unstable();
    points.dedup();
    let mut out = Vec::new();
    let mut start = 0;
    for p in points {
        out.push(&input[start..p]);
        start = p;
    }
    out.push(&input[start..]);
    out
}

// ---------------------------------------------------------------------------------------
// Generators

/// Text that stresses parsers: multi-byte UTF-8, quotes, escapes, newlines, think tags.
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("hello".to_string()),
            Just(" ".to_string()),
            Just("é".to_string()),
            Just("日本".to_string()),
            Just("🦀".to_string()),
            Just("\"".to_string()),
            Just("\\".to_string()),
            Just("\n".to_string()),
            Just("<think>".to_string()),
            Just("</think>".to_string()),
            Just("<thi".to_string()),
            Just("nk>".to_string()),
            Just("{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}".to_string()),
            Just("<tool_call>".to_string()),
            Just("data: ".to_string()),
            "[a-z ]{0,12}",
        ],
        0..8,
    )
    .prop_map(|v| v.concat())
}

/// One Workers AI stream event's JSON (legacy or OpenAI shape), or an odd one.
fn upstream_event() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => text().prop_map(|t| json!({"response": t, "p": "abc"}).to_string()),
        1 => (text(), any::<u8>()).prop_map(|(t, n)| json!({
            "response": t,
            "usage": {"prompt_tokens": n, "completion_tokens": n, "total_tokens": u32::from(n) * 2}
        }).to_string()),
        1 => text().prop_map(|a| json!({"response": "", "tool_calls": [
            {"name": "get_weather", "arguments": {"city": a}}
        ]}).to_string()),
        3 => (text(), prop::option::of(text())).prop_map(|(c, r)| json!({"choices": [{
            "index": 0,
            "delta": {"content": c, "reasoning_content": r},
            "finish_reason": null
        }]}).to_string()),
        1 => (0u8..3, text()).prop_map(|(i, a)| json!({"choices": [{
            "index": 0,
            "delta": {"tool_calls": [{"index": i, "id": format!("call_{i}"), "type": "function",
                "function": {"name": "get_weather", "arguments": a}}]},
            "finish_reason": null
        }]}).to_string()),
        1 => prop_oneof![Just("stop"), Just("length"), Just("tool_calls")]
            .prop_map(|f| json!({"choices": [{"index": 0, "delta": {}, "finish_reason": f}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}}).to_string()),
        1 => Just(json!({"errors": [{"code": 3040, "message": "Capacity temporarily exceeded"}]}).to_string()),
        1 => "[ -~]{0,20}",
        1 => Just("[DONE]".to_string()),
    ]
}

/// A whole upstream SSE stream: events with assorted line endings and comments, maybe
/// `[DONE]`, maybe cut off.
fn upstream_stream() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(
            (
                upstream_event(),
                prop_oneof![Just("\n\n"), Just("\r\n\r\n"), Just("\r\r")],
                any::<bool>(),
            ),
            0..25,
        ),
        any::<bool>(),
        0usize..40,
    )
        .prop_map(|(events, done, cut)| {
            let mut s = String::new();
            for (data, end, comment) in events {
                if comment {
                    s.push_str(": keep-alive\n");
                }
                s.push_str("data: ");
                s.push_str(&data);
                s.push_str(end);
            }
            if done {
                s.push_str("data: [DONE]\n\n");
            }
            let mut bytes = s.into_bytes();
            // Sometimes the connection drops mid-event.
            if cut > 0 && cut < bytes.len() && cut % 3 == 0 {
                bytes.truncate(bytes.len() - cut);
            }
            bytes
        })
}

fn raw_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

fn cuts() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(any::<usize>(), 0..12)
}

/// Arbitrary JSON, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("role".to_string()),
                        Just("content".to_string()),
                        Just("type".to_string()),
                        Just("text".to_string()),
                        Just("tool_calls".to_string()),
                        Just("function".to_string()),
                        Just("name".to_string()),
                        Just("arguments".to_string()),
                        Just("image_url".to_string()),
                        Just("url".to_string()),
                        "[a-z_]{1,8}",
                    ],
                    inner
                ),
                0..4
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

const MODELS: [&str; 6] = [
    "@cf/meta/llama-3.1-8b-instruct",
    "@cf/zai-org/glm-4.7-flash",
    "@cf/deepseek-ai/deepseek-r1-distill-qwen-32b",
    "@cf/google/gemma-4-26b-a4b-it",
    "gpt-4o-mini",
    "gpt-4o",
];

/// A chat request: plausible fields with random values of random types.
fn chat_request() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(MODELS.to_vec()),
        prop::collection::vec(
            prop_oneof![
                3 => (prop_oneof![Just("user"), Just("system"), Just("assistant"), Just("developer"), Just("tool")], text())
                    .prop_map(|(r, t)| json!({"role": r, "content": t})),
                1 => text().prop_map(|t| json!({"role": "user", "content": [{"type": "text", "text": t},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]})),
                1 => Just(json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]})),
                1 => json_value(),
            ],
            0..5,
        ),
        prop::collection::vec(
            (
                prop::sample::select(vec![
                    "stream", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n", "stop",
                    "tools", "tool_choice", "response_format", "stream_options", "seed", "logprobs",
                    "frequency_penalty", "presence_penalty", "reasoning_effort", "functions", "user",
                ]),
                json_value(),
            ),
            0..5,
        ),
    )
        .prop_map(|(model, messages, extra)| {
            let mut v = json!({"model": model, "messages": messages});
            for (k, val) in extra {
                v[k] = val;
            }
            v
        })
}

// ---------------------------------------------------------------------------------------
// SSE decoder

fn decode_all(pieces: &[&[u8]]) -> (Vec<SseEvent>, Vec<bool>, cng_core::sse::EndState) {
    let mut d = SseDecoder::new();
    let mut out = Vec::new();
    let mut errs = Vec::new();
    for p in pieces {
        errs.push(d.push(p, &mut out).is_err());
    }
    let end = d.finish(&mut out);
    (out, errs, end)
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn sse_any_split_same_events(input in prop_oneof![upstream_stream(), raw_bytes(600)], cuts in cuts()) {
        let (whole, _, whole_end) = decode_all(&[&input]);
        let (split, errs, split_end) = decode_all(&splits(&input, &cuts));
        prop_assert!(errs.iter().all(|e| !e), "small inputs never overflow");
        prop_assert_eq!(whole, split);
        prop_assert_eq!(whole_end, split_end);
    }

    #[test]
    fn sse_byte_by_byte_same_events(input in upstream_stream()) {
        let (whole, _, _) = decode_all(&[&input]);
        let pieces: Vec<&[u8]> = input.chunks(1).collect();
        let (split, _, _) = decode_all(&pieces);
        prop_assert_eq!(whole, split);
    }
}

// ---------------------------------------------------------------------------------------
// Chat stream transcoder

fn context(model: &str, include_usage: bool, tools: bool) -> ChatContext {
    let mut req = json!({
        "model": model,
        "stream": true,
        "messages": [{"role": "user", "content": "hi"}],
    });
    if include_usage {
        req["stream_options"] = json!({"include_usage": true});
    }
    if tools {
        req["tools"] = json!([{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    }
    let req: ChatRequest = serde_json::from_value(req).unwrap();
    let target = AliasTable::default()
        .resolve(&req.model, Catalog::builtin())
        .unwrap();
    chat::plan(
        &req,
        &target,
        &SequentialIds::default(),
        &FixedClock(1_700_000_000),
    )
    .unwrap()
    .context
}

fn transcode(ctx: &ChatContext, pieces: &[&[u8]], fail: bool) -> Vec<u8> {
    let mut t = StreamTranscoder::new(ctx.clone());
    let mut out = Vec::new();
    for p in pieces {
        if t.is_done() {
            break;
        }
        out.extend(t.push(p));
    }
    if fail {
        out.extend(t.fail(&Error::upstream("connection reset")));
    } else {
        out.extend(t.finish());
    }
    out
}

proptest! {
    #![proptest_config(config(192))]

    #[test]
    fn transcoder_any_split_same_output(
        model in prop::sample::select(MODELS.to_vec()),
        include_usage in any::<bool>(),
        tools in any::<bool>(),
        fail in any::<bool>(),
        input in prop_oneof![4 => upstream_stream(), 1 => raw_bytes(400)],
        cuts in cuts(),
    ) {
        let ctx = context(model, include_usage, tools);
        let whole = transcode(&ctx, &[&input], fail);
        let split = transcode(&ctx, &splits(&input, &cuts), fail);
        prop_assert_eq!(String::from_utf8_lossy(&whole), String::from_utf8_lossy(&split));
        // Whatever came in, what goes out is SSE that ends the stream properly.
        let text = String::from_utf8(whole).expect("the transcoder writes UTF-8");
        prop_assert!(text.ends_with("data: [DONE]\n\n"), "{}", text);
        for event in text.split("\n\n").filter(|e| !e.is_empty()) {
            let data = event.strip_prefix("data: ").expect("every event is a data line");
            if data != "[DONE]" {
                serde_json::from_str::<Value>(data).expect("every event is JSON");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Request JSON (through the whole gateway) and upstream JSON answers

/// Answers every request with a fixed legacy JSON answer or stream.
#[derive(Clone)]
struct Echo;

impl Backend for Echo {
    async fn run(&self, request: InferenceRequest) -> Result<Output, Error> {
        if request.stream {
            let chunks = [
                "data: {\"response\":\"<think>a</think>b\"}\n\n",
                "data: {\"response\":\"c\",\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3}}\n\n",
                "data: [DONE]\n\n",
            ];
            return Ok(Output::Stream(Box::pin(futures_util::stream::iter(
                chunks.map(|c| Ok(Bytes::from_static(c.as_bytes()))),
            ))));
        }
        Ok(Output::Json(json!({"response": "ok", "usage": {
            "prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})))
    }
}

const ADMIN: &str = "cng-prop-admin-key";

fn gateway() -> Gateway<Echo, MemoryStore> {
    let services = Services {
        clock: Box::new(FixedClock(1_800_000_000)),
        ids: Box::new(SequentialIds::default()),
        entropy: Box::new(CountingEntropy::default()),
    };
    let config = GatewayConfig {
        admin_key_hash: Some(auth::hash_key(ADMIN)),
        max_body_bytes: 16 * 1024,
        ..GatewayConfig::default()
    };
    Gateway::new(Echo, MemoryStore::new(), services, config)
}

fn post(g: &Gateway<Echo, MemoryStore>, path: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", "application/json")
        .body(Body::Full(Bytes::from(body)))
        .unwrap();
    let resp = block_on(g.handle(req));
    let status = resp.status().as_u16();
    let bytes = block_on(async {
        match resp.into_body() {
            Body::Empty => Vec::new(),
            Body::Full(b) => b.to_vec(),
            Body::Stream(mut s) => {
                let mut v = Vec::new();
                while let Some(c) = s.next().await {
                    v.extend_from_slice(&c.unwrap());
                }
                v
            }
        }
    });
    (status, bytes)
}

fn assert_answer(status: u16, body: &[u8]) -> Result<(), TestCaseError> {
    prop_assert!(
        status != 500,
        "a client's body never causes a bare 500: {}",
        String::from_utf8_lossy(body)
    );
    if status >= 400 {
        let v: Value = serde_json::from_slice(body).expect("errors are JSON");
        prop_assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        prop_assert!(v["error"]["type"].is_string());
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn chat_request_json_never_panics(req in chat_request()) {
        let g = gateway();
        let (status, body) = post(&g, "/v1/chat/completions", serde_json::to_vec(&req).unwrap());
        assert_answer(status, &body)?;
    }

    #[test]
    fn raw_request_bytes_never_panic(body in prop_oneof![raw_bytes(300), text().prop_map(String::into_bytes)]) {
        let g = gateway();
        for path in ["/v1/chat/completions", "/v1/completions"] {
            let (status, out) = post(&g, path, body.clone());
            assert_answer(status, &out)?;
            prop_assert!(status >= 400);
        }
        // parse_json on its own: an error, never a panic.
        prop_assert!(parse_json::<ChatRequest>(&body).is_err() || !body.is_empty());
    }

    #[test]
    fn upstream_json_answers_never_panic(answer in json_value(), model in prop::sample::select(MODELS.to_vec())) {
        let ctx = context(model, false, true);
        let _ = chat::complete(&ctx, &answer);
        let _ = chat::complete(&ctx, &json!({"response": answer.clone()}));
        let _ = chat::complete(&ctx, &json!({"choices": [{"message": answer}]}));
    }
}

// ---------------------------------------------------------------------------------------
// Auth headers and routes

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        raw_bytes(80),
        "[ -~]{0,60}".prop_map(String::into_bytes),
        "(bearer|Bearer|BEARER|Basic) {0,3}[ -~]{0,50}".prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn auth_headers_never_panic_and_never_authenticate_garbage(
        auth in header_value(), x_api_key in header_value(), api_key in header_value(),
    ) {
        let store = MemoryStore::new();
        let (real, _) = block_on(auth::create_key(&store, &CountingEntropy::default(), &FixedClock(1), NewKey {
            name: "real".into(), role: Role::Client, models: None, rpm: None, expires: None,
        })).unwrap();
        let mut h = HeaderMap::new();
        for (name, v) in [("authorization", &auth), ("x-api-key", &x_api_key), ("api-key", &api_key)] {
            if let Ok(v) = HeaderValue::from_bytes(v) {
                h.insert(name, v);
            }
        }
        let presented = auth::key_from_headers(&h);
        let result = block_on(auth::authenticate(&store, &FixedClock(2), None, presented));
        // Random bytes are never the real key.
        prop_assert!(result.is_err());
        let e = result.unwrap_err();
        prop_assert_eq!(e.status().as_u16(), 401);
        // The error never echoes what was presented.
        if let Some(p) = presented.filter(|p| p.len() >= 8) {
            prop_assert!(!e.message().contains(p));
        }
        // And the real key, sent in any of the accepted ways, always works.
        let mut ok = HeaderMap::new();
        ok.insert("authorization", HeaderValue::from_str(&format!("bEaReR   {real}  ")).unwrap());
        prop_assert!(block_on(auth::authenticate(&store, &FixedClock(2), None, auth::key_from_headers(&ok))).is_ok());
    }

    #[test]
    fn route_table_never_panics(path in prop_oneof![
        "/[ -~]{0,40}",
        "/(v1/)?(models|img|chat|completions)/[./%a-z0-9]{0,30}",
        "/img/(\\.\\./|%2e%2e%2f|\\.%2e/){1,4}[a-z/]{0,12}",
    ]) {
        for m in [Method::GET, Method::POST, Method::HEAD, Method::DELETE] {
            let _ = match_route(&m, &path);
        }
        if let Match::Found(cng_core::gateway::Route::Image(id)) = match_route(&Method::GET, &path) {
            // The id is whatever follows /img/; the image handler must validate it
            // (tests/gateway.rs and the server's faults.rs check traversal end to end).
            prop_assert!(path.ends_with(&id));
        }
    }
}

// Multipart uploads (audio, image edits) and config import.

fn form_part() -> impl Strategy<Value = (String, Option<String>, Vec<u8>)> {
    (
        "[a-z_]{1,8}",
        prop::option::of("[a-z]{1,6}\\.(wav|png)"),
        // Bytes that never contain the boundary's dashes pair.
        prop::collection::vec(any::<u8>().prop_filter("no dash", |b| *b != b'-'), 0..200),
    )
}

fn build_form(boundary: &str, parts: &[(String, Option<String>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, filename, data) in parts {
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(f) => out.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
            ),
            None => out.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

fn read_form(pieces: &[&[u8]], limit: usize) -> Result<cng_core::multipart::Form, String> {
    let chunks: Vec<Result<Bytes, Error>> = pieces
        .iter()
        .map(|p| Ok(Bytes::copy_from_slice(p)))
        .collect();
    let body = Body::Stream(Box::pin(futures_util::stream::iter(chunks)));
    block_on(cng_core::multipart::read(body, "XyZboundary".into(), limit))
        .map_err(|e| e.message().to_string())
}

proptest! {
    #![proptest_config(config(256))]

    /// A form reads the same whatever way the network cut it, and its fields come back
    /// byte for byte.
    #[test]
    fn multipart_any_split_same_form(parts in prop::collection::vec(form_part(), 1..4), cuts in cuts()) {
        let body = build_form("XyZboundary", &parts);
        let whole = read_form(&[&body], 1 << 20);
        let form = whole.clone().expect("a well-formed form reads");
        prop_assert_eq!(form.parts.len(), parts.len());
        for (p, (name, _, data)) in form.parts.iter().zip(&parts) {
            prop_assert_eq!(&p.name, name);
            prop_assert_eq!(&p.data[..], &data[..]);
        }
        prop_assert_eq!(read_form(&splits(&body, &cuts), 1 << 20), whole);
    }

    /// Garbage and forms over the limit are errors, never panics.
    #[test]
    fn multipart_garbage_never_panics(body in raw_bytes(600), cuts in cuts(), limit in 0usize..400) {
        let _ = read_form(&splits(&body, &cuts), limit);
        let mut framed = b"--XyZboundary\r\n".to_vec();
        framed.extend_from_slice(&body);
        let _ = read_form(&[&framed], limit);
    }

    /// A config import of any JSON is validated: an answer (2xx or an OpenAI-shaped
    /// 4xx), never a panic or a bare 500.
    #[test]
    fn config_import_never_panics(doc in json_value()) {
        let g = gateway();
        let (status, body) = post(&g, "/api/config/import", serde_json::to_vec(&doc).unwrap());
        assert_answer(status, &body)?;
        let wrapped = json!({"version": 0, "config": doc});
        let (status, body) = post(&g, "/api/config/import", serde_json::to_vec(&wrapped).unwrap());
        assert_answer(status, &body)?;
    }
}
