#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]
//! Team tokens through `Gateway::handle`: the admin routes, a team token calling the
//! API, its budget (429 + retry-after), and who may rotate it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use cng_core::auth;
use cng_core::backend::{Backend, InferenceRequest, Output};
use cng_core::error::Error;
use cng_core::ids::{Clock, CountingEntropy, SequentialIds};
use cng_core::store::MemoryStore;
use cng_core::{Body, Gateway, GatewayConfig, Services};
use futures_executor::block_on;
use http::{Method, Request};
use serde_json::{Value, json};

const ADMIN: &str = "cng-test-admin-key";
const NOON: u64 = 1_800_000_000 - 1_800_000_000 % 86_400 + 43_200;

struct TestClock(Arc<AtomicU64>);

impl Clock for TestClock {
    fn unix_seconds(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

struct Ok200;

impl Backend for Ok200 {
    async fn run(&self, _: InferenceRequest) -> Result<Output, Error> {
        Ok(Output::Json(json!({"response": "ok"})))
    }
}

struct T {
    g: Gateway<Ok200, MemoryStore>,
    clock: Arc<AtomicU64>,
}

fn setup() -> T {
    let clock = Arc::new(AtomicU64::new(NOON));
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
    T {
        g: Gateway::new(Ok200, MemoryStore::new(), services, config),
        clock,
    }
}

impl T {
    fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, http::HeaderMap, Value) {
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
                _ => String::new(),
            };
            let v = serde_json::from_str(&text).unwrap_or(Value::Null);
            (parts.status.as_u16(), parts.headers, v)
        })
    }

    fn chat(&self, key: &str) -> (u16, http::HeaderMap, Value) {
        self.call(
            Method::POST,
            "/v1/chat/completions",
            Some(key),
            Some(json!({"model": "@cf/meta/llama-3.1-8b-instruct", "messages": [{"role": "user", "content": "hi"}]})),
        )
    }

    fn create_team(&self, body: Value) -> String {
        let (s, _, v) = self.call(Method::POST, "/api/teams", Some(ADMIN), Some(body));
        assert_eq!(s, 201, "{v}");
        v["token"].as_str().unwrap().to_string()
    }
}

#[test]
fn a_team_token_serves_until_its_budget_is_spent() {
    let t = setup();
    let token = t.create_team(json!({"id": "red", "budget": {"unit": "requests", "per_day": 2}}));
    assert_eq!(t.chat(&token).0, 200);
    assert_eq!(t.chat(&token).0, 200);
    let (s, h, v) = t.chat(&token);
    assert_eq!(s, 429);
    assert_eq!(h["retry-after"], "43200");
    assert_eq!(v["error"]["code"], "team_budget_exceeded");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("resets at 00:00 UTC")
    );
    // Listing models spends nothing.
    assert_eq!(t.call(Method::GET, "/v1/models", Some(&token), None).0, 200);
    t.clock.store(NOON + 43_200, Ordering::SeqCst);
    assert_eq!(t.chat(&token).0, 200);
}

#[test]
fn team_tokens_never_reach_admin_routes_and_the_list_shows_no_secrets() {
    let t = setup();
    let token = t.create_team(json!({"id": "red"}));
    for (m, p) in [
        (Method::GET, "/api/teams"),
        (Method::GET, "/api/keys"),
        (Method::GET, "/api/teams/red"),
    ] {
        assert_eq!(t.call(m, p, Some(&token), None).0, 403, "{p}");
    }
    let (s, _, v) = t.call(Method::GET, "/api/teams", Some(ADMIN), None);
    assert_eq!(s, 200);
    assert_eq!(v["data"][0]["id"], "red");
    assert!(!v.to_string().contains(&token));
    assert!(!v.to_string().contains("hash"));
}

#[test]
fn rotation_by_the_team_itself_or_an_admin_only() {
    let t = setup();
    let red = t.create_team(json!({"id": "red"}));
    let blue = t.create_team(json!({"id": "blue"}));
    // Unauthenticated and another team: refused.
    assert_eq!(
        t.call(Method::POST, "/api/teams/red/rotate", None, None).0,
        401
    );
    assert_eq!(
        t.call(Method::POST, "/api/teams/red/rotate", Some(&blue), None)
            .0,
        403
    );
    // The team itself, with a grace period.
    let (s, _, v) = t.call(
        Method::POST,
        "/api/teams/red/rotate",
        Some(&red),
        Some(json!({"grace_seconds": 60})),
    );
    assert_eq!(s, 200, "{v}");
    let red2 = v["token"].as_str().unwrap().to_string();
    assert_eq!(v["previous_token_valid_until"], NOON + 60);
    assert_eq!(t.chat(&red).0, 200);
    assert_eq!(t.chat(&red2).0, 200);
    t.clock.store(NOON + 60, Ordering::SeqCst);
    let (s, _, v) = t.chat(&red);
    assert_eq!(s, 401);
    assert_eq!(v["error"]["code"], "token_rotated");
    // An admin may rotate too; unknown fields are named.
    let (s, _, _) = t.call(Method::POST, "/api/teams/red/rotate", Some(ADMIN), None);
    assert_eq!(s, 200);
    let (s, _, v) = t.call(
        Method::POST,
        "/api/teams/red/rotate",
        Some(ADMIN),
        Some(json!({"grace": 1})),
    );
    assert_eq!(s, 400);
    assert_eq!(v["error"]["param"], "grace");
}

#[test]
fn a_deleted_or_expired_team_stops_working() {
    let t = setup();
    let token = t.create_team(json!({"id": "red", "expires_at": NOON + 10}));
    assert_eq!(t.chat(&token).0, 200);
    t.clock.store(NOON + 10, Ordering::SeqCst);
    let (s, _, v) = t.chat(&token);
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("team_expired"))
    );
    let other = t.create_team(json!({"id": "blue", "models": ["fast"]}));
    // Restricted to its models.
    assert_eq!(t.chat(&other).0, 403);
    let (s, _, _) = t.call(Method::DELETE, "/api/teams/blue", Some(ADMIN), None);
    assert_eq!(s, 200);
    assert_eq!(t.chat(&other).0, 401);
    assert_eq!(
        t.call(Method::GET, "/api/teams/blue", Some(ADMIN), None).0,
        404
    );
}
