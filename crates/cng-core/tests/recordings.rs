//! Replays the real Workers AI responses in `../shared/workers-ai/recordings` (bodies
//! the live service wrote, recorded by other projects) through the chat pipeline.
//!
//! The bodies are third-party data, so nothing is snapshotted: each is checked against
//! what it says itself — the text, reasoning, tool calls and usage it carries must come
//! out of cng unchanged in meaning. Skips (passing) when the folder is absent; set
//! `CNG_RECORDINGS` to point elsewhere.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure should stop the test"
)]

use std::fs;
use std::path::{Path, PathBuf};

use cng_core::alias::AliasTable;
use cng_core::catalog::Catalog;
use cng_core::chat;
use cng_core::ids::{FixedClock, SequentialIds};
use cng_core::openai::{chat::ChatRequest, parse_json};
use cng_core::workers_ai::envelope;
use serde_json::{Value, json};

fn recordings_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("CNG_RECORDINGS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/workers-ai/recordings")
        });
    dir.is_dir().then_some(dir)
}

fn plan_for(meta: &Value) -> chat::ChatPlan {
    let stream = meta["kind"] == "stream";
    let mut req = meta
        .get("request")
        .filter(|r| r.get("messages").is_some())
        .cloned()
        .unwrap_or_else(|| json!({"messages": [{"role": "user", "content": "hi"}]}));
    req["model"] = meta["model"].clone();
    req["stream"] = json!(stream);
    if stream {
        req["stream_options"] = json!({"include_usage": true});
    }
    // JSON-mode requests are replayed as plain chat: the answer is what is checked.
    if let Some(o) = req.as_object_mut() {
        o.remove("response_format");
    }
    let req = parse_json::<ChatRequest>(req.to_string().as_bytes())
        .unwrap()
        .value;
    let target = AliasTable::default()
        .resolve(&req.model, Catalog::builtin())
        .unwrap();
    chat::plan(&req, &target, &SequentialIds::default(), &FixedClock(0)).unwrap()
}

fn usage_numbers(u: &Value) -> (u64, u64, u64) {
    let n = |k: &str| u[k].as_u64().unwrap_or(0);
    (
        n("prompt_tokens"),
        n("completion_tokens"),
        n("total_tokens"),
    )
}

fn check_json(name: &str, meta: &Value, body: &[u8]) {
    let result = if meta["envelope"] == "full" {
        envelope::parse(200, body).unwrap()
    } else {
        serde_json::from_slice(body).unwrap()
    };
    let plan = plan_for(meta);
    let out = serde_json::to_value(chat::complete(&plan.context, &result).unwrap()).unwrap();
    let msg = &out["choices"][0]["message"];
    assert_eq!(out["model"], meta["model"], "{name}: model echo");

    // What the upstream said, in whichever shape it came.
    let up_msg = &result["choices"][0]["message"];
    let (text, reasoning, calls) = if up_msg.is_object() {
        (
            up_msg["content"].as_str().map(str::to_string),
            up_msg["reasoning_content"]
                .as_str()
                .or(up_msg["reasoning"].as_str())
                .map(str::to_string),
            up_msg["tool_calls"].as_array().cloned().unwrap_or_default(),
        )
    } else {
        (
            result["response"].as_str().map(str::to_string),
            None,
            result["tool_calls"].as_array().cloned().unwrap_or_default(),
        )
    };
    let out_calls = msg["tool_calls"].as_array().cloned().unwrap_or_default();
    assert_eq!(out_calls.len(), calls.len(), "{name}: tool call count");
    for (o, u) in out_calls.iter().zip(&calls) {
        let uf = if u["function"].is_object() {
            &u["function"]
        } else {
            u
        };
        assert_eq!(o["function"]["name"], uf["name"], "{name}: tool name");
        let args: Value =
            serde_json::from_str(o["function"]["arguments"].as_str().unwrap()).unwrap();
        let up_args = match &uf["arguments"] {
            Value::String(s) => serde_json::from_str(s).unwrap(),
            v => v.clone(),
        };
        assert_eq!(args, up_args, "{name}: tool arguments");
        assert!(
            o["id"].as_str().is_some_and(|s| !s.is_empty()),
            "{name}: tool id"
        );
        assert_eq!(o["type"], "function");
    }
    if calls.is_empty() {
        assert_eq!(
            msg["content"].as_str(),
            Some(text.unwrap_or_default().as_str()),
            "{name}: content"
        );
        assert_eq!(
            out["choices"][0]["finish_reason"],
            result["choices"][0]["finish_reason"]
                .as_str()
                .unwrap_or("stop"),
            "{name}: finish"
        );
    } else {
        assert!(
            msg["content"].is_null(),
            "{name}: content must be null beside tool calls"
        );
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
    }
    assert_eq!(
        msg["reasoning_content"].as_str(),
        reasoning.as_deref(),
        "{name}: reasoning"
    );
    assert!(
        !msg["content"].as_str().unwrap_or("").contains("<think>"),
        "{name}: think leak"
    );
    if result["usage"].is_object() {
        assert_eq!(
            usage_numbers(&out["usage"]),
            usage_numbers(&result["usage"]),
            "{name}: usage"
        );
        if let Some(c) = result["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64() {
            assert_eq!(
                out["usage"]["prompt_tokens_details"]["cached_tokens"], c,
                "{name}: cached"
            );
        }
    }
}

