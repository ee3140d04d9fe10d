//! # cng-server
//!
//! The native `cng` binary: cng-core's [`Gateway`](cng_core::Gateway) behind hyper
//! and tokio, with a SQLite store under the data dir and the Workers AI REST backend
//! (or any OpenAI-compatible upstream). Everything a client observes is decided in
//! cng-core; this crate converts types, reads configuration, and runs the process.

pub mod ai_gateway;
pub mod cli;
mod http;
pub mod keys;
mod operate;
pub mod providers;
pub mod serve;
pub mod services;
pub mod store;
mod team_usage;

pub use serve::{Running, UpstreamEnv, start, start_with};
