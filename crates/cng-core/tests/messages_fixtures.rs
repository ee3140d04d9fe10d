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

mod support;
use support::{Case, Dialect, NOW, answer_sections, frames, pretty, refused};

use std::fs;
use std::path::Path;

use cng_core::alias::AliasTable;
use cng_core::anthropic::{self, MessagesPlan, MessagesRequest, tokens};
use cng_core::backend::Input;
use cng_core::catalog::{Catalog, Task};
use cng_core::error::Error;
use cng_core::ids::{FixedClock, SequentialIds};
use cng_core::openai::parse_json;
use serde_json::Value;

/// Errors of these routes are in Anthropic's shape.
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
    let frames = frames(sse);
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

/// The Messages dialect of one planned case.
struct Messages<'a>(&'a MessagesPlan);

impl Dialect for Messages<'_> {
    fn respond(&self, result: &Value) -> Result<Value, Error> {
        anthropic::respond(self.0, result).map(|m| serde_json::to_value(m).unwrap())
    }
    fn respond_as_events(&self, result: &Value) -> Result<Vec<u8>, Error> {
        anthropic::respond_as_events(self.0, result)
    }
    fn transcode(&self, chunks: &[&[u8]]) -> String {
        transcode(self.0, chunks)
    }
    fn check_protocol(&self, sse: &str, what: &str) {
        check_protocol(sse, what)
    }
    fn error_section(&self, e: &Error) -> String {
        error_section(e)
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
        Err(e) => return refused(dir, &e, error_section(&e)),
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
    doc.push_str(&answer_sections(dir, plan.stream, &Messages(&plan)));
    doc
}

#[test]
fn messages_fixtures() {
    let mut count = 0;
    insta::glob!("../../../fixtures", "messages/*/case.json", |path| {
        count += 1;
        let dir = path.parent().unwrap();
        let case = Case::read(path);
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
