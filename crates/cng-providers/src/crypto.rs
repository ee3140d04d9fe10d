//! Provider keys at rest: sealed with ChaCha20-Poly1305 (RustCrypto's
//! `chacha20poly1305`) under a master key that lives only in the environment
//! (`CNG_MASTER_KEY` natively, a Worker secret at the edge), never in the store.
//!
//! A sealed key is `cng1:` + base64(nonce ‖ ciphertext ‖ tag). The provider's name is
//! the associated data, so a sealed key copied onto another provider's record fails to
//! open instead of sending one provider's key to another. Nonces are 96 random bits
//! from the caller's entropy source (the core's `Services`), which keeps this module
//! free of any RNG and deterministic in tests.
//!
//! Nothing here ever puts key material into an error message or `Debug` output.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use cng_core::{Error, ErrorKind};

/// The environment variable the native server reads the master key from.
pub const MASTER_KEY_ENV: &str = "CNG_MASTER_KEY";
/// The prefix of a sealed value (its format version).
pub const SEALED_PREFIX: &str = "cng1:";
const NONCE_LEN: usize = 12;

/// The 256-bit master key. `Debug` never shows it.
#[derive(Clone)]
pub struct MasterKey(Key);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

impl MasterKey {
    /// Reads `CNG_MASTER_KEY`; `Ok(None)` when unset (then provider keys cannot be
    /// stored, and the admin API says so).
    pub fn from_env() -> Result<Option<Self>, Error> {
        match std::env::var(MASTER_KEY_ENV) {
            Ok(v) if !v.trim().is_empty() => Self::parse(&v).map(Some),
            _ => Ok(None),
        }
    }

    /// 32 bytes as 64 hex digits or as standard base64 (`openssl rand -base64 32`).
    pub fn parse(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[i * 2..i * 2 + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .ok()
        } else {
            STANDARD.decode(text).ok()
        };
        match bytes {
            Some(b) if b.len() == 32 => Ok(Self(*Key::from_slice(&b))),
            _ => Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "{MASTER_KEY_ENV} must be 32 bytes as 64 hex digits or base64 (e.g. `openssl rand -base64 32`)"
                ),
            )
            .with_code("master_key_invalid")),
        }
    }

    /// Seals `secret` for the provider `provider` with the given fresh random nonce.
    pub fn seal(
        &self,
        provider: &str,
        nonce: [u8; NONCE_LEN],
        secret: &str,
    ) -> Result<String, Error> {
        let cipher = ChaCha20Poly1305::new(&self.0);
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret.as_bytes(),
                    aad: provider.as_bytes(),
                },
            )
            .map_err(|_| Error::internal("a provider key could not be sealed"))?;
        let mut raw = Vec::with_capacity(NONCE_LEN + ct.len());
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&ct);
        Ok(format!("{SEALED_PREFIX}{}", STANDARD.encode(raw)))
    }

    /// Opens a value [`seal`](Self::seal)ed for `provider`. A wrong master key, a
    /// tampered value or another provider's value all fail the same way.
    pub fn open(&self, provider: &str, sealed: &str) -> Result<String, Error> {
        let fail = || {
            Error::new(
                ErrorKind::Unavailable,
                format!(
                    "the stored key of provider `{provider}` cannot be opened with this {MASTER_KEY_ENV}; store the key again"
                ),
            )
            .with_code("provider_key_unreadable")
        };
        let raw = sealed
            .strip_prefix(SEALED_PREFIX)
            .and_then(|b| STANDARD.decode(b).ok())
            .filter(|r| r.len() > NONCE_LEN)
            .ok_or_else(fail)?;
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let plain = ChaCha20Poly1305::new(&self.0)
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: provider.as_bytes(),
                },
            )
            .map_err(|_| fail())?;
        String::from_utf8(plain).map_err(|_| fail())
    }
}

/// The gateway's `PUT /api/providers/{name}/key` seals through the master key.
impl cng_core::routing::KeySealer for MasterKey {
    fn seal(&self, provider: &str, nonce: [u8; NONCE_LEN], secret: &str) -> Result<String, Error> {
        MasterKey::seal(self, provider, nonce, secret)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn round_trip_and_no_plaintext_in_the_sealed_value() {
        let k = MasterKey::parse(HEX).unwrap();
        let sealed = k.seal("openai", [7; 12], "sk-secret-123").unwrap();
        assert!(sealed.starts_with(SEALED_PREFIX));
        assert!(!sealed.contains("sk-secret"));
        assert_eq!(k.open("openai", &sealed).unwrap(), "sk-secret-123");
    }

    #[test]
    fn hex_and_base64_master_keys_are_the_same_key() {
        let b64 = STANDARD.encode((0u8..32).collect::<Vec<_>>());
        let a = MasterKey::parse(HEX).unwrap();
        let b = MasterKey::parse(&b64).unwrap();
        let sealed = a.seal("p", [1; 12], "x").unwrap();
        assert_eq!(b.open("p", &sealed).unwrap(), "x");
    }

    #[test]
    fn wrong_provider_wrong_key_or_tampering_fail_without_leaking() {
        let k = MasterKey::parse(HEX).unwrap();
        let sealed = k.seal("openai", [7; 12], "sk-secret-123").unwrap();
        let e = k.open("anthropic", &sealed).unwrap_err();
        assert!(!e.message().contains("sk-secret"));
        let other = MasterKey::parse(&"ab".repeat(32)).unwrap();
        assert!(other.open("openai", &sealed).is_err());
        let mut bad = sealed.clone();
        bad.pop();
        bad.push('A');
        assert!(k.open("openai", &bad).is_err());
        assert!(k.open("openai", "plain-text-key").is_err());
    }

    #[test]
    fn bad_master_keys_are_refused_and_debug_redacts() {
        for bad in ["", "short", &"zz".repeat(32), &STANDARD.encode([0u8; 16])] {
            let e = MasterKey::parse(bad).unwrap_err();
            assert!(e.message().contains(MASTER_KEY_ENV));
        }
        let k = MasterKey::parse(HEX).unwrap();
        assert_eq!(format!("{k:?}"), "MasterKey([redacted])");
    }
}
