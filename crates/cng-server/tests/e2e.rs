//! End to end: the real server (in-process, ephemeral port, SQLite in a temp dir)
//! in front of the fake Workers AI upstream (cng-testkit), driven by async-openai —
//! a real OpenAI client that validates every response it parses — and by raw HTTP
//! where the wire itself is the point.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::time::{Duration, Instant};

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::CreateChatCompletionRequest;
use cng_core::auth::{self, NewKey, Role};
use cng_server::cli::{DataArgs, ServeArgs};
use cng_server::services::{OsClock, OsEntropy};
use cng_server::store::SqliteStore;
use cng_server::{Running, UpstreamEnv};
use cng_testkit::{FakeUpstream, fixtures_dir};
use futures_util::StreamExt;
use serde_json::{Value, json};

const ADMIN: &str = "cng-e2e-admin-key-000000000000000000000000000";
const TOKEN: &str = "cf-token-e2e-secret";

struct Env {
    fake: FakeUpstream,
    server: Running,
    dir: tempfile::TempDir,
}

impl Env {
    async fn start() -> Env {
        let fake = FakeUpstream::start(&fixtures_dir(), 0).await.unwrap();
        Self::start_with(fake, |_, _| {}).await
    }

    async fn start_with(
        fake: FakeUpstream,
        tweak: impl FnOnce(&mut ServeArgs, &FakeUpstream),
    ) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let mut args = ServeArgs::local(dir.path().to_path_buf());
        tweak(&mut args, &fake);
        let env = UpstreamEnv {
            account_id: Some("acct-e2e".into()),
            api_token: Some(TOKEN.into()),
            api_base: Some(fake.cf_api_base()),
            upstream_key: Some("upstream-key-e2e".into()),
            admin_key: Some(ADMIN.into()),
            master_key: None,
            analytics_token: None,
        };
        let server = cng_server::start(args, env).await.unwrap();
        Env { fake, server, dir }
    }

    fn base(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    fn client(&self, key: &str) -> Client<OpenAIConfig> {
        Client::with_config(
            OpenAIConfig::new()
                .with_api_base(format!("{}/v1", self.base()))
                .with_api_key(key),
        )
    }

    async fn key(
        &self,
        name: &str,
        role: Role,
        models: Option<Vec<&str>>,
        expires: Option<u64>,
    ) -> String {
        let store = SqliteStore::open(self.dir.path()).unwrap();
        let new = NewKey {
            name: name.into(),
            role,
            models: models.map(|m| m.into_iter().map(String::from).collect()),
            rpm: None,
            expires,
        };
        auth::create_key(&store, &OsEntropy, &OsClock, new)
            .await
            .unwrap()
            .0
    }

    async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut r = reqwest::Client::new().request(method, format!("{}{path}", self.base()));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap()
    }
}

fn fixture(case: &str) -> (Value, Value) {
    let dir = fixtures_dir().join("chat").join(case);
    let req: Value =
        serde_json::from_slice(&std::fs::read(dir.join("request.json")).unwrap()).unwrap();
    let up = std::fs::read(dir.join("upstream.json"))
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap_or(Value::Null);
    (req, up)
}

fn request(v: Value) -> CreateChatCompletionRequest {
    serde_json::from_value(v).unwrap()
}

