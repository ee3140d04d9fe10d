//! Chat request bodies: parsing, alias resolution and translation never panic.
#![no_main]

use cng_core::alias::AliasTable;
use cng_core::catalog::Catalog;
use cng_core::chat;
use cng_core::ids::{FixedClock, SequentialIds};
use cng_core::openai::{chat::ChatRequest, parse_json};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(parsed) = parse_json::<ChatRequest>(data) else { return };
    let Ok(target) = AliasTable::default().resolve(&parsed.value.model, Catalog::builtin()) else { return };
    let _ = chat::plan(&parsed.value, &target, &SequentialIds::default(), &FixedClock(1));
});
