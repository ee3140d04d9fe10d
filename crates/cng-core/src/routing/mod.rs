//! Where a model request goes: which provider, which upstream URL, and what to try
//! next when a target fails.
//!
//! - [`naming`]: `provider/model`, `model#provider` and plain catalog ids, resolved
//!   against the providers an admin configured (never against anything else, so a
//!   request cannot invent a provider).
//! - [`url_guard`]: the SSRF guard. Upstream URLs come only from the admin-written
//!   config and must be `https` (plain `http` only to a loopback host, and only when
//!   the operator turned that on for tests).
//! - [`fallback`]: ordered target chains and the one rule for moving on to the next
//!   target (429, 5xx or a timeout, before any byte reached the client).
//!
//! Pure: no I/O, so every rule here is tested natively.

pub mod config;
pub mod fallback;
pub mod naming;
pub mod sealer;
pub mod url_guard;

pub use config::ProviderRoute;
pub use fallback::{Target, TargetChain, should_fall_back};
pub use naming::{ModelRef, ProviderKind};
pub use sealer::KeySealer;
pub use url_guard::{UpstreamUrl, UrlPolicy};
