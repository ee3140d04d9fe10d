//! The media endpoints through the gateway, beyond the fixture cases: image links that
//! expire, the upload limit, speech streamed through, the two embedding encodings
//! decoding to the same floats, and pass-through to OpenAI-compatible upstreams.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use cng_core::backend::{Backend, InferenceRequest, Input, Output};
use cng_core::catalog::Task;
use cng_core::error::Error;
use cng_core::ids::{Clock, CountingEntropy, SequentialIds};
use cng_core::multipart::FormWriter;
use cng_core::store::MemoryStore;
use cng_core::{Body, Gateway, GatewayConfig, Services};
use futures_executor::block_on;
use futures_util::StreamExt;
use http::{Request, Response};
use serde_json::{Value, json};

const ADMIN: &str = "cng-media-admin-key";
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR fixture";

/// A clock tests can move.
#[derive(Clone)]
struct Moving(Arc<AtomicU64>);

impl Clock for Moving {
    fn unix_seconds(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Answers every call with a fresh copy of one output, and records the calls.
#[derive(Clone)]
struct Fixed {
    answer: Arc<dyn Fn() -> Output + Send + Sync>,
    seen: Arc<Mutex<Vec<InferenceRequest>>>,
}

impl Fixed {
    fn new(answer: impl Fn() -> Output + Send + Sync + 'static) -> Self {
        Self {
            answer: Arc::new(answer),
            seen: Arc::default(),
        }
    }
}

impl Backend for Fixed {
    async fn run(&self, request: InferenceRequest) -> Result<Output, Error> {
        self.seen.lock().unwrap().push(request);
        Ok((self.answer)())
    }
}

fn gateway(backend: Fixed, clock: Moving, config: GatewayConfig) -> Gateway<Fixed, MemoryStore> {
    let services = Services {
        clock: Box::new(clock),
        ids: Box::new(SequentialIds::default()),
        entropy: Box::new(CountingEntropy::default()),
    };
    let config = GatewayConfig {
        admin_key_hash: Some(cng_core::auth::hash_key(ADMIN)),
        ..config
    };
    Gateway::new(backend, MemoryStore::new(), services, config)
}

fn post_json(path: &str, body: Value) -> Request<Body> {
    Request::post(path)
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", "application/json")
        .header("host", "cng.test")
        .body(Body::Full(Bytes::from(body.to_string())))
        .unwrap()
}

fn post_form(path: &str, w: FormWriter) -> Request<Body> {
    let (body, ct) = w.finish();
    Request::post(path)
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", ct)
        .body(Body::Full(body))
        .unwrap()
}

async fn bytes_of(b: Body) -> Bytes {
    match b {
        Body::Empty => Bytes::new(),
        Body::Full(b) => b,
        Body::Stream(mut s) => {
            let mut out = Vec::new();
            while let Some(c) = s.next().await {
                out.extend_from_slice(&c.unwrap());
            }
            Bytes::from(out)
        }
    }
}

fn json_of(r: Response<Body>) -> (u16, Value) {
    let status = r.status().as_u16();
    let b = block_on(bytes_of(r.into_body()));
    (status, serde_json::from_slice(&b).unwrap())
}

fn wav() -> Vec<u8> {
    let mut v = b"RIFF\x24\x10\0\0WAVEfmt ".to_vec();
    v.resize(4096, 0);
    v
}

#[test]
fn image_links_expire_after_the_ttl() {
    let now = Arc::new(AtomicU64::new(1_700_000_000));
    let backend = Fixed::new(|| Output::Bytes {
        body: Bytes::from_static(PNG),
        content_type: "image/png".into(),
    });
    let g = gateway(backend, Moving(now.clone()), GatewayConfig::default());
    let body = json!({"model": "@cf/stabilityai/stable-diffusion-xl-base-1.0", "prompt": "a cat"});
    let (status, v) = json_of(block_on(
        g.handle(post_json("/v1/images/generations", body)),
    ));
    assert_eq!(status, 200, "{v}");
    let url = v["data"][0]["url"].as_str().unwrap();
    let path = url.strip_prefix("http://cng.test").unwrap().to_string();
    let id = path.strip_prefix("/img/").unwrap();
    assert_eq!(id.len(), 43, "32 random bytes, base64url");

    let get = |p: &str| block_on(g.handle(Request::get(p).body(Body::Empty).unwrap()));
    let r = get(&path);
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(
        r.headers()["cache-control"],
        "private, max-age=3600, immutable"
    );
    assert_eq!(&block_on(bytes_of(r.into_body()))[..], PNG);

    now.fetch_add(3599, Ordering::Relaxed);
    assert_eq!(
        get(&path).status().as_u16(),
        200,
        "still there a second before"
    );
    now.fetch_add(1, Ordering::Relaxed);
    let (status, v) = json_of(get(&path));
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (404, Some("image_not_found"))
    );
    assert!(
        block_on(cng_core::store::Store::list(g.store(), "img"))
            .unwrap()
            .is_empty(),
        "expired records are deleted"
    );
    assert_eq!(get("/img/..%2Fkeys").status().as_u16(), 404);
}

#[test]
fn uploads_over_the_limit_are_413() {
    let clock = Moving(Arc::new(AtomicU64::new(1_700_000_000)));
    let backend = Fixed::new(|| Output::Json(json!({"text": "hi"})));
    let config = GatewayConfig {
        max_upload_bytes: 1000,
        ..GatewayConfig::default()
    };
    let g = gateway(backend.clone(), clock, config);
    let form =
        FormWriter::new("b")
            .text("model", "whisper-1")
            .file("file", "a.wav", "audio/wav", &wav());
    let (status, v) = json_of(block_on(
        g.handle(post_form("/v1/audio/transcriptions", form)),
    ));
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (413, Some("request_too_large"))
    );
    assert!(backend.seen.lock().unwrap().is_empty());

