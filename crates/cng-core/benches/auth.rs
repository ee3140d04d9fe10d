//! Benchmarks of the per-request auth path: reading the key from the headers, hashing
//! it, and looking it up in a store — a stored key, a wrong key (the real key with one
//! character changed) and an unknown key, which must cost the same (docs/reliability.md).
//!
//! Run: `cargo bench -p cng-core --bench auth` (compare branches with
//! `-- --save-baseline main` / `-- --baseline main`, as in docs/benchmarks.md).
//! The store is the in-memory one: the SQLite lookup of the native server is measured
//! end to end by the load harness (docs/performance.md).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use cng_core::auth::{self, NewKey, Role};
use cng_core::ids::{CountingEntropy, FixedClock};
use cng_core::store::MemoryStore;
use criterion::{Criterion, criterion_group, criterion_main};
use futures_executor::block_on;
use http::{HeaderMap, HeaderValue};

fn headers(key: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {key}")).unwrap(),
    );
    h
}

fn auth_lookup(c: &mut Criterion) {
    let store = MemoryStore::new();
    // 200 keys in the store (CountingEntropy makes 256 distinct ones).
    let entropy = CountingEntropy::default();
    let mut real = String::new();
    for i in 0..200 {
        let (key, _) = block_on(auth::create_key(
            &store,
            &entropy,
            &FixedClock(1),
            NewKey {
                name: format!("key-{i}"),
                role: Role::Client,
                models: None,
                rpm: None,
                expires: None,
            },
        ))
        .unwrap();
        real = key;
    }
    let mut wrong = real.clone().into_bytes();
    wrong[20] = if wrong[20] == b'A' { b'B' } else { b'A' };
    let wrong = String::from_utf8(wrong).unwrap();
    let unknown = format!("cng-{}", "Z".repeat(43));
    let admin = auth::hash_key("cng-bench-admin");
    let clock = FixedClock(2);
    let mut g = c.benchmark_group("auth_lookup");
    for (name, key) in [("stored", &real), ("wrong", &wrong), ("unknown", &unknown)] {
        let h = headers(key);
        g.bench_function(name, |b| {
            b.iter(|| {
                let presented = auth::key_from_headers(black_box(&h));
                black_box(block_on(auth::authenticate(
                    &store,
                    &clock,
                    Some(&admin),
                    presented,
                )))
                .is_ok()
            })
        });
    }
    g.bench_function("hash_key", |b| b.iter(|| auth::hash_key(black_box(&real))));
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = auth_lookup
}
criterion_main!(benches);
