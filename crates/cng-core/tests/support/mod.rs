//! What the fixture runners share: the fixed clock and the rendering of snapshots.

#![allow(dead_code, reason = "each test binary uses a part of it")]

use cng_core::error::Error;
use serde_json::Value;

/// The clock every fixture runs at: 2025-06-15T00:00:00Z.
pub const NOW: u64 = 1_749_945_600;

/// Pretty JSON for a snapshot.
pub fn pretty(v: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// An error as a snapshot section: its status and OpenAI body.
pub fn error_section(e: &Error) -> String {
    let body: Value = serde_json::from_slice(&e.to_json()).unwrap_or_default();
    format!(
        "== error: HTTP {}\n{}\n",
        e.status().as_u16(),
        pretty(&body)
    )
}

/// A fixture's `case.json` (`endpoint` only for the Messages cases).
#[derive(serde::Deserialize)]
pub struct Case {
    pub description: String,
    pub schema: String,
    pub schema_source: String,
    pub stream: bool,
    #[serde(default)]
    pub endpoint: Option<String>,
}

impl Case {
    /// Reads `case.json` and checks it names a known schema and its source.
    pub fn read(path: &std::path::Path) -> Case {
        let case: Case = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
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
        case
    }
}

/// `event: X\ndata: {...}\n\n` frames of a named-event stream.
pub fn frames(sse: &str) -> Vec<(String, Value)> {
    sse.split("\n\n")
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
        .collect()
}

/// How a client dialect (Responses, Messages) answers a planned case, for
/// [`answer_sections`].
pub trait Dialect {
    /// The non-streamed answer to an upstream result.
    fn respond(&self, result: &Value) -> Result<Value, Error>;
    /// A non-streamed upstream result sent to a streaming client as events.
    fn respond_as_events(&self, result: &Value) -> Result<Vec<u8>, Error>;
    /// An upstream stream fed in `chunks`.
    fn transcode(&self, chunks: &[&[u8]]) -> String;
    /// Asserts the stream follows the dialect's protocol.
    fn check_protocol(&self, sse: &str, what: &str);
    /// An error as the dialect shows it.
    fn error_section(&self, e: &Error) -> String {
        error_section(e)
    }
}

/// A request refused before reaching the upstream: the case must have no upstream body.
pub fn refused(dir: &std::path::Path, e: &Error, section: String) -> String {
    assert!(
        !dir.join("upstream.json").exists() && !dir.join("upstream.sse").exists(),
        "{}: refused before the upstream, but the case has an upstream body: {}",
        dir.display(),
        e.message()
    );
    section
}

/// The upstream half of a case as snapshot sections: its error, its JSON answer
/// (streamed as events when the client asked for a stream), or its SSE stream —
/// replayed split at every byte and byte by byte, which must not change the output.
pub fn answer_sections(dir: &std::path::Path, stream: bool, d: &impl Dialect) -> String {
    use cng_core::workers_ai::envelope;
    let what = dir.display().to_string();
    if let Ok(err) = std::fs::read(dir.join("upstream-error.json")) {
        let err: Value = serde_json::from_slice(&err).unwrap();
        let status = err["status"].as_u64().unwrap() as u16;
        let body = serde_json::to_vec(&err["body"]).unwrap();
        let e = envelope::parse(status, &body).expect_err("an upstream error case must fail");
        d.error_section(&e)
    } else if let Ok(json) = std::fs::read(dir.join("upstream.json")) {
        let result: Value = serde_json::from_slice(&json).unwrap();
        let wrapped =
            serde_json::json!({"result": result, "success": true, "errors": [], "messages": []});
        let result = envelope::parse(200, &serde_json::to_vec(&wrapped).unwrap()).unwrap();
        if stream {
            let sse = String::from_utf8(d.respond_as_events(&result).unwrap()).unwrap();
            d.check_protocol(&sse, &what);
            format!("== response: SSE (emulated)\n{sse}")
        } else {
            match d.respond(&result) {
                Ok(r) => format!("== response: HTTP 200\n{}\n", pretty(&r)),
                Err(e) => d.error_section(&e),
            }
        }
    } else if let Ok(sse) = std::fs::read(dir.join("upstream.sse")) {
        let whole = d.transcode(&[&sse]);
        for i in 0..=sse.len() {
            let split = d.transcode(&[&sse[..i], &sse[i..]]);
            assert_eq!(split, whole, "{what}: differs when split at byte {i}");
        }
        let bytes: Vec<&[u8]> = sse.chunks(1).collect();
        assert_eq!(d.transcode(&bytes), whole, "{what}: byte by byte");
        d.check_protocol(&whole, &what);
        format!("== response: SSE\n{whole}")
    } else {
        panic!("{what}: planned, but the case has no upstream file")
    }
}