fn chat(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

fn api_error(e: OpenAIError) -> async_openai::error::ApiError {
    match e {
        OpenAIError::ApiError(a) => a,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn chat_json_through_the_rest_backend() {
    let env = Env::start().await;
    let (req, up) = fixture("legacy-basic");
    let resp = env
        .client(ADMIN)
        .chat()
        .create(request(req.clone()))
        .await
        .unwrap();
    assert_eq!(
        resp.choices[0].message.content.as_deref(),
        up["response"].as_str()
    );
    assert_eq!(resp.model, req["model"].as_str().unwrap());
    let seen = env.fake.requests();
    let last = seen.last().unwrap();
    assert_eq!(
        last.path,
        format!(
            "/client/v4/accounts/acct-e2e/ai/run/{}",
            req["model"].as_str().unwrap()
        )
    );
    assert_eq!(last.bearer(), Some(TOKEN));
    let sent = last.body["messages"].as_array().unwrap();
    assert_eq!(sent.len(), req["messages"].as_array().unwrap().len());
    assert_eq!(sent.last().unwrap()["role"], "user");
    assert!(
        last.body["max_tokens"].is_u64(),
        "cng always sets an output limit"
    );
}

#[tokio::test]
async fn chat_stream_arrives_as_chunks() {
    let env = Env::start().await;
    let (req, _) = fixture("legacy-stream-basic");
    let sse = std::fs::read_to_string(fixtures_dir().join("chat/legacy-stream-basic/upstream.sse"))
        .unwrap();
    let expected: String = sse
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["response"].as_str().map(str::to_string))
        .collect();
    let mut stream = env
        .client(ADMIN)
        .chat()
        .create_stream(request(req))
        .await
        .unwrap();
    let (mut text, mut chunks, mut finish) = (String::new(), 0, None);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        chunks += 1;
        if let Some(c) = chunk.choices.first() {
            text.push_str(c.delta.content.as_deref().unwrap_or(""));
            finish = finish.or(c.finish_reason);
        }
    }
    assert_eq!(text, expected);
    assert!(chunks > 3, "streamed in pieces, got {chunks} chunks");
    assert!(finish.is_some());
}

#[tokio::test]
async fn tools_come_back_in_openai_shape() {
    let env = Env::start().await;
    let (req, up) = fixture("legacy-tools-single");
    let resp = env.client(ADMIN).chat().create(request(req)).await.unwrap();
    let calls = resp.choices[0].message.tool_calls.clone().unwrap();
    assert_eq!(calls.len(), 1);
    assert!(!calls[0].id.is_empty());
    assert_eq!(
        calls[0].function.name,
        up["tool_calls"][0]["name"].as_str().unwrap()
    );
    let args: Value = serde_json::from_str(&calls[0].function.arguments).unwrap();
    assert_eq!(args, up["tool_calls"][0]["arguments"]);
    assert_eq!(
        resp.choices[0].finish_reason,
        Some(async_openai::types::FinishReason::ToolCalls)
    );
}

#[tokio::test]
async fn aliases_resolve_and_echo() {
    let env = Env::start().await;
    let (req, _) = fixture("alias-gpt-4o");
    let resp = env.client(ADMIN).chat().create(request(req)).await.unwrap();
    assert_eq!(resp.model, "gpt-4o");
    assert!(
        env.fake
            .requests()
            .last()
            .unwrap()
            .path
            .ends_with("/ai/run/@cf/meta/llama-4-scout-17b-16e-instruct")
    );
    let models = env.client(ADMIN).models().list().await.unwrap();
    assert!(models.data.iter().any(|m| m.id == "gpt-4o"));
    let one = env
        .client(ADMIN)
        .models()
        .retrieve("@cf/meta/llama-3.1-8b-instruct")
        .await
        .unwrap();
    assert_eq!(one.id, "@cf/meta/llama-3.1-8b-instruct");
}

#[tokio::test]
async fn every_auth_case() {
    let env = Env::start().await;
    let body = request(chat("gpt-4o", "auth check"));
    // missing and wrong keys: 401 authentication_error
    let e = api_error(
        env.client("")
            .chat()
            .create(body.clone())
            .await
            .unwrap_err(),
    );
    assert_eq!(e.r#type.as_deref(), Some("authentication_error"));
    let e = api_error(
        env.client("cng-not-a-key")
            .chat()
            .create(body.clone())
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code.as_deref(), Some("invalid_api_key"));
    // an expired key
    let expired = env.key("old", Role::Client, None, Some(1)).await;
    let e = api_error(
        env.client(&expired)
            .chat()
            .create(body.clone())
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code.as_deref(), Some("key_expired"));
    // a key limited to one model
    let narrow = env
        .key("narrow", Role::Client, Some(vec!["gpt-4o-mini"]), None)
        .await;
    let e = api_error(
        env.client(&narrow)
            .chat()
            .create(body.clone())
            .await
            .unwrap_err(),
    );
    assert_eq!(e.r#type.as_deref(), Some("permission_error"));
    assert!(
        env.client(&narrow)
            .chat()
            .create(request(chat("gpt-4o-mini", "auth check")))
            .await
            .is_ok()
    );
    // a client key on an admin route; an admin key there
    let r = env
        .raw(reqwest::Method::GET, "/api/keys", Some(&narrow), None)
        .await;
    assert_eq!(r.status(), 403);
    let r = env
        .raw(reqwest::Method::GET, "/api/keys", Some(ADMIN), None)
        .await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("narrow") && !text.contains(&narrow));
    assert!(!text.contains(TOKEN));
    // revoked: stops at once
    let store = SqliteStore::open(env.dir.path()).unwrap();
    auth::revoke_key(&store, "narrow").await.unwrap();
    let e = api_error(
        env.client(&narrow)
            .chat()
            .create(request(chat("gpt-4o-mini", "auth check")))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code.as_deref(), Some("invalid_api_key"));
}

#[tokio::test]
async fn upstream_429_is_a_rate_limit_error() {
    let env = Env::start().await;
    let r = env
        .raw(
            reqwest::Method::POST,
            "/v1/chat/completions",
            Some(ADMIN),
            Some(chat("gpt-4o", "!status 429 3040")),
        )
        .await;
    assert_eq!(r.status(), 429);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error");
    // retried (1 + 2 retries), honouring Retry-After
    assert_eq!(env.fake.requests().len(), 3);
}

#[tokio::test]
async fn upstream_5xx_retried_then_502() {
    let env = Env::start().await;
    let r = env
        .raw(
            reqwest::Method::POST,
            "/v1/chat/completions",
            Some(ADMIN),
            Some(chat("gpt-4o", "!status 500")),
        )
        .await;
    assert_eq!(r.status(), 502);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["type"],
        "api_error"
    );
    // a flaky upstream recovers within the retries
    let resp = env
        .client(ADMIN)
        .chat()
        .create(request(chat("gpt-4o", "!flaky 2 recovers")))
        .await
        .unwrap();
    assert_eq!(resp.choices[0].message.content.as_deref(), Some("ok"));
}

#[tokio::test]
async fn slow_upstream_times_out_with_504() {
    let env = Env::start().await;
    let t = Instant::now();
    let r = env
        .raw(
            reqwest::Method::POST,
            "/v1/chat/completions",
            Some(ADMIN),
            Some(chat("gpt-4o", "!delay-headers 5000")),
        )
        .await;
    assert_eq!(r.status(), 504);
    assert!(t.elapsed() < Duration::from_secs(15));
}

async fn sse_text(r: reqwest::Response) -> String {
    String::from_utf8(r.bytes().await.unwrap().to_vec()).unwrap()
}

#[tokio::test]
async fn truncated_and_stalled_streams_end_with_an_error_event() {
    let env = Env::start().await;
    for text in ["!truncate", "!stall-after 2"] {
        let mut body = chat("gpt-4o-mini", text);
        body["stream"] = json!(true);
        let t = Instant::now();
        let r = env
            .raw(
                reqwest::Method::POST,
                "/v1/chat/completions",
                Some(ADMIN),
                Some(body),
            )
            .await;
        assert_eq!(r.status(), 200);
        let sse = tokio::time::timeout(Duration::from_secs(10), sse_text(r))
            .await
            .expect("no hang");
        assert!(sse.contains("\"error\""), "{text}: {sse}");
        assert!(sse.ends_with("data: [DONE]\n\n"), "{text}");
        assert!(t.elapsed() < Duration::from_secs(10));
    }
}

#[tokio::test]
async fn oversized_and_malformed_bodies() {
    let env = Env::start().await;
    let big = "x".repeat(100 * 1024);
    let r = env
        .raw(
            reqwest::Method::POST,
            "/v1/chat/completions",
            Some(ADMIN),
            Some(chat("gpt-4o", &big)),
        )
        .await;
    assert_eq!(r.status(), 413);
    let r = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", env.base()))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body("{\"model\": \"gpt-4o\", \"messages\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.json::<Value>().await.unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 1 column")
    );
    assert!(env.fake.requests().is_empty());
}

