//! Runs every case under `fixtures/{embeddings,images,audio,moderations,translations}/`
//! through the real gateway (an in-memory store, a fixed clock, a backend that answers
//! from the case's files) and snapshots what cng sends upstream and what the client
//! gets back (see docs/fixtures.md, "Media cases").

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure should stop the test"
)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use cng_core::backend::{Backend, InferenceRequest, Input, Output};
use cng_core::error::Error;
use cng_core::ids::{CountingEntropy, FixedClock, SequentialIds};
use cng_core::multipart::{self, FormWriter};
use cng_core::store::MemoryStore;
use cng_core::workers_ai::envelope;
use cng_core::{Body, Gateway, GatewayConfig, Services};
use futures_executor::block_on;
use futures_util::StreamExt;
use http::Request;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The clock every fixture runs at: 2025-06-15T00:00:00Z.
const NOW: u64 = 1_749_945_600;
const ADMIN: &str = "cng-fixture-admin-key";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    description: String,
    /// The Workers AI model whose schema the upstream bodies follow, or `none`.
    schema: String,
    schema_source: String,
    /// `POST /v1/embeddings`, ...
    endpoint: String,
    /// For `upstream.bin`: its media type.
    #[serde(default)]
    upstream_content_type: Option<String>,
    /// The bug of the reference product this case pins, if any.
    #[serde(default)]
    reference_bug: Option<String>,
}

/// One upstream answer of a case.
#[derive(Clone)]
enum Answer {
    Json(Value),
    Bytes(Bytes, String),
    Error(Error),
}

/// Answers calls in order from the case's files and records them.
#[derive(Clone, Default)]
struct Fixture {
    answers: Arc<Mutex<Vec<Answer>>>,
    seen: Arc<Mutex<Vec<InferenceRequest>>>,
}

impl Backend for Fixture {
    async fn run(&self, request: InferenceRequest) -> Result<Output, Error> {
        self.seen.lock().unwrap().push(request);
        let mut answers = self.answers.lock().unwrap();
        // The last answer repeats (one file serves every call of a case).
        let a = if answers.len() > 1 {
            answers.remove(0)
        } else {
            answers
                .first()
                .cloned()
                .expect("the case called the upstream but has no upstream file")
        };
        match a {
            Answer::Json(v) => Ok(Output::Json(v)),
            Answer::Bytes(body, content_type) => Ok(Output::Bytes { body, content_type }),
            Answer::Error(e) => Err(e),
        }
    }
}

