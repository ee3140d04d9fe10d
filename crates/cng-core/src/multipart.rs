//! `multipart/form-data`: reading uploads (OpenAI's `images/edits` and `audio/*`
//! endpoints) with [`multer`], and writing forms (the FLUX.2 models take one).
//!
//! Uploads are read from the body stream within a size limit: past it the request is
//! refused with 413 without reading the rest.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{Error, ErrorKind};
use crate::gateway::Body;

/// One field of a form.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: Bytes,
}

/// A read form: its fields in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Form {
    pub parts: Vec<Part>,
}

impl Form {
    /// The first field named `name`.
    pub fn get(&self, name: &str) -> Option<&Part> {
        self.parts.iter().find(|p| p.name == name)
    }

    /// Every field named `name` (or `name[]`, as SDKs spell arrays).
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Part> + 'a {
        self.parts
            .iter()
            .filter(move |p| p.name == name || p.name.strip_suffix("[]").is_some_and(|n| n == name))
    }

    /// A text field, as UTF-8.
    pub fn text(&self, name: &str) -> Result<Option<&str>, Error> {
        match self.get(name) {
            None => Ok(None),
            Some(p) => std::str::from_utf8(&p.data).map(Some).map_err(|_| {
                Error::invalid_param(name, format!("The form field `{name}` is not UTF-8 text."))
            }),
        }
    }

    /// A text field parsed as a number.
    pub fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, Error> {
        match self.text(name)? {
            None => Ok(None),
            Some(t) => t.trim().parse().map(Some).map_err(|_| {
                Error::invalid_param(name, format!("The form field `{name}` must be a number."))
            }),
        }
    }

    /// Names of fields not in `known` (for the request log).
    pub fn unknown_fields(&self, known: &[&str]) -> Vec<String> {
        self.parts
            .iter()
            .map(|p| p.name.trim_end_matches("[]"))
            .filter(|n| !known.contains(n))
            .map(str::to_string)
            .collect()
    }
}

/// The boundary of a `multipart/form-data` content type, or a 415 that says what to send.
pub fn boundary(content_type: Option<&str>) -> Result<String, Error> {
    let refuse = || {
        Error::new(
            ErrorKind::UnsupportedMediaType,
            "This route reads a `multipart/form-data` upload (as the OpenAI SDKs send it); \
             send the file and the fields as a form.",
        )
        .with_code("unsupported_media_type")
    };
    let ct = content_type.ok_or_else(refuse)?;
    multer::parse_boundary(ct).map_err(|_| refuse())
}

/// Reads a whole form, refusing with 413 past `limit` bytes of body.
pub async fn read(body: Body, boundary: String, limit: usize) -> Result<Form, Error> {
    let constraints =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(limit as u64));
    let mut mp =
        multer::Multipart::with_constraints(stream_of(body, limit).await?, boundary, constraints);
    let mut form = Form::default();
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(form_error(e, limit)),
        };
        let name = field.name().unwrap_or_default().to_string();
        let filename = field.file_name().map(str::to_string);
        let content_type = field.content_type().map(|m| m.essence_str().to_string());
        let data = field.bytes().await.map_err(|e| form_error(e, limit))?;
        form.parts.push(Part {
            name,
            filename,
            content_type,
            data,
        });
    }
    Ok(form)
}

type FormStream = futures_util::stream::BoxStream<'static, Result<Bytes, Error>>;

/// The body as a `Send` stream. Natively the upload is read as it arrives; on wasm32
/// (where host streams are not `Send`) it is read within the limit first.
async fn stream_of(body: Body, limit: usize) -> Result<FormStream, Error> {
    use futures_util::StreamExt;
    match body {
        Body::Empty => Ok(futures_util::stream::empty().boxed()),
        Body::Full(b) => Ok(futures_util::stream::once(async move { Ok(b) }).boxed()),
        #[cfg(not(target_arch = "wasm32"))]
        Body::Stream(s) => {
            let _ = limit;
            Ok(s.boxed())
        }
        #[cfg(target_arch = "wasm32")]
        other => {
            let b = other.read_limited(limit).await?;
            Ok(futures_util::stream::once(async move { Ok(b) }).boxed())
        }
    }
}

fn form_error(e: multer::Error, limit: usize) -> Error {
    match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            Error::new(
                ErrorKind::PayloadTooLarge,
                format!("The upload is over the limit of {limit} bytes."),
            )
            .with_code("request_too_large")
        }
        multer::Error::StreamReadFailed(cause) => match cause.downcast::<Error>() {
            Ok(e) => *e,
            Err(cause) => Error::invalid_request(format!("The upload could not be read: {cause}.")),
        },
        other => Error::invalid_request(format!(
            "The request body is not a valid multipart/form-data form: {other}."
        ))
        .with_code("invalid_multipart"),
    }
}

