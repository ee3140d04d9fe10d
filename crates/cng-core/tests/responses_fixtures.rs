//! Runs every case under `fixtures/responses/` through the Responses translation and
//! snapshots the upstream input cng sends and the Responses output it returns (see
//! docs/fixtures.md).
//!
//! Stream cases are replayed split at every byte boundary and one byte at a time (the
//! output must not depend on how the network cut the input), and every stream is
//! checked against the protocol: named events whose `type` is the event name,
//! `sequence_number` counting up from 0, `response.created` first, one terminal event
//! last, and deltas that add up to what the `.done` events and the final response say.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure should stop the test"
)]

mod support;
use support::{Case, Dialect, NOW, answer_sections, error_section, frames, pretty, refused};

use std::fs;
use std::path::Path;

use cng_core::alias::AliasTable;
use cng_core::backend::Input;
use cng_core::catalog::{Catalog, Task};
use cng_core::error::Error;
use cng_core::ids::{FixedClock, SequentialIds};
use cng_core::openai::parse_json;
use cng_core::responses::{self, ResponsesPlan, ResponsesRequest};
use serde_json::Value;

fn plan_case(body: &[u8]) -> Result<ResponsesPlan, Error> {
    let req = parse_json::<ResponsesRequest>(body)?.value;
    let target = AliasTable::default().resolve_for(
        &req.model,
        Catalog::builtin(),
        &[Task::TextGeneration, Task::ImageToText],
    )?;
    responses::plan(&req, &target, &SequentialIds::default(), &FixedClock(NOW))
}

fn transcode(plan: &ResponsesPlan, chunks: &[&[u8]]) -> String {
    let mut t = responses::transcoder(plan);
    let mut out = Vec::new();
    for c in chunks {
        out.extend(t.push(c));
    }
    out.extend(t.finish());
    String::from_utf8(out).unwrap()
}

/// Checks a Responses stream against the protocol, as the official SDK's stream
/// accumulator reads it.
fn check_protocol(sse: &str, what: &str) {
    let frames = frames(sse);
    assert!(!frames.is_empty(), "{what}: empty stream");
    assert_eq!(frames[0].0, "response.created", "{what}");
    let mut output: Vec<Value> = Vec::new();
    for (i, (name, data)) in frames.iter().enumerate() {
        assert_eq!(data["type"], name.as_str(), "{what}: event {i}");
        assert_eq!(data["sequence_number"], i as u64, "{what}: event {i}");
        let idx = data["output_index"].as_u64().map(|n| n as usize);
        match name.as_str() {
            "response.output_item.added" => {
                assert_eq!(idx, Some(output.len()), "{what}: items are added in order");
                output.push(data["item"].clone());
            }
            "response.content_part.added" => {
                let item = &mut output[idx.unwrap()];
                if item["type"] == "message" {
                    item["content"]
                        .as_array_mut()
                        .unwrap()
                        .push(data["part"].clone());
                }
            }
            "response.output_text.delta" => {
                let item = &mut output[idx.unwrap()];
                assert_eq!(item["type"], "message", "{what}");
                assert_eq!(item["id"], data["item_id"], "{what}");
                let ci = data["content_index"].as_u64().unwrap() as usize;
                let t = item["content"][ci]["text"].as_str().unwrap().to_string();
                item["content"][ci]["text"] = Value::String(t + data["delta"].as_str().unwrap());
            }
            "response.output_text.done" => {
                let ci = data["content_index"].as_u64().unwrap() as usize;
                assert_eq!(
                    output[idx.unwrap()]["content"][ci]["text"],
                    data["text"],
                    "{what}: output_text.done repeats the deltas"
                );
            }
            "response.function_call_arguments.delta" => {
                let item = &mut output[idx.unwrap()];
                assert_eq!(item["type"], "function_call", "{what}");
                let a = item["arguments"].as_str().unwrap().to_string();
                item["arguments"] = Value::String(a + data["delta"].as_str().unwrap());
            }
            "response.function_call_arguments.done" => {
                assert_eq!(
                    output[idx.unwrap()]["arguments"],
                    data["arguments"],
                    "{what}: arguments.done repeats the deltas"
                );
            }
            "response.output_item.done" => {
                let i = idx.unwrap();
                assert_eq!(output[i]["id"], data["item"]["id"], "{what}");
                output[i] = data["item"].clone();
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                assert_eq!(i, frames.len() - 1, "{what}: {name} is the last event");
                if name != "response.failed" {
                    assert_eq!(
                        data["response"]["output"],
                        Value::Array(output.clone()),
                        "{what}: the final output is what the events built"
                    );
                }
            }
            _ => {}
        }
    }
    let last = frames.last().unwrap().0.as_str();
    assert!(
        [
            "response.completed",
            "response.incomplete",
            "response.failed"
        ]
        .contains(&last),
        "{what}: ends with {last}"
    );
}

/// The Responses dialect of one planned case.
struct Responses<'a>(&'a ResponsesPlan);

impl Dialect for Responses<'_> {
    fn respond(&self, result: &Value) -> Result<Value, Error> {
        responses::respond(self.0, result).map(|r| serde_json::to_value(r).unwrap())
    }
    fn respond_as_events(&self, result: &Value) -> Result<Vec<u8>, Error> {
        responses::respond_as_events(self.0, result)
    }
    fn transcode(&self, chunks: &[&[u8]]) -> String {
        transcode(self.0, chunks)
    }
    fn check_protocol(&self, sse: &str, what: &str) {
        check_protocol(sse, what)
    }
}

fn run_case(dir: &Path, case: &Case) -> String {
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
        "== upstream: POST /ai/run/{} (stream: {}){}\n{}\n",
        plan.request.model,
        plan.request.stream,
        if plan.native {
            " [native Responses input]"
        } else {
            ""
        },
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
    doc.push_str(&answer_sections(dir, plan.stream, &Responses(&plan)));
    doc
}

#[test]
fn responses_fixtures() {
    let mut count = 0;
    insta::glob!("../../../fixtures", "responses/*/case.json", |path| {
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
    assert!(count >= 15, "only {count} Responses cases");
}