#[tokio::test]
async fn fifty_concurrent_requests() {
    let env = Env::start().await;
    let client = env.client(ADMIN);
    let calls = (0..50).map(|i| {
        let client = client.clone();
        async move {
            client
                .chat()
                .create(request(chat("gpt-4o-mini", &format!("concurrent {i}"))))
                .await
        }
    });
    let results = futures_util::future::join_all(calls).await;
    assert!(
        results.iter().all(|r| r.is_ok()),
        "{:?}",
        results.iter().find(|r| r.is_err())
    );
    assert_eq!(env.fake.requests().len(), 50);
}

#[tokio::test]
async fn health_cors_and_request_id() {
    let env = Env::start().await;
    let r = env.raw(reqwest::Method::GET, "/health", None, None).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-request-id"));
    let v: Value = r.json().await.unwrap();
    assert!(
        v["upstream"]
            .as_str()
            .unwrap()
            .starts_with("workers-ai-rest")
    );
    assert!(!v.to_string().contains(TOKEN));
    let r = reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/v1/chat/completions", env.base()),
        )
        .header("origin", "http://localhost:3000")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, x-stainless-lang",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(
        r.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("x-stainless-lang")
    );
}

#[tokio::test]
async fn openai_compatible_upstream() {
    let fake = FakeUpstream::start(&fixtures_dir(), 0).await.unwrap();
    let env = Env::start_with(fake, |a, f| a.upstream = Some(f.openai_base())).await;
    let resp = env
        .client(ADMIN)
        .chat()
        .create(request(chat("llama3.2:1b", "any model name passes")))
        .await
        .unwrap();
    assert_eq!(resp.model, "llama3.2:1b");
    let seen = env.fake.requests();
    assert!(seen.last().unwrap().path.ends_with("/chat/completions"));
    assert_eq!(seen.last().unwrap().body["model"], "llama3.2:1b");
    assert_eq!(seen.last().unwrap().bearer(), Some("upstream-key-e2e"));
}

