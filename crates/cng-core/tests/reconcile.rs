//! `GET /api/usage/reconcile` through `Gateway::handle`: cng's figures (the same as
//! `GET /api/usage`) next to a fake Cloudflare analytics source, the time window it is
//! asked for, filters, the 503 without a source, upstream failures and admin-only
//! access.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cng_core::auth;
use cng_core::backend::{Backend, InferenceRequest, Output};
use cng_core::error::{Error, ErrorKind};
use cng_core::ids::{Clock, CountingEntropy, SequentialIds};
use cng_core::store::MemoryStore;
use cng_core::usage::BoxFuture;
use cng_core::usage::reconcile::{AccountUsage, Analytics, ModelCount};
use cng_core::{Body, Gateway, GatewayConfig, Services};
use futures_executor::block_on;
use http::{Method, Request};
use serde_json::{Value, json};

const ADMIN: &str = "cng-test-admin-key";
/// 08:00:00 UTC.
const T0: u64 = 1_800_000_000;
const DAY_START: u64 = T0 - 8 * 3600;
const LLAMA: &str = "@cf/meta/llama-3.1-8b-instruct";
const FAST: &str = "@cf/meta/llama-3.1-8b-instruct-fast";

#[derive(Clone)]
struct TestClock(Arc<AtomicU64>);

impl Clock for TestClock {
    fn unix_seconds(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Every answer reports 1000 prompt and 100 completion tokens.
#[derive(Clone)]
struct Tokens;

impl Backend for Tokens {
    async fn run(&self, _request: InferenceRequest) -> Result<Output, Error> {
        Ok(Output::Json(json!({
            "response": "ok",
            "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}
        })))
    }
}

/// Answers a fixed list (or an error) and records the windows it was asked for.
#[derive(Default)]
struct FakeAnalytics {
    answer: Mutex<Option<Result<AccountUsage, Error>>>,
    asked: Mutex<Vec<(u64, u64)>>,
}

impl FakeAnalytics {
    fn answering(models: Vec<ModelCount>) -> Arc<Self> {
        let f = Self::default();
        *f.answer.lock().unwrap() = Some(Ok(AccountUsage {
            models,
            truncated: false,
        }));
        Arc::new(f)
    }
}

impl Analytics for FakeAnalytics {
    fn usage(&self, start: u64, end: u64) -> BoxFuture<'_, Result<AccountUsage, Error>> {
        self.asked.lock().unwrap().push((start, end));
        let answer = self
            .answer
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| Ok(AccountUsage::default()));
        Box::pin(async move { answer })
    }
}

fn count(model: &str, requests: u64, neurons: f64) -> ModelCount {
    ModelCount {
        model: model.into(),
        requests,
        neurons,
    }
}

struct T {
    g: Gateway<Tokens, MemoryStore>,
    clock: Arc<AtomicU64>,
}

fn setup(analytics: Option<Arc<FakeAnalytics>>) -> T {
    let clock = Arc::new(AtomicU64::new(T0));
    let services = Services {
        clock: Box::new(TestClock(clock.clone())),
        ids: Box::new(SequentialIds::default()),
        entropy: Box::new(CountingEntropy::default()),
    };
    let config = GatewayConfig {
        admin_key_hash: Some(auth::hash_key(ADMIN)),
        upstream: "workers-ai-rest".into(),
        ..GatewayConfig::default()
    };
    let mut g = Gateway::new(Tokens, MemoryStore::new(), services, config);
    if let Some(a) = analytics {
        g = g.with_analytics(a);
    }
    T { g, clock }
}

struct Reply {
    status: u16,
    body: Value,
}

impl T {
    fn call(&self, method: Method, path: &str, key: Option<&str>, body: Option<Value>) -> Reply {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(k) = key {
            b = b.header("authorization", format!("Bearer {k}"));
        }
        let body = match body {
            Some(v) => {
                b = b.header("content-type", "application/json");
                Body::Full(Bytes::from(v.to_string()))
            }
            None => Body::Empty,
        };
        block_on(async {
            let (parts, body) = self.g.handle(b.body(body).unwrap()).await.into_parts();
            let text = match body {
                Body::Full(b) => String::from_utf8_lossy(&b).into_owned(),
                Body::Empty => String::new(),
                Body::Stream(_) => panic!("a stream from an admin route"),
            };
            Reply {
                status: parts.status.as_u16(),
                body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
            }
        })
    }

    fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, Some(ADMIN), None)
    }

    fn chat(&self, model: &str) {
        let r = self.call(
            Method::POST,
            "/v1/chat/completions",
            Some(ADMIN),
            Some(json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }

    fn set_time(&self, t: u64) {
        self.clock.store(t, Ordering::SeqCst);
    }
}

fn row<'a>(r: &'a Value, model: &str) -> &'a Value {
    r["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == model)
        .unwrap_or_else(|| panic!("no row for {model}: {r}"))
}

/// Equal to the report's precision (three decimals).
fn close(a: &Value, b: f64) -> bool {
    (a.as_f64().unwrap() - b).abs() < 0.001
}

#[test]
fn cngs_usage_figures_next_to_cloudflares_with_difference_ratio_and_caveats() {
    let a = FakeAnalytics::answering(vec![
        count(LLAMA, 4, 150.0),
        // Cloudflare's short form of a model cng counted under its full id.
        count("llama-3.1-8b-instruct-fast", 1, 9.5),
        // Traffic that never went through cng.
        count("@cf/baai/bge-m3", 7, 3.25),
    ]);
    let t = setup(Some(a.clone()));
    t.chat(LLAMA);
    t.chat(LLAMA);
    t.chat(LLAMA);
    t.chat("gpt-4o-mini");
    let usage = t.get("/api/usage").body;
    let r = t.get("/api/usage/reconcile");
    assert_eq!(r.status, 200, "{}", r.body);
    let r = r.body;
    assert_eq!(r["object"], "usage.reconciliation");
    // Default: the current UTC day, compared over whole hours.
    assert_eq!(
        (r["from"].as_u64(), r["to"].as_u64()),
        (Some(DAY_START), Some(T0))
    );
    assert_eq!(r["window"], json!({"start": DAY_START, "end": T0 + 3599}));
    assert_eq!(*a.asked.lock().unwrap(), vec![(DAY_START, T0 + 3599)]);

    // cng's side is /api/usage's by_model, to the digit.
    let usage_llama = usage["by_model"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == LLAMA)
        .unwrap();
    let llama = row(&r, LLAMA);
    assert_eq!(llama["cng"]["requests"], 3);
    assert_eq!(
        llama["cng"]["estimated_neurons"],
        usage_llama["estimated_neurons"]
    );
    // 1000 in and 100 out at 25608 / 75147 neurons per M tokens, three times.
    let est = 3.0 * (1000.0 * 25608.0 + 100.0 * 75147.0) / 1e6;
    assert!(close(&llama["cng"]["estimated_neurons"], est), "{llama}");
    assert_eq!(
        llama["cloudflare"],
        json!({"requests": 4, "neurons": 150.0})
    );
    assert_eq!(llama["difference"]["requests"], 1);
    assert!(close(
        &llama["difference"]["neurons"],
        ((150.0 - est) * 1000.0_f64).round() / 1000.0
    ));
    assert!(close(
        &llama["ratio"]["neurons"],
        (150.0 / est * 1000.0_f64).round() / 1000.0
    ));
    assert!(close(&llama["ratio"]["requests"], 1.333));

    let fast = row(&r, FAST);
    assert_eq!(
        fast["cng"]["requests"], 1,
        "gpt-4o-mini is counted as its model"
    );
    assert_eq!(
        fast["cloudflare"]["requests"], 1,
        "short id met the full one"
    );

    let bge = row(&r, "@cf/baai/bge-m3");
    assert_eq!(bge["cng"]["requests"], 0);
    assert_eq!(bge["cng"]["estimated_neurons"], 0.0);
    assert_eq!(bge["ratio"]["neurons"], Value::Null);

    assert_eq!(r["totals"]["model"], "*");
    assert_eq!(r["totals"]["cng"]["requests"], usage["totals"]["requests"]);
    assert_eq!(r["totals"]["cloudflare"]["requests"], 12);
    assert!(close(&r["totals"]["cloudflare"]["neurons"], 162.75));
    assert!(close(
        &r["totals"]["cng"]["estimated_neurons"],
        usage["totals"]["estimated_neurons"].as_f64().unwrap()
    ));
    let caveats = r["caveats"].to_string();
    assert!(caveats.contains("did not go through this cng"), "{caveats}");
    assert!(caveats.contains("not a billing measure"), "{caveats}");
    assert_eq!(r["truncated"], false);
}

