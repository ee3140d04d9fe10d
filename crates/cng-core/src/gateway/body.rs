//! The HTTP body type both adapters speak, and reading a request body within a limit.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use crate::backend::ByteStream;
use crate::error::{Error, ErrorKind};

/// A request or response body: empty, whole, or a stream of chunks.
pub enum Body {
    Empty,
    Full(Bytes),
    Stream(ByteStream),
}

impl Body {
    /// Reads the whole body, refusing with 413 as soon as it passes `limit` bytes —
    /// without reading the rest.
    pub async fn read_limited(self, limit: usize) -> Result<Bytes, Error> {
        match self {
            Body::Empty => Ok(Bytes::new()),
            Body::Full(b) if b.len() > limit => Err(too_large(limit)),
            Body::Full(b) => Ok(b),
            Body::Stream(mut s) => {
                let mut buf = BytesMut::new();
                while let Some(chunk) = s.next().await {
                    let chunk = chunk?;
                    if buf.len() + chunk.len() > limit {
                        return Err(too_large(limit));
                    }
                    buf.extend_from_slice(&chunk);
                }
                Ok(buf.freeze())
            }
        }
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Empty => f.write_str("Empty"),
            Body::Full(b) => write!(f, "Full({} bytes)", b.len()),
            Body::Stream(_) => f.write_str("Stream(..)"),
        }
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Self {
        Body::Full(Bytes::from(v))
    }
}

pub(crate) fn too_large(limit: usize) -> Error {
    Error::new(
        ErrorKind::PayloadTooLarge,
        format!("The request body is over the limit of {limit} bytes."),
    )
    .with_code("request_too_large")
}