#[tokio::test]
async fn graceful_shutdown_lets_a_stream_finish() {
    let env = Env::start().await;
    let mut body = chat("gpt-4o-mini", "!trickle 100");
    body["stream"] = json!(true);
    let r = env
        .raw(
            reqwest::Method::POST,
            "/v1/chat/completions",
            Some(ADMIN),
            Some(body),
        )
        .await;
    let Env { server, fake, dir } = env;
    let stop = tokio::spawn(server.shutdown());
    let sse = sse_text(r).await;
    assert!(sse.ends_with("data: [DONE]\n\n"), "{sse}");
    assert!(!sse.contains("\"error\""));
    stop.await.unwrap();
    drop((fake, dir));
}

#[tokio::test]
async fn no_admin_key_is_created_when_the_port_is_taken_and_names_do_not_clash() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let args = |listen: std::net::SocketAddr| ServeArgs {
        listen,
        data: DataArgs {
            data: dir.path().to_path_buf(),
        },
        upstream: None,
        shutdown_grace: 1,
        max_body_bytes: 1024,
        max_upload_bytes: cng_core::gateway::DEFAULT_MAX_UPLOAD_BYTES,
        public_url: None,
        first_byte_timeout: 1,
        idle_timeout: 1,
        allow_loopback_http: false,
    };
    assert!(
        cng_server::start(args(busy.local_addr().unwrap()), UpstreamEnv::default())
            .await
            .is_err()
    );
    let store = SqliteStore::open(dir.path()).unwrap();
    assert!(
        auth::list_keys(&store).await.unwrap().is_empty(),
        "no key stored for a server that never ran"
    );
    // A client key already named "admin": the bootstrap admin key takes another name.
    let new = NewKey {
        name: "admin".into(),
        role: Role::Client,
        models: None,
        rpm: None,
        expires: None,
    };
    auth::create_key(&store, &OsEntropy, &OsClock, new)
        .await
        .unwrap();
    let running = cng_server::start(args("127.0.0.1:0".parse().unwrap()), UpstreamEnv::default())
        .await
        .unwrap();
    assert!(running.created_admin_key.is_some());
    let keys = auth::list_keys(&store).await.unwrap();
    assert!(
        keys.iter()
            .any(|k| k.name == "admin-2" && k.role == Role::Admin)
    );
    running.shutdown().await;
}
