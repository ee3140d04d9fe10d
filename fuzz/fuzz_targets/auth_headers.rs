//! Auth headers: reading a key from any header bytes and looking it up never panics,
//! and nothing random authenticates.
#![no_main]

use cng_core::auth;
use cng_core::ids::FixedClock;
use cng_core::store::MemoryStore;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut h = HeaderMap::new();
    let third = data.len() / 3;
    for (name, v) in [
        ("authorization", &data[..third]),
        ("x-api-key", &data[third..2 * third]),
        ("api-key", &data[2 * third..]),
    ] {
        if let Ok(v) = HeaderValue::from_bytes(v) {
            h.insert(name, v);
        }
    }
    let store = MemoryStore::new();
    let r = futures_executor::block_on(auth::authenticate(
        &store,
        &FixedClock(1),
        Some(&auth::hash_key("cng-fuzz-admin")),
        auth::key_from_headers(&h),
    ));
    if let Some(k) = auth::key_from_headers(&h) {
        assert_eq!(r.is_ok(), k == "cng-fuzz-admin");
    }
});
