//! What the media endpoints share: reading multipart uploads within the upload limit,
//! answering raw bytes, and passing requests through to OpenAI-compatible upstreams.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, StatusCode};
use serde_json::Value;

use super::{Body, Gateway, Limiter, json};
use crate::backend::{Backend, InferenceRequest, Input, Output};
use crate::catalog::Task;
use crate::error::Error;
use crate::multipart::{self, Form, FormWriter};
use crate::store::Store;

/// Reads a multipart form: 415 for another media type, 413 past the upload limit
/// (early on `Content-Length`).
pub(super) async fn read_form<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    req: Request<Body>,
) -> Result<Form, Error> {
    let limit = g.config.max_upload_bytes;
    let ct = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let boundary = multipart::boundary(ct.as_deref())?;
    if let Some(len) = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > limit as u64 {
            return Err(super::body::too_large(limit));
        }
    }
    multipart::read(req.into_body(), boundary, limit).await
}

/// A response of raw bytes (images, audio, transcripts as text).
pub(super) fn bytes_response(content_type: &str, body: Body, len: Option<usize>) -> Response<Body> {
    let mut r = Response::new(body);
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(CONTENT_TYPE, v);
    }
    if let Some(len) = len {
        h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    }
    r
}

/// The answer of an OpenAI-compatible upstream, passed on (JSON gets the requested
/// model name back; bytes and streams go through untouched).
pub(super) fn passthrough_answer(out: Output, requested: &str) -> Response<Body> {
    match out {
        Output::Json(mut v) => {
            if let Some(obj) = v.as_object_mut() {
                if obj.contains_key("model") {
                    obj.insert("model".into(), Value::String(requested.to_string()));
                }
            }
            json(StatusCode::OK, &v)
        }
        Output::Bytes { body, content_type } => {
            let len = body.len();
            bytes_response(&content_type, Body::Full(body), Some(len))
        }
        Output::Stream(s) => bytes_response("application/octet-stream", Body::Stream(s), None),
    }
}

/// The request for an OpenAI-compatible upstream: the client's JSON body as it is
/// (the backend sets `model`).
pub(super) fn passthrough_json(
    model: &str,
    task: Task,
    body: &Bytes,
) -> Result<InferenceRequest, Error> {
    let mut v: Value = serde_json::from_slice(body)
        .map_err(|e| Error::invalid_request(format!("The request body is not valid JSON: {e}.")))?;
    if let Some(obj) = v.as_object_mut() {
        obj.remove("model");
    }
    Ok(InferenceRequest {
        model: model.to_string(),
        task,
        input: Input::Json(v),
        stream: false,
    })
}

/// The request for an OpenAI-compatible upstream: the client's form, written again
/// with the upstream's model name.
pub(super) fn passthrough_form(
    model: &str,
    task: Task,
    form: &Form,
    boundary: String,
) -> InferenceRequest {
    let mut w = FormWriter::new(boundary).text("model", model);
    for p in form.parts.iter().filter(|p| p.name != "model") {
        w = match (&p.filename, &p.content_type) {
            (Some(f), ct) => w.file(
                &p.name,
                f,
                ct.as_deref().unwrap_or("application/octet-stream"),
                &p.data,
            ),
            (None, _) => w.text(&p.name, &String::from_utf8_lossy(&p.data)),
        };
    }
    let (body, content_type) = w.finish();
    InferenceRequest {
        model: model.to_string(),
        task,
        input: Input::Bytes { body, content_type },
        stream: false,
    }
}

/// A fresh multipart boundary.
pub(super) fn boundary<B: Backend, S: Store, L: Limiter>(g: &Gateway<B, S, L>) -> String {
    format!("cng-form-{}", g.services.ids.fresh_id())
}
