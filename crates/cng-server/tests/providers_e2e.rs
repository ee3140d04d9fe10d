//! Providers end to end: the real server (SQLite, hyper, reqwest) in front of
//! cng-testkit's fake upstream acting as a Cloudflare AI Gateway (it serves
//! `/{account}/{gateway}/workers-ai/{model}` and records every request), team tokens
//! with a budget held in the SQLite store, and the SSRF canary: URLs in requests never
//! cause a connection.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cng_providers::ai_gateway::GatewayOptions;
use cng_server::ai_gateway::AiGatewaySettings;
use cng_server::cli::ServeArgs;
use cng_server::{Running, UpstreamEnv};
use cng_testkit::{FakeUpstream, fixtures_dir};
use serde_json::{Value, json};

const ADMIN: &str = "cng-providers-e2e-admin-key-0000000000000000";
const TOKEN: &str = "cf-token-providers-e2e";
const MODEL: &str = "@cf/meta/llama-3.1-8b-instruct";

struct Env {
    fake: FakeUpstream,
    server: Running,
    _dir: tempfile::TempDir,
}

async fn start(aig: Option<AiGatewaySettings>) -> Env {
    let fake = FakeUpstream::start(&fixtures_dir(), 0).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let args = ServeArgs::local(dir.path().to_path_buf());
    let env = UpstreamEnv {
        account_id: Some("acct-e2e".into()),
        api_token: Some(TOKEN.into()),
        api_base: Some(fake.cf_api_base()),
        upstream_key: None,
        admin_key: Some(ADMIN.into()),
        master_key: None,
        analytics_token: None,
    };
    let aig = aig.map(|mut s| {
        s.base_url = Some(format!("{}/v1", fake.base_url()));
        s
    });
    let server = cng_server::start_with(args, env, aig).await.unwrap();
    Env {
        fake,
        server,
        _dir: dir,
    }
}

impl Env {
    async fn post(
        &self,
        path: &str,
        key: &str,
        body: Value,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let r = reqwest::Client::new()
            .post(format!("http://{}{path}", self.server.addr))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let v = r.json().await.unwrap_or(Value::Null);
        (status, headers, v)
    }

    async fn chat(
        &self,
        key: &str,
        model: &str,
        text: &str,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        self.post(
            "/v1/chat/completions",
            key,
            json!({"model": model, "messages": [{"role": "user", "content": text}]}),
        )
        .await
    }
}

fn gateway_settings() -> AiGatewaySettings {
    AiGatewaySettings {
        gateway: "acct-e2e/gw-e2e".into(),
        base_url: None,
        token: Some("aig-token-e2e".into()),
        options: GatewayOptions {
            cache_ttl: Some(600),
            skip_cache: true,
            cache_key: Some("e2e-key".into()),
            request_timeout: Some(Duration::from_millis(4000)),
            max_attempts: Some(2),
            ..GatewayOptions::default()
        },
        allow_loopback_http: true,
    }
}

#[tokio::test]
async fn workers_ai_through_the_ai_gateway_url_form_and_headers() {
    let env = start(Some(gateway_settings())).await;
    let (status, headers, v) = env.chat(ADMIN, MODEL, "hello gateway").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "chat.completion");
    // The gateway's answer headers reach the client.
    assert_eq!(headers["cf-aig-cache-status"], "MISS");
    assert_eq!(headers["cf-aig-log-id"], "fake-log-0001");
    let reqs = env.fake.requests();
    let r = reqs.last().unwrap();
    assert_eq!(r.path, format!("/v1/acct-e2e/gw-e2e/workers-ai/{MODEL}"));
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(
        r.header("cf-aig-authorization"),
        Some("Bearer aig-token-e2e")
    );
    assert_eq!(r.header("cf-aig-cache-ttl"), Some("600"));
    assert_eq!(r.header("cf-aig-skip-cache"), Some("true"));
    assert_eq!(r.header("cf-aig-cache-key"), Some("e2e-key"));
    assert_eq!(r.header("cf-aig-request-timeout"), Some("4000"));
    assert_eq!(r.header("cf-aig-max-attempts"), Some("2"));
    // Who asked: the key's name (never the key) and the request id cng answered with.
    let meta: Value = serde_json::from_str(r.header("cf-aig-metadata").unwrap()).unwrap();
    assert_eq!(meta["key"], "admin");
    let request_id = headers["x-request-id"].to_str().unwrap();
    assert_eq!(meta["request_id"], request_id);
    assert_eq!(r.header("cf-aig-event-id"), Some(request_id));
    assert!(!r.header("cf-aig-metadata").unwrap().contains(ADMIN));
}

