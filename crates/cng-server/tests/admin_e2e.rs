//! The admin side of the real server: discovery through the configured upstream (the
//! fake catalog, two pages), usage written to the SQLite store and still there after a
//! restart, a key revoked over HTTP refused on the very next request, the panel served.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::path::Path;

use cng_server::cli::ServeArgs;
use cng_server::{Running, UpstreamEnv};
use cng_testkit::{FakeUpstream, fixtures_dir};
use reqwest::Method;
use serde_json::{Value, json};

const ADMIN: &str = "cng-admin-e2e-key-0000000000000000000000000000";
const TOKEN: &str = "cf-token-admin-e2e";

async fn start(fake: &FakeUpstream, data: &Path) -> Running {
    let args = ServeArgs {
        first_byte_timeout: 5,
        idle_timeout: 5,
        ..ServeArgs::local(data.to_path_buf())
    };
    let env = UpstreamEnv {
        account_id: Some("acct-admin".into()),
        api_token: Some(TOKEN.into()),
        api_base: Some(fake.cf_api_base()),
        upstream_key: None,
        admin_key: Some(ADMIN.into()),
        master_key: None,
        analytics_token: None,
    };
    cng_server::start(args, env).await.unwrap()
}

async fn call(
    server: &Running,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = reqwest::Client::new().request(method, format!("http://{}{path}", server.addr));
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Hello from the admin e2e"}]})
}

#[tokio::test]
async fn discovery_reads_every_page_of_the_upstream_catalog_and_accepts() {
    let fake = FakeUpstream::start(&fixtures_dir(), 0).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = start(&fake, dir.path()).await;
    let (status, d) = call(&server, Method::POST, "/api/discover", Some(ADMIN), None).await;
    assert_eq!(status, 200, "{d}");
    assert!(
        d["listed"].as_u64().unwrap() > 100,
        "both pages were read: {}",
        d["listed"]
    );
    let new: Vec<&str> = d["new"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(new.contains(&"@cf/cng-test/tiny-chat-1b"), "{new:?}");
    let changed = d["changed"].as_array().unwrap();
    assert!(
        changed
            .iter()
            .any(|c| c["id"] == "@cf/meta/llama-3.2-3b-instruct"
                && c["changes"][0]["field"] == "context_window"),
        "{changed:?}"
    );
    let (status, d) = call(
        &server,
        Method::POST,
        "/api/discover",
        Some(ADMIN),
        Some(json!({"accept": ["new", "changed"]})),
    )
    .await;
    assert_eq!(status, 200, "{d}");
    assert!(d["accepted"]["added"].as_u64().unwrap() >= 1);
    let (_, models) = call(&server, Method::GET, "/v1/models", Some(ADMIN), None).await;
    assert!(models.to_string().contains("@cf/cng-test/tiny-chat-1b"));
    // The status probe reaches the same upstream.
    let (status, s) = call(&server, Method::GET, "/api/status", Some(ADMIN), None).await;
    assert_eq!(status, 200);
    assert_eq!(s["upstream"]["probe"]["reachable"], true, "{s}");
    server.shutdown().await;
}

#[tokio::test]
async fn usage_is_stored_and_survives_a_restart() {
    let fake = FakeUpstream::start(&fixtures_dir(), 0).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = start(&fake, dir.path()).await;
    let (status, created) = call(
        &server,
        Method::POST,
        "/api/keys",
        Some(ADMIN),
        Some(json!({"name": "app"})),
    )
    .await;
    assert_eq!(status, 201);
    let key = created["key"].as_str().unwrap().to_string();
    for _ in 0..3 {
        let (status, body) = call(
            &server,
            Method::POST,
            "/v1/chat/completions",
            Some(&key),
            Some(chat("gpt-4o-mini")),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let (_, u) = call(
        &server,
        Method::GET,
        "/api/usage?key=app",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(u["totals"]["requests"], 3, "{u}");
    // Revoked over HTTP: refused on the next request.
    let (status, _) = call(&server, Method::DELETE, "/api/keys/app", Some(ADMIN), None).await;
    assert_eq!(status, 200);
    let (status, body) = call(
        &server,
        Method::POST,
        "/v1/chat/completions",
        Some(&key),
        Some(chat("gpt-4o-mini")),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (401, json!("invalid_api_key"))
    );
    // One more counted request, then a restart on the same data dir.
    call(
        &server,
        Method::POST,
        "/v1/chat/completions",
        Some(ADMIN),
        Some(chat("gpt-4o-mini")),
    )
    .await;
    server.shutdown().await;
    let server = start(&fake, dir.path()).await;
    let (_, u) = call(&server, Method::GET, "/api/usage", Some(ADMIN), None).await;
    assert_eq!(
        u["totals"]["requests"], 4,
        "written at shutdown, read back: {u}"
    );
    assert_eq!(u["by_key"].as_array().unwrap().len(), 2);
    let (status, page) = call(&server, Method::GET, "/", None, None).await;
    assert_eq!(status, 200);
    assert!(page.as_str().unwrap().contains("/ui/app.js"));
    server.shutdown().await;
}
