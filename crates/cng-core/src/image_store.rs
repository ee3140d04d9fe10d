//! Generated images kept for `response_format: url` and served at `GET /img/{id}`.
//!
//! The [`Store`](crate::store::Store) has no expiry of its own, so each record carries
//! its expiry time, and a read past it answers "not found" (and deletes the record).
//! Ids are 32 random bytes, base64url: unguessable, so the link is the capability.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::{BufMut, Bytes, BytesMut};

use crate::ids::Entropy;

/// The store namespace of images.
pub const NS_IMAGES: &str = "img";

/// One kept image.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredImage {
    /// Unix seconds after which the image is gone.
    pub expires: u64,
    pub content_type: String,
    pub bytes: Bytes,
}

impl StoredImage {
    /// `expires` (8 bytes, big-endian), the content type's length (1 byte), the
    /// content type, the image.
    pub fn encode(&self) -> Bytes {
        let ct = &self.content_type.as_bytes()[..self.content_type.len().min(255)];
        let mut buf = BytesMut::with_capacity(9 + ct.len() + self.bytes.len());
        buf.put_u64(self.expires);
        buf.put_u8(ct.len() as u8);
        buf.put_slice(ct);
        buf.put_slice(&self.bytes);
        buf.freeze()
    }

    /// Reads a record written by [`StoredImage::encode`]; `None` if it is not one.
    pub fn decode(raw: &Bytes) -> Option<Self> {
        let expires = u64::from_be_bytes(raw.get(..8)?.try_into().ok()?);
        let len = *raw.get(8)? as usize;
        let ct = std::str::from_utf8(raw.get(9..9 + len)?).ok()?.to_string();
        Some(Self {
            expires,
            content_type: ct,
            bytes: raw.slice(9 + len..),
        })
    }
}

/// A fresh image id.
pub fn new_id(entropy: &(impl Entropy + ?Sized)) -> String {
    let mut buf = [0u8; 32];
    entropy.fill(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// True for strings that can be image ids (so other paths never reach the store).
pub fn is_valid_id(id: &str) -> bool {
    (16..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What an image's bytes are, by their signature (never by what the upstream claims).
pub fn sniff(bytes: &[u8]) -> Option<ImageKind> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageKind::Png)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageKind::Jpeg)
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(ImageKind::Webp)
    } else {
        None
    }
}

/// The image formats cng recognises (OpenAI's output formats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Png,
    Jpeg,
    Webp,
}

impl ImageKind {
    pub fn mime(self) -> &'static str {
        match self {
            ImageKind::Png => "image/png",
            ImageKind::Jpeg => "image/jpeg",
            ImageKind::Webp => "image/webp",
        }
    }

    /// OpenAI's `output_format` name.
    pub fn name(self) -> &'static str {
        match self {
            ImageKind::Png => "png",
            ImageKind::Jpeg => "jpeg",
            ImageKind::Webp => "webp",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::CountingEntropy;

    #[test]
    fn round_trip_and_ids() {
        let img = StoredImage {
            expires: 1_700_003_600,
            content_type: "image/jpeg".into(),
            bytes: Bytes::from_static(&[0xFF, 0xD8, 0xFF, 1, 2]),
        };
        assert_eq!(StoredImage::decode(&img.encode()), Some(img));
        assert_eq!(StoredImage::decode(&Bytes::from_static(b"short")), None);
        let id = new_id(&CountingEntropy::default());
        assert!(is_valid_id(&id) && id.len() == 43);
        assert!(!is_valid_id("../keys") && !is_valid_id("short"));
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(ImageKind::Jpeg));
        assert_eq!(sniff(b"GIF89a"), None);
    }
}
