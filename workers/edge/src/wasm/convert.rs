//! `worker::Request`/`Response` to and from the `http` types cng-core speaks. Nothing is
//! decided here: headers and bodies are carried over as they are.
//!
//! Header conversions never panic (worker's own `From` impls unwrap): an entry that is
//! not a valid HTTP header is skipped.

use bytes::Bytes;
use cng_core::Body;
use futures_util::StreamExt;
use http::header::{CONTENT_LENGTH, HeaderName, HeaderValue};
use worker::{Headers, ResponseBuilder};

/// Bodies up to this size are read in one piece (one copy, one call into JS); larger or
/// unsized ones are handed to the core as a stream, which it reads within its limit.
const WHOLE_BODY_MAX: u64 = 1024 * 1024;

/// The http request for `req`.
pub async fn request(mut req: worker::Request) -> worker::Result<http::Request<Body>> {
    let inner = req.inner();
    let method = http::Method::from_bytes(inner.method().as_bytes())
        .map_err(|_| worker::Error::RustError("invalid request method".into()))?;
    let uri = http::Uri::try_from(inner.url())
        .map_err(|_| worker::Error::RustError("invalid request URL".into()))?;
    let mut headers = http::HeaderMap::new();
    for (name, value) in req.headers().entries() {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.append(n, v);
        }
    }
    let has_body =
        inner.body().is_some() && method != http::Method::GET && method != http::Method::HEAD;
    let length = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = match (has_body, length) {
        (false, _) | (true, Some(0)) => Body::Empty,
        (true, Some(n)) if n <= WHOLE_BODY_MAX => Body::Full(Bytes::from(req.bytes().await?)),
        (true, _) => {
            let stream = req.stream()?.map(|chunk| {
                chunk.map(Bytes::from).map_err(|e| {
                    cng_core::Error::invalid_request(format!(
                        "the request body could not be read: {e}"
                    ))
                })
            });
            Body::Stream(Box::pin(stream))
        }
    };
    let mut out = http::Request::new(body);
    *out.method_mut() = method;
    *out.uri_mut() = uri;
    *out.headers_mut() = headers;
    Ok(out)
}

/// The worker response for `resp`.
pub fn response(resp: http::Response<Body>) -> worker::Result<worker::Response> {
    let (parts, body) = resp.into_parts();
    let headers = Headers::new();
    for (name, value) in &parts.headers {
        // Values the gateway sets are ASCII; anything else is carried over lossily
        // rather than dropped (the runtime would refuse invalid bytes anyway).
        let _ = headers.append(name.as_str(), &String::from_utf8_lossy(value.as_bytes()));
    }
    let builder = ResponseBuilder::new()
        .with_status(parts.status.as_u16())
        .with_headers(headers);
    Ok(match body {
        Body::Empty => builder.empty(),
        Body::Full(bytes) => builder.fixed(bytes.to_vec()),
        Body::Stream(s) => builder.from_stream(s.map(|chunk| {
            chunk
                .map(|b| b.to_vec())
                .map_err(|e| worker::Error::RustError(e.message().to_string()))
        }))?,
    })
}
