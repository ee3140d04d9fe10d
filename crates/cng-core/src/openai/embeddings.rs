//! OpenAI's embeddings API (`POST /v1/embeddings`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The body of `POST /v1/embeddings`.
#[derive(Debug, Clone, Deserialize)]
pub struct EmbeddingsRequest {
    pub model: String,
    /// A string, an array of strings, or token arrays (refused: Workers AI embeds text).
    /// Read as a value so that each wrong shape gets its own message.
    pub input: Value,
    pub encoding_format: Option<EncodingFormat>,
    pub dimensions: Option<u32>,
    pub user: Option<String>,
}

/// How vectors are written in the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    /// JSON numbers.
    #[default]
    Float,
    /// The little-endian `f32` bytes of each vector, base64 (what the official Python
    /// SDK asks for by default).
    Base64,
}

/// `{"object": "list", "data": [...], "model", "usage"}`.
#[derive(Debug, Clone, Serialize)]
pub struct EmbeddingsResponse {
    pub object: &'static str,
    pub data: Vec<Embedding>,
    pub model: String,
    pub usage: EmbeddingsUsage,
}

/// One vector, at the index of its input.
#[derive(Debug, Clone, Serialize)]
pub struct Embedding {
    pub object: &'static str,
    pub index: usize,
    pub embedding: EmbeddingVector,
}

/// A vector as numbers or as base64.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum EmbeddingVector {
    Float(Vec<f64>),
    Base64(String),
}

/// Token counts; Workers AI reports none for embeddings, so they are estimated.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct EmbeddingsUsage {
    pub prompt_tokens: u64,
    pub total_tokens: u64,
}
