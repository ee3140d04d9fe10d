//! OpenAI's images API (`POST /v1/images/generations`, `POST /v1/images/edits`).

use serde::{Deserialize, Serialize};

/// The body of `POST /v1/images/generations`. `seed`, `negative_prompt`, `steps` and
/// `guidance` are cng extensions, passed to models that declare them.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImageRequest {
    /// OpenAI's default is `dall-e-2`.
    pub model: Option<String>,
    pub prompt: String,
    pub n: Option<u32>,
    /// `WxH` or `auto`.
    pub size: Option<String>,
    pub quality: Option<String>,
    pub response_format: Option<ResponseFormat>,
    pub output_format: Option<String>,
    pub style: Option<String>,
    pub background: Option<String>,
    pub moderation: Option<String>,
    pub output_compression: Option<u32>,
    pub stream: Option<bool>,
    pub user: Option<String>,
    pub seed: Option<i64>,
    pub negative_prompt: Option<String>,
    pub steps: Option<u32>,
    pub guidance: Option<f64>,
}

/// How images come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseFormat {
    /// A link to `GET /img/{id}`, valid for the gateway's image TTL.
    Url,
    /// The image bytes, base64.
    B64Json,
}

/// `{"created", "data": [...]}`.
#[derive(Debug, Clone, Serialize)]
pub struct ImagesResponse {
    pub created: u64,
    pub data: Vec<ImageData>,
    /// `png`, `jpeg` or `webp`: what the model made (read from the bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_format: Option<&'static str>,
}

/// One image.
#[derive(Debug, Clone, Serialize)]
pub struct ImageData {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub b64_json: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}
