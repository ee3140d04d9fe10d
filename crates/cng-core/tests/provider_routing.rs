#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]
//! Live requests routed by the config's `providers` and `targets`, through
//! `Gateway::handle`: provider-qualified names, aliases naming a provider's model,
//! fallback chains (429/5xx/timeout move on, a 400 does not), the `x-cng-target`
//! header, usage booked to the target that served, teams' provider lists, and the
//! routes providers do not serve.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cng_core::auth;
use cng_core::backend::{Backend, InferenceRequest, Input, Output};
use cng_core::error::{Error, ErrorKind};
use cng_core::ids::{CountingEntropy, FixedClock, SequentialIds};
use cng_core::routing::{ProviderRoute, UrlPolicy};
use cng_core::store::MemoryStore;
use cng_core::{Body, Gateway, GatewayConfig, Services};
use futures_executor::block_on;
use futures_util::StreamExt;
use http::{HeaderMap, Method, Request};
use serde_json::{Value, json};

const ADMIN: &str = "cng-test-admin-key";
const LLAMA: &str = "@cf/meta/llama-3.1-8b-instruct";

/// One call a backend received: where, which model, what input.
#[derive(Debug, Clone)]
struct Call {
    provider: String,
    model: String,
    input: Value,
    stream: bool,
}

/// Workers AI (`run`) and every configured provider (`run_on`) in one fake: records
/// each call, fails the providers listed in `fail`.
#[derive(Clone, Default)]
struct Fake {
    calls: Arc<Mutex<Vec<Call>>>,
    fail: Arc<Mutex<HashMap<String, ErrorKind>>>,
}

impl Fake {
    fn record(&self, provider: &str, r: &InferenceRequest) -> Result<(), Error> {
        let Input::Json(input) = &r.input else {
            panic!("chat input is JSON")
        };
        self.calls.lock().unwrap().push(Call {
            provider: provider.into(),
            model: r.model.clone(),
            input: input.clone(),
            stream: r.stream,
        });
        match self.fail.lock().unwrap().get(provider) {
            Some(k) => Err(Error::new(*k, format!("{provider} failed"))),
            None => Ok(()),
        }
    }

    fn calls(&self) -> Vec<(String, String)> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|c| (c.provider.clone(), c.model.clone()))
            .collect()
    }

    fn fail(&self, provider: &str, kind: ErrorKind) {
        self.fail.lock().unwrap().insert(provider.into(), kind);
    }
}

impl Backend for Fake {
    async fn run(&self, r: InferenceRequest) -> Result<Output, Error> {
        self.record("workers-ai", &r)?;
        Ok(Output::Json(json!({
            "response": "from workers ai",
            "usage": {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}
        })))
    }

    async fn run_on(&self, p: &ProviderRoute, r: InferenceRequest) -> Result<Output, Error> {
        self.record(&p.name, &r)?;
        let text = format!("from {}", p.name);
        if r.stream {
            let chunk = |delta: Value, finish: Value| {
                format!(
                    "data: {}\n\n",
                    json!({"id": "up-1", "object": "chat.completion.chunk", "created": 1,
                           "model": r.model,
                           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
                )
            };
            let events = vec![
                chunk(json!({"role": "assistant", "content": ""}), Value::Null),
                chunk(json!({"content": text}), Value::Null),
                chunk(json!({}), json!("stop")),
                "data: [DONE]\n\n".to_string(),
            ];
            let s = futures_util::stream::iter(
                events
                    .into_iter()
                    .map(|e| Ok::<_, Error>(Bytes::from(e)))
                    .collect::<Vec<_>>(),
            );
            return Ok(Output::Stream(Box::pin(s)));
        }
        Ok(Output::Json(json!({
            "id": "up-1", "object": "chat.completion", "created": 1, "model": r.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}
        })))
    }
}

/// A backend with no provider routing: the trait's default `run_on`.
#[derive(Clone, Default)]
struct Plain;

impl Backend for Plain {
    async fn run(&self, _: InferenceRequest) -> Result<Output, Error> {
        Ok(Output::Json(json!({"response": "plain"})))
    }
}

struct Reply {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }
    fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("-")
            .to_string()
    }
    fn target(&self) -> Option<&str> {
        self.headers
            .get("x-cng-target")
            .map(|v| v.to_str().unwrap())
    }
}

