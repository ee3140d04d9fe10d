//! OpenAI's moderations API (`POST /v1/moderations`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The body of `POST /v1/moderations`.
#[derive(Debug, Clone, Deserialize)]
pub struct ModerationRequest {
    /// OpenAI's default is `omni-moderation-latest`.
    pub model: Option<String>,
    /// A string, an array of strings, or an array of `text`/`image_url` parts.
    pub input: Value,
}

/// `{"id", "model", "results"}`.
#[derive(Debug, Clone, Serialize)]
pub struct ModerationResponse {
    pub id: String,
    pub model: String,
    pub results: Vec<ModerationResult>,
}

/// The verdict on one input.
#[derive(Debug, Clone, Serialize)]
pub struct ModerationResult {
    pub flagged: bool,
    pub categories: BTreeMap<&'static str, bool>,
    pub category_scores: BTreeMap<&'static str, f64>,
    pub category_applied_input_types: BTreeMap<&'static str, Vec<&'static str>>,
    /// cng extension: the Llama Guard hazard codes (`S1`..`S14`) the model reported,
    /// including those OpenAI has no category for.
    pub hazard_categories: Vec<String>,
}
