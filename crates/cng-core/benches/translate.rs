//! Benchmarks of cng-core's per-request hot paths: request translation, response
//! translation, stream transcoding, and the bare SSE decoder as a baseline.
//!
//! Run: `cargo bench -p cng-core --bench translate` (results: `docs/benchmarks.md`).
//! Inputs are the fixture corpus (`fixtures/chat/*`) and streams generated here in the
//! shape Workers AI sends (token events with `p` padding, per-chunk usage).

// Benches are test code: unwrap/expect on fixed, known-good inputs are fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use cng_core::alias::AliasTable;
use cng_core::catalog::Catalog;
use cng_core::chat::{self, ChatContext, StreamTranscoder};
use cng_core::ids::{FixedClock, SequentialIds};
use cng_core::openai::{chat::ChatRequest, parse_json};
use cng_core::sse::SseDecoder;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};

/// Upstream bytes arrive in pieces of this size in the streaming benches.
const PIECE: usize = 1024;

macro_rules! fixture {
    ($case:literal, $file:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/chat/",
            $case,
            "/",
            $file
        ))
    };
}

// ---------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------

/// The full request path: body bytes → ChatRequest → resolved model → plan.
fn translate_request(body: &[u8], aliases: &AliasTable, ids: &SequentialIds) -> chat::ChatPlan {
    let req = parse_json::<ChatRequest>(body).unwrap().value;
    let target = aliases.resolve(&req.model, Catalog::builtin()).unwrap();
    chat::plan(&req, &target, ids, &FixedClock(1_700_000_000)).unwrap()
}

/// The context a request body produces (setup only, not measured).
fn context_of(body: &[u8]) -> ChatContext {
    translate_request(body, &AliasTable::default(), &SequentialIds::default()).context
}

fn small_request() -> Vec<u8> {
    br#"{"model": "gpt-4o-mini", "temperature": 0.7, "messages": [
        {"role": "developer", "content": "You are a concise assistant. Answer in one or two sentences."},
        {"role": "user", "content": "What is the difference between a latte and a flat white?"}]}"#
        .to_vec()
}

fn tool(name: &str, description: &str, params: Value) -> Value {
    json!({"type": "function", "function": {
        "name": name, "description": description, "parameters": params}})
}

/// Two tools and a ten-turn history: a system message, ten user messages, each
/// answered; in four of the turns the assistant first calls both tools and gets
/// their results. 33 messages, about 7 KB.
fn tools_history_request(model: &str) -> Vec<u8> {
    let tools = json!([
        tool(
            "get_weather",
            "Get the current weather for a city",
            json!({"type": "object", "properties": {
                "city": {"type": "string", "description": "City name, e.g. Lisbon"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"],
                         "description": "Temperature unit"}},
                "required": ["city"]})
        ),
        tool(
            "get_local_time",
            "Get the current local time in an IANA time zone",
            json!({"type": "object", "properties": {
                "timezone": {"type": "string",
                             "description": "IANA time zone name, e.g. Asia/Tokyo"}},
                "required": ["timezone"]})
        ),
    ]);
    let cities = [
        ("Oslo", "Europe/Oslo"),
        ("Tokyo", "Asia/Tokyo"),
        ("Lima", "America/Lima"),
        ("Nairobi", "Africa/Nairobi"),
        ("Auckland", "Pacific/Auckland"),
        ("Reykjavík", "Atlantic/Reykjavik"),
        ("Montréal", "America/Toronto"),
        ("Lisbon", "Europe/Lisbon"),
        ("Hanoi", "Asia/Bangkok"),
        ("Denver", "America/Denver"),
    ];
    let mut messages = vec![json!({"role": "system", "content":
        "You are a travel assistant. Use the tools for live weather and local time; \
         otherwise answer from general knowledge, briefly."})];
    for (turn, (city, tz)) in cities.iter().enumerate() {
        messages.push(json!({"role": "user", "content": format!(
            "I'm flying to {city} next week. What should I pack, and is it a good time \
             to visit? Also, what time is it there right now?")}));
        if turn % 3 == 0 {
            let (w, t) = (format!("call_w{turn}"), format!("call_t{turn}"));
            messages.push(json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": w, "type": "function", "function": {"name": "get_weather",
                    "arguments": json!({"city": city}).to_string()}},
                {"id": t, "type": "function", "function": {"name": "get_local_time",
                    "arguments": json!({"timezone": tz}).to_string()}}]}));
            messages.push(json!({"role": "tool", "tool_call_id": w, "content":
                json!({"city": city, "temp_c": 4 + turn, "conditions": "light rain"}).to_string()}));
            messages.push(json!({"role": "tool", "tool_call_id": t, "content":
                json!({"timezone": tz, "local_time": "2026-11-24T02:14:00"}).to_string()}));
        }
        messages.push(json!({"role": "assistant", "content": format!(
            "{city} is mild this time of year, around {} °C with some rain: pack layers, \
             a waterproof jacket and comfortable shoes. It is a good time to visit: fewer \
             crowds and lower prices. Local time there is a little after 2 a.m.", 4 + turn)}));
    }
    let body = json!({
        "model": model,
        "tools": tools,
        "tool_choice": "auto",
        "temperature": 0.3,
        "max_tokens": 512,
        "messages": messages,
    });
    serde_json::to_vec(&body).unwrap()
}