fn gateway<B: Backend>(backend: B, policy: UrlPolicy) -> Gateway<B, MemoryStore> {
    let services = Services {
        clock: Box::new(FixedClock(1_800_000_000)),
        ids: Box::new(SequentialIds::default()),
        entropy: Box::new(CountingEntropy::default()),
    };
    let config = GatewayConfig {
        admin_key_hash: Some(auth::hash_key(ADMIN)),
        upstream: "workers-ai-rest".into(),
        url_policy: policy,
        ..GatewayConfig::default()
    };
    Gateway::new(backend, MemoryStore::new(), services, config)
}

fn call<B: Backend>(
    g: &Gateway<B, MemoryStore>,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> Reply {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(match body {
            Some(v) => Body::Full(Bytes::from(v.to_string())),
            None => Body::Empty,
        })
        .unwrap();
    block_on(async {
        let (parts, body) = g.handle(req).await.into_parts();
        let body = match body {
            Body::Full(b) => String::from_utf8(b.to_vec()).unwrap(),
            Body::Empty => String::new(),
            Body::Stream(mut s) => {
                let mut out = Vec::new();
                while let Some(chunk) = s.next().await {
                    out.extend_from_slice(&chunk.unwrap());
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

fn chat<B: Backend>(g: &Gateway<B, MemoryStore>, key: &str, model: &str) -> Reply {
    let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    call(g, Method::POST, "/v1/chat/completions", key, Some(body))
}

/// Sets the config's providers, aliases and targets (on top of what is there).
fn configure<B: Backend>(
    g: &Gateway<B, MemoryStore>,
    providers: Value,
    aliases: Value,
    targets: Value,
) -> Reply {
    let mut doc = call(g, Method::GET, "/api/config", ADMIN, None).json();
    doc["providers"] = providers;
    for (k, v) in aliases.as_object().unwrap() {
        doc["aliases"][k] = v.clone();
    }
    doc["targets"] = targets;
    call(g, Method::PUT, "/api/config", ADMIN, Some(doc))
}

fn providers() -> Value {
    json!({
        "openai": {"kind": "openai-compatible", "base_url": "https://api.openai.com/v1", "key": "cng1:AAAA"},
        "anthropic": {"kind": "anthropic", "base_url": "https://api.anthropic.com", "key": "cng1:BBBB"}
    })
}

fn routed() -> (Fake, Gateway<Fake, MemoryStore>) {
    let fake = Fake::default();
    let g = gateway(fake.clone(), UrlPolicy::default());
    let r = configure(
        &g,
        providers(),
        json!({"smart": "openai/gpt-4o", "sonnet": "claude-sonnet-4-5#anthropic"}),
        json!({"fast": ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5", format!("workers-ai/{LLAMA}")]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    (fake, g)
}

#[test]
fn provider_qualified_names_and_provider_aliases_reach_the_provider() {
    let (fake, g) = routed();
    for (name, provider, model) in [
        ("openai/gpt-4o-mini", "openai", "gpt-4o-mini"),
        ("gpt-4o-mini#openai", "openai", "gpt-4o-mini"),
        ("smart", "openai", "gpt-4o"),
        ("sonnet", "anthropic", "claude-sonnet-4-5"),
    ] {
        let r = chat(&g, ADMIN, name);
        assert_eq!(r.status, 200, "{name}: {}", r.body);
        let v = r.json();
        assert_eq!(
            v["choices"][0]["message"]["content"],
            format!("from {provider}")
        );
        // The client sees the name it sent.
        assert_eq!(v["model"], name);
        assert_eq!(r.target(), Some(format!("{provider}/{model}").as_str()));
        let last = fake.calls.lock().unwrap().last().cloned().unwrap();
        assert_eq!(
            (last.provider.as_str(), last.model.as_str()),
            (provider, model)
        );
        // The body passes through in OpenAI's shape.
        assert_eq!(
            last.input["messages"],
            json!([{"role": "user", "content": "hi"}])
        );
    }
    // A Workers AI model still goes to Workers AI, and says so.
    let r = chat(&g, ADMIN, LLAMA);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.target(),
        Some(format!("workers-ai/{LLAMA}").as_str()),
        "every chat answer names its target"
    );
    assert_eq!(fake.calls().last().unwrap().0, "workers-ai");
}

#[test]
fn a_chain_falls_back_on_429_5xx_and_timeouts_and_says_who_served() {
    let (fake, g) = routed();
    // The first target serves when it can.
    let r = chat(&g, ADMIN, "fast");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.target(), Some("openai/gpt-4o-mini"));
    assert_eq!(r.json()["model"], "fast");

    fake.fail("openai", ErrorKind::RateLimit);
    fake.fail("anthropic", ErrorKind::UpstreamTimeout);
    fake.calls.lock().unwrap().clear();
    let r = chat(&g, ADMIN, "fast");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.target(), Some(format!("workers-ai/{LLAMA}").as_str()));
    assert_eq!(
        r.json()["choices"][0]["message"]["content"],
        "from workers ai"
    );
    assert_eq!(
        fake.calls(),
        [
            ("openai".into(), "gpt-4o-mini".into()),
            ("anthropic".into(), "claude-haiku-4-5".into()),
            ("workers-ai".into(), LLAMA.into()),
        ]
    );
    // Each target got the request in its own shape: the providers OpenAI's, Workers
    // AI the translated one (with cng's default max_tokens).
    let calls = fake.calls.lock().unwrap().clone();
    assert!(
        calls[0].input.get("max_tokens").is_none(),
        "{}",
        calls[0].input
    );
    assert!(calls[2].input["max_tokens"].is_u64(), "{}", calls[2].input);

    // Everything down: the last error is the answer, its status kept.
    fake.fail("workers-ai", ErrorKind::Upstream);
    let r = chat(&g, ADMIN, "fast");
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(r.target(), Some(format!("workers-ai/{LLAMA}").as_str()));
}

#[test]
fn a_client_error_is_answered_without_trying_the_next_target() {
    let (fake, g) = routed();
    fake.fail("openai", ErrorKind::InvalidRequest);
    let r = chat(&g, ADMIN, "fast");
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(fake.calls(), [("openai".into(), "gpt-4o-mini".into())]);
    assert_eq!(r.target(), Some("openai/gpt-4o-mini"));
}

#[test]
fn streams_from_a_provider_are_transcoded_and_the_header_is_set() {
    let (fake, g) = routed();
    let body = json!({"model": "openai/gpt-4o-mini", "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]});
    let r = call(&g, Method::POST, "/v1/chat/completions", ADMIN, Some(body));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.target(), Some("openai/gpt-4o-mini"));
    assert!(r.body.contains("from openai"), "{}", r.body);
    assert!(r.body.trim_end().ends_with("data: [DONE]"), "{}", r.body);
    assert!(fake.calls.lock().unwrap()[0].stream);
}

#[test]
fn responses_and_messages_routes_use_providers_too() {
    let (fake, g) = routed();
    let r = call(
        &g,
        Method::POST,
        "/v1/responses",
        ADMIN,
        Some(json!({"model": "smart", "input": "hi"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.target(), Some("openai/gpt-4o"));
    assert!(r.body.contains("from openai"), "{}", r.body);
    let r = call(
        &g,
        Method::POST,
        "/v1/messages",
        ADMIN,
        Some(json!({"model": "sonnet", "max_tokens": 100,
                    "messages": [{"role": "user", "content": "hi"}]})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.target(), Some("anthropic/claude-sonnet-4-5"));
    let v = r.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["content"][0]["text"], "from anthropic");
    let r = call(
        &g,
        Method::POST,
        "/v1/completions",
        ADMIN,
        Some(json!({"model": "fast", "prompt": "hi"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["object"], "text_completion");
    assert_eq!(fake.calls().len(), 3);
}

#[test]
fn usage_is_booked_to_the_target_that_served() {
    let (fake, g) = routed();
    fake.fail("openai", ErrorKind::Upstream);
    assert_eq!(chat(&g, ADMIN, "fast").status, 200);
    assert_eq!(chat(&g, ADMIN, "smart").status, 502);
    let u = call(&g, Method::GET, "/api/usage", ADMIN, None).json();
    let model = |name: &str| {
        u["by_model"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not in {u}"))
    };
    let haiku = model("anthropic/claude-haiku-4-5");
    assert_eq!(haiku["requests"], 1);
    assert_eq!(haiku["input_tokens"], 11);
    let gpt4o = model("openai/gpt-4o");
    assert_eq!(
        (gpt4o["requests"].clone(), gpt4o["errors"].clone()),
        (json!(1), json!(1))
    );
    assert!(
        !u.to_string().contains("\"fast\""),
        "a chain is booked to its targets: {u}"
    );
}

#[test]
fn a_teams_provider_list_removes_targets_and_refuses_the_rest() {
    let (fake, g) = routed();
    let team = |id: &str, providers: Value| {
        let r = call(
            &g,
            Method::POST,
            "/api/teams",
            ADMIN,
            Some(json!({"id": id, "providers": providers})),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["token"].as_str().unwrap().to_string()
    };
    let local = team("local", json!(["workers-ai"]));
    // The chain skips openai and anthropic: nothing is sent to them.
    let r = chat(&g, &local, "fast");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.target(), Some(format!("workers-ai/{LLAMA}").as_str()));
    assert_eq!(fake.calls(), [("workers-ai".into(), LLAMA.into())]);
    let r = chat(&g, &local, "smart");
    assert_eq!((r.status, r.code()), (403, "provider_not_allowed".into()));
    assert_eq!(fake.calls().len(), 1);

    let openai_only = team("oa", json!(["openai"]));
    assert_eq!(chat(&g, &openai_only, "smart").status, 200);
    let r = chat(&g, &openai_only, LLAMA);
    assert_eq!(
        (r.status, r.code()),
        (403, "provider_not_allowed".into()),
        "workers-ai is a provider too"
    );
    // The model list shows what the team can reach.
    let ids = |key: &str| -> Vec<String> {
        call(&g, Method::GET, "/v1/models", key, None).json()["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    };
    let seen = ids(&openai_only);
    assert!(
        seen.contains(&"smart".to_string()) && !seen.contains(&"sonnet".to_string()),
        "{seen:?}"
    );
}

#[test]
fn a_keys_model_list_may_name_the_chain() {
    let (_, g) = routed();
    let r = call(
        &g,
        Method::POST,
        "/api/keys",
        ADMIN,
        Some(json!({"name": "app", "models": ["fast"]})),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let key = r.json()["key"].as_str().unwrap().to_string();
    assert_eq!(chat(&g, &key, "fast").status, 200);
    let r = chat(&g, &key, "smart");
    assert_eq!((r.status, r.code()), (403, "model_not_allowed".into()));
    // A key listing a bare model id does not get a provider's model of that id: the
    // model list and the request path agree.
    let r = call(
        &g,
        Method::POST,
        "/api/keys",
        ADMIN,
        Some(json!({"name": "bare", "models": ["gpt-4o"]})),
    );
    let bare = r.json()["key"].as_str().unwrap().to_string();
    let listed = call(&g, Method::GET, "/v1/models", &bare, None).json();
    assert!(
        !listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "smart"),
        "{listed}"
    );
    assert_eq!(chat(&g, &bare, "smart").status, 403);
}

#[test]
fn the_model_list_shows_routed_names_with_their_targets() {
    let (_, g) = routed();
    let v = call(&g, Method::GET, "/v1/models", ADMIN, None).json();
    let find = |id: &str| {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not listed"))
    };
    assert_eq!(
        find("fast")["targets"],
        json!([
            "openai/gpt-4o-mini",
            "anthropic/claude-haiku-4-5",
            format!("workers-ai/{LLAMA}")
        ])
    );
    assert_eq!(find("fast")["owned_by"], "cng");
    assert_eq!(find("smart")["owned_by"], "openai");
    let one = call(&g, Method::GET, "/v1/models/fast", ADMIN, None);
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["targets"][0], "openai/gpt-4o-mini");
}

#[test]
fn routes_providers_do_not_serve_refuse_provider_names_without_calling() {
    let (fake, g) = routed();
    for (path, body) in [
        (
            "/v1/embeddings",
            json!({"model": "openai/text-embedding-3-small", "input": "hi"}),
        ),
        (
            "/v1/images/generations",
            json!({"model": "smart", "prompt": "a cat"}),
        ),
    ] {
        let r = call(&g, Method::POST, path, ADMIN, Some(body));
        assert_eq!(
            (r.status, r.code()),
            (400, "model_not_supported".into()),
            "{path}: {}",
            r.body
        );
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("chat completions")
        );
    }
    assert!(fake.calls().is_empty());
}

#[test]
fn a_host_without_provider_routing_says_so() {
    let g = gateway(Plain, UrlPolicy::default());
    assert_eq!(configure(&g, providers(), json!({}), json!({})).status, 200);
    let r = chat(&g, ADMIN, "openai/gpt-4o-mini");
    assert_eq!((r.status, r.code()), (503, "provider_unavailable".into()));
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`openai`")
    );
}

#[test]
fn config_rules_for_routing() {
    let fake = Fake::default();
    let g = gateway(fake.clone(), UrlPolicy::default());
    // A chain may not share its name with an alias.
    let r = configure(
        &g,
        providers(),
        json!({"fast": LLAMA}),
        json!({"fast": ["openai/gpt-4o-mini"]}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error"]["param"], "targets.fast");
    // An alias may point at a configured provider's model, not at an unknown one.
    let r = configure(&g, providers(), json!({"x": "nowhere/gpt-4o"}), json!({}));
    assert_eq!(r.json()["error"]["param"], "aliases.x", "{}", r.body);
    let r = configure(&g, providers(), json!({"x": "gpt-4o#nowhere"}), json!({}));
    assert_eq!(r.json()["error"]["param"], "aliases.x", "{}", r.body);
    // A default for embeddings cannot be a chat provider.
    let mut doc = call(&g, Method::GET, "/api/config", ADMIN, None).json();
    doc["providers"] = providers();
    doc["defaults"] = json!({"embeddings": "openai/text-embedding-3-small"});
    let r = call(&g, Method::PUT, "/api/config", ADMIN, Some(doc));
    assert_eq!(
        r.json()["error"]["param"],
        "defaults.embeddings",
        "{}",
        r.body
    );
    // Plain http to loopback: refused by default, accepted when the host allows it
    // (tests with a local fake provider), never to a remote host.
    let local =
        json!({"local": {"kind": "openai-compatible", "base_url": "http://127.0.0.1:9/v1"}});
    let r = configure(&g, local.clone(), json!({}), json!({}));
    assert_eq!(r.json()["error"]["param"], "providers.local.base_url");
    let open = gateway(
        fake,
        UrlPolicy {
            allow_loopback_http: true,
        },
    );
    assert_eq!(configure(&open, local, json!({}), json!({})).status, 200);
    let remote = json!({"r": {"kind": "openai-compatible", "base_url": "http://10.0.0.1/v1"}});
    let r = configure(&open, remote, json!({}), json!({}));
    assert_eq!(r.json()["error"]["param"], "providers.r.base_url");
}

/// Seals by tagging: enough to see that the gateway stores what the sealer returns,
/// names the provider and brings a nonce, and never the plaintext.
struct TagSealer;

impl cng_core::routing::KeySealer for TagSealer {
    fn seal(&self, provider: &str, nonce: [u8; 12], secret: &str) -> Result<String, Error> {
        Ok(format!(
            "cng1:{provider}:{}:{}",
            nonce.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            secret.len()
        ))
    }
}

#[test]
fn provider_keys_are_sealed_by_the_host_and_never_shown() {
    let fake = Fake::default();
    let plain = gateway(fake.clone(), UrlPolicy::default());
    assert_eq!(
        configure(&plain, providers(), json!({}), json!({})).status,
        200
    );
    let put = |g: &Gateway<Fake, MemoryStore>, name: &str, body: Value| {
        call(
            g,
            Method::PUT,
            &format!("/api/providers/{name}/key"),
            ADMIN,
            Some(body),
        )
    };
    // No master key on this host: a 503 saying what to set.
    let r = put(&plain, "openai", json!({"key": "sk-live-123"}));
    assert_eq!((r.status, r.code()), (503, "master_key_missing".into()));
    assert!(!r.body.contains("sk-live-123"));

    let g = gateway(fake, UrlPolicy::default()).with_sealer(Arc::new(TagSealer));
    assert_eq!(configure(&g, providers(), json!({}), json!({})).status, 200);
    let before = call(&g, Method::GET, "/api/config", ADMIN, None).json()["version"].clone();
    let r = put(&g, "openai", json!({"key": "sk-live-123"}));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(
        (v["name"].clone(), v["key_set"].clone()),
        (json!("openai"), json!(true))
    );
    assert!(v["version"].as_u64().unwrap() > before.as_u64().unwrap());
    let config = call(&g, Method::GET, "/api/config", ADMIN, None);
    let stored = config.json()["providers"]["openai"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(stored.starts_with("cng1:openai:"), "{stored}");
    // Other members of the document are kept.
    assert_eq!(config.json()["providers"]["anthropic"]["key"], "cng1:BBBB");
    for path in ["/api/config", "/api/providers", "/api/config/export"] {
        let body = call(&g, Method::GET, path, ADMIN, None).body;
        assert!(!body.contains("sk-live-123"), "{path}");
    }
    let list = call(&g, Method::GET, "/api/providers", ADMIN, None).json();
    assert_eq!(list["data"][1]["name"], "openai");
    assert_eq!(list["data"][1]["key_set"], true);
    assert!(list["data"][1].get("key").is_none(), "{list}");

    // Bad input: named, never echoed; unknown provider: 404.
    for body in [
        json!({"key": ""}),
        json!({"key": "has space"}),
        json!({"key": 7}),
        json!({"other": 1}),
    ] {
        let r = put(&g, "openai", body.clone());
        assert_eq!(
            (r.status, r.json()["error"]["param"].clone()),
            (400, json!("key")),
            "{body}"
        );
        assert!(!r.body.contains("has space"));
    }
    let r = put(&g, "nope", json!({"key": "sk-1"}));
    assert_eq!((r.status, r.code()), (404, "provider_not_found".into()));

    // Removing the key.
    let r = call(&g, Method::DELETE, "/api/providers/openai/key", ADMIN, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["key_set"], false);
    let config = call(&g, Method::GET, "/api/config", ADMIN, None).json();
    assert!(
        config["providers"]["openai"].get("key").is_none(),
        "{config}"
    );
}
