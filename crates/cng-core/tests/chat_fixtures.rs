//! Runs every case under `fixtures/chat/` through the chat pipeline and snapshots the
//! upstream input cng sends and the OpenAI output it returns (see docs/fixtures.md).
//!
//! Stream cases are also replayed split at every byte boundary and one byte at a time:
//! the output must not depend on how the network cut the input.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure should stop the test"
)]

mod support;
use support::{Case, NOW, error_section, pretty};

use std::fs;
use std::path::Path;

use cng_core::alias::AliasTable;
use cng_core::backend::Input;
use cng_core::catalog::{Catalog, Task};
use cng_core::chat::{self, ChatPlan};
use cng_core::error::Error;
use cng_core::ids::{FixedClock, SequentialIds};
use cng_core::openai::{chat::ChatRequest, parse_json};
use cng_core::workers_ai::envelope;
use serde_json::Value;

fn plan_case(body: &[u8]) -> Result<ChatPlan, Error> {
    let req = parse_json::<ChatRequest>(body)?.value;
    let target = AliasTable::default().resolve_for(
        &req.model,
        Catalog::builtin(),
        &[Task::TextGeneration, Task::ImageToText],
    )?;
    chat::plan(&req, &target, &SequentialIds::default(), &FixedClock(NOW))
}

fn transcode(plan: &ChatPlan, chunks: &[&[u8]]) -> String {
    let mut t = chat::StreamTranscoder::new(plan.context.clone());
    let mut out = Vec::new();
    for c in chunks {
        out.extend(t.push(c));
    }
    out.extend(t.finish());
    String::from_utf8(out).unwrap()
}

fn run_case(dir: &Path, case: &Case) -> String {
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
        panic!("chat input is JSON")
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
    if case.stream != (plan.request.stream || plan.emulate_stream) {
        panic!(
            "{}: case.json stream flag disagrees with the request",
            dir.display()
        );
    }

    if let Ok(err) = fs::read(dir.join("upstream-error.json")) {
        let err: Value = serde_json::from_slice(&err).unwrap();
        let status = err["status"].as_u64().unwrap() as u16;
        let body = serde_json::to_vec(&err["body"]).unwrap();
        let e = envelope::parse(status, &body).expect_err("an upstream error case must fail");
        doc.push_str(&error_section(&e));
    } else if let Ok(json) = fs::read(dir.join("upstream.json")) {
        let result: Value = serde_json::from_slice(&json).unwrap();
        // Through the REST envelope, as the REST backend reads it.
        let wrapped =
            serde_json::json!({"result": result, "success": true, "errors": [], "messages": []});
        let result = envelope::parse(200, &serde_json::to_vec(&wrapped).unwrap()).unwrap();
        match chat::complete(&plan.context, &result) {
            Ok(c) if plan.emulate_stream => {
                let sse = chat::completion_to_sse(&c, plan.context.include_usage);
                doc.push_str(&format!(
                    "== response: SSE (emulated)\n{}",
                    String::from_utf8(sse).unwrap()
                ));
            }
            Ok(c) => doc.push_str(&format!("== response: HTTP 200\n{}\n", pretty(&c))),
            Err(e) => doc.push_str(&error_section(&e)),
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
        assert!(
            whole.ends_with("data: [DONE]\n\n"),
            "{}: no [DONE]",
            dir.display()
        );
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
fn chat_fixtures() {
    insta::glob!("../../../fixtures", "chat/*/case.json", |path| {
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
}
