//! Upstream JSON answers: turning any JSON into a `chat.completion` never panics.
#![no_main]

use cng_core::alias::AliasTable;
use cng_core::catalog::Catalog;
use cng_core::chat;
use cng_core::ids::{FixedClock, SequentialIds};
use cng_core::openai::chat::ChatRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(answer) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    for model in ["@cf/meta/llama-3.1-8b-instruct", "@cf/zai-org/glm-4.7-flash"] {
        let req: ChatRequest = match serde_json::from_value(serde_json::json!({
            "model": model, "messages": [{"role": "user", "content": "hi"}]})) {
            Ok(r) => r,
            Err(_) => return,
        };
        let Ok(target) = AliasTable::default().resolve(&req.model, Catalog::builtin()) else { return };
        let Ok(plan) = chat::plan(&req, &target, &SequentialIds::default(), &FixedClock(1)) else { return };
        let _ = chat::complete(&plan.context, &answer);
    }
});