/// Writes a `multipart/form-data` body.
#[derive(Debug)]
pub struct FormWriter {
    boundary: String,
    buf: BytesMut,
}

impl FormWriter {
    /// A form with this boundary (letters, digits and `-`; never in the content).
    pub fn new(boundary: impl Into<String>) -> Self {
        Self {
            boundary: boundary.into(),
            buf: BytesMut::new(),
        }
    }

    fn head(&mut self, name: &str, filename: Option<&str>, content_type: Option<&str>) {
        self.buf.put_slice(b"--");
        self.buf.put_slice(self.boundary.as_bytes());
        self.buf
            .put_slice(b"\r\nContent-Disposition: form-data; name=\"");
        self.buf.put_slice(escape(name).as_bytes());
        self.buf.put_slice(b"\"");
        if let Some(f) = filename {
            self.buf.put_slice(b"; filename=\"");
            self.buf.put_slice(escape(f).as_bytes());
            self.buf.put_slice(b"\"");
        }
        self.buf.put_slice(b"\r\n");
        if let Some(ct) = content_type {
            self.buf.put_slice(b"Content-Type: ");
            self.buf.put_slice(ct.as_bytes());
            self.buf.put_slice(b"\r\n");
        }
        self.buf.put_slice(b"\r\n");
    }

    /// A text field.
    pub fn text(mut self, name: &str, value: &str) -> Self {
        self.head(name, None, None);
        self.buf.put_slice(value.as_bytes());
        self.buf.put_slice(b"\r\n");
        self
    }

    /// A file field.
    pub fn file(mut self, name: &str, filename: &str, content_type: &str, data: &[u8]) -> Self {
        self.head(name, Some(filename), Some(content_type));
        self.buf.put_slice(data);
        self.buf.put_slice(b"\r\n");
        self
    }

    /// The body and its content type.
    pub fn finish(mut self) -> (Bytes, String) {
        self.buf.put_slice(b"--");
        self.buf.put_slice(self.boundary.as_bytes());
        self.buf.put_slice(b"--\r\n");
        (
            self.buf.freeze(),
            format!("multipart/form-data; boundary={}", self.boundary),
        )
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[test]
    fn writes_what_it_reads() {
        let (body, ct) = FormWriter::new("b0undary")
            .text("prompt", "a \"red\" fox")
            .file("image", "x.png", "image/png", b"\x89PNG\r\n--b0und")
            .finish();
        let b = boundary(Some(&ct)).unwrap();
        let form = read(Body::Full(body), b, 1 << 20)
            .now_or_never()
            .unwrap()
            .unwrap();
        assert_eq!(form.text("prompt").unwrap(), Some("a \"red\" fox"));
        let img = form.get("image").unwrap();
        assert_eq!(&img.data[..], b"\x89PNG\r\n--b0und");
        assert_eq!(img.filename.as_deref(), Some("x.png"));
        assert_eq!(img.content_type.as_deref(), Some("image/png"));
    }

    #[test]
    fn any_split_of_the_body_reads_the_same_form() {
        let (body, ct) = FormWriter::new("XyZ-boundary")
            .text("model", "whisper-1")
            .file(
                "file",
                "a.wav",
                "audio/wav",
                b"RIFF\0\0\0\0WAVE--XyZ-boundar",
            )
            .finish();
        let b = boundary(Some(&ct)).unwrap();
        let whole = read(Body::Full(body.clone()), b.clone(), 1 << 20)
            .now_or_never()
            .unwrap()
            .unwrap();
        for i in 0..=body.len() {
            let chunks = vec![Ok(body.slice(..i)), Ok(body.slice(i..))];
            let stream = Body::Stream(Box::pin(futures_util::stream::iter(chunks)));
            let form = read(stream, b.clone(), 1 << 20)
                .now_or_never()
                .unwrap()
                .unwrap();
            assert_eq!(form, whole, "split at byte {i}");
        }
    }

    #[test]
    fn over_the_limit_is_413_and_garbage_is_400() {
        let (body, ct) = FormWriter::new("b")
            .file("file", "a.wav", "audio/wav", &[0u8; 4096])
            .finish();
        let e = read(Body::Full(body), boundary(Some(&ct)).unwrap(), 1000)
            .now_or_never()
            .unwrap()
            .unwrap_err();
        assert_eq!(e.status().as_u16(), 413);
        let e = read(
            Body::Full(Bytes::from_static(b"nonsense")),
            "b".into(),
            1000,
        )
        .now_or_never()
        .unwrap()
        .unwrap_err();
        assert_eq!(e.status().as_u16(), 400);
        assert_eq!(
            boundary(Some("application/json"))
                .unwrap_err()
                .status()
                .as_u16(),
            415
        );
    }
}
