//! The host services cng-core asks for, from the operating system.

use std::time::{SystemTime, UNIX_EPOCH};

use cng_core::Services;
use cng_core::ids::{Clock, Entropy, IdSource};

/// The system clock.
pub struct OsClock;

impl Clock for OsClock {
    fn unix_seconds(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    fn unix_millis(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// The OS random source.
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&self, buf: &mut [u8]) {
        if getrandom::fill(buf).is_err() {
            // Without randomness no key or id would be safe; there is no sane fallback.
            eprintln!("cng: the operating system's random source failed; stopping");
            std::process::abort();
        }
    }
}

/// Random ids: 24 characters of lowercase letters and digits (~124 bits).
pub struct RandomIds;

impl IdSource for RandomIds {
    fn fresh_id(&self) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut buf = [0u8; 24];
        OsEntropy.fill(&mut buf);
        buf.iter()
            .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
            .collect()
    }
}

/// Everything the gateway needs from the OS.
pub fn os_services() -> Services {
    Services {
        clock: Box::new(OsClock),
        ids: Box::new(RandomIds),
        entropy: Box::new(OsEntropy),
    }
}
