//! Backends against a scripted local HTTP server (run with `--features native`).
#![cfg(feature = "native")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;
mod misc;
mod native;
mod openai;
mod rest;
