//! The fake upstream, driven with a plain hyper HTTP/1 client.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cng_testkit::{FakeUpstream, RecordedRequest, fixtures_dir};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

const LLAMA: &str = "@cf/meta/llama-3.1-8b-instruct";

async fn fake() -> FakeUpstream {
    FakeUpstream::start(&fixtures_dir(), 0).await.unwrap()
}

fn run_path(model: &str) -> String {
    format!("/client/v4/accounts/acc123/ai/run/{model}")
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Incoming,
}

impl Reply {
    async fn bytes(self) -> Bytes {
        self.body.collect().await.unwrap().to_bytes()
    }

    async fn json(self) -> Value {
        let bytes = self.bytes().await;
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every data frame as it arrived, until the body ends or fails.
    async fn frames(mut self) -> (Vec<Bytes>, Option<hyper::Error>) {
        let mut frames = Vec::new();
        loop {
            match self.body.frame().await {
                None => return (frames, None),
                Some(Err(e)) => return (frames, Some(e)),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        frames.push(data);
                    }
                }
            }
        }
    }
}

async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = sender
        .send_request(req.body(Full::new(body.into())).unwrap())
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

async fn post_json(addr: SocketAddr, path: &str, body: &Value) -> Reply {
    send(
        addr,
        "POST",
        path,
        &[
            ("content-type", "application/json"),
            ("authorization", "Bearer test-token"),
        ],
        body.to_string(),
    )
    .await
}

fn chat(model: &str, text: &str, stream: bool) -> Value {
    let mut body = json!({"model": model, "messages": [{"role": "user", "content": text}]});
    if stream {
        body["stream"] = json!(true);
    }
    body
}

/// A legacy body as the gateway sends it to Workers AI (no `model` in the body).
fn legacy(text: &str, stream: bool) -> Value {
    let mut body = json!({"messages": [{"role": "user", "content": text}]});
    if stream {
        body["stream"] = json!(true);
    }
    body
}

fn fixture(case: &str, file: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join("chat").join(case).join(file)).unwrap()
}

fn fixture_json(case: &str, file: &str) -> Value {
    serde_json::from_slice(&fixture(case, file)).unwrap()
}

fn joined(frames: &[Bytes]) -> String {
    frames
        .iter()
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect()
}

/// The `data:` payloads of an SSE text.
fn data_lines(sse: &str) -> Vec<String> {
    sse.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

fn default_stream_text(sse: &str) -> String {
    data_lines(sse)
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v.get("response").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Fixture replay

#[tokio::test]
async fn json_case_matched_by_last_user_text_and_wrapped_in_envelope() {
    let fake = fake().await;
    assert!(fake.case_count() >= 70);
    let body = json!({
        "messages": [
            {"role": "system", "content": "You are a concise geography tutor."},
            {"role": "user", "content": "What is the capital of Australia? Answer in one sentence."}
        ],
        "max_tokens": 4096
    });
    let reply = post_json(fake.addr(), &run_path(LLAMA), &body).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("x-fake-answer"), Some("chat/legacy-basic"));
    let v = reply.json().await;
    assert_eq!(
        v,
        json!({
            "result": fixture_json("legacy-basic", "upstream.json"),
            "success": true,
            "errors": [],
            "messages": []
        })
    );
}

#[tokio::test]
async fn content_parts_are_matched_by_their_joined_text() {
    let fake = fake().await;
    // As the client sent it (parts) and as the gateway forwards it (joined with "\n").
    let parts = json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "Fix the spelling in this sentence:"},
        {"type": "text", "text": "Teh quick brwn fox jumpd over the lazy dog."}
    ]}]});
    let joined = legacy(
        "Fix the spelling in this sentence:\nTeh quick brwn fox jumpd over the lazy dog.",
        false,
    );
    for body in [parts, joined] {
        let reply = post_json(fake.addr(), &run_path(LLAMA), &body).await;
        assert_eq!(
            reply.header("x-fake-answer"),
            Some("chat/legacy-content-parts")
        );
        let v = reply.json().await;
        assert_eq!(
            v["result"],
            fixture_json("legacy-content-parts", "upstream.json")
        );
    }
}

#[tokio::test]
async fn alias_case_is_found_under_the_model_it_arrives_with() {
    let fake = fake().await;
    let reply = post_json(
        fake.addr(),
        &run_path("@cf/meta/llama-3.3-70b-instruct-fp8-fast"),
        &legacy("Give me a tip for remembering people's names.", false),
    )
    .await;
    assert_eq!(reply.header("x-fake-answer"), Some("chat/alias-gpt-4o"));
    let v = reply.json().await;
    assert_eq!(v["result"], fixture_json("alias-gpt-4o", "upstream.json"));
}