#[tokio::test]
async fn a_client_request_id_and_a_team_name_reach_the_gateway_logs() {
    let env = start(Some(gateway_settings())).await;
    let (_, _, v) = env.post("/api/teams", ADMIN, json!({"id": "blue"})).await;
    let token = v["token"].as_str().unwrap().to_string();
    let r = reqwest::Client::new()
        .post(format!("http://{}/v1/chat/completions", env.server.addr))
        .bearer_auth(&token)
        .header("x-request-id", "client-trace-42")
        .json(
            &json!({"model": MODEL, "messages": [{"role": "user", "content": "team via gateway"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "client-trace-42");
    let reqs = env.fake.requests();
    let up = reqs.last().unwrap();
    let meta: Value = serde_json::from_str(up.header("cf-aig-metadata").unwrap()).unwrap();
    assert_eq!(
        meta,
        json!({"key": "team:blue", "request_id": "client-trace-42"})
    );
    assert_eq!(up.header("cf-aig-event-id"), Some("client-trace-42"));
}

#[tokio::test]
async fn streams_through_the_gateway_get_its_headers_too() {
    let env = start(Some(gateway_settings())).await;
    let r = reqwest::Client::new()
        .post(format!("http://{}/v1/chat/completions", env.server.addr))
        .bearer_auth(ADMIN)
        .json(&json!({"model": MODEL, "stream": true, "messages": [{"role": "user", "content": "stream via gateway"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cf-aig-cache-status"], "MISS");
    let body = r.text().await.unwrap();
    assert!(body.contains("[DONE]"), "{body}");
}

#[tokio::test]
async fn without_a_gateway_no_cf_aig_headers_appear() {
    let env = start(None).await;
    let (status, headers, _) = env.chat(ADMIN, MODEL, "direct").await;
    assert_eq!(status, 200);
    assert!(headers.get("cf-aig-cache-status").is_none());
}

#[tokio::test]
async fn a_remote_http_gateway_base_is_refused_at_start() {
    let mut s = gateway_settings();
    s.allow_loopback_http = false;
    let fake = FakeUpstream::start(&fixtures_dir(), 0).await.unwrap();
    s.base_url = Some(format!("{}/v1", fake.base_url()));
    let err = s
        .backend(
            Some("a"),
            "t",
            cng_providers::ReqwestClient::new(Default::default()).unwrap(),
        )
        .err()
        .unwrap();
    assert!(err.contains("CNG_ALLOW_LOOPBACK_HTTP"), "{err}");
    s.base_url = Some("http://gateway.example/v1".into());
    s.allow_loopback_http = true;
    let err = s
        .backend(
            Some("a"),
            "t",
            cng_providers::ReqwestClient::new(Default::default()).unwrap(),
        )
        .err()
        .unwrap();
    assert!(err.contains("https://"), "{err}");
}

#[tokio::test]
async fn team_budget_is_enforced_by_the_sqlite_store() {
    let env = start(None).await;
    let (s, _, v) = env
        .post(
            "/api/teams",
            ADMIN,
            json!({"id": "red", "budget": {"unit": "requests", "per_day": 3}}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let token = v["token"].as_str().unwrap().to_string();
    // Concurrent requests: exactly the budget is served.
    let env = Arc::new(env);
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (env, token) = (env.clone(), token.clone());
            tokio::spawn(async move { env.chat(&token, MODEL, &format!("hi {i}")).await })
        })
        .collect();
    let mut ok = 0;
    let mut limited = 0;
    for t in tasks {
        let (s, h, v) = t.await.unwrap();
        match s {
            200 => ok += 1,
            429 => {
                limited += 1;
                assert_eq!(v["error"]["code"], "team_budget_exceeded");
                let after: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
                assert!((1..=86_400).contains(&after));
            }
            other => panic!("{other}: {v}"),
        }
    }
    assert_eq!((ok, limited), (3, 5));
}

#[tokio::test]
async fn urls_in_requests_never_cause_a_fetch() {
    // A canary listener: any connection to it is a failure.
    let canary = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = canary.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        while canary.accept().await.is_ok() {
            h.fetch_add(1, Ordering::SeqCst);
        }
    });
    let env = start(Some(gateway_settings())).await;
    let url = format!("http://127.0.0.1:{port}/v1");
    for model in [
        url.clone(),
        format!("workers-ai/{url}"),
        format!("{MODEL}#{url}"),
        format!("//127.0.0.1:{port}/x"),
    ] {
        let (s, _, v) = env.chat(ADMIN, &model, "hi").await;
        assert!((400..500).contains(&s), "{model}: {s} {v}");
    }
    // URLs in content, image parts and unknown fields are data, never destinations.
    let (s, _, _) = env
        .post(
            "/v1/chat/completions",
            ADMIN,
            json!({
                "model": MODEL,
                "base_url": url,
                "messages": [{"role": "user", "content": [
                    {"type": "text", "text": format!("fetch {url}")},
                    {"type": "image_url", "image_url": {"url": format!("{url}/cat.png")}}
                ]}]
            }),
        )
        .await;
    assert!(s < 500, "{s}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "cng connected to a URL from a request"
    );
    // And every upstream request went to the configured gateway only.
    for r in env.fake.requests() {
        assert!(r.path.starts_with("/v1/acct-e2e/gw-e2e/"), "{}", r.path);
    }
}

fn openai_target(base: &str) -> cng_providers::AnyBackend {
    let mut cfg = cng_providers::OpenAiConfig::new(base).with_api_key("sk-e2e");
    cfg.retries = 0;
    cng_providers::AnyBackend::OpenAi(cng_providers::OpenAiBackend::new(
        cfg,
        cng_providers::ReqwestClient::new(Default::default()).unwrap(),
    ))
}

fn target(provider: &str, model: &str) -> cng_core::routing::Target {
    cng_core::routing::Target {
        provider: provider.into(),
        model: model.into(),
    }
}

fn chat_request(text: &str) -> cng_core::backend::InferenceRequest {
    cng_core::backend::InferenceRequest {
        model: "fast".into(),
        task: cng_core::catalog::Task::TextGeneration,
        input: cng_core::backend::Input::Json(
            json!({"messages": [{"role": "user", "content": text}]}),
        ),
        stream: false,
    }
}

#[tokio::test]
async fn fallback_to_the_next_target_when_the_first_is_down() {
    let fake = FakeUpstream::start(&fixtures_dir(), 0).await.unwrap();
    // A port nobody listens on: connection refused before any byte.
    let down = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let down_base = format!("http://{}/v1", down.local_addr().unwrap());
    drop(down);
    let chain = cng_providers::chain::Chain::new(vec![
        (target("openai", "gpt-4o-mini"), openai_target(&down_base)),
        (
            target("groq", "llama-3.3-70b"),
            openai_target(&fake.openai_base()),
        ),
    ]);
    let served = chain
        .run_traced(chat_request("fallback please"))
        .await
        .unwrap();
    assert_eq!(served.target.label(), "groq/llama-3.3-70b");
    assert_eq!(served.skipped.len(), 1);
    assert_eq!(served.skipped[0].0.label(), "openai/gpt-4o-mini");
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].model().as_deref(), Some("llama-3.3-70b"));
    assert!(
        matches!(served.output, cng_core::backend::Output::Json(v) if v["object"] == "chat.completion")
    );
}

#[tokio::test]
async fn a_5xx_falls_back_but_a_400_is_answered_at_once() {
    let first = FakeUpstream::start(&fixtures_dir(), 0).await.unwrap();
    let second = FakeUpstream::start(&fixtures_dir(), 0).await.unwrap();
    let chain = cng_providers::chain::Chain::new(vec![
        (target("a", "m1"), openai_target(&first.openai_base())),
        (target("b", "m2"), openai_target(&second.openai_base())),
    ]);
    // Both fakes read the same directive: the 503 makes the chain try `b`, which fails
    // the same way, so the last error is answered after both were asked.
    let e = chain
        .run_traced(chat_request("!status 503"))
        .await
        .unwrap_err();
    assert!(e.status().is_server_error(), "{e:?}");
    assert_eq!((first.requests().len(), second.requests().len()), (1, 1));
    first.clear();
    second.clear();
    let e = chain
        .run_traced(chat_request("!status 400"))
        .await
        .unwrap_err();
    assert_eq!(e.status().as_u16(), 400);
    assert_eq!((first.requests().len(), second.requests().len()), (1, 0));
}

#[tokio::test]
async fn a_tokens_budget_is_charged_with_what_answers_used() {
    let env = start(None).await;
    let (s, _, v) = env
        .post(
            "/api/teams",
            ADMIN,
            json!({"id": "green", "budget": {"unit": "tokens", "per_day": 5}}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let token = v["token"].as_str().unwrap().to_string();
    let (s, _, v) = env.chat(&token, MODEL, "count my tokens").await;
    assert_eq!(s, 200, "{v}");
    let used = v["usage"]["total_tokens"].as_u64().unwrap();
    assert!(used > 0);
    // Booking runs beside each request; after about 5 / used answers the budget is
    // spent and the next request is refused (admission checks what is booked).
    let mut last = 0;
    let mut served = 1;
    for _ in 0..50 {
        let (s, h, v) = env.chat(&token, MODEL, "count my tokens").await;
        last = s;
        if s == 429 {
            assert_eq!(v["error"]["code"], "team_budget_exceeded");
            assert!(v["error"]["message"].as_str().unwrap().contains("5 tokens"));
            assert!(h.contains_key("retry-after"));
            break;
        }
        served += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(last, 429);
    // Never more than one answer past the budget (admission happens before the answer
    // is known), plus bookings still in flight when the next request came.
    assert!(
        served * used >= 5 && served <= 5u64.div_ceil(used) + 2,
        "{served}"
    );
}
