//! The host services cng-core asks for, from the Workers runtime: `Date.now()` and
//! `crypto.getRandomValues`. (`std::time::SystemTime::now()` panics on
//! wasm32-unknown-unknown, and the `getrandom` crate would need a build flag.)

use cng_core::Services;
use cng_core::ids::{Clock, Entropy, IdSource};
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    /// `crypto.getRandomValues(buf)`: fills at most 65 536 bytes per call.
    #[wasm_bindgen(js_namespace = crypto, js_name = getRandomValues, catch)]
    fn get_random_values(buf: &mut [u8]) -> Result<(), JsValue>;
}

/// `Date.now()`. In a Worker it advances with I/O, not during computation, which is
/// what request timestamps need.
pub struct JsClock;

impl Clock for JsClock {
    fn unix_seconds(&self) -> u64 {
        (js_sys::Date::now() / 1000.0) as u64
    }
}

/// `crypto.getRandomValues` (a CSPRNG).
pub struct CryptoEntropy;

impl Entropy for CryptoEntropy {
    fn fill(&self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(65_536) {
            if get_random_values(chunk).is_err() {
                // Without randomness no key would be safe; there is no sane fallback.
                wasm_bindgen::throw_str("cng: crypto.getRandomValues failed");
            }
        }
    }
}

/// Random ids: 24 characters of lowercase letters and digits (~124 bits), as the server's.
pub struct RandomIds;

impl IdSource for RandomIds {
    fn fresh_id(&self) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut buf = [0u8; 24];
        CryptoEntropy.fill(&mut buf);
        buf.iter()
            .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
            .collect()
    }
}

/// Everything the gateway needs from the runtime.
pub fn services() -> Services {
    Services {
        clock: Box::new(JsClock),
        ids: Box::new(RandomIds),
        entropy: Box::new(CryptoEntropy),
    }
}
