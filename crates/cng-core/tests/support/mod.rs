//! What the fixture runners share: the fixed clock and the rendering of snapshots.

#![allow(dead_code, reason = "each test binary uses a part of it")]

use cng_core::error::Error;
use serde_json::Value;

/// The clock every fixture runs at: 2025-06-15T00:00:00Z.
pub const NOW: u64 = 1_749_945_600;

/// Pretty JSON for a snapshot.
pub fn pretty(v: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// An error as a snapshot section: its status and OpenAI body.
pub fn error_section(e: &Error) -> String {
    let body: Value = serde_json::from_slice(&e.to_json()).unwrap_or_default();
    format!(
        "== error: HTTP {}\n{}\n",
        e.status().as_u16(),
        pretty(&body)
    )
}
