//! Sealing provider keys: the host's capability, injected into the gateway.
//!
//! The config document only ever holds sealed keys (`cng1:…`, see
//! [`super::config::SEALED_PREFIX`]). The cipher and the master key live in the host
//! (`cng_providers::crypto::MasterKey`, from `CNG_MASTER_KEY`), so the core stays free
//! of key material; it brings the nonce from its injected entropy, which keeps sealing
//! deterministic in tests.

use crate::error::Error;
use crate::usage::MaybeSendSync;

/// Seals a provider's key for storage in the config document.
pub trait KeySealer: MaybeSendSync {
    /// Seals `secret` for the provider named `provider` (its associated data: a value
    /// sealed for one provider does not open for another) with a fresh 96-bit `nonce`.
    fn seal(&self, provider: &str, nonce: [u8; 12], secret: &str) -> Result<String, Error>;
}