fn transcode(plan: &chat::ChatPlan, chunks: &[&[u8]]) -> String {
    let mut t = chat::StreamTranscoder::new(plan.context.clone());
    let mut out = Vec::new();
    for c in chunks {
        out.extend(t.push(c));
    }
    out.extend(t.finish());
    String::from_utf8(out).unwrap()
}

fn events(sse: &str) -> Vec<Value> {
    sse.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn check_stream(name: &str, meta: &Value, body: &[u8]) {
    let plan = plan_for(meta);
    let out = transcode(&plan, &[body]);
    for i in 0..=body.len() {
        assert_eq!(
            transcode(&plan, &[&body[..i], &body[i..]]),
            out,
            "{name}: split at {i}"
        );
    }
    assert!(out.ends_with("data: [DONE]\n\n"), "{name}: [DONE] last");
    let (mut up_text, mut up_reasoning, mut native_usage) = (String::new(), String::new(), None);
    for e in events(std::str::from_utf8(body).unwrap()) {
        if let Some(d) = e["choices"][0].get("delta") {
            up_text.push_str(d["content"].as_str().unwrap_or(""));
            up_reasoning.push_str(
                d["reasoning_content"]
                    .as_str()
                    .or(d["reasoning"].as_str())
                    .unwrap_or(""),
            );
        } else if e.get("choices").is_none() {
            up_text.push_str(e["response"].as_str().unwrap_or(""));
            if e["usage"].is_object() {
                native_usage = Some(e["usage"].clone());
            }
        }
    }
    let (mut text, mut reasoning, mut usage) = (String::new(), String::new(), None);
    for e in events(&out) {
        assert!(e.get("error").is_none(), "{name}: error event {e}");
        assert_eq!(e["object"], "chat.completion.chunk");
        if let Some(d) = e["choices"][0].get("delta") {
            text.push_str(d["content"].as_str().unwrap_or(""));
            reasoning.push_str(d["reasoning_content"].as_str().unwrap_or(""));
        }
        if e["usage"].is_object() {
            usage = Some(e["usage"].clone());
        }
    }
    assert_eq!(text, up_text, "{name}: streamed text");
    assert_eq!(reasoning, up_reasoning, "{name}: streamed reasoning");
    if let Some(n) = native_usage {
        // The native final event is cumulative and wins over per-chunk usage.
        assert_eq!(
            usage_numbers(usage.as_ref().unwrap()),
            usage_numbers(&n),
            "{name}: usage"
        );
    }
}

#[test]
fn real_workers_ai_bodies_translate() {
    let Some(dir) = recordings_dir() else {
        eprintln!("recordings folder absent: skipped");
        return;
    };
    let mut checked = 0;
    let mut entries: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for case in entries.iter().filter(|p| p.join("meta.json").is_file()) {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let meta: Value =
            serde_json::from_slice(&fs::read(case.join("meta.json")).unwrap()).unwrap();
        let body_file = case.join(meta["upstream_file"].as_str().unwrap_or(
            if meta["kind"] == "stream" {
                "upstream.sse"
            } else {
                "upstream.json"
            },
        ));
        let body = fs::read(body_file).unwrap();
        match (meta["endpoint"].as_str(), meta["kind"].as_str()) {
            (Some("chat"), Some("stream")) => check_stream(&name, &meta, &body),
            (Some("chat"), _) => check_json(&name, &meta, &body),
            // Other endpoints come with their modules; the envelope must read.
            _ if meta["envelope"] == "full" => {
                assert!(envelope::parse(200, &body).is_ok(), "{name}: envelope");
            }
            _ => continue,
        }
        checked += 1;
    }
    assert!(checked >= 18, "only {checked} recordings checked");
}
