#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]
//! Model naming through `Gateway::handle`: the explicit Workers AI spellings resolve,
//! URL-shaped names are a 400 that never reaches the backend.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cng_core::auth;
use cng_core::backend::{Backend, InferenceRequest, Output};
use cng_core::error::Error;
use cng_core::ids::{CountingEntropy, FixedClock, SequentialIds};
use cng_core::store::MemoryStore;
use cng_core::{Body, Gateway, GatewayConfig, Services};
use futures_executor::block_on;
use http::Request;
use serde_json::{Value, json};

const ADMIN: &str = "cng-test-admin-key";

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Backend for Seen {
    async fn run(&self, r: InferenceRequest) -> Result<Output, Error> {
        self.0.lock().unwrap().push(r.model);
        Ok(Output::Json(json!({"response": "ok"})))
    }
}

fn chat(g: &Gateway<Seen, MemoryStore>, model: &str) -> (u16, Value) {
    let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    let req = Request::post("/v1/chat/completions")
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", "application/json")
        .body(Body::Full(Bytes::from(body.to_string())))
        .unwrap();
    block_on(async {
        let (parts, body) = g.handle(req).await.into_parts();
        let Body::Full(b) = body else {
            panic!("not a full body")
        };
        (parts.status.as_u16(), serde_json::from_slice(&b).unwrap())
    })
}

fn gateway(seen: &Seen) -> Gateway<Seen, MemoryStore> {
    let services = Services {
        clock: Box::new(FixedClock(1_800_000_000)),
        ids: Box::new(SequentialIds::default()),
        entropy: Box::new(CountingEntropy::default()),
    };
    let config = GatewayConfig {
        admin_key_hash: Some(auth::hash_key(ADMIN)),
        upstream: "workers-ai-rest".into(),
        ..GatewayConfig::default()
    };
    Gateway::new(seen.clone(), MemoryStore::new(), services, config)
}

#[test]
fn explicit_workers_ai_spellings_resolve_to_the_catalog_id() {
    let seen = Seen::default();
    let g = gateway(&seen);
    for name in [
        "workers-ai/@cf/meta/llama-3.1-8b-instruct",
        "@cf/meta/llama-3.1-8b-instruct#workers-ai",
    ] {
        let (s, v) = chat(&g, name);
        assert_eq!(s, 200, "{name}: {v}");
    }
    assert_eq!(
        *seen.0.lock().unwrap(),
        [
            "@cf/meta/llama-3.1-8b-instruct",
            "@cf/meta/llama-3.1-8b-instruct"
        ]
    );
}

#[test]
fn url_shaped_and_unknown_provider_names_never_reach_the_backend() {
    let seen = Seen::default();
    let g = gateway(&seen);
    for name in [
        "https://169.254.169.254/latest/meta-data",
        "//evil.example/v1",
        "workers-ai/http://127.0.0.1:1/x",
        "gpt-4o#nowhere",
    ] {
        let (s, v) = chat(&g, name);
        assert_eq!(s, 400, "{name}: {v}");
        assert_eq!(v["error"]["param"], "model", "{name}");
    }
    assert!(seen.0.lock().unwrap().is_empty());
}
