//! Runs every case under `fixtures/messages/` through the Anthropic Messages
//! translation and snapshots the upstream input cng sends and the Anthropic output it
//! returns (see docs/fixtures.md). Errors are snapshotted in Anthropic's error shape.
//!
//! Stream cases are replayed split at every byte boundary and one byte at a time, and
//! every stream is checked against Anthropic's protocol: named events whose `type` is
//! the event name, `message_start` first, content blocks started in index order before
//! their deltas and stopped once, `message_delta` then `message_stop` last (or an
//! `error` event), and tool inputs that add up to JSON objects.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure should stop the test"
)]

use std::fs;
use std::path::Path;

use cng_core::alias::AliasTable;
use cng_core::anthropic::{self, MessagesPlan, MessagesRequest, tokens};
use cng_core::backend::Input;
use cng_core::catalog::{Catalog, Task};
use cng_core::error::Error;
use cng_core::ids::{FixedClock, SequentialIds};
use cng_core::openai::parse_json;
use cng_core::workers_ai::envelope;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Case {
    description: String,
    schema: String,
    schema_source: String,
    stream: bool,
    #[serde(default)]
    endpoint: Option<String>,
}

/// The clock every fixture runs at: 2025-06-15T00:00:00Z.
const NOW: u64 = 1_749_945_600;

fn pretty(v: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(v).unwrap()
}

fn error_section(e: &Error) -> String {
    let body: Value = serde_json::from_slice(&anthropic::error::to_json(e, None)).unwrap();
    format!(
        "== error: HTTP {}\n{}\n",
        e.status().as_u16(),
        pretty(&body)
    )
}

fn parse(body: &[u8]) -> Result<MessagesRequest, Error> {
    Ok(parse_json::<MessagesRequest>(body)?.value)
}

fn plan_case(body: &[u8]) -> Result<MessagesPlan, Error> {
    let req = parse(body)?;
    let target = AliasTable::default().resolve_for(
        &req.model,
        Catalog::builtin(),
        &[Task::TextGeneration, Task::ImageToText],
    )?;
    anthropic::plan(&req, &target, &SequentialIds::default(), &FixedClock(NOW))
}

fn transcode(plan: &MessagesPlan, chunks: &[&[u8]]) -> String {
    let mut t = anthropic::transcoder(plan);
    let mut out = Vec::new();
    for c in chunks {
        out.extend(t.push(c));
    }
    out.extend(t.finish());
    String::from_utf8(out).unwrap()
}

/// Checks an Anthropic stream against the protocol, as the official SDK reads it.
fn check_protocol(sse: &str, what: &str) {
    let frames: Vec<(String, Value)> = sse
        .split("\n\n")
        .filter(|f| !f.is_empty())
        .map(|f| {
            let (ev, data) = f.split_once('\n').expect("event and data lines");
            let name = ev
                .strip_prefix("event: ")
                .expect("an event line")
                .to_string();
            let data = data.strip_prefix("data: ").expect("a data line");
            (name, serde_json::from_str(data).unwrap())
        })
        .collect();
    assert_eq!(frames[0].0, "message_start", "{what}");
    // (type, open, accumulated tool JSON)
    let mut blocks: Vec<(String, bool, String)> = Vec::new();
    let mut stop_reason = Value::Null;
    for (i, (name, data)) in frames.iter().enumerate() {
        assert_eq!(data["type"], name.as_str(), "{what}: event {i}");
        let index = data["index"].as_u64().map(|n| n as usize);
        match name.as_str() {
            "message_start" => {
                assert_eq!(i, 0, "{what}: one message_start, first");
                assert_eq!(data["message"]["content"], serde_json::json!([]), "{what}");
            }
            "content_block_start" => {
                assert_eq!(index, Some(blocks.len()), "{what}: blocks start in order");
                assert!(
                    blocks.iter().all(|b| !b.1),
                    "{what}: the previous block is stopped first"
                );
                let kind = data["content_block"]["type"].as_str().unwrap().to_string();
                blocks.push((kind, true, String::new()));
            }
            "content_block_delta" => {
                let b = &mut blocks[index.unwrap()];
                match data["delta"]["type"].as_str().unwrap() {
                    "text_delta" => assert_eq!(b.0, "text", "{what}"),
                    "thinking_delta" => assert_eq!(b.0, "thinking", "{what}"),
                    "input_json_delta" => {
                        assert_eq!(b.0, "tool_use", "{what}");
                        b.2.push_str(data["delta"]["partial_json"].as_str().unwrap());
                    }
                    other => panic!("{what}: unexpected delta {other}"),
                }
            }
            "content_block_stop" => {
                let b = &mut blocks[index.unwrap()];
                assert!(b.1, "{what}: block {index:?} stopped twice");
                b.1 = false;
            }
            "message_delta" => {
                assert!(
                    blocks.iter().all(|b| !b.1),
                    "{what}: blocks open at the end"
                );
                assert!(data["usage"]["output_tokens"].is_u64(), "{what}");
                stop_reason = data["delta"]["stop_reason"].clone();
            }
            "message_stop" => {
                assert_eq!(i, frames.len() - 1, "{what}: message_stop is last");
                assert_eq!(frames[i - 1].0, "message_delta", "{what}");
            }
            "error" => {
                assert_eq!(i, frames.len() - 1, "{what}: error is last");
                assert!(data["error"]["type"].is_string(), "{what}");
                return;
            }
            other => panic!("{what}: unexpected event {other}"),
        }
    }
    assert_eq!(frames.last().unwrap().0, "message_stop", "{what}");
    for b in &blocks {
        if b.0 == "tool_use" {
            let v: Value = serde_json::from_str(&b.2).unwrap_or_else(|e| {
                panic!("{what}: tool input {:?} is not JSON: {e}", b.2);
            });
            assert!(v.is_object(), "{what}");
        }
    }
    if blocks.iter().any(|b| b.0 == "tool_use") {
        assert_eq!(stop_reason, "tool_use", "{what}");
    }
}