    // A JSON body on an upload route: 415 saying what to send.
    let (status, _) = json_of(block_on(
        g.handle(post_json("/v1/audio/transcriptions", json!({}))),
    ));
    assert_eq!(status, 415);
}

#[test]
fn speech_is_streamed_through_not_buffered() {
    let clock = Moving(Arc::new(AtomicU64::new(1_700_000_000)));
    let backend = Fixed::new(|| {
        let chunks = [&b"ID3\x03"[..], &b"\xff\xfb\x90\x64"[..], &b"rest"[..]];
        Output::Stream(Box::pin(futures_util::stream::iter(
            chunks.into_iter().map(|c| Ok(Bytes::from_static(c))),
        )))
    });
    let g = gateway(backend, clock, GatewayConfig::default());
    let r = block_on(g.handle(post_json(
        "/v1/audio/speech",
        json!({"model": "tts-1", "input": "hello", "voice": "alloy"}),
    )));
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "audio/mpeg");
    let body = r.into_body();
    assert!(
        matches!(body, Body::Stream(_)),
        "the upstream stream is passed on as a stream"
    );
    assert_eq!(
        &block_on(bytes_of(body))[..],
        b"ID3\x03\xff\xfb\x90\x64rest"
    );
}

#[test]
fn base64_and_float_decode_to_the_same_floats() {
    let clock = Moving(Arc::new(AtomicU64::new(1_700_000_000)));
    let vector = json!([
        0.1,
        -0.333333333333,
        1e-8,
        std::f64::consts::FRAC_1_SQRT_2,
        -1.0
    ]);
    let backend =
        Fixed::new(move || Output::Json(json!({"shape": [1, 5], "data": [vector.clone()]})));
    let g = gateway(backend, clock, GatewayConfig::default());
    let ask = |fmt: &str| {
        let (status, v) = json_of(block_on(g.handle(post_json(
            "/v1/embeddings",
            json!({"model": "text-embedding-3-small", "input": "x", "encoding_format": fmt}),
        ))));
        assert_eq!(status, 200, "{v}");
        v["data"][0]["embedding"].clone()
    };
    let floats: Vec<f64> = ask("float")
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(ask("base64").as_str().unwrap())
        .unwrap();
    let decoded: Vec<f64> = raw
        .chunks(4)
        .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())))
        .collect();
    assert_eq!(floats, decoded, "exactly equal, not merely close");
    assert_eq!(decoded.len(), 5);
}