#[tokio::test]
async fn shared_texts_are_told_apart_by_model_and_fields() {
    let fake = fake().await;
    // "Hi" is the text of several fixtures; on llama-3.1-8b no answered case has it.
    let reply = post_json(fake.addr(), &run_path(LLAMA), &legacy("Hi", false)).await;
    assert_eq!(reply.header("x-fake-answer"), Some("default"));
    // ... while on the 405b model it is the 5007 case.
    let reply = post_json(
        fake.addr(),
        &run_path("@cf/meta/llama-3.1-405b-instruct"),
        &legacy("Hi", false),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.header("x-fake-answer"),
        Some("chat/upstream-5007-no-such-model")
    );

    // Same text and model: the vision case asked max_tokens 100, the 5016 case did not.
    let vision = "@cf/meta/llama-3.2-11b-vision-instruct";
    let mut body = legacy("What colour is this image?", false);
    body["image"] = json!("iVBORw0KGgo=");
    body["max_tokens"] = json!(100);
    let reply = post_json(fake.addr(), &run_path(vision), &body).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header("x-fake-answer"),
        Some("chat/vision-llama32-data-url")
    );
    body["max_tokens"] = json!(4096);
    let reply = post_json(fake.addr(), &run_path(vision), &body).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(
        reply.header("x-fake-answer"),
        Some("chat/upstream-5016-agreement")
    );
}

#[tokio::test]
async fn sse_case_arrives_in_several_chunks() {
    let fake = fake().await;
    let reply = post_json(
        fake.addr(),
        &run_path(LLAMA),
        &legacy("Suggest a name for a small bakery by the sea.", true),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    let (frames, err) = reply.frames().await;
    assert!(err.is_none());
    let expected = fixture("legacy-stream-basic", "upstream.sse");
    assert_eq!(joined(&frames).as_bytes(), &expected[..]);
    assert!(frames.len() >= 10, "only {} frames", frames.len());
}

#[tokio::test]
async fn error_case_returns_its_status_and_envelope() {
    let fake = fake().await;
    let reply = post_json(
        fake.addr(),
        &run_path(LLAMA),
        &legacy("Summarise the plot of Hamlet in two sentences.", false),
    )
    .await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.header("retry-after"), Some("1"));
    let expected = fixture_json("upstream-3040-capacity", "upstream-error.json");
    assert_eq!(reply.json().await, expected["body"]);
}

#[tokio::test]
async fn default_answers_when_nothing_matches() {
    let fake = fake().await;
    let reply = post_json(
        fake.addr(),
        &run_path(LLAMA),
        &legacy("something no fixture says", false),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json().await,
        json!({
            "result": {"response": "ok", "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}},
            "success": true, "errors": [], "messages": []
        })
    );

    let reply = post_json(
        fake.addr(),
        &run_path(LLAMA),
        &legacy("something no fixture says", true),
    )
    .await;
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    let (frames, err) = reply.frames().await;
    assert!(err.is_none());
    assert!(frames.len() >= 4);
    let sse = joined(&frames);
    assert_eq!(default_stream_text(&sse), "ok");
    assert!(sse.contains("\"usage\""));
    assert!(sse.ends_with("data: [DONE]\n\n"));
}

// ---------------------------------------------------------------------------------------
// The OpenAI-compatible route

#[tokio::test]
async fn openai_route_answers_openai_shapes() {
    let fake = fake().await;
    let addr = fake.addr();
    // An OpenAI-schema case passes through as is.
    let request = fixture_json("openai-basic", "request.json");
    let reply = post_json(addr, "/v1/chat/completions", &request).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json().await,
        fixture_json("openai-basic", "upstream.json")
    );

    // A legacy case becomes a chat.completion.
    let v = post_json(
        addr,
        "/v1/chat/completions",
        &fixture_json("legacy-basic", "request.json"),
    )
    .await
    .json()
    .await;
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        fixture_json("legacy-basic", "upstream.json")["response"]
    );

    // Default, plain and streamed.
    let v = post_json(
        addr,
        "/v1/chat/completions",
        &chat("m", "hello there", false),
    )
    .await
    .json()
    .await;
    assert_eq!(v["choices"][0]["message"]["content"], "ok");
    assert_eq!(v["model"], "m");
    let mut body = chat("m", "hello there", true);
    body["stream_options"] = json!({"include_usage": true});
    let (frames, _) = post_json(addr, "/v1/chat/completions", &body)
        .await
        .frames()
        .await;
    let sse = joined(&frames);
    let chunks: Vec<Value> = data_lines(&sse)
        .iter()
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "ok");
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert!(chunks.iter().any(|c| c["usage"]["total_tokens"] == 2));
    assert!(sse.ends_with("data: [DONE]\n\n"));

    // An OpenAI stream case replays its chunks, less the native Workers AI usage event.
    let request = fixture_json("openai-stream-basic", "request.json");
    let (frames, _) = post_json(addr, "/v1/chat/completions", &request)
        .await
        .frames()
        .await;
    let recorded = String::from_utf8(fixture("openai-stream-basic", "upstream.sse")).unwrap();
    let expected: String = recorded
        .split_inclusive("\n\n")
        .filter(|e| !e.starts_with("data: {\"response\""))
        .collect();
    assert_ne!(expected, recorded);
    assert_eq!(joined(&frames), expected);

    // Errors are OpenAI-shaped.
    let reply = post_json(
        addr,
        "/v1/chat/completions",
        &chat("m", "!status 429", false),
    )
    .await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    let v = reply.json().await;
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert_eq!(v["error"]["code"], 3040);
}