/// Deterministic `p` padding: 5..=45 chars of `[a-z0-9]`, as Workers AI sends.
struct Padding(u64);

impl Padding {
    fn next(&mut self) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut step = || {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) as usize
        };
        let len = 5 + step() % 41;
        (0..len)
            .map(|_| ALPHABET[step() % ALPHABET.len()] as char)
            .collect()
    }
}

const WORDS: &[&str] = &[
    " The", " bakery", " by", " the", " sea", " could", " be", " called", " \"Salt", " &",
    " Crumb\"", ",", " a", " name", " that", " hints", " at", " ocean", " air", " and", " fresh",
    " bread", ".", " Or", " try", " \"Tide", " Café\"", "\n\n",
];

/// A legacy stream: an empty first event, `tokens` token events, the final usage
/// event and `[DONE]`.
fn legacy_stream(tokens: usize) -> Vec<u8> {
    let mut pad = Padding(7);
    let mut s = String::new();
    let mut event = |v: Value| s.push_str(&format!("data: {v}\n\n"));
    event(json!({"response": "", "tool_calls": [], "p": pad.next()}));
    for i in 0..tokens {
        event(json!({"response": WORDS[i % WORDS.len()], "tool_calls": [], "p": pad.next()}));
    }
    event(json!({"response": "", "usage":
        {"prompt_tokens": 22, "completion_tokens": tokens, "total_tokens": 22 + tokens}}));
    s.push_str("data: [DONE]\n\n");
    s.into_bytes()
}

/// An OpenAI-shaped stream as Workers AI sends it (gemma/glm recordings): a role chunk,
/// `tokens` content chunks, a finish chunk and a `choices: []` chunk, each with `p`
/// padding and incremental usage; then the native cumulative usage event and `[DONE]`.
/// `tokens + 5` events in all, counting `[DONE]`.
fn openai_stream(tokens: usize) -> Vec<u8> {
    let mut pad = Padding(11);
    let mut s = String::new();
    let usage = |prompt: usize, completion: usize, neurons: f64| {
        json!({"prompt_tokens": prompt, "completion_tokens": completion,
               "total_tokens": prompt + completion,
               "prompt_tokens_details": {"cached_tokens": 0}, "neurons": neurons})
    };
    let mut chunk = |delta: Value, finish: Value, u: Value, pad: String| {
        let choices = if delta.is_null() {
            json!([])
        } else {
            json!([{"delta": delta, "finish_reason": finish, "index": 0,
                    "logprobs": null, "matched_stop": null}])
        };
        let v = json!({"choices": choices, "created": 1_791_621_017,
            "id": "eb3b19aa1ca1c647aa419f97546d9b2c", "model": "@cf/google/gemma-4-26b-a4b-it",
            "object": "chat.completion.chunk", "p": pad, "usage": u});
        s.push_str(&format!("data: {v}\n\n"));
    };
    chunk(
        json!({"content": "", "reasoning_content": null, "role": "assistant"}),
        Value::Null,
        usage(21, 0, 0.190_909_087_657_928_47),
        pad.next(),
    );
    for i in 0..tokens {
        chunk(
            json!({"content": WORDS[i % WORDS.len()], "reasoning_content": null}),
            Value::Null,
            usage(0, 1, 0.027_272_727_340_459_824),
            pad.next(),
        );
    }
    chunk(
        json!({"reasoning_content": null}),
        json!("stop"),
        usage(0, 0, 0.0),
        pad.next(),
    );
    chunk(
        Value::Null,
        Value::Null,
        usage(0, 1, 0.027_272_727_340_459_824),
        pad.next(),
    );
    s.push_str(&format!(
        "data: {}\n\n",
        json!({"response": "", "usage": usage(21, tokens + 1, 0.409_090_906_381_607_06)})
    ));
    s.push_str("data: [DONE]\n\n");
    s.into_bytes()
}

fn event_count(sse: &[u8]) -> usize {
    sse.windows(6).filter(|w| w == b"data: ").count()
}

/// Transcodes a whole stream fed in `PIECE`-byte pieces; returns the output size.
fn transcode(ctx: &ChatContext, input: &[u8]) -> usize {
    let mut t = StreamTranscoder::new(ctx.clone());
    let mut n = 0;
    for piece in input.chunks(PIECE) {
        n += black_box(t.push(piece)).len();
    }
    n + black_box(t.finish()).len()
}

fn transcode_all(ctx: &ChatContext, input: &[u8]) -> String {
    let mut t = StreamTranscoder::new(ctx.clone());
    let mut out = Vec::new();
    for piece in input.chunks(PIECE) {
        out.extend(t.push(piece));
    }
    out.extend(t.finish());
    String::from_utf8(out).unwrap()
}