#[test]
fn openai_compatible_upstreams_get_the_request_through() {
    let clock = Moving(Arc::new(AtomicU64::new(1_700_000_000)));
    let backend = Fixed::new(|| {
        Output::Json(json!({"object": "list", "model": "upstream-name", "data": []}))
    });
    let config = GatewayConfig {
        open_models: true,
        aliases: cng_core::alias::AliasTable::empty(),
        ..GatewayConfig::default()
    };
    let g = gateway(backend.clone(), clock, config);
    let (status, v) = json_of(block_on(g.handle(post_json(
        "/v1/embeddings",
        json!({"model": "text-embedding-3-small", "input": ["a"], "encoding_format": "base64"}),
    ))));
    assert_eq!(status, 200);
    assert_eq!(v["model"], "text-embedding-3-small");
    let form =
        FormWriter::new("b")
            .text("model", "whisper-1")
            .file("file", "a.wav", "audio/wav", &wav());
    block_on(g.handle(post_form("/v1/audio/translations", form)));
    let seen = backend.seen.lock().unwrap();
    assert_eq!(seen[0].task, Task::TextEmbeddings);
    assert_eq!(
        seen[0].input,
        Input::Json(json!({"input": ["a"], "encoding_format": "base64"}))
    );
    assert_eq!(
        seen[1].task,
        Task::Translation,
        "audio translations go to /audio/translations"
    );
    let Input::Bytes { body, content_type } = &seen[1].input else {
        panic!("a multipart upload")
    };
    assert!(content_type.starts_with("multipart/form-data; boundary="));
    let text = String::from_utf8_lossy(body);
    assert!(
        text.contains("name=\"model\"\r\n\r\nwhisper-1\r\n") && text.contains("filename=\"a.wav\"")
    );
}

#[test]
fn models_list_media_models_and_spoofing_keys_see_openai_names_only() {
    let clock = Moving(Arc::new(AtomicU64::new(1_700_000_000)));
    let g = gateway(
        Fixed::new(|| Output::Json(json!({}))),
        clock.clone(),
        GatewayConfig::default(),
    );
    let get = |path: &str, key: &str| {
        json_of(block_on(
            g.handle(
                Request::get(path)
                    .header("authorization", format!("Bearer {key}"))
                    .body(Body::Empty)
                    .unwrap(),
            ),
        ))
    };
    let (_, all) = get("/v1/models", ADMIN);
    let find = |id: &str| {
        all["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} is not listed"))
    };
    let aura = find("@cf/deepgram/aura-2-en");
    assert_eq!(aura["task"], "text-to-speech");
    assert_eq!(aura["aliases"], json!(["tts-1", "tts-1-hd"]));
    assert_eq!(
        find("whisper-1")["alias_for"],
        "@cf/openai/whisper-large-v3-turbo"
    );
    assert_eq!(find("@cf/baai/bge-m3")["context_window"], 60000);
    for id in [
        "@cf/meta/llama-guard-3-8b",
        "@cf/meta/m2m100-1.2b",
        "@cf/leonardo/phoenix-1.0",
    ] {
        find(id);
    }

    let (key, _) = block_on(cng_core::auth::create_key(
        g.store(),
        &CountingEntropy::default(),
        &clock,
        cng_core::auth::NewKey {
            name: "spoofed".into(),
            role: cng_core::auth::Role::Client,
            models: None,
            rpm: None,
            expires: None,
        },
    ))
    .unwrap();
    let patch = Request::builder()
        .method("PATCH")
        .uri("/api/keys/spoofed")
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", "application/json")
        .body(Body::Full(Bytes::from(json!({"spoof": true}).to_string())))
        .unwrap();
    assert_eq!(block_on(g.handle(patch)).status().as_u16(), 200);
    let (status, list) = get("/v1/models", &key);
    assert_eq!(status, 200);
    let data = list["data"].as_array().unwrap();
    assert!(data.iter().any(|m| m["id"] == "whisper-1"));
    for m in data {
        assert_eq!(m["owned_by"], "openai", "{m}");
        assert!(m.get("alias_for").is_none(), "{m}");
        assert!(!m["id"].as_str().unwrap().starts_with("@cf/"), "{m}");
    }
    assert_eq!(get("/v1/models/tts-1", &key).0, 200);
    assert_eq!(get("/v1/models/@cf/deepgram/aura-2-en", &key).0, 404);
}
