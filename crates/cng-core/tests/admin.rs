//! The admin API end to end through `Gateway::handle`: keys (create, patch, rotate with
//! a grace period, revoke), the config document (validation naming fields, 409 on a
//! stale version, export/import, aliases/overrides/defaults/limits applied to the next
//! request), usage counting, status, badges, discovery and the panel's files.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cng_core::auth::{self, NewKey, Role};
use cng_core::backend::{Backend, InferenceRequest, Input, Output};
use cng_core::config::discovery::ModelSearch;
use cng_core::error::{Error, ErrorKind};
use cng_core::ids::{Clock, CountingEntropy, SequentialIds};
use cng_core::store::MemoryStore;
use cng_core::usage::BoxFuture;
use cng_core::{Body, Gateway, GatewayConfig, Services};
use futures_executor::block_on;
use futures_util::StreamExt;
use http::{Method, Request};
use serde_json::{Value, json};

const ADMIN: &str = "cng-test-admin-key";
const T0: u64 = 1_800_000_000;

/// A clock the test moves.
#[derive(Clone)]
struct TestClock(Arc<AtomicU64>);

impl Clock for TestClock {
    fn unix_seconds(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Answers `{"response": "ok"}` with usage, or fails when the last user message says
/// `fail`; records what it ran.
#[derive(Clone, Default)]
struct Scripted {
    seen: Arc<Mutex<Vec<InferenceRequest>>>,
}

impl Backend for Scripted {
    async fn run(&self, request: InferenceRequest) -> Result<Output, Error> {
        let text = match &request.input {
            Input::Json(v) => v.to_string(),
            Input::Bytes { .. } => String::new(),
        };
        let stream = request.stream;
        self.seen.lock().unwrap().push(request);
        if text.contains("fail") {
            return Err(
                Error::new(ErrorKind::Upstream, "upstream broke").with_code("upstream_error")
            );
        }
        if stream {
            let events = [
                "data: {\"response\":\"o\"}\n\n",
                "data: {\"response\":\"k\"}\n\n",
                "data: {\"response\":\"\",\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2,\"total_tokens\":9}}\n\n",
                "data: [DONE]\n\n",
            ];
            return Ok(Output::Stream(Box::pin(futures_util::stream::iter(
                events.map(|e| Ok(Bytes::from_static(e.as_bytes()))),
            ))));
        }
        Ok(Output::Json(json!({
            "response": "ok",
            "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}
        })))
    }
}

impl Scripted {
    fn last_model(&self) -> String {
        self.seen.lock().unwrap().last().unwrap().model.clone()
    }
    fn last_input(&self) -> Value {
        match &self.seen.lock().unwrap().last().unwrap().input {
            Input::Json(v) => v.clone(),
            Input::Bytes { .. } => Value::Null,
        }
    }
}

/// A model catalog search answering a fixed list.
struct FakeSearch(Vec<Value>, bool);

impl ModelSearch for FakeSearch {
    fn search(&self) -> BoxFuture<'_, Result<Vec<Value>, Error>> {
        let items = self.0.clone();
        Box::pin(async move { Ok(items) })
    }
    fn probe(&self) -> BoxFuture<'_, Result<(), Error>> {
        let up = self.1;
        Box::pin(async move {
            if up {
                Ok(())
            } else {
                Err(Error::new(ErrorKind::Upstream, "connection refused"))
            }
        })
    }
}

struct T {
    g: Gateway<Scripted, MemoryStore>,
    backend: Scripted,
    clock: Arc<AtomicU64>,
}

fn setup_with(admin_hash: bool, search: Option<FakeSearch>) -> T {
    let backend = Scripted::default();
    let clock = Arc::new(AtomicU64::new(T0));
    let services = Services {
        clock: Box::new(TestClock(clock.clone())),
        ids: Box::new(SequentialIds::default()),
        entropy: Box::new(CountingEntropy::default()),
    };
    let config = GatewayConfig {
        admin_key_hash: admin_hash.then(|| auth::hash_key(ADMIN)),
        upstream: "workers-ai-rest".into(),
        ..GatewayConfig::default()
    };
    let mut g = Gateway::new(backend.clone(), MemoryStore::new(), services, config);
    if let Some(s) = search {
        g = g.with_model_search(Arc::new(s));
    }
    T { g, backend, clock }
}

fn setup() -> T {
    setup_with(true, None)
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
    fn param(&self) -> String {
        self.json()["error"]["param"]
            .as_str()
            .unwrap_or("-")
            .to_string()
    }
    fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("-")
            .to_string()
    }
}