fn count_tokens_case(dir: &Path) -> String {
    let request = fs::read(dir.join("request.json")).unwrap();
    match parse(&request).and_then(|r| tokens::estimate(&r)) {
        Ok(n) => format!(
            "== count_tokens: HTTP 200\n{}\n",
            pretty(&serde_json::json!({"input_tokens": n}))
        ),
        Err(e) => error_section(&e),
    }
}

fn run_case(dir: &Path, case: &Case) -> String {
    if case.endpoint.as_deref() == Some("count_tokens") {
        return count_tokens_case(dir);
    }
    let mut doc = String::new();
    let request = fs::read(dir.join("request.json")).unwrap();
    let plan = match plan_case(&request) {
        Ok(p) => p,
        Err(e) => {
            assert!(
                !dir.join("upstream.json").exists() && !dir.join("upstream.sse").exists(),
                "{}: refused before the upstream, but the case has an upstream body: {}",
                dir.display(),
                e.message()
            );
            return error_section(&e);
        }
    };
    let Input::Json(input) = &plan.request.input else {
        panic!("input is JSON")
    };
    doc.push_str(&format!(
        "== upstream: POST /ai/run/{} (stream: {})\n{}\n",
        plan.request.model,
        plan.request.stream,
        pretty(input)
    ));
    if !plan.dropped.is_empty() {
        doc.push_str(&format!("== dropped: {}\n", plan.dropped.join(", ")));
    }
    assert_eq!(
        case.stream,
        plan.stream,
        "{}: case.json stream flag disagrees with the request",
        dir.display()
    );
    if let Ok(err) = fs::read(dir.join("upstream-error.json")) {
        let err: Value = serde_json::from_slice(&err).unwrap();
        let status = err["status"].as_u64().unwrap() as u16;
        let body = serde_json::to_vec(&err["body"]).unwrap();
        let e = envelope::parse(status, &body).expect_err("an upstream error case must fail");
        doc.push_str(&error_section(&e));
    } else if let Ok(json) = fs::read(dir.join("upstream.json")) {
        let result: Value = serde_json::from_slice(&json).unwrap();
        let wrapped =
            serde_json::json!({"result": result, "success": true, "errors": [], "messages": []});
        let result = envelope::parse(200, &serde_json::to_vec(&wrapped).unwrap()).unwrap();
        if plan.stream {
            let sse =
                String::from_utf8(anthropic::respond_as_events(&plan, &result).unwrap()).unwrap();
            check_protocol(&sse, &dir.display().to_string());
            doc.push_str(&format!("== response: SSE (emulated)\n{sse}"));
        } else {
            match anthropic::respond(&plan, &result) {
                Ok(m) => doc.push_str(&format!("== response: HTTP 200\n{}\n", pretty(&m))),
                Err(e) => doc.push_str(&error_section(&e)),
            }
        }
    } else if let Ok(sse) = fs::read(dir.join("upstream.sse")) {
        let whole = transcode(&plan, &[&sse]);
        for i in 0..=sse.len() {
            let split = transcode(&plan, &[&sse[..i], &sse[i..]]);
            assert_eq!(
                split,
                whole,
                "{}: differs when split at byte {i}",
                dir.display()
            );
        }
        let bytes: Vec<&[u8]> = sse.chunks(1).collect();
        assert_eq!(
            transcode(&plan, &bytes),
            whole,
            "{}: byte by byte",
            dir.display()
        );
        check_protocol(&whole, &dir.display().to_string());
        doc.push_str(&format!("== response: SSE\n{whole}"));
    } else {
        panic!(
            "{}: planned, but the case has no upstream file",
            dir.display()
        );
    }
    doc
}

#[test]
fn messages_fixtures() {
    let mut count = 0;
    insta::glob!("../../../fixtures", "messages/*/case.json", |path| {
        count += 1;
        let dir = path.parent().unwrap();
        let case: Case = serde_json::from_slice(&fs::read(path).unwrap()).unwrap();
        assert!(
            ["legacy", "v2025", "openai", "gpt-oss", "none"].contains(&case.schema.as_str()),
            "{}: unknown schema {}",
            path.display(),
            case.schema
        );
        assert!(
            !case.schema_source.is_empty(),
            "{}: no schema_source",
            path.display()
        );
        let doc = run_case(dir, &case);
        insta::with_settings!({
            description => format!("{} [schema: {}]", case.description, case.schema),
            omit_expression => true,
            prepend_module_to_snapshot => false,
        }, {
            insta::assert_snapshot!(doc);
        });
    });
    assert!(count >= 12, "only {count} Messages cases");
}