fn answers(dir: &Path, case: &Case) -> Vec<Answer> {
    let wrap = |v: Value| {
        // Through the REST envelope, as the REST backend reads it.
        let env = serde_json::json!({"result": v, "success": true, "errors": [], "messages": []});
        envelope::parse(200, &serde_json::to_vec(&env).unwrap()).unwrap()
    };
    let mut out = Vec::new();
    for i in 1.. {
        let p = dir.join(format!("upstream-{i}.json"));
        if !p.exists() {
            break;
        }
        out.push(Answer::Json(wrap(read_json(&p))));
    }
    if let Ok(b) = fs::read(dir.join("upstream.json")) {
        out.push(Answer::Json(wrap(serde_json::from_slice(&b).unwrap())));
    }
    if let Ok(b) = fs::read(dir.join("upstream.bin")) {
        let ct = case
            .upstream_content_type
            .clone()
            .expect("upstream.bin needs upstream_content_type in case.json");
        out.push(Answer::Bytes(Bytes::from(b), ct));
    }
    if let Ok(b) = fs::read(dir.join("upstream-error.json")) {
        let v: Value = serde_json::from_slice(&b).unwrap();
        let status = v["status"].as_u64().unwrap() as u16;
        let e = envelope::parse(status, &serde_json::to_vec(&v["body"]).unwrap())
            .expect_err("an upstream error case must fail");
        out.push(Answer::Error(e));
    }
    out
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&fs::read(p).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The request: `request.json` as a JSON body, or, when it holds `{"form": {...}}`, a
/// multipart form (a `{"file": NAME, "content_type": T}` value uploads the case's file
/// NAME; an array repeats the field).
fn request(dir: &Path, endpoint: &str) -> Request<Body> {
    let (method, path) = endpoint.split_once(' ').unwrap();
    let v = read_json(&dir.join("request.json"));
    let b = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("host", "cng.test");
    if let Some(form) = v.get("form").and_then(Value::as_object) {
        let mut w = FormWriter::new("fixture-boundary-7MA4YWxkTrZu0gW");
        for (k, val) in form {
            let vals = match val {
                Value::Array(a) => a.clone(),
                other => vec![other.clone()],
            };
            for val in vals {
                w = match &val {
                    Value::Object(f) => {
                        let name = f["file"].as_str().unwrap();
                        let data = fs::read(dir.join(name)).unwrap();
                        w.file(k, name, f["content_type"].as_str().unwrap(), &data)
                    }
                    Value::String(s) => w.text(k, s),
                    other => w.text(k, &other.to_string()),
                };
            }
        }
        let (body, ct) = w.finish();
        return b.header("content-type", ct).body(Body::Full(body)).unwrap();
    }
    b.header("content-type", "application/json")
        .body(Body::Full(Bytes::from(serde_json::to_vec(&v).unwrap())))
        .unwrap()
}

fn gateway(backend: Fixture) -> Gateway<Fixture, MemoryStore> {
    let services = Services {
        clock: Box::new(FixedClock(NOW)),
        ids: Box::new(SequentialIds::default()),
        entropy: Box::new(CountingEntropy::default()),
    };
    let config = GatewayConfig {
        admin_key_hash: Some(cng_core::auth::hash_key(ADMIN)),
        ..GatewayConfig::default()
    };
    Gateway::new(backend, MemoryStore::new(), services, config)
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap()
}

fn digest(b: &[u8]) -> String {
    let h = Sha256::digest(b);
    h.iter().take(8).map(|x| format!("{x:02x}")).collect()
}

/// JSON with long base64 and byte arrays summarised (their digest stays in the snapshot).
fn summarise(v: &Value) -> Value {
    match v {
        Value::String(s) if s.len() > 200 && !s.contains(' ') => Value::String(format!(
            "<{} chars, sha256 {}…>",
            s.len(),
            digest(s.as_bytes())
        )),
        Value::Array(a) if a.len() > 24 && a.iter().all(Value::is_u64) => {
            let bytes: Vec<u8> = a.iter().map(|x| x.as_u64().unwrap() as u8).collect();
            Value::String(format!(
                "<u8 array of {} bytes, sha256 {}…>",
                bytes.len(),
                digest(&bytes)
            ))
        }
        Value::Array(a) if a.len() > 16 && a.iter().all(Value::is_number) => {
            let text = serde_json::to_string(a).unwrap();
            Value::String(format!(
                "<{} numbers: {}, {}, {}, …, sha256 {}…>",
                a.len(),
                a[0],
                a[1],
                a[2],
                digest(text.as_bytes())
            ))
        }
        Value::Array(a) => Value::Array(a.iter().map(summarise).collect()),
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), summarise(v))).collect())
        }
        other => other.clone(),
    }
}

fn describe_input(input: &Input) -> String {
    match input {
        Input::Json(v) => pretty(&summarise(v)),
        Input::Bytes { body, content_type } if content_type.starts_with("multipart/form-data") => {
            let b = multipart::boundary(Some(content_type)).unwrap();
            let form = block_on(multipart::read(Body::Full(body.clone()), b, usize::MAX)).unwrap();
            let mut s = String::from("multipart/form-data:\n");
            for p in &form.parts {
                match &p.filename {
                    Some(f) => s.push_str(&format!(
                        "  {}: file {f} ({}, {} bytes, sha256 {}…)\n",
                        p.name,
                        p.content_type.as_deref().unwrap_or("-"),
                        p.data.len(),
                        digest(&p.data)
                    )),
                    None => s.push_str(&format!(
                        "  {}: {}\n",
                        p.name,
                        String::from_utf8_lossy(&p.data)
                    )),
                }
            }
            s
        }
        Input::Bytes { body, content_type } => format!(
            "raw body: {content_type}, {} bytes, sha256 {}…",
            body.len(),
            digest(body)
        ),
    }
}

