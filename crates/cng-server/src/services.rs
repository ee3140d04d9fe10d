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
        fill_from_pool(&mut buf);
        buf.iter()
            .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
            .collect()
    }
}

/// Bytes from the OS random source, drawn 1 KiB at a time per thread: ids are made
/// several times per request, and one `getrandom` syscall each was a measurable share
/// of a request's CPU (docs/performance.md). Keys still use [`OsEntropy`] directly.
fn fill_from_pool(out: &mut [u8]) {
    thread_local! {
        static POOL: std::cell::RefCell<([u8; 1024], usize)> =
            const { std::cell::RefCell::new(([0; 1024], 1024)) };
    }
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let (bytes, used) = &mut *pool;
        for b in out.iter_mut() {
            if *used == bytes.len() {
                OsEntropy.fill(bytes);
                *used = 0;
            }
            *b = bytes[*used];
            // Each byte is handed out once.
            bytes[*used] = 0;
            *used += 1;
        }
    });
}

/// Everything the gateway needs from the OS.
pub fn os_services() -> Services {
    Services {
        clock: Box::new(OsClock),
        ids: Box::new(RandomIds),
        entropy: Box::new(OsEntropy),
    }
}