/// Setup check: the generated stream transcodes cleanly (no error event, `[DONE]` last).
fn check_stream(ctx: &ChatContext, input: &[u8], include_usage: bool) {
    let out = transcode_all(ctx, input);
    assert!(
        !out.contains("\"error\""),
        "stream did not transcode: {out}"
    );
    assert!(out.ends_with("data: [DONE]\n\n"));
    assert_eq!(out.contains("\"usage\":{"), include_usage);
}

// ---------------------------------------------------------------------------
// Benchmarks
// ---------------------------------------------------------------------------

fn request_translation(c: &mut Criterion) {
    // A server holds one alias table; building it is not per-request work.
    let aliases = AliasTable::default();
    let ids = SequentialIds::default();
    let _ = Catalog::builtin(); // parsed once, on first use
    let cases = [
        ("small_2_messages", small_request()),
        (
            "tools2_history10/legacy",
            tools_history_request("gpt-4o-mini"),
        ),
        (
            "tools2_history10/openai",
            tools_history_request("@cf/zai-org/glm-4.7-flash"),
        ),
    ];
    let mut g = c.benchmark_group("request_translation");
    g.throughput(Throughput::Elements(1));
    for (name, body) in &cases {
        let plan = translate_request(body, &aliases, &ids);
        assert!(
            plan.dropped.is_empty(),
            "{name}: dropped {:?}",
            plan.dropped
        );
        g.bench_function(*name, |b| {
            b.iter(|| translate_request(black_box(body), &aliases, &ids));
        });
    }
    g.finish();
}

fn response_translation(c: &mut Criterion) {
    let cases: [(&str, &[u8], &[u8]); 3] = [
        (
            "legacy",
            fixture!("legacy-basic", "request.json"),
            fixture!("legacy-basic", "upstream.json"),
        ),
        (
            "openai_tool_calls",
            fixture!("openai-tools", "request.json"),
            fixture!("openai-tools", "upstream.json"),
        ),
        (
            "llama33_hybrid",
            fixture!("hybrid-llama33-prose", "request.json"),
            fixture!("hybrid-llama33-prose", "upstream.json"),
        ),
    ];
    let mut g = c.benchmark_group("response_translation");
    g.throughput(Throughput::Elements(1));
    for (name, request, upstream) in cases {
        let ctx = context_of(request);
        g.bench_function(name, |b| {
            b.iter(|| {
                let v: Value = serde_json::from_slice(black_box(upstream)).unwrap();
                chat::complete(&ctx, &v).unwrap()
            });
        });
    }
    g.finish();
}

fn stream_transcoding(c: &mut Criterion) {
    let legacy_ctx = context_of(
        br#"{"model": "gpt-4o-mini", "stream": true, "messages": [
            {"role": "user", "content": "Suggest a name for a small bakery by the sea."}]}"#,
    );
    let openai_ctx = context_of(
        br#"{"model": "@cf/google/gemma-4-26b-a4b-it", "stream": true,
             "stream_options": {"include_usage": true}, "messages": [
            {"role": "user", "content": "Suggest a name for a small bakery by the sea."}]}"#,
    );
    let legacy = legacy_stream(200);
    let openai = openai_stream(200);
    let openai_21 = openai_stream(16);
    assert_eq!(event_count(&openai_21), 21);
    check_stream(&legacy_ctx, &legacy, false);
    check_stream(&openai_ctx, &openai, true);
    check_stream(&openai_ctx, &openai_21, true);

    let mut g = c.benchmark_group("stream_transcoding");
    for (name, ctx, input) in [
        ("legacy_200_events", &legacy_ctx, &legacy),
        ("openai_200_chunks", &openai_ctx, &openai),
    ] {
        g.throughput(Throughput::Bytes(input.len() as u64));
        g.bench_function(name, |b| b.iter(|| transcode(ctx, black_box(input))));
    }
    g.throughput(Throughput::Elements(1));
    g.bench_function("openai_21_events", |b| {
        b.iter(|| transcode(&openai_ctx, black_box(&openai_21)))
    });
    g.finish();
}

fn sse_decode(c: &mut Criterion) {
    let legacy = legacy_stream(200);
    let mut g = c.benchmark_group("sse_decode");
    g.throughput(Throughput::Bytes(legacy.len() as u64));
    g.bench_function("legacy_200_events", |b| {
        b.iter(|| {
            let mut d = SseDecoder::new();
            let mut events = Vec::new();
            let mut n = 0;
            for piece in black_box(&legacy).chunks(PIECE) {
                d.push(piece, &mut events).unwrap();
                n += events.len();
                black_box(&events);
                events.clear();
            }
            d.finish(&mut events);
            n + events.len()
        });
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
}

criterion_group! {
    name = benches;
    config = config();
    targets = request_translation, response_translation, stream_transcoding, sse_decode
}
criterion_main!(benches);