#[test]
fn filters_time_model_and_what_is_refused() {
    let a = FakeAnalytics::answering(vec![count(LLAMA, 2, 20.0), count(FAST, 5, 5.0)]);
    let t = setup(Some(a.clone()));
    t.chat(LLAMA);
    t.set_time(T0 + 2 * 3600);
    t.chat(FAST);

    // A model filter (an alias too) applies to both sides.
    let r = t.get("/api/usage/reconcile?model=gpt-4o-mini").body;
    assert_eq!(r["filters"]["model"], FAST);
    assert_eq!(r["models"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["totals"]["cng"]["requests"], 1);
    assert_eq!(r["totals"]["cloudflare"]["requests"], 5);

    // An explicit range: hours are whole on both sides.
    let r = t
        .get(&format!(
            "/api/usage/reconcile?from={}&to={}",
            T0 + 10,
            T0 + 20
        ))
        .body;
    assert_eq!(r["window"], json!({"start": T0, "end": T0 + 3599}));
    assert_eq!(row(&r, LLAMA)["cng"]["requests"], 1);
    assert_eq!(row(&r, FAST)["cng"]["requests"], 0, "outside the window");
    assert_eq!(a.asked.lock().unwrap().last(), Some(&(T0, T0 + 3599)));

    let asked = a.asked.lock().unwrap().len();
    let bad = [
        ("/api/usage/reconcile?key=app", "key"),
        ("/api/usage/reconcile?from=yesterday", "from"),
        ("/api/usage/reconcile?colour=red", "colour"),
        ("/api/usage/reconcile?from=1&to=18446744073709551615", "to"),
        (
            &format!("/api/usage/reconcile?from={}&to={T0}", T0 + 1) as &str,
            "from",
        ),
        (
            &format!("/api/usage/reconcile?from={}&to={T0}", T0 - 31 * 86_400) as &str,
            "from",
        ),
    ];
    for (path, param) in bad {
        let r = t.get(path);
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert_eq!(r.body["error"]["param"], param, "{path}");
        assert_eq!(r.body["error"]["type"], "invalid_request_error");
    }
    assert!(
        t.get("/api/usage/reconcile?key=app").body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no per-key figures")
    );
    assert_eq!(
        a.asked.lock().unwrap().len(),
        asked,
        "bad input never asks Cloudflare"
    );
    // 30 days and 23 hours is fine.
    let from = T0 - 30 * 86_400 - 22 * 3600;
    assert_eq!(
        t.get(&format!("/api/usage/reconcile?from={from}&to={T0}"))
            .status,
        200
    );
}

#[test]
fn without_analytics_a_503_naming_the_setting() {
    let t = setup(None);
    let r = t.get("/api/usage/reconcile");
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "analytics_not_configured");
    assert_eq!(r.body["error"]["type"], "api_error");
    let msg = r.body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("CNG_CF_ANALYTICS_TOKEN") && msg.contains("Account Analytics Read"));
}

#[test]
fn upstream_failures_are_openai_shaped_errors() {
    let a = Arc::new(FakeAnalytics::default());
    *a.answer.lock().unwrap() = Some(Err(Error::new(
        ErrorKind::Upstream,
        "Cloudflare's GraphQL Analytics API answered HTTP 500",
    )
    .with_code("analytics_failed")));
    let t = setup(Some(a));
    let r = t.get("/api/usage/reconcile");
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "analytics_failed");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("HTTP 500")
    );
}

#[test]
fn admin_only() {
    let t = setup(Some(FakeAnalytics::answering(vec![])));
    let r = t.call(Method::GET, "/api/usage/reconcile", None, None);
    assert_eq!(
        (r.status, &r.body["error"]["code"]),
        (401, &json!("missing_api_key"))
    );
    let created = t.call(
        Method::POST,
        "/api/keys",
        Some(ADMIN),
        Some(json!({"name": "client"})),
    );
    let key = created.body["key"].as_str().unwrap().to_string();
    let r = t.call(Method::GET, "/api/usage/reconcile", Some(&key), None);
    assert_eq!(
        (r.status, &r.body["error"]["code"]),
        (403, &json!("admin_required"))
    );
    let r = t.call(Method::POST, "/api/usage/reconcile", Some(ADMIN), None);
    assert_eq!(r.status, 405);
}
