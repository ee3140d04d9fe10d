//! Converting between hyper's types and cng-core's `http::Request<Body>` /
//! `http::Response<Body>`. Nothing else happens here.

use bytes::Bytes;
use cng_core::Body;
use cng_core::error::{Error, ErrorKind};
use futures_util::{StreamExt, TryStreamExt};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, BodyStream, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};

/// The response body type the server writes.
pub type OutBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// hyper request → core request; the body stays a stream (the core reads it within
/// its limit and stops early).
pub fn request(req: hyper::Request<Incoming>) -> http::Request<Body> {
    let (parts, incoming) = req.into_parts();
    let stream = BodyStream::new(incoming)
        .try_filter_map(|frame| async move { Ok(frame.into_data().ok()) })
        .map_err(|e| {
            Error::new(
                ErrorKind::InvalidRequest,
                format!("reading the request body failed: {e}"),
            )
        });
    http::Request::from_parts(parts, Body::Stream(Box::pin(stream)))
}

/// core response → hyper response; streams stay streams, frame by frame.
pub fn response(resp: http::Response<Body>) -> hyper::Response<OutBody> {
    let (parts, body) = resp.into_parts();
    let body: OutBody = match body {
        Body::Empty => Empty::new().map_err(|never| match never {}).boxed_unsync(),
        Body::Full(b) => Full::new(b).map_err(|never| match never {}).boxed_unsync(),
        Body::Stream(s) => StreamBody::new(s.map(|r| {
            r.map(Frame::data)
                .map_err(|e| std::io::Error::other(e.message().to_string()))
        }))
        .boxed_unsync(),
    };
    hyper::Response::from_parts(parts, body)
}