impl T {
    fn send(&self, req: Request<Body>) -> Reply {
        block_on(async {
            let (parts, body) = self.g.handle(req).await.into_parts();
            let body = match body {
                Body::Empty => String::new(),
                Body::Full(b) => String::from_utf8_lossy(&b).into_owned(),
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

    fn call(&self, method: Method, path: &str, key: Option<&str>, body: Option<Value>) -> Reply {
        self.call_h(method, path, key, body, &[])
    }

    fn call_h(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(k) = key {
            b = b.header("authorization", format!("Bearer {k}"));
        }
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        let body = match body {
            Some(v) => {
                b = b.header("content-type", "application/json");
                Body::Full(Bytes::from(v.to_string()))
            }
            None => Body::Empty,
        };
        self.send(b.body(body).unwrap())
    }

    fn chat(&self, key: &str, model: &str, text: &str) -> Reply {
        self.call(
            Method::POST,
            "/v1/chat/completions",
            Some(key),
            Some(json!({"model": model, "messages": [{"role": "user", "content": text}]})),
        )
    }

    fn client_key(&self, name: &str) -> String {
        let r = self.call(
            Method::POST,
            "/api/keys",
            Some(ADMIN),
            Some(json!({"name": name})),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["key"].as_str().unwrap().to_string()
    }

    fn advance(&self, secs: u64) {
        self.clock.fetch_add(secs, Ordering::SeqCst);
    }

    fn config(&self) -> Value {
        let r = self.call(Method::GET, "/api/config", Some(ADMIN), None);
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    }

    fn put_config(&self, doc: &Value) -> Reply {
        self.call(Method::PUT, "/api/config", Some(ADMIN), Some(doc.clone()))
    }
}

const ADMIN_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/keys"),
    ("POST", "/api/keys"),
    ("GET", "/api/keys/x"),
    ("PATCH", "/api/keys/x"),
    ("DELETE", "/api/keys/x"),
    ("POST", "/api/keys/x/rotate"),
    ("GET", "/api/providers"),
    ("PUT", "/api/providers/openai/key"),
    ("DELETE", "/api/providers/openai/key"),
    ("GET", "/api/config"),
    ("PUT", "/api/config"),
    ("GET", "/api/config/export"),
    ("POST", "/api/config/import"),
    ("POST", "/api/discover"),
    ("GET", "/api/usage"),
    ("GET", "/api/usage/reconcile"),
    ("GET", "/api/status"),
];

#[test]
fn every_admin_route_needs_an_admin_key() {
    let t = setup();
    let client = t.client_key("client");
    for (m, path) in ADMIN_ROUTES {
        let m: Method = m.parse().unwrap();
        let r = t.call(m.clone(), path, None, Some(json!({})));
        assert_eq!(
            (r.status, r.code()),
            (401, "missing_api_key".into()),
            "{m} {path}"
        );
        let r = t.call(m.clone(), path, Some(&client), Some(json!({})));
        assert_eq!(
            (r.status, r.code()),
            (403, "admin_required".into()),
            "{m} {path}"
        );
        assert_eq!(r.json()["error"]["type"], "permission_error");
    }
}

#[test]
fn keys_are_shown_once_and_never_again() {
    let t = setup();
    let r = t.call(
        Method::POST,
        "/api/keys",
        Some(ADMIN),
        Some(json!({"name": "ci-bot", "models": ["gpt-4o-mini"], "rpm": 30, "expires_in_days": 7})),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let created = r.json();
    let key = created["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("cng-"));
    assert_eq!(created["expires"], T0 + 7 * 86_400);
    assert_eq!(created["rpm"], 30);
    let hash: String = auth::hash_key(&key)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    for path in ["/api/keys", "/api/keys/ci-bot", "/api/config", "/api/usage"] {
        let body = t.call(Method::GET, path, Some(ADMIN), None).body;
        assert!(!body.contains(&key), "{path} shows the key");
        assert!(!body.contains(&hash), "{path} shows the hash");
    }
    let list = t.call(Method::GET, "/api/keys", Some(ADMIN), None).json();
    assert_eq!(list["data"][0]["name"], "ci-bot");
    assert_eq!(list["data"][0]["models"], json!(["gpt-4o-mini"]));
    // The key works, for its model only.
    assert_eq!(t.chat(&key, "gpt-4o-mini", "hi").status, 200);
    assert_eq!(t.chat(&key, "gpt-4o", "hi").code(), "model_not_allowed");
    // Same name again: 409.
    let r = t.call(
        Method::POST,
        "/api/keys",
        Some(ADMIN),
        Some(json!({"name": "ci-bot"})),
    );
    assert_eq!((r.status, r.code()), (409, "key_exists".into()));
}

#[test]
fn key_requests_are_validated_field_by_field() {
    let t = setup();
    let cases = [
        (json!({"name": "bad name!"}), "name"),
        (json!({"name": "a", "role": "root"}), "role"),
        (json!({"name": "a", "rpm": 0}), "rpm"),
        (json!({"name": "a", "models": []}), "models"),
        (
            json!({"name": "a", "models": ["gpt-4o", "gpt-17"]}),
            "models[1]",
        ),
        (json!({"name": "a", "expires": 5}), "expires"),
        (
            json!({"name": "a", "expires_in_days": 1, "expires": T0 + 9}),
            "expires_in_days",
        ),
        (json!({"name": "a", "colour": "red"}), "colour"),
        (json!({}), "name"),
    ];
    for (body, param) in cases {
        let r = t.call(Method::POST, "/api/keys", Some(ADMIN), Some(body.clone()));
        assert_eq!(
            (r.status, r.param()),
            (400, param.to_string()),
            "{body}: {}",
            r.body
        );
    }
    t.client_key("a");
    for (body, param) in [
        (json!({"rpm": 0}), "rpm"),
        (json!({"disabled": "yes"}), "disabled"),
        (json!({"spoof_name": true}), "spoof_name"),
        (json!({"models": ["nope"]}), "models[0]"),
    ] {
        let r = t.call(
            Method::PATCH,
            "/api/keys/a",
            Some(ADMIN),
            Some(body.clone()),
        );
        assert_eq!(
            (r.status, r.param()),
            (400, param.to_string()),
            "{body}: {}",
            r.body
        );
    }
    let r = t.call(
        Method::PATCH,
        "/api/keys/ghost",
        Some(ADMIN),
        Some(json!({"rpm": 5})),
    );
    assert_eq!((r.status, r.code()), (404, "key_not_found".into()));
    let r = t.call(Method::DELETE, "/api/keys/ghost", Some(ADMIN), None);
    assert_eq!(r.status, 404);
    let r = t.call(Method::POST, "/api/keys", Some(ADMIN), Some(json!(null)));
    assert_eq!(r.status, 400, "{}", r.body);
}

#[test]
fn patch_and_delete_apply_to_the_very_next_request() {
    let t = setup();
    let key = t.client_key("app");
    assert_eq!(
        t.call(Method::GET, "/v1/models", Some(&key), None).status,
        200
    );
    let r = t.call(
        Method::PATCH,
        "/api/keys/app",
        Some(ADMIN),
        Some(json!({"disabled": true, "rpm": 5, "spoof": true})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.json()["disabled"].clone(), r.json()["spoof"].clone()),
        (json!(true), json!(true))
    );
    let r = t.call(Method::GET, "/v1/models", Some(&key), None);
    assert_eq!((r.status, r.code()), (401, "key_disabled".into()));
    t.call(
        Method::PATCH,
        "/api/keys/app",
        Some(ADMIN),
        Some(json!({"disabled": false, "rpm": null})),
    );
    assert_eq!(
        t.call(Method::GET, "/v1/models", Some(&key), None).status,
        200
    );
    let r = t.call(Method::DELETE, "/api/keys/app", Some(ADMIN), None);
    assert_eq!((r.status, r.json()["deleted"].clone()), (200, json!(true)));
    let r = t.call(Method::GET, "/v1/models", Some(&key), None);
    assert_eq!((r.status, r.code()), (401, "invalid_api_key".into()));
}

#[test]
fn rotation_keeps_the_old_secret_for_the_grace_period_only() {
    let t = setup();
    let old = t.client_key("svc");
    let r = t.call(
        Method::POST,
        "/api/keys/svc/rotate",
        Some(ADMIN),
        Some(json!({"grace_seconds": 600})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let new = r.json()["key"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(r.json()["previous_key_valid_until"], T0 + 600);
    assert_eq!(
        t.chat(&old, "gpt-4o-mini", "hi").status,
        200,
        "old works in the grace period"
    );
    assert_eq!(t.chat(&new, "gpt-4o-mini", "hi").status, 200);
    let list = t.call(Method::GET, "/api/keys", Some(ADMIN), None).json();
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        1,
        "one key, not two"
    );
    assert_eq!(list["data"][0]["rotated"], T0);
    // Disabling the key disables both secrets.
    t.call(
        Method::PATCH,
        "/api/keys/svc",
        Some(ADMIN),
        Some(json!({"disabled": true})),
    );
    assert_eq!(t.chat(&old, "gpt-4o-mini", "hi").code(), "key_disabled");
    t.call(
        Method::PATCH,
        "/api/keys/svc",
        Some(ADMIN),
        Some(json!({"disabled": false})),
    );
    t.advance(600);
    assert_eq!(t.chat(&old, "gpt-4o-mini", "hi").code(), "key_expired");
    assert_eq!(
        t.chat(&old, "gpt-4o-mini", "hi").code(),
        "invalid_api_key",
        "an expired rotated-out secret is forgotten once seen"
    );
    assert_eq!(t.chat(&new, "gpt-4o-mini", "hi").status, 200);
    // No grace: the old secret stops at once. Deleting removes every secret.
    let r = t.call(
        Method::POST,
        "/api/keys/svc/rotate",
        Some(ADMIN),
        Some(json!({"grace_seconds": 0})),
    );
    let newer = r.json()["key"].as_str().unwrap().to_string();
    assert_eq!(t.chat(&new, "gpt-4o-mini", "hi").code(), "invalid_api_key");
    let r = t.call(Method::POST, "/api/keys/svc/rotate", Some(ADMIN), None);
    assert_eq!(r.status, 200, "an empty body takes the default grace");
    assert_eq!(
        t.chat(&newer, "gpt-4o-mini", "hi").status,
        200,
        "default grace: still valid"
    );
    t.call(Method::DELETE, "/api/keys/svc", Some(ADMIN), None);
    assert_eq!(
        t.chat(&newer, "gpt-4o-mini", "hi").code(),
        "invalid_api_key"
    );
    let r = t.call(Method::POST, "/api/keys/svc/rotate", Some(ADMIN), None);
    assert_eq!(r.status, 404);
    t.client_key("svc2");
    let r = t.call(
        Method::POST,
        "/api/keys/svc2/rotate",
        Some(ADMIN),
        Some(json!({"grace_seconds": 99_999_999})),
    );
    assert_eq!(
        (r.status, r.param()),
        (400, "grace_seconds".into()),
        "{}",
        r.body
    );
}

#[test]
fn the_last_admin_key_cannot_lock_everyone_out() {
    let t = setup_with(false, None);
    // Entropy of its own that cannot repeat the gateway's test pattern.
    let entropy = CountingEntropy::default();
    for _ in 0..100 {
        cng_core::ids::Entropy::fill(&entropy, &mut [0u8; 1]);
    }
    let (admin, _) = block_on(auth::create_key(
        t.g.store(),
        &entropy,
        &TestClock(t.clock.clone()),
        NewKey {
            name: "root".into(),
            role: Role::Admin,
            models: None,
            rpm: None,
            expires: None,
        },
    ))
    .unwrap();
    for (m, body) in [
        (Method::DELETE, None),
        (Method::PATCH, Some(json!({"disabled": true}))),
        (Method::PATCH, Some(json!({"role": "client"}))),
    ] {
        let r = t.call(m, "/api/keys/root", Some(&admin), body);
        assert_eq!(
            (r.status, r.code()),
            (409, "last_admin_key".into()),
            "{}",
            r.body
        );
    }
    let r = t.call(
        Method::POST,
        "/api/keys",
        Some(&admin),
        Some(json!({"name": "root2", "role": "admin"})),
    );
    assert_eq!(r.status, 201);
    assert_eq!(
        t.call(Method::DELETE, "/api/keys/root", Some(&admin), None)
            .status,
        200
    );
}

#[test]
fn config_round_trip_with_versions_and_409_on_stale_writes() {
    let t = setup();
    let c = t.config();
    assert_eq!(c["version"], 0);
    assert_eq!(
        c["aliases"]["gpt-4o-mini"],
        "@cf/meta/llama-3.1-8b-instruct-fast"
    );
    // No version at all: refused.
    let mut doc = c.clone();
    doc.as_object_mut().unwrap().remove("version");
    let r = t.put_config(&doc);
    assert_eq!((r.status, r.code()), (400, "version_required".into()));
    // Add an alias (version from the body, as the panel sends it).
    let mut doc = c.clone();
    doc["aliases"]["house-model"] = json!("@cf/meta/llama-3.1-8b-instruct");
    let r = t.put_config(&doc);
    assert_eq!(r.status, 200, "{}", r.body);
    let v1 = r.json()["version"].as_u64().unwrap();
    assert!(v1 > 0);
    assert_eq!(r.headers["etag"], format!("\"{v1}\"").as_str());
    // Applied to the next request.
    assert_eq!(t.chat(ADMIN, "house-model", "hi").status, 200);
    assert_eq!(t.backend.last_model(), "@cf/meta/llama-3.1-8b-instruct");
    let models = t.call(Method::GET, "/v1/models", Some(ADMIN), None).body;
    assert!(models.contains("house-model"), "/v1/models lists it");
    // A second admin still holding version 0 loses, with a 409.
    let mut stale = c.clone();
    stale["aliases"]["other"] = json!("@cf/meta/llama-3.1-8b-instruct");
    let r = t.put_config(&stale);
    assert_eq!(
        (r.status, r.code()),
        (409, "stale_version".into()),
        "{}",
        r.body
    );
    let r = t.call_h(
        Method::PUT,
        "/api/config",
        Some(ADMIN),
        Some(doc.clone()),
        &[("if-match", "\"999\"")],
    );
    assert_eq!(r.status, 409, "If-Match wins over the body");
    let r = t.call_h(
        Method::PUT,
        "/api/config",
        Some(ADMIN),
        Some(doc.clone()),
        &[("if-match", &format!("W/\"{v1}\""))],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = t.call_h(
        Method::PUT,
        "/api/config",
        Some(ADMIN),
        Some(doc),
        &[("if-match", "abc")],
    );
    assert_eq!((r.status, r.code()), (400, "invalid_if_match".into()));
    assert!(t.chat(ADMIN, "gpt-4o-mini", "hi").status == 200);
}

#[test]
fn config_errors_name_the_field() {
    let t = setup();
    let c = t.config();
    let cases = [
        (json!({"aliases": {"x": "no-such-model"}}), "aliases.x"),
        (
            json!({"images": {"cache_ttl_seconds": 1}}),
            "images.cache_ttl_seconds",
        ),
        (json!({"imagez": {}}), "imagez"),
        (json!({"defaults": {"chat": "dall-e-3"}}), "defaults.chat"),
        (
            json!({"rate_limits": {"client_rpm": "many"}}),
            "rate_limits.client_rpm",
        ),
        (
            json!({"models": {"overrides": {"@cf/meta/llama-3.1-8b-instruct": {"max_tokens": 0}}}}),
            "models.overrides.@cf/meta/llama-3.1-8b-instruct.max_tokens",
        ),
    ];
    for (patch, param) in cases {
        let mut doc = patch.clone();
        doc["version"] = c["version"].clone();
        let r = t.put_config(&doc);
        assert_eq!(
            (r.status, r.param()),
            (400, param.to_string()),
            "{patch}: {}",
            r.body
        );
        assert_eq!(r.code(), "invalid_config");
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains(param)
        );
    }
    for body in ["null", "[]", "{"] {
        let req = Request::put("/api/config")
            .header("authorization", format!("Bearer {ADMIN}"))
            .header("if-match", "\"0\"")
            .body(Body::Full(Bytes::from(body)))
            .unwrap();
        let r = t.send(req);
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(r.json()["error"]["message"].is_string());
    }
    assert_eq!(t.config()["version"], 0, "nothing was written");
}

#[test]
fn overrides_enabled_models_defaults_and_rate_limits_drive_requests() {
    let t = setup();
    let doc = json!({
        "version": 0,
        "aliases": {"fast": "@cf/meta/llama-3.1-8b-instruct-fast"},
        "defaults": {"chat": "fast"},
        "models": {
            "enabled": ["@cf/meta/llama-3.1-8b-instruct-fast"],
            "overrides": {"@cf/meta/llama-3.1-8b-instruct-fast": {"max_tokens": 64}}
        },
        "rate_limits": {"client_rpm": 2}
    });
    let r = t.put_config(&doc);
    assert_eq!(r.status, 200, "{}", r.body);
    // Overrides clamp output.
    let r = t.call(
        Method::POST,
        "/v1/chat/completions",
        Some(ADMIN),
        Some(json!({"model": "fast", "max_tokens": 5000, "messages": [{"role": "user", "content": "hi"}]})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(t.backend.last_input()["max_tokens"], 64);
    // Only enabled models are served; the default applies to an empty model.
    assert_eq!(
        t.chat(ADMIN, "@cf/meta/llama-3.1-8b-instruct", "hi").code(),
        "model_not_found"
    );
    assert_eq!(t.chat(ADMIN, "", "hi").status, 200);
    assert_eq!(
        t.backend.last_model(),
        "@cf/meta/llama-3.1-8b-instruct-fast"
    );
    let models = t.call(Method::GET, "/v1/models", Some(ADMIN), None).json();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"fast") && ids.contains(&"@cf/meta/llama-3.1-8b-instruct-fast"));
    assert!(!ids.contains(&"@cf/meta/llama-3.1-8b-instruct"), "{ids:?}");
    // Client keys without an rpm of their own get the config's default.
    let key = t.client_key("limited");
    assert_eq!(t.chat(&key, "fast", "1").status, 200);
    let r = t.chat(&key, "fast", "2");
    assert_eq!(r.headers["x-ratelimit-limit"], "2");
    assert_eq!(t.chat(&key, "fast", "3").status, 429);
    assert_eq!(
        t.chat(ADMIN, "fast", "4").status,
        200,
        "admins: no default set"
    );
}

#[test]
fn export_and_import() {
    let t = setup();
    let r = t.call(Method::GET, "/api/config/export", Some(ADMIN), None);
    assert_eq!(r.status, 200);
    assert!(
        r.headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("cng-config.json")
    );
    let mut doc = r.json();
    assert!(doc.get("version").is_none());
    doc["aliases"]["imported"] = json!("@cf/meta/llama-3.1-8b-instruct");
    let r = t.call(
        Method::POST,
        "/api/config/import",
        Some(ADMIN),
        Some(doc.clone()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json()["version"].as_u64().unwrap();
    assert_eq!(
        t.config()["aliases"]["imported"],
        "@cf/meta/llama-3.1-8b-instruct"
    );
    // An import with a stale If-Match is refused; a bad one names the field.
    let r = t.call_h(
        Method::POST,
        "/api/config/import",
        Some(ADMIN),
        Some(doc.clone()),
        &[("if-match", "\"0\"")],
    );
    assert_eq!(r.status, 409);
    doc["badges"]["window_seconds"] = json!(1);
    let r = t.call(Method::POST, "/api/config/import", Some(ADMIN), Some(doc));
    assert_eq!((r.status, r.param()), (400, "badges.window_seconds".into()));
    assert_eq!(t.config()["version"], v);
}

#[test]
fn usage_is_counted_per_key_and_model_with_latency_tokens_errors_and_cost() {
    let t = setup();
    let key = t.client_key("app");
    assert_eq!(t.chat(&key, "gpt-3.5-turbo", "hi").status, 200);
    assert_eq!(
        t.chat(&key, "@cf/meta/llama-3.1-8b-instruct-fast", "hi")
            .status,
        200
    );
    assert_eq!(t.chat(&key, "gpt-3.5-turbo", "please fail").status, 502);
    assert_eq!(
        t.chat(ADMIN, "@cf/meta/llama-3.1-8b-instruct", "hi").status,
        200
    );
    // A stream counts when it has been read, with the usage it reported.
    let r = t.call(
        Method::POST,
        "/v1/chat/completions",
        Some(ADMIN),
        Some(json!({"model": "@cf/meta/llama-3.1-8b-instruct", "stream": true, "stream_options": {"include_usage": true},
                    "messages": [{"role": "user", "content": "stream"}]})),
    );
    assert_eq!(r.status, 200);
    // Requests that never reached a model are not usage.
    assert_eq!(t.chat(&key, "gpt-17", "hi").status, 404);
    let u = t.call(Method::GET, "/api/usage", Some(ADMIN), None).json();
    assert_eq!(u["totals"]["requests"], 5, "{u}");
    assert_eq!(u["totals"]["errors"], 1);
    assert_eq!(u["totals"]["upstream_errors"], 1);
    assert_eq!(u["totals"]["input_tokens"], 3000 + 7);
    assert_eq!(u["totals"]["output_tokens"], 300 + 2);
    assert!(u["totals"]["latency_ms"]["p50"].is_u64());
    let by_key = &u["by_key"];
    assert_eq!(by_key[0]["name"], "app");
    assert_eq!(by_key[0]["requests"], 3);
    let fast = u["by_model"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "@cf/meta/llama-3.1-8b-instruct-fast")
        .unwrap();
    assert_eq!(fast["requests"], 3, "aliases count as their model");
    // 2000 in, 200 out at 4119 / 34868 neurons per M (Cloudflare's pricing page).
    let neurons = fast["estimated_neurons"].as_f64().unwrap();
    assert!(
        (neurons - (2000.0 * 4119.0 + 200.0 * 34868.0) / 1e6).abs() < 0.01,
        "{neurons}"
    );
    assert_eq!(fast["price_source"], "pricing-page");
    let usd = fast["estimated_usd"].as_f64().unwrap();
    assert!((usd - neurons * 0.011 / 1000.0).abs() < 1e-6);
    // Filters: by key, by model given as an alias, by time.
    let u = t
        .call(
            Method::GET,
            "/api/usage?key=app&model=gpt-3.5-turbo",
            Some(ADMIN),
            None,
        )
        .json();
    assert_eq!(u["totals"]["requests"], 3);
    assert_eq!(u["filters"]["model"], "@cf/meta/llama-3.1-8b-instruct-fast");
    let later = T0 + 7200;
    let u = t
        .call(
            Method::GET,
            &format!("/api/usage?from={later}&to={}", later + 10),
            Some(ADMIN),
            None,
        )
        .json();
    assert_eq!(u["totals"]["requests"], 0);
    let r = t.call(Method::GET, "/api/usage?from=yesterday", Some(ADMIN), None);
    assert_eq!((r.status, r.param()), (400, "from".into()));
    let r = t.call(Method::GET, "/api/usage?colour=1", Some(ADMIN), None);
    assert_eq!((r.status, r.param()), (400, "colour".into()));
}

#[test]
fn status_and_badges_follow_recent_outcomes() {
    let t = setup_with(true, Some(FakeSearch(vec![], false)));
    let badge = |model: &str| t.call(Method::GET, &format!("/badge/{model}.svg"), None, None);
    let r = badge("gpt-4o-mini");
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "image/svg+xml");
    assert!(r.body.contains("no recent calls"), "{}", r.body);
    t.chat(ADMIN, "gpt-4o-mini", "hi");
    assert!(badge("gpt-4o-mini").body.contains(">up<"));
    assert!(
        badge("@cf/meta/llama-3.1-8b-instruct-fast")
            .body
            .contains(">up<")
    );
    t.advance(1);
    t.chat(ADMIN, "gpt-4o-mini", "fail now");
    assert!(badge("gpt-4o-mini").body.contains("failing"));
    assert_eq!(badge("gpt-17").status, 404);
    let r = t.call(
        Method::GET,
        "/badge/gpt-4o-mini.svg?label=%3Cb%3E",
        None,
        None,
    );
    assert!(r.body.contains("&lt;b&gt;") && !r.body.contains("<b>"));
    t.advance(3600);
    assert!(badge("gpt-4o-mini").body.contains("no recent calls"));
    let s = t.call(Method::GET, "/api/status", Some(ADMIN), None).json();
    assert_eq!(s["upstream"]["probe"]["reachable"], false);
    assert_eq!(s["upstream"]["probe"]["detail"], "connection refused");
    assert_eq!(
        s["models"][0]["model"],
        "@cf/meta/llama-3.1-8b-instruct-fast"
    );
    assert_eq!(s["models"][0]["requests"], 2);
    assert_eq!(s["models"][0]["upstream_errors"], 1);
    assert_eq!(s["models"][0]["health"], "idle");
    // Badges behind a key when the config says so.
    let mut c = t.config();
    c["badges"]["public"] = json!(false);
    assert_eq!(t.put_config(&c).status, 200);
    assert_eq!(badge("gpt-4o-mini").status, 401);
    assert_eq!(
        t.call(Method::GET, "/badge/gpt-4o-mini.svg", Some(ADMIN), None)
            .status,
        200
    );
}

fn search_item(name: &str, task: &str, ctx: u64) -> Value {
    json!({"id": "0000", "name": name, "description": "test model", "task": {"id": "t", "name": task},
           "properties": [{"property_id": "context_window", "value": ctx.to_string()}]})
}

#[test]
fn discovery_reports_and_accepts_in_one_call() {
    let fast = cng_core::catalog::Catalog::builtin()
        .get("@cf/meta/llama-3.1-8b-instruct-fast")
        .unwrap()
        .clone();
    let items = vec![
        search_item("@cf/acme/brand-new-chat", "Text Generation", 65_536),
        search_item(
            &fast.id,
            "Text Generation",
            u64::from(fast.context_window.unwrap_or(0)) + 1000,
        ),
        json!({"name": "garbage"}),
    ];
    let t = setup_with(true, Some(FakeSearch(items, true)));
    let mut c = t.config();
    c["aliases"] = json!({"fast": fast.id, "old": "@cf/meta/llama-2-7b-chat-fp16"});
    assert_eq!(t.put_config(&c).status, 200);
    let r = t.call(Method::POST, "/api/discover", Some(ADMIN), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let d = r.json();
    assert_eq!(
        (d["listed"].clone(), d["skipped"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(d["new"][0]["id"], "@cf/acme/brand-new-chat");
    assert_eq!(d["changed"][0]["changes"][0]["field"], "context_window");
    assert_eq!(d["removed"], json!(["@cf/meta/llama-2-7b-chat-fp16"]));
    assert!(d["accepted"].is_null());
    assert_eq!(
        t.chat(ADMIN, "@cf/acme/brand-new-chat", "hi").status,
        200,
        "a Workers AI id works anyway"
    );
    let r = t.call(
        Method::POST,
        "/api/discover",
        Some(ADMIN),
        Some(json!({"accept": true})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let d = r.json();
    assert_eq!(d["accepted"]["added"], 1);
    assert_eq!(d["accepted"]["dropped_aliases"], json!(["old"]));
    let c = t.config();
    assert_eq!(c["version"], d["version"]);
    assert_eq!(
        c["models"]["catalog"]["@cf/acme/brand-new-chat"]["context_window"],
        65_536
    );
    assert_eq!(
        c["models"]["removed"],
        json!(["@cf/meta/llama-2-7b-chat-fp16"])
    );
    assert_eq!(
        t.chat(ADMIN, "@cf/meta/llama-2-7b-chat-fp16", "hi").code(),
        "model_not_found"
    );
    let again = t
        .call(Method::POST, "/api/discover", Some(ADMIN), None)
        .json();
    assert!(
        again["new"].as_array().unwrap().is_empty()
            && again["changed"].as_array().unwrap().is_empty()
    );
    let r = t.call(
        Method::POST,
        "/api/discover",
        Some(ADMIN),
        Some(json!({"accept": "yes"})),
    );
    assert_eq!((r.status, r.param()), (400, "accept".into()));
    // Without a catalog reader: a 503 that says what to configure.
    let t = setup();
    let r = t.call(Method::POST, "/api/discover", Some(ADMIN), None);
    assert_eq!((r.status, r.code()), (503, "discovery_unavailable".into()));
}

#[test]
fn the_panel_is_served_with_a_strict_policy() {
    let t = setup();
    let r = t.call(Method::GET, "/", None, None);
    assert_eq!(r.status, 200);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = r.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"));
    assert!(r.body.contains("/ui/app.js"));
    let js = t.call(Method::GET, "/ui/app.js", None, None);
    assert!(
        js.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(js.body.contains("sessionStorage"));
    assert!(
        !js.body.contains("localStorage"),
        "the key never outlives the tab"
    );
    assert_eq!(
        t.call(Method::GET, "/ui/secret.txt", None, None).status,
        404
    );
    assert_eq!(t.call(Method::POST, "/", None, None).status, 405);
}

#[test]
fn in_front_of_an_openai_compatible_upstream_aliases_name_its_models() {
    let backend = Scripted::default();
    let services = Services {
        clock: Box::new(TestClock(Arc::new(AtomicU64::new(T0)))),
        ids: Box::new(SequentialIds::default()),
        entropy: Box::new(CountingEntropy::default()),
    };
    let config = GatewayConfig {
        admin_key_hash: Some(auth::hash_key(ADMIN)),
        open_models: true,
        aliases: cng_core::alias::AliasTable::empty(),
        ..GatewayConfig::default()
    };
    let t = T {
        g: Gateway::new(backend.clone(), MemoryStore::new(), services, config),
        backend,
        clock: Arc::new(AtomicU64::new(T0)),
    };
    let r = t.put_config(&json!({"version": 0, "aliases": {"fast": "llama3.2:3b"}}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(t.chat(ADMIN, "fast", "hi").status, 200);
    assert_eq!(t.backend.last_model(), "llama3.2:3b");
}

#[test]
fn a_stream_without_include_usage_is_still_counted_with_its_tokens() {
    let t = setup();
    let r = t.call(
        Method::POST,
        "/v1/chat/completions",
        Some(ADMIN),
        Some(
            json!({"model": "@cf/meta/llama-3.1-8b-instruct", "stream": true,
                    "messages": [{"role": "user", "content": "stream"}]}),
        ),
    );
    assert_eq!(r.status, 200);
    assert!(
        !r.body.contains("\"usage\":{"),
        "the client did not ask for usage"
    );
    let u = t.call(Method::GET, "/api/usage", Some(ADMIN), None).json();
    assert_eq!(u["totals"]["input_tokens"], 7, "{u}");
    assert_eq!(u["totals"]["output_tokens"], 2);
}

#[test]
fn rotation_sweeps_secrets_whose_grace_is_over() {
    let t = setup();
    t.client_key("svc");
    let records = || {
        block_on(cng_core::store::Store::list(
            t.g.store(),
            cng_core::auth::NS_KEYS,
        ))
        .unwrap()
        .len()
    };
    assert_eq!(records(), 1);
    let rotate = || {
        let r = t.call(
            Method::POST,
            "/api/keys/svc/rotate",
            Some(ADMIN),
            Some(json!({"grace_seconds": 60})),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    };
    rotate();
    rotate();
    assert_eq!(records(), 3, "two secrets in their grace, one current");
    t.advance(61);
    rotate();
    assert_eq!(
        records(),
        2,
        "the expired ones are gone; the one just rotated out stays for its grace"
    );
}