// ---------------------------------------------------------------------------------------
// Directives

#[tokio::test]
async fn directive_status() {
    let fake = fake().await;
    let reply = post_json(
        fake.addr(),
        &run_path(LLAMA),
        &legacy("!status 429 3040", false),
    )
    .await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.header("retry-after"), Some("1"));
    let v = reply.json().await;
    assert_eq!(v["success"], false);
    assert_eq!(v["errors"][0]["code"], 3040);

    let reply = post_json(fake.addr(), &run_path(LLAMA), &legacy("!status 500", false)).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(reply.header("retry-after"), None);
    let v = reply.json().await;
    assert_eq!(v["success"], false);
    assert_eq!(v["errors"], json!([{"code": 3030, "message": "internal"}]));

    let reply = post_json(fake.addr(), &run_path(LLAMA), &legacy("!nonsense", false)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn directive_delay_headers() {
    let fake = fake().await;
    let started = Instant::now();
    let reply = post_json(
        fake.addr(),
        &run_path(LLAMA),
        &legacy("!delay-headers 200", false),
    )
    .await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json().await["result"]["response"], "ok");
}

#[tokio::test]
async fn directive_stall_after() {
    let fake = fake().await;
    let mut reply = post_json(
        fake.addr(),
        &run_path(LLAMA),
        &legacy("!stall-after 2", true),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let mut got = String::new();
    while got.matches("\n\n").count() < 2 {
        let frame = tokio::time::timeout(Duration::from_secs(2), reply.body.frame())
            .await
            .expect("first events in time")
            .expect("body still open")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            got.push_str(&String::from_utf8_lossy(&data));
        }
    }
    assert_eq!(data_lines(&got).len(), 2);
    let next = tokio::time::timeout(Duration::from_millis(300), reply.body.frame()).await;
    assert!(next.is_err(), "the stream should stall, got {next:?}");
}

#[tokio::test]
async fn directive_truncate() {
    let fake = fake().await;
    let reply = post_json(fake.addr(), &run_path(LLAMA), &legacy("!truncate", true)).await;
    assert_eq!(reply.status, StatusCode::OK);
    let (frames, err) = reply.frames().await;
    assert!(err.is_some(), "the connection should be cut");
    let sse = joined(&frames);
    assert_eq!(sse.matches("\n\n").count(), 3);
    assert!(!sse.ends_with("\n\n"), "should end mid-event: {sse:?}");
    assert!(!sse.contains("[DONE]"));
}

