//! `GET /api/usage/reconcile` through the real server against the fake upstream's
//! GraphQL Analytics API: cng's figures next to what the fake counted (its own
//! `/ai/run/` requests, one inference and `NEURONS_PER_INFERENCE` neurons each), traffic
//! that bypassed cng showing up on Cloudflare's side only, the setting missing, and
//! upstream failures as OpenAI-shaped errors that never contain the token.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use cng_server::cli::ServeArgs;
use cng_server::{Running, UpstreamEnv};
use cng_testkit::{FakeUpstream, NEURONS_PER_INFERENCE, fixtures_dir};
use reqwest::Method;
use serde_json::{Value, json};

const ADMIN: &str = "cng-admin-reconcile-e2e-0000000000000000000000000";
const ACCOUNT: &str = "acct-reconcile";
const LLAMA: &str = "@cf/meta/llama-3.1-8b-instruct";
const BGE: &str = "@cf/baai/bge-m3";

async fn start(fake: &FakeUpstream, data: &Path, analytics_token: Option<&str>) -> Running {
    let args = ServeArgs {
        first_byte_timeout: 5,
        idle_timeout: 5,
        ..ServeArgs::local(data.to_path_buf())
    };
    let env = UpstreamEnv {
        account_id: Some(ACCOUNT.into()),
        api_token: Some("cf-inference-token-reconcile".into()),
        api_base: Some(fake.cf_api_base()),
        upstream_key: None,
        admin_key: Some(ADMIN.into()),
        master_key: None,
        analytics_token: analytics_token.map(str::to_string),
    };
    cng_server::start(args, env).await.unwrap()
}

async fn call(server: &Running, method: Method, path: &str, body: Option<Value>) -> (u16, String) {
    let mut r = reqwest::Client::new()
        .request(method, format!("http://{}{path}", server.addr))
        .bearer_auth(ADMIN);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn get(server: &Running, path: &str) -> (u16, Value) {
    let (status, text) = call(server, Method::GET, path, None).await;
    (status, serde_json::from_str(&text).unwrap())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn row<'a>(r: &'a Value, model: &str) -> &'a Value {
    r["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == model)
        .unwrap_or_else(|| panic!("no {model} in {r}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cng_and_the_fake_accounts_figures_side_by_side() {
    let fake = FakeUpstream::start(&fixtures_dir(), 0).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = start(&fake, dir.path(), Some("cf-analytics-token-e2e")).await;
    let from = now().saturating_sub(5);
    for i in 0..3 {
        let (status, body) = call(
            &server,
            Method::POST,
            "/v1/chat/completions",
            Some(json!({"model": LLAMA, "messages": [{"role": "user", "content": format!("Reconcile e2e {i}")}]})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    // Traffic on the same account that never went through cng.
    let direct = reqwest::Client::new()
        .post(format!(
            "{}/accounts/{ACCOUNT}/ai/run/{BGE}",
            fake.cf_api_base()
        ))
        .bearer_auth("someone-else")
        .json(&json!({"text": ["straight to Cloudflare"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 200);
    let to = now() + 5;

    let range = format!("from={from}&to={to}");
    let (status, usage) = get(&server, &format!("/api/usage?{range}")).await;
    assert_eq!(status, 200, "{usage}");
    let (status, r) = get(&server, &format!("/api/usage/reconcile?{range}")).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["object"], "usage.reconciliation");
    let start = r["window"]["start"].as_u64().unwrap();
    assert_eq!(start, from - from % 3600);

    let llama = row(&r, LLAMA);
    assert_eq!(llama["cng"]["requests"], 3);
    let usage_llama = usage["by_model"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == LLAMA)
        .unwrap();
    assert_eq!(
        llama["cng"]["estimated_neurons"],
        usage_llama["estimated_neurons"]
    );
    assert_eq!(
        llama["cloudflare"],
        json!({"requests": 3, "neurons": 3.0 * NEURONS_PER_INFERENCE})
    );
    assert_eq!(llama["difference"]["requests"], 0);
    assert_eq!(llama["ratio"]["requests"], 1.0);

    let bge = row(&r, BGE);
    assert_eq!(bge["cng"]["requests"], 0);
    assert_eq!(
        bge["cloudflare"],
        json!({"requests": 1, "neurons": NEURONS_PER_INFERENCE})
    );
    assert_eq!(r["totals"]["cloudflare"]["requests"], 4);
    assert_eq!(r["totals"]["difference"]["requests"], 1);
    assert!(r["caveats"].to_string().contains("not a billing measure"));

    // A range before any of it: nothing on either side.
    let (_, r) = get(&server, "/api/usage/reconcile?from=3600&to=7199").await;
    assert_eq!(r["models"], json!([]), "{r}");
    assert_eq!(r["totals"]["cloudflare"]["requests"], 0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_openai_shaped_and_never_show_the_token() {
    let fake = FakeUpstream::start(&fixtures_dir(), 0).await.unwrap();
    let cases: &[(Option<&str>, u16, &str)] = &[
        (None, 503, "analytics_not_configured"),
        (
            Some("!unauthorized-secret-e2e"),
            503,
            "analytics_unauthorized",
        ),
        (Some("!rate-limited"), 503, "analytics_rate_limited"),
        (Some("!status-500"), 502, "analytics_failed"),
        (Some("!status-403"), 503, "analytics_unauthorized"),
        (Some("!no-account"), 503, "analytics_no_account"),
        (Some("!wrong-shape"), 502, "analytics_failed"),
        (Some("!not-json"), 502, "analytics_failed"),
    ];
    for (token, status, code) in cases {
        let dir = tempfile::tempdir().unwrap();
        let server = start(&fake, dir.path(), *token).await;
        let (got, text) = call(&server, Method::GET, "/api/usage/reconcile", None).await;
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (got, v["error"]["code"].as_str()),
            (*status, Some(*code)),
            "{token:?}: {text}"
        );
        let message = v["error"]["message"].as_str().unwrap();
        assert!(!message.is_empty());
        for key in ["message", "type", "param", "code"] {
            assert!(v["error"].get(key).is_some(), "{token:?}: no {key}: {text}");
        }
        if let Some(t) = token {
            assert!(!text.contains(t), "{t} shown: {text}");
        }
        server.shutdown().await;
    }
    // The unauthorized answer echoed the token: cng scrubbed it.
    let dir = tempfile::tempdir().unwrap();
    let server = start(&fake, dir.path(), Some("!unauthorized-secret-e2e")).await;
    let (_, text) = call(&server, Method::GET, "/api/usage/reconcile", None).await;
    assert!(text.contains("[redacted]"), "{text}");
    assert!(text.contains("Account Analytics Read"), "{text}");
    server.shutdown().await;
}
