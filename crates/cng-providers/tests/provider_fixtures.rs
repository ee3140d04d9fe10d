//! Replays `fixtures/providers/*` through the AI Gateway backends against a recording
//! fake HTTP client, and snapshots what cng sent (URL, headers with credentials
//! replaced, body) and what it made of the answer (output or error, and the gateway
//! headers it keeps for the client).
//!
//! A case: `case.json` (`route`: `workers-ai` | `compat`, `model`, `options`, `call`,
//! `gateway_token`, `provider_key`, `upstream_headers`), `request.json` (the input),
//! `upstream.json` or `upstream-error.json` (`{status, body}`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cng_core::Error;
use cng_core::backend::{Backend, ByteStream, InferenceRequest, Input, Output};
use cng_core::catalog::Task;
use cng_core::routing::{UpstreamUrl, UrlPolicy};
use cng_providers::HttpClient;
use cng_providers::ai_gateway::{
    self, AiGatewayConfig, Backoff, CallMeta, GatewayClient, GatewayOptions,
};
use serde_json::{Value, json};

const GATEWAY_TOKEN: &str = "aig-token-fixture-secret";
const API_TOKEN: &str = "cf-api-token-fixture-secret";
const PROVIDER_KEY: &str = "sk-provider-fixture-secret";

#[derive(Clone)]
struct Recorder {
    seen: Arc<Mutex<Vec<http::Request<Bytes>>>>,
    status: u16,
    headers: BTreeMap<String, String>,
    body: Bytes,
}

impl HttpClient for Recorder {
    async fn send(&self, req: http::Request<Bytes>) -> Result<http::Response<ByteStream>, Error> {
        self.seen.lock().unwrap().push(req);
        let mut b = http::Response::builder().status(self.status);
        for (k, v) in &self.headers {
            b = b.header(k, v);
        }
        let body = self.body.clone();
        let stream: ByteStream = Box::pin(futures_util::stream::once(async move { Ok(body) }));
        Ok(b.body(stream).unwrap())
    }

    async fn sleep(&self, _: Duration) {}
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/providers")
}

fn read(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn options(v: &Value) -> GatewayOptions {
    let ms = |k: &str| v.get(k).and_then(Value::as_u64).map(Duration::from_millis);
    GatewayOptions {
        cache_ttl: v.get("cache_ttl").and_then(Value::as_u64),
        skip_cache: v
            .get("skip_cache")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        cache_key: v.get("cache_key").and_then(Value::as_str).map(String::from),
        request_timeout: ms("request_timeout_ms"),
        max_attempts: v
            .get("max_attempts")
            .and_then(Value::as_u64)
            .map(|n| u32::try_from(n).unwrap()),
        retry_delay: ms("retry_delay_ms"),
        backoff: v.get("backoff").and_then(Value::as_str).map(|b| match b {
            "constant" => Backoff::Constant,
            "linear" => Backoff::Linear,
            "exponential" => Backoff::Exponential,
            other => panic!("backoff {other}"),
        }),
        collect_log: v.get("collect_log").and_then(Value::as_bool),
        metadata: v
            .get("metadata")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Credentials in a header value replaced by their role, so snapshots show where each
/// one went without holding it.
fn scrub(v: &str) -> String {
    v.replace(GATEWAY_TOKEN, "[gateway-token]")
        .replace(API_TOKEN, "[cf-api-token]")
        .replace(PROVIDER_KEY, "[provider-key]")
}

async fn run_case(case_dir: &Path) -> Value {
    let case = read(&case_dir.join("case.json"));
    assert!(case["schema_source"].is_string(), "schema_source");
    let request = read(&case_dir.join("request.json"));
    let (status, body) = if case_dir.join("upstream.json").is_file() {
        (200, read(&case_dir.join("upstream.json")))
    } else {
        let e = read(&case_dir.join("upstream-error.json"));
        (e["status"].as_u64().unwrap() as u16, e["body"].clone())
    };
    let upstream_headers: BTreeMap<String, String> =
        serde_json::from_value(case["upstream_headers"].clone()).unwrap();
    let rec = Recorder {
        seen: Arc::default(),
        status,
        headers: upstream_headers,
        body: Bytes::from(body.to_string()),
    };
    let base = UpstreamUrl::parse(
        "base",
        "http://127.0.0.1:9/v1",
        UrlPolicy {
            allow_loopback_http: true,
        },
    )
    .unwrap();
    let mut config = AiGatewayConfig::new(base, "acct-fixture", "gw-fixture").unwrap();
    if case["gateway_token"].as_bool() == Some(true) {
        config.gateway_token = Some(GATEWAY_TOKEN.into());
    }
    config.options = options(&case["options"]);
    let config = Arc::new(config);
    let call = CallMeta {
        key_name: case["call"]["key_name"].as_str().map(String::from),
        request_id: case["call"]["request_id"].as_str().map(String::from),
    };
    let client = GatewayClient::new(config.clone(), rec.clone())
        .unwrap()
        .for_call(&call)
        .unwrap();
    let req = InferenceRequest {
        model: case["model"].as_str().unwrap().to_string(),
        task: Task::TextGeneration,
        input: Input::Json(request),
        stream: false,
    };
    let result = match case["route"].as_str().unwrap() {
        "workers-ai" => {
            ai_gateway::workers_ai(config.clone(), API_TOKEN, client.clone())
                .run(req)
                .await
        }
        "compat" => {
            let key = (case["provider_key"].as_bool() == Some(true)).then(|| PROVIDER_KEY.into());
            ai_gateway::compat(&config, key, client.clone())
                .run(req)
                .await
        }
        other => panic!("route {other}"),
    };
    let answer = match result {
        Ok(Output::Json(v)) => json!({"output": v}),
        Ok(other) => json!({"output": format!("{other:?}")}),
        Err(e) => {
            for secret in [GATEWAY_TOKEN, API_TOKEN, PROVIDER_KEY] {
                assert!(!e.message().contains(secret), "secret in error");
            }
            json!({"error": {
                "status": e.status().as_u16(),
                "message": e.message(),
                "code": e.code(),
                "retry_after": e.retry_after(),
                "falls_back": cng_core::routing::should_fall_back(&e),
            }})
        }
    };
    let seen = rec.seen.lock().unwrap();
    let sent = seen.first().expect("a request was sent");
    let headers: BTreeMap<String, String> = sent
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), scrub(v.to_str().unwrap())))
        .collect();
    let passed: BTreeMap<String, String> = client
        .response_meta()
        .0
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    json!({
        "sent": {
            "method": sent.method().as_str(),
            "url": sent.uri().to_string(),
            "headers": headers,
            "body": serde_json::from_slice::<Value>(sent.body()).unwrap(),
        },
        "attempts": seen.len(),
        "answer": answer,
        "passed_to_client": passed,
    })
}

#[tokio::test]
async fn provider_fixtures() {
    let mut cases: Vec<_> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("case.json").is_file())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 5,
        "fixtures/providers has {} cases",
        cases.len()
    );
    for case in cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let got = run_case(&case).await;
        insta::assert_json_snapshot!(name, got);
    }
}
