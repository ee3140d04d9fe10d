//! `cng providers seal --name <provider>`: seals a provider's API key for the config
//! document (`providers.<name>.key`), reading the key from stdin so it never lands in
//! shell history or a process list. The server's `PUT /api/providers/{name}/key` does
//! the same over the admin API; this command is for config files and the Worker.

use std::io::Read;

use cng_core::ids::Entropy;
use cng_providers::crypto::{MASTER_KEY_ENV, MasterKey};

use crate::services::OsEntropy;

/// Longest key read from stdin.
const MAX_SECRET_BYTES: u64 = 8 * 1024;

/// Seals `secret` for `provider` under `master` with a fresh random nonce.
pub fn seal(master: &MasterKey, provider: &str, secret: &str) -> Result<String, String> {
    let name_ok = !provider.is_empty()
        && provider.len() <= 64
        && provider
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !name_ok {
        return Err(format!(
            "`{provider}` is not a provider name (1-64 of a-z, 0-9 and `-`, as in the config's `providers`)"
        ));
    }
    let secret = secret.trim();
    if secret.is_empty() || !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(
            "the key on stdin must be one line of printable ASCII without spaces".to_string(),
        );
    }
    let mut nonce = [0u8; 12];
    OsEntropy.fill(&mut nonce);
    master
        .seal(provider, nonce, secret)
        .map_err(|e| e.message().to_string())
}

/// Reads the key from stdin and seals it under `CNG_MASTER_KEY`.
pub fn seal_stdin(provider: &str) -> Result<String, String> {
    let master = MasterKey::from_env()
        .map_err(|e| e.message().to_string())?
        .ok_or_else(|| {
            format!("{MASTER_KEY_ENV} is not set: generate one with `openssl rand -base64 32` and give the server the same value")
        })?;
    let mut secret = String::new();
    std::io::stdin()
        .take(MAX_SECRET_BYTES)
        .read_to_string(&mut secret)
        .map_err(|_| "the key on stdin is not UTF-8 text".to_string())?;
    seal(&master, provider, &secret)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn sealed_keys_open_for_their_provider_only() {
        let master = MasterKey::parse(&"ab".repeat(32)).unwrap();
        let sealed = seal(&master, "openai", "sk-test-1\n").unwrap();
        assert!(sealed.starts_with("cng1:") && !sealed.contains("sk-test"));
        assert_eq!(master.open("openai", &sealed).unwrap(), "sk-test-1");
        assert!(master.open("groq", &sealed).is_err());
        // Two seals of one key differ (fresh nonces).
        assert_ne!(sealed, seal(&master, "openai", "sk-test-1").unwrap());
        assert!(seal(&master, "Bad Name", "k").is_err());
        let e = seal(&master, "openai", "two words").unwrap_err();
        assert!(!e.contains("two words"));
    }
}