async fn read_body(b: Body) -> Bytes {
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

fn describe_response(status: u16, ct: &str, body: &[u8]) -> String {
    if ct.starts_with("application/json") {
        let v: Value = serde_json::from_slice(body).unwrap();
        format!(
            "== response: HTTP {status} ({ct})\n{}\n",
            pretty(&summarise(&v))
        )
    } else if ct.starts_with("text/") {
        format!(
            "== response: HTTP {status} ({ct})\n{}\n",
            String::from_utf8_lossy(body)
        )
    } else {
        format!(
            "== response: HTTP {status} ({ct})\n<{} bytes, sha256 {}…>\n",
            body.len(),
            digest(body)
        )
    }
}

fn run_case(dir: &Path, case: &Case) -> String {
    let backend = Fixture::default();
    *backend.answers.lock().unwrap() = answers(dir, case);
    let has_upstream = !backend.answers.lock().unwrap().is_empty();
    let g = gateway(backend.clone());
    let resp = block_on(g.handle(request(dir, &case.endpoint)));
    let mut doc = format!("== request: {}\n", case.endpoint);
    let seen = backend.seen.lock().unwrap().clone();
    assert_eq!(
        seen.is_empty(),
        !has_upstream,
        "{}: a case has upstream files exactly when cng calls the upstream",
        dir.display()
    );
    for (i, r) in seen.iter().enumerate() {
        doc.push_str(&format!(
            "== upstream {}: POST /ai/run/{} (task: {})\n{}\n",
            i + 1,
            r.model,
            r.task.label(),
            describe_input(&r.input).trim_end()
        ));
        if case.schema != "none" {
            assert_eq!(
                r.model,
                case.schema,
                "{}: schema names the model called",
                dir.display()
            );
        }
    }
    let (parts, body) = resp.into_parts();
    let log = parts
        .extensions
        .get::<cng_core::RequestLog>()
        .cloned()
        .unwrap_or_default();
    let ct = parts
        .headers
        .get("content-type")
        .map_or("-".to_string(), |v| v.to_str().unwrap().to_string());
    let body = block_on(read_body(body));
    doc.push_str(&describe_response(parts.status.as_u16(), &ct, &body));
    if !log.dropped.is_empty() {
        doc.push_str(&format!("== dropped: {}\n", log.dropped.join(", ")));
    }
    if !log.ignored.is_empty() {
        doc.push_str(&format!("== ignored: {}\n", log.ignored.join(", ")));
    }
    // Image links are fetched back from the gateway.
    if ct.starts_with("application/json") {
        let v: Value = serde_json::from_slice(&body).unwrap();
        for url in v["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["url"].as_str())
        {
            let path = url
                .strip_prefix("http://cng.test")
                .expect("link on the request's host");
            let r = block_on(g.handle(Request::get(path).body(Body::Empty).unwrap()));
            let h = r.headers();
            doc.push_str(&format!(
                "== GET {path}: HTTP {} {} ({})\n",
                r.status().as_u16(),
                h["content-type"].to_str().unwrap(),
                h["cache-control"].to_str().unwrap()
            ));
        }
        if let Some(b64) = v["data"][0]["b64_json"].as_str() {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            doc.push_str(&format!(
                "== b64_json[0]: {} bytes, sha256 {}…\n",
                bytes.len(),
                digest(&bytes)
            ));
        }
    }
    doc
}

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

#[test]
fn media_fixtures() {
    let mut count = 0;
    insta::glob!(
        "../../../fixtures",
        "{embeddings,images,audio,moderations,translations}/*/case.json",
        |path| {
            count += 1;
            let dir = path.parent().unwrap();
            let case: Case = serde_json::from_slice(&fs::read(path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(
                !case.schema_source.is_empty(),
                "{}: no schema_source",
                path.display()
            );
            let doc = run_case(dir, &case);
            let bug = case
                .reference_bug
                .map(|b| format!(" [reference bug: {b}]"))
                .unwrap_or_default();
            insta::with_settings!({
                description => format!("{} [schema: {}]{bug}", case.description, case.schema),
                omit_expression => true,
                prepend_module_to_snapshot => false,
            }, {
                insta::assert_snapshot!(doc);
            });
        }
    );
    assert!(
        count >= 40,
        "only {count} media cases under {}",
        fixtures_root().display()
    );
}
