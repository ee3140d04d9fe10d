//! A Rust service that embeds cng's gateway with its own backend and store.
//!
//! The backend here answers from a canned rule (it would call your own model server,
//! a queue, or Workers AI); the store is in memory; the service is plain hyper. Every
//! OpenAI route, auth, aliases, streaming and error shape come from cng-core.
//!
//! ```sh
//! cargo run -p cng-core --example embedded_service
//! curl -s localhost:8788/v1/chat/completions -H 'authorization: Bearer demo-admin-key' \
//!   -H 'content-type: application/json' \
//!   -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}'
//! ```
//! `cargo run -p cng-core --example embedded_service -- --once` answers one request
//! in-process and exits (used as a smoke test).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "example code")]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use cng_core::auth::hash_key;
use cng_core::backend::{Backend, InferenceRequest, Input, Output};
use cng_core::ids::{Clock, Entropy, IdSource};
use cng_core::store::MemoryStore;
use cng_core::{Body, Error, Gateway, GatewayConfig, Services};
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use serde_json::json;

/// Your backend: here, it shouts the last user message back.
struct Shout;

impl Backend for Shout {
    async fn run(&self, request: InferenceRequest) -> Result<Output, Error> {
        let Input::Json(input) = request.input else {
            return Err(Error::invalid_request("this backend only takes JSON"));
        };
        let last = input["messages"]
            .as_array()
            .and_then(|m| m.last())
            .and_then(|m| m["content"].as_str())
            .unwrap_or("")
            .to_uppercase();
        // Answer in Workers AI's legacy shape; cng translates it to OpenAI's.
        Ok(Output::Json(json!({
            "response": format!("{last}!"),
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        })))
    }
}

struct SysClock;
impl Clock for SysClock {
    fn unix_seconds(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// Ids from a counter mixed with the start time (use a real random source in production).
struct CounterIds(AtomicU64);
impl IdSource for CounterIds {
    fn fresh_id(&self) -> String {
        format!("{:016x}", self.0.fetch_add(1, Ordering::Relaxed))
    }
}

/// Stand-in randomness (use `getrandom` or your platform's CSPRNG in production).
struct DemoEntropy;
impl Entropy for DemoEntropy {
    fn fill(&self, buf: &mut [u8]) {
        let seed = SysClock.unix_seconds();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (seed as u8).wrapping_add(i as u8 * 13);
        }
    }
}

fn gateway() -> Gateway<Shout, MemoryStore> {
    let services = Services {
        clock: Box::new(SysClock),
        ids: Box::new(CounterIds(AtomicU64::new(SysClock.unix_seconds()))),
        entropy: Box::new(DemoEntropy),
    };
    let config = GatewayConfig {
        admin_key_hash: Some(hash_key("demo-admin-key")),
        upstream: "shout (example)".into(),
        ..GatewayConfig::default()
    };
    Gateway::new(Shout, MemoryStore::new(), services, config)
}

async fn to_bytes(body: Body) -> Bytes {
    match body {
        Body::Empty => Bytes::new(),
        Body::Full(b) => b,
        Body::Stream(mut s) => {
            let mut out = Vec::new();
            while let Some(Ok(c)) = s.next().await {
                out.extend_from_slice(&c);
            }
            out.into()
        }
    }
}

#[tokio::main]
async fn main() {
    let gateway = Arc::new(gateway());
    if std::env::args().any(|a| a == "--once") {
        let req = http::Request::post("/v1/chat/completions")
            .header("authorization", "Bearer demo-admin-key")
            .header("content-type", "application/json")
            .body(Body::Full(Bytes::from_static(
                br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}"#,
            )))
            .unwrap();
        let resp = gateway.handle(req).await;
        let status = resp.status();
        let body = to_bytes(resp.into_body()).await;
        println!("{status} {}", String::from_utf8_lossy(&body));
        assert!(status.is_success());
        return;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8788")
        .await
        .unwrap();
    println!("embedded cng gateway on http://127.0.0.1:8788 (key: demo-admin-key)");
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        let gateway = gateway.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let gateway = gateway.clone();
                    async move {
                        // Whole-body requests are fine for a demo; cng-server streams them.
                        let (parts, incoming) = req.into_parts();
                        let bytes = incoming
                            .collect()
                            .await
                            .map(|c| c.to_bytes())
                            .unwrap_or_default();
                        let resp = gateway
                            .handle(http::Request::from_parts(parts, Body::Full(bytes)))
                            .await;
                        let (parts, body) = resp.into_parts();
                        Ok::<_, Infallible>(hyper::Response::from_parts(
                            parts,
                            Full::new(to_bytes(body).await),
                        ))
                    }
                });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}