#[tokio::test]
async fn directive_trickle() {
    let fake = fake().await;
    let started = Instant::now();
    let reply = post_json(fake.addr(), &run_path(LLAMA), &legacy("!trickle 40", true)).await;
    let (frames, err) = reply.frames().await;
    assert!(err.is_none());
    let n = u32::try_from(frames.len()).unwrap();
    assert!(n >= 4);
    assert!(started.elapsed() >= Duration::from_millis(40) * (n - 1));
    let sse = joined(&frames);
    assert_eq!(default_stream_text(&sse), "ok");
    assert!(sse.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn directive_flaky() {
    let fake = fake().await;
    let body = legacy("!flaky 2 retry-test", false);
    for _ in 0..2 {
        let reply = post_json(fake.addr(), &run_path(LLAMA), &body).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(reply.json().await["success"], false);
    }
    let reply = post_json(fake.addr(), &run_path(LLAMA), &body).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json().await["result"]["response"], "ok");
    // Another text has its own counter.
    let reply = post_json(
        fake.addr(),
        &run_path(LLAMA),
        &legacy("!flaky 1 other", false),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn directive_garbage() {
    let fake = fake().await;
    let reply = post_json(fake.addr(), &run_path(LLAMA), &legacy("!garbage", false)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let bytes = reply.bytes().await;
    assert!(!bytes.is_empty());
    assert!(serde_json::from_slice::<Value>(&bytes).is_err());
}

// ---------------------------------------------------------------------------------------
// Recording and admin routes

#[tokio::test]
async fn requests_are_recorded() {
    let fake = fake().await;
    let addr = fake.addr();
    let path = run_path(LLAMA);
    post_json(addr, &path, &legacy("record me", false))
        .await
        .bytes()
        .await;
    send(
        addr,
        "POST",
        &run_path("@cf/openai/whisper"),
        &[("authorization", "Bearer other")],
        Bytes::from_static(&[0xff, 0x00, 0x01]),
    )
    .await
    .bytes()
    .await;

    let recorded = fake.requests();
    assert_eq!(recorded.len(), 2);
    let first = &recorded[0];
    assert_eq!(first.method, "POST");
    assert_eq!(first.path, path);
    assert_eq!(first.header("Authorization"), Some("Bearer test-token"));
    assert_eq!(first.bearer(), Some("test-token"));
    assert_eq!(first.body, legacy("record me", false));
    assert_eq!(first.model().as_deref(), Some(LLAMA));
    assert_eq!(first.answered_with.as_deref(), Some("default"));
    assert_eq!(recorded[1].body, json!("/wAB"));

    // The same list over HTTP, admin calls not recorded.
    let health = send(addr, "GET", "/__health", &[], Bytes::new()).await;
    assert_eq!(health.status, StatusCode::OK);
    let listed = send(addr, "GET", "/__requests", &[], Bytes::new())
        .await
        .json()
        .await;
    let listed: Vec<RecordedRequest> = serde_json::from_value(listed.clone()).unwrap();
    assert_eq!(listed, recorded);
    let raw = send(addr, "GET", "/__requests", &[], Bytes::new())
        .await
        .json()
        .await;
    assert_eq!(raw[0]["headers"]["authorization"], "Bearer test-token");
    assert_eq!(raw[0]["path"], path.as_str());

    let cleared = send(addr, "DELETE", "/__requests", &[], Bytes::new()).await;
    assert_eq!(cleared.status, StatusCode::NO_CONTENT);
    assert!(fake.requests().is_empty());
    post_json(addr, &path, &legacy("again", false))
        .await
        .bytes()
        .await;
    assert_eq!(fake.requests().len(), 1);
    fake.clear();
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn unknown_routes_get_404() {
    let fake = fake().await;
    let reply = post_json(fake.addr(), "/nope", &json!({})).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json().await["success"], false);
}

#[tokio::test]
async fn bases_and_drop() {
    let fake = fake().await;
    let addr = fake.addr();
    assert_eq!(
        fake.cf_api_base(),
        format!("http://127.0.0.1:{}/client/v4", addr.port())
    );
    assert_eq!(
        fake.openai_base(),
        format!("http://127.0.0.1:{}/v1", addr.port())
    );
    drop(fake);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn missing_fixtures_dir_is_an_error() {
    let err = FakeUpstream::start(std::path::Path::new("/nonexistent/fixtures"), 0).await;
    assert!(err.is_err());
}

#[tokio::test]
async fn every_answered_case_is_found_by_its_own_request() {
    let fake = fake().await;
    let dir = fixtures_dir().join("chat");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    let mut checked = 0;
    for case in cases {
        let answered = ["upstream.json", "upstream.sse", "upstream-error.json"]
            .iter()
            .any(|f| case.join(f).is_file());
        if !answered {
            continue;
        }
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let request: Value =
            serde_json::from_slice(&std::fs::read(case.join("request.json")).unwrap()).unwrap();
        let model = request["model"].as_str().unwrap();
        let reply = post_json(fake.addr(), &run_path(model), &request).await;
        assert_eq!(
            reply.header("x-fake-answer"),
            Some(format!("chat/{name}").as_str()),
            "case {name}"
        );
        reply.bytes().await;
        checked += 1;
    }
    assert!(checked >= 50, "only {checked} cases");
}
