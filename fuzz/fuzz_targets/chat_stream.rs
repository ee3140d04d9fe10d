//! The chat stream transcoder: no panic, any split gives the same bytes, and the
//! output always ends with `data: [DONE]`.
#![no_main]

use cng_core::alias::AliasTable;
use cng_core::catalog::Catalog;
use cng_core::chat::{self, StreamTranscoder};
use cng_core::ids::{FixedClock, SequentialIds};
use cng_core::openai::chat::ChatRequest;
use libfuzzer_sys::fuzz_target;

const MODELS: [&str; 4] = [
    "@cf/meta/llama-3.1-8b-instruct",
    "@cf/zai-org/glm-4.7-flash",
    "@cf/deepseek-ai/deepseek-r1-distill-qwen-32b",
    "@cf/google/gemma-4-26b-a4b-it",
];

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (opts, input) = data.split_at(2);
    let model = MODELS[usize::from(opts[0] & 3)];
    let mut req = serde_json::json!({"model": model, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    if opts[0] & 4 != 0 {
        req["stream_options"] = serde_json::json!({"include_usage": true});
    }
    if opts[0] & 8 != 0 {
        req["tools"] = serde_json::json!([{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    }
    let Ok(req) = serde_json::from_value::<ChatRequest>(req) else { return };
    let Ok(target) = AliasTable::default().resolve(&req.model, Catalog::builtin()) else { return };
    let Ok(plan) = chat::plan(&req, &target, &SequentialIds::default(), &FixedClock(1)) else { return };
    let run = |pieces: &[&[u8]]| {
        let mut t = StreamTranscoder::new(plan.context.clone());
        let mut out = Vec::new();
        for p in pieces {
            out.extend(t.push(p));
        }
        out.extend(t.finish());
        out
    };
    let cut = usize::from(opts[1]) % (input.len() + 1);
    let whole = run(&[input]);
    assert_eq!(whole, run(&[&input[..cut], &input[cut..]]));
    assert!(whole.ends_with(b"data: [DONE]\n\n"));
});
