//! # cng-edge: the Cloudflare Worker of cng
//!
//! A thin adapter: it converts `worker::Request`/`Response` to and from the `http`
//! types, calls cng-core's [`Gateway`](cng_core::Gateway), and injects what only a
//! Worker has:
//! - the backend: Workers AI through the `AI` binding, falling back to the REST API over
//!   `worker::Fetch` on a platform failure (`cng_providers::binding::Fallback`); the
//!   response header [`BACKEND_HEADER`] says which one served;
//! - the store: KV for reads, one Durable Object for writes ([`protocol`]); usage
//!   counters and team spend in that object only;
//! - usage: buffered per isolate and written in `ctx.wait_until`, at most once every
//!   [`flush::FLUSH_EVERY_MS`] ([`flush`]); team token budgets charged in the
//!   `wait_until` of the answer that spent them;
//! - the rate limiter: one Durable Object per key;
//! - the runtime's clock and `crypto.getRandomValues`.
//!
//! Nothing a client can observe is decided here. The platform-independent parts (KV
//! layout, the Durable Object protocol, settings) are plain modules, tested natively;
//! everything that touches JavaScript is compiled for wasm32 only, so the native
//! workspace build never compiles the `worker` crate. Build and run: `scripts/build-worker`,
//! `scripts/worker-dev`; see docs/worker.md.

pub mod flush;
pub mod protocol;
pub mod settings;

#[cfg(target_arch = "wasm32")]
mod wasm;

#[cfg(target_arch = "wasm32")]
pub use wasm::{AfterResponse, CngRateLimiter, CngStore, DoLimiter, KvStore};

/// The response header that says which path served an inference: `binding` (the `AI`
/// binding) or `rest` (the REST fallback). Absent when no inference ran.
pub const BACKEND_HEADER: &str = "x-cng-backend";
