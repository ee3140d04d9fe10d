//! Default answers for the media models (embeddings, images, transcription) when no
//! fixture case matches, in each model's published output shape: chat's default
//! `{"response": "ok"}` would not do for them.

use base64::Engine as _;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response, StatusCode};
use serde_json::{Value, json};

use crate::body::ScriptedBody;

/// A 1x1 PNG (what image defaults answer).
pub const DEFAULT_PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53,
    0xDE, 0x00, 0x00, 0x00, 0x0C, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0xF8, 0xCF, 0xC0, 0x00,
    0x00, 0x03, 0x01, 0x01, 0x00, 0xC9, 0xFE, 0x92, 0xEF, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E,
    0x44, 0xAE, 0x42, 0x60, 0x82,
];

/// The length of default embedding vectors.
pub const DEFAULT_DIMENSIONS: usize = 8;

/// The default answer for a media request, told apart by its body: a `text` array
/// (embeddings), an `audio` member or a raw audio body (transcription), a multipart form
/// (FLUX.2 images). `None`: not a media request.
pub(crate) fn default_answer(
    body: Option<&Value>,
    content_type: Option<&str>,
) -> Option<Response<ScriptedBody>> {
    let ct = content_type.unwrap_or_default().to_ascii_lowercase();
    if ct.starts_with("multipart/form-data") {
        let b64 = base64::engine::general_purpose::STANDARD.encode(DEFAULT_PNG);
        return Some(envelope_response(json!({ "image": b64 })));
    }
    if ct.starts_with("audio/") || ct.starts_with("application/octet-stream") {
        return Some(envelope_response(transcript()));
    }
    let body = body?;
    if body.get("audio").is_some() {
        return Some(envelope_response(transcript()));
    }
    if let Some(texts) = body.get("text").and_then(Value::as_array) {
        let data: Vec<Vec<f64>> = (0..texts.len())
            .map(|i| {
                (0..DEFAULT_DIMENSIONS)
                    .map(|j| ((i * DEFAULT_DIMENSIONS + j) as f64 + 1.0) / 64.0)
                    .collect()
            })
            .collect();
        return Some(envelope_response(
            json!({ "shape": [texts.len(), DEFAULT_DIMENSIONS], "data": data, "pooling": "mean" }),
        ));
    }
    None
}

/// Whisper's output shape, saying [`crate::DEFAULT_TEXT`].
fn transcript() -> Value {
    json!({
        "text": crate::DEFAULT_TEXT,
        "word_count": 1,
        "words": [{ "word": crate::DEFAULT_TEXT, "start": 0.0, "end": 0.5 }],
        "vtt": format!("WEBVTT\n\n00:00.000 --> 00:00.500\n{}\n\n", crate::DEFAULT_TEXT),
    })
}

fn envelope_response(result: Value) -> Response<ScriptedBody> {
    let body = json!({ "result": result, "success": true, "errors": [], "messages": [] });
    let mut res = Response::new(ScriptedBody::full(Bytes::from(body.to_string())));
    *res.status_mut() = StatusCode::OK;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn kinds() {
        assert!(
            default_answer(Some(&json!({"text": ["a", "b"]})), Some("application/json")).is_some()
        );
        assert!(default_answer(Some(&json!({"audio": "AAAA"})), None).is_some());
        assert!(default_answer(None, Some("audio/wav")).is_some());
        assert!(default_answer(None, Some("multipart/form-data; boundary=x")).is_some());
        assert!(default_answer(Some(&json!({"messages": []})), Some("application/json")).is_none());
        assert!(default_answer(Some(&json!({"text": "translate me"})), None).is_none());
    }
}
