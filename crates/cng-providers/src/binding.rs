//! Workers AI through a Worker's `AI` binding, and [`Fallback`], which sends an inference
//! through a second backend when the first one fails for a platform reason.
//!
//! # The binding (`BindingBackend`, feature `worker`, wasm32 only)
//! `env.AI.run(model, inputs, options)` resolves to the model's result without the REST
//! envelope: a JSON value, a `ReadableStream` (an SSE stream when `inputs.stream` is true;
//! PNG or MP3 bytes for image and speech models) or a `Uint8Array`. worker 0.8's `Ai::run`
//! takes no `options`, so the binding is bound here with its third argument, which
//! carries the AI Gateway settings (`{gateway: {id, skipCache, cacheTtl}}`). The binding
//! is taken as any object with a `run` method (no constructor-name check), so an RPC
//! service binding or a test double works the same as the real one.
//!
//! # Which failures fall back
//! The binding reports two kinds of failure, both as thrown JavaScript errors:
//! - the model's own errors carry a Workers AI code (`InferenceUpstreamError: 3040:
//!   Capacity temporarily exceeded`, `5007: No such model`); they are the user's or the
//!   model's, the REST API would answer the same, so they are mapped with
//!   [`Error::from_workers_ai`] and returned as they are;
//! - everything else is the platform's: the binding is not configured, cannot run here
//!   (`wrangler dev --local`: "Binding AI needs to be run remotely"), a network or
//!   internal error, a Cloudflare edge error (`error code: 1031`), an authentication
//!   error of the binding itself (code 10000). Those become a 503 with the code
//!   [`BINDING_UNAVAILABLE`], which [`Fallback`] retries through its second backend (the
//!   REST API over `worker::Fetch` in the Worker).
//!
//! A stream that breaks off after it started is never retried (the client already has
//! part of it); the transcoder ends it with an error event.

use std::sync::atomic::{AtomicU8, Ordering};

use cng_core::backend::{Backend, InferenceRequest, Output};
use cng_core::{Error, ErrorKind};

use crate::http::MaybeSync;

/// The error code of a platform failure of the binding (see the module docs).
pub const BINDING_UNAVAILABLE: &str = "ai_binding_unavailable";

/// The 503 for a platform failure of the binding; `detail` says what happened.
pub fn platform_failure(detail: &str) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!(
            "The Workers AI binding `AI` is unavailable ({detail}). Deploy with the `[ai]` \
             binding, or set CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN so that cng can \
             use the REST API instead."
        ),
    )
    .with_code(BINDING_UNAVAILABLE)
}

/// True for the errors [`Fallback`] retries through its second backend.
pub fn is_platform_failure(e: &Error) -> bool {
    e.code() == Some(BINDING_UNAVAILABLE)
}

/// Which backend of a [`Fallback`] produced the last answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    Primary,
    Fallback,
}

/// Runs `primary`; when it fails with a platform failure ([`is_platform_failure`]),
/// runs the same request through `fallback` (when there is one).
///
/// It remembers which of the two answered ([`Fallback::served`]) so that the host can
/// say so in a response header; the Worker makes one `Fallback` per request, so the
/// value belongs to that request.
#[derive(Debug)]
pub struct Fallback<A, B> {
    primary: A,
    fallback: Option<B>,
    served: AtomicU8,
}

impl<A, B> Fallback<A, B> {
    pub fn new(primary: A, fallback: Option<B>) -> Self {
        Self {
            primary,
            fallback,
            served: AtomicU8::new(0),
        }
    }

    /// Which backend answered the last inference (`None` before the first one).
    pub fn served(&self) -> Option<Served> {
        match self.served.load(Ordering::Relaxed) {
            1 => Some(Served::Primary),
            2 => Some(Served::Fallback),
            _ => None,
        }
    }

    /// Which backend answered since the last call, and forgets it (a host that reuses
    /// one `Fallback` for request after request reads it once per request).
    pub fn take_served(&self) -> Option<Served> {
        match self.served.swap(0, Ordering::Relaxed) {
            1 => Some(Served::Primary),
            2 => Some(Served::Fallback),
            _ => None,
        }
    }

    pub fn primary(&self) -> &A {
        &self.primary
    }

    pub fn fallback(&self) -> Option<&B> {
        self.fallback.as_ref()
    }

    fn mark(&self, s: Served) {
        let v = match s {
            Served::Primary => 1,
            Served::Fallback => 2,
        };
        self.served.store(v, Ordering::Relaxed);
    }
}

impl<A, B> Backend for Fallback<A, B>
where
    A: Backend + MaybeSync,
    B: Backend + MaybeSync,
{
    async fn run(&self, request: InferenceRequest) -> Result<Output, Error> {
        let Some(fallback) = &self.fallback else {
            self.mark(Served::Primary);
            return self.primary.run(request).await;
        };
        // The request is moved into the first attempt; keep a copy for the second.
        let again = request.clone();
        match self.primary.run(request).await {
            Err(e) if is_platform_failure(&e) => {
                tracing::warn!(
                    error = e.message(),
                    "the primary backend failed; retrying through the fallback"
                );
                self.mark(Served::Fallback);
                fallback.run(again).await
            }
            other => {
                self.mark(Served::Primary);
                other
            }
        }
    }
}

/// What an error thrown by `env.AI.run` means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindingFailure {
    /// Not the model's doing: fall back (see the module docs).
    Platform(String),
    /// The model's or the request's: a Workers AI code and its message.
    Model { code: u64, message: String },
}

/// Classifies a thrown error by its `name` and `message`.
///
/// The Workers AI code is the first `": "`-separated part that is a number
/// (`InferenceUpstreamError [AiError]: 3010: Invalid input` → 3010): the prefix varies
/// with the runtime version, the number does not. Codes 3000–3999 and 5000–5999 are
/// Workers AI's own; anything else (10000 authentication, 1xxx edge errors, no code at
/// all) is the platform's.
pub fn classify(name: &str, message: &str) -> BindingFailure {
    let mut rest = message;
    loop {
        let (head, tail) = match rest.split_once(':') {
            Some((h, t)) => (h.trim(), Some(t)),
            None => (rest.trim(), None),
        };
        // `error code: 1031` carries its number after a label.
        let number = head.rsplit(' ').next().unwrap_or(head);
        if let Ok(code) = number.parse::<u64>() {
            let text = tail.unwrap_or_default().trim().to_string();
            return if (3000..4000).contains(&code) || (5000..6000).contains(&code) {
                BindingFailure::Model {
                    code,
                    message: text,
                }
            } else {
                BindingFailure::Platform(one_line(message))
            };
        }
        match tail {
            Some(t) => rest = t,
            None => break,
        }
    }
    let detail = if message.trim().is_empty() {
        format!("{name} without a message")
    } else {
        one_line(message)
    };
    BindingFailure::Platform(detail)
}

fn one_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or_default().trim();
    let mut out: String = line.chars().take(300).collect();
    if out.len() < line.len() {
        out.push('…');
    }
    out
}

impl BindingFailure {
    /// The client's error. `http_code` is the status the runtime attached to the error
    /// (`httpCode`), when it did.
    pub fn into_error(self, http_code: Option<u16>) -> Error {
        match self {
            BindingFailure::Platform(detail) => platform_failure(&detail),
            BindingFailure::Model { code, message } => {
                // Without a status, Workers AI's 5xxx codes are request errors (every one
                // in Cloudflare's table is a 4xx) and 3xxx ones are the service's.
                let status = http_code.unwrap_or(if code >= 5000 { 400 } else { 500 });
                Error::from_workers_ai(Some(code), &message, status)
            }
        }
    }
}

/// The media type of binary model output, from its first bytes (the binding hands over
/// bytes without a content type).
pub fn sniff_media_type(bytes: &[u8]) -> &'static str {
    let starts = |p: &[u8]| bytes.starts_with(p);
    let riff = |kind: &[u8]| bytes.len() >= 12 && starts(b"RIFF") && &bytes[8..12] == kind;
    if starts(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if starts(b"\xff\xd8\xff") {
        "image/jpeg"
    } else if riff(b"WEBP") {
        "image/webp"
    } else if riff(b"WAVE") {
        "audio/wav"
    } else if starts(b"ID3") || (bytes.len() >= 2 && bytes[0] == 0xff && bytes[1] & 0xe0 == 0xe0) {
        "audio/mpeg"
    } else if starts(b"OggS") {
        "audio/ogg"
    } else if starts(b"fLaC") {
        "audio/flac"
    } else {
        "application/octet-stream"
    }
}

/// How raw input bytes are handed to the binding, per the models' published schemas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BytesInput {
    /// `{multipart: {body: ReadableStream, contentType}}` (FLUX.2's form data).
    Multipart,
    /// `{audio: {body: ReadableStream, contentType}}` (Deepgram's nova-3).
    AudioStream,
    /// `{<field>: [u8, ...]}`: whisper's `audio`, the image classifiers' `image`.
    ByteArray(&'static str),
}

/// The binding's input form for raw bytes of `content_type` sent to `model` (over REST
/// the same bytes are simply the request body).
pub fn bytes_input_form(model: &str, content_type: &str) -> BytesInput {
    let ct = content_type.to_ascii_lowercase();
    if ct.starts_with("multipart/") {
        BytesInput::Multipart
    } else if model.starts_with("@cf/deepgram/") {
        BytesInput::AudioStream
    } else if ct.starts_with("image/") {
        BytesInput::ByteArray("image")
    } else {
        BytesInput::ByteArray("audio")
    }
}

/// The binding's third argument.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BindingOptions {
    /// Route through this AI Gateway (`{gateway: {id, ...}}`): caching, logs, analytics.
    pub gateway: Option<GatewayOptions>,
}

/// `options.gateway` of `env.AI.run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayOptions {
    pub id: String,
    pub skip_cache: bool,
    /// Seconds; `None` keeps the gateway's setting.
    pub cache_ttl: Option<u32>,
}

#[cfg(all(feature = "worker", target_arch = "wasm32"))]
pub use self::js::{AiBinding, BindingBackend};

#[cfg(all(feature = "worker", target_arch = "wasm32"))]
mod js {
    use bytes::Bytes;
    use cng_core::Error;
    use cng_core::backend::{Backend, ByteStream, InferenceRequest, Input, Output};
    use futures_util::StreamExt;
    use js_sys::{Array, Object, Reflect, Uint8Array};
    use wasm_bindgen::prelude::*;
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;

    use super::{BindingOptions, BytesInput, bytes_input_form, classify, sniff_media_type};
    use crate::http::collect_body;
    use crate::rest::DEFAULT_MAX_RESPONSE_BYTES;

    #[wasm_bindgen]
    extern "C" {
        /// `env.AI`, or anything with the same `run(model, inputs, options)`.
        #[wasm_bindgen(extends = Object)]
        #[derive(Debug, Clone)]
        pub type AiBinding;

        #[wasm_bindgen(structural, method, catch, js_name = run)]
        fn run(
            this: &AiBinding,
            model: &str,
            inputs: &JsValue,
            options: &JsValue,
        ) -> Result<js_sys::Promise, JsValue>;
    }

    impl worker::EnvBinding for AiBinding {
        const TYPE_NAME: &'static str = "Ai";

        /// Any object: the real binding, an RPC service binding or a test double.
        fn get(val: JsValue) -> worker::Result<Self> {
            if val.is_object() {
                Ok(val.unchecked_into())
            } else {
                Err(worker::Error::RustError(
                    "the AI binding is not an object".into(),
                ))
            }
        }
    }

    /// Workers AI through the binding. `ai` is `None` when the Worker has no `AI`
    /// binding: every call is then a platform failure (and falls back).
    #[derive(Debug, Clone)]
    pub struct BindingBackend {
        ai: Option<AiBinding>,
        options: BindingOptions,
    }

    impl BindingBackend {
        pub fn new(ai: Option<AiBinding>, options: BindingOptions) -> Self {
            Self { ai, options }
        }

        fn options_value(&self) -> JsValue {
            let Some(g) = &self.options.gateway else {
                return JsValue::UNDEFINED;
            };
            let gateway = Object::new();
            set(&gateway, "id", &JsValue::from_str(&g.id));
            if g.skip_cache {
                set(&gateway, "skipCache", &JsValue::TRUE);
            }
            if let Some(ttl) = g.cache_ttl {
                set(&gateway, "cacheTtl", &JsValue::from(ttl));
            }
            let options = Object::new();
            set(&options, "gateway", &gateway);
            options.into()
        }
    }

    fn set(obj: &Object, key: &str, value: &JsValue) {
        // Setting a property on a fresh plain object cannot fail.
        let _ = Reflect::set(obj, &JsValue::from_str(key), value);
    }

    /// A `ReadableStream` of one chunk.
    fn readable(bytes: &[u8]) -> Result<JsValue, Error> {
        let array = Uint8Array::from(bytes);
        let resp = web_sys::Response::new_with_opt_buffer_source(Some(&array))
            .map_err(|_| Error::internal("could not wrap the input bytes in a stream"))?;
        Ok(resp.body().map(JsValue::from).unwrap_or(JsValue::NULL))
    }

    fn inputs(request: &InferenceRequest) -> Result<JsValue, Error> {
        match &request.input {
            Input::Json(v) => {
                let text = serde_json::to_string(v)
                    .map_err(|_| Error::internal("the model input could not be serialised"))?;
                js_sys::JSON::parse(&text)
                    .map_err(|_| Error::internal("the model input could not be parsed by JS"))
            }
            Input::Bytes { body, content_type } => {
                let obj = Object::new();
                match bytes_input_form(&request.model, content_type) {
                    form @ (BytesInput::Multipart | BytesInput::AudioStream) => {
                        let inner = Object::new();
                        set(&inner, "body", &readable(body)?);
                        set(&inner, "contentType", &JsValue::from_str(content_type));
                        let field = if form == BytesInput::Multipart {
                            "multipart"
                        } else {
                            "audio"
                        };
                        set(&obj, field, &inner);
                    }
                    BytesInput::ByteArray(field) => {
                        let numbers = Array::from(&Uint8Array::from(&body[..]));
                        set(&obj, field, &numbers);
                    }
                }
                Ok(obj.into())
            }
        }
    }

    /// The client's error for a value the binding threw.
    fn thrown(e: &JsValue) -> Error {
        let text = |k: &str| {
            Reflect::get(e, &JsValue::from_str(k))
                .ok()
                .and_then(|v| v.as_string())
        };
        let name = text("name").unwrap_or_else(|| "Error".into());
        let message = text("message")
            .or_else(|| e.as_string())
            .unwrap_or_default();
        let http_code = Reflect::get(e, &JsValue::from_str("httpCode"))
            .ok()
            .and_then(|v| v.as_f64())
            .filter(|c| (100.0..600.0).contains(c))
            .map(|c| c as u16);
        classify(&name, &message).into_error(http_code)
    }

    fn byte_stream(stream: web_sys::ReadableStream) -> ByteStream {
        Box::pin(worker::ByteStream::from(stream).map(|chunk| {
            chunk.map(Bytes::from).map_err(|e| {
                Error::upstream(format!("the AI binding's stream failed: {e}"))
                    .with_code("upstream_error")
            })
        }))
    }

    async fn bytes_output(body: ByteStream) -> Result<Output, Error> {
        let body = collect_body(body, DEFAULT_MAX_RESPONSE_BYTES).await?;
        let content_type = sniff_media_type(&body).to_string();
        Ok(Output::Bytes { body, content_type })
    }

    impl Backend for BindingBackend {
        async fn run(&self, request: InferenceRequest) -> Result<Output, Error> {
            let Some(ai) = &self.ai else {
                return Err(super::platform_failure("this Worker has no `AI` binding"));
            };
            let inputs = inputs(&request)?;
            let promise = ai
                .run(&request.model, &inputs, &self.options_value())
                .map_err(|e| thrown(&e))?;
            let out = JsFuture::from(promise).await.map_err(|e| thrown(&e))?;
            if let Some(stream) = out.dyn_ref::<web_sys::ReadableStream>() {
                let body = byte_stream(stream.clone());
                return if request.stream {
                    Ok(Output::Stream(body))
                } else {
                    bytes_output(body).await
                };
            }
            if let Some(array) = out.dyn_ref::<Uint8Array>() {
                let body = Bytes::from(array.to_vec());
                let content_type = sniff_media_type(&body).to_string();
                return Ok(Output::Bytes { body, content_type });
            }
            if let Some(buf) = out.dyn_ref::<js_sys::ArrayBuffer>() {
                let body = Bytes::from(Uint8Array::new(buf).to_vec());
                let content_type = sniff_media_type(&body).to_string();
                return Ok(Output::Bytes { body, content_type });
            }
            if out.is_undefined() || out.is_null() {
                return Err(Error::upstream("the AI binding answered nothing"));
            }
            let text = js_sys::JSON::stringify(&out)
                .ok()
                .and_then(|s| s.as_string())
                .ok_or_else(|| Error::upstream("the AI binding's answer is not JSON"))?;
            let value = serde_json::from_str(&text)
                .map_err(|_| Error::upstream("the AI binding's answer is not JSON"))?;
            Ok(Output::Json(value))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cng_core::backend::Input;
    use cng_core::catalog::Task;
    use futures_util::FutureExt;
    use serde_json::json;
    use std::sync::Mutex;

    /// Answers a fixed result and counts its calls.
    struct Scripted {
        answer: fn() -> Result<Output, Error>,
        calls: Mutex<Vec<InferenceRequest>>,
    }

    impl Scripted {
        fn new(answer: fn() -> Result<Output, Error>) -> Self {
            Self {
                answer,
                calls: Mutex::new(Vec::new()),
            }
        }

        fn calls(&self) -> usize {
            self.calls.lock().unwrap().len()
        }
    }

    impl Backend for Scripted {
        async fn run(&self, request: InferenceRequest) -> Result<Output, Error> {
            self.calls.lock().unwrap().push(request);
            (self.answer)()
        }
    }

    fn request() -> InferenceRequest {
        InferenceRequest {
            model: "@cf/meta/llama-3.1-8b-instruct".into(),
            task: Task::TextGeneration,
            input: Input::Json(json!({"messages": [{"role": "user", "content": "hi"}]})),
            stream: false,
        }
    }

    fn ok() -> Result<Output, Error> {
        Ok(Output::Json(json!({"response": "ok"})))
    }

    fn down() -> Result<Output, Error> {
        Err(classify("Error", "Binding AI needs to be run remotely").into_error(None))
    }

    fn model_error() -> Result<Output, Error> {
        Err(classify("InferenceUpstreamError", "5007: No such model").into_error(None))
    }

    fn run<A: Backend + Sync, B: Backend + Sync>(f: &Fallback<A, B>) -> Result<Output, Error> {
        f.run(request()).now_or_never().unwrap()
    }

    #[test]
    fn platform_failures_go_to_the_fallback_with_the_same_request() {
        let f = Fallback::new(Scripted::new(down), Some(Scripted::new(ok)));
        assert_eq!(f.served(), None);
        assert!(run(&f).is_ok());
        assert_eq!(f.served(), Some(Served::Fallback));
        assert_eq!(f.take_served(), Some(Served::Fallback));
        assert_eq!(f.served(), None, "taken");
        assert_eq!((f.primary().calls(), f.fallback().unwrap().calls()), (1, 1));
        assert_eq!(f.fallback().unwrap().calls.lock().unwrap()[0], request());
    }

    #[test]
    fn model_errors_and_successes_stay_with_the_primary() {
        let f = Fallback::new(Scripted::new(model_error), Some(Scripted::new(ok)));
        let e = run(&f).unwrap_err();
        assert_eq!(
            (e.status().as_u16(), e.code()),
            (404, Some("model_not_found"))
        );
        assert_eq!(f.served(), Some(Served::Primary));
        assert_eq!(f.fallback().unwrap().calls(), 0);

        let f = Fallback::new(Scripted::new(ok), Some(Scripted::new(down)));
        assert!(run(&f).is_ok());
        assert_eq!(f.served(), Some(Served::Primary));
        assert_eq!(f.fallback().unwrap().calls(), 0);
    }

    #[test]
    fn without_a_fallback_the_platform_failure_is_the_answer() {
        let f: Fallback<Scripted, Scripted> = Fallback::new(Scripted::new(down), None);
        let e = run(&f).unwrap_err();
        assert_eq!(e.status().as_u16(), 503);
        assert!(is_platform_failure(&e));
        assert_eq!(f.served(), Some(Served::Primary));
    }

    #[test]
    fn the_fallbacks_own_error_is_returned() {
        let f = Fallback::new(Scripted::new(down), Some(Scripted::new(model_error)));
        let e = run(&f).unwrap_err();
        assert_eq!(e.code(), Some("model_not_found"));
        assert_eq!(f.served(), Some(Served::Fallback));
    }

    #[test]
    fn coded_errors_are_the_models() {
        assert_eq!(
            classify(
                "InferenceUpstreamError",
                "3040: Capacity temporarily exceeded, please try again."
            ),
            BindingFailure::Model {
                code: 3040,
                message: "Capacity temporarily exceeded, please try again.".into()
            }
        );
        assert_eq!(
            classify(
                "Error",
                "InferenceUpstreamError [AiError]: 3010: Invalid or incomplete input for the model"
            ),
            BindingFailure::Model {
                code: 3010,
                message: "Invalid or incomplete input for the model".into()
            }
        );
        assert_eq!(
            classify("AiError", "AiError: 5007: No such model @cf/x or task"),
            BindingFailure::Model {
                code: 5007,
                message: "No such model @cf/x or task".into()
            }
        );
    }

    #[test]
    fn everything_else_is_the_platforms() {
        for (name, msg) in [
            ("Error", "Binding AI needs to be run remotely"),
            ("InferenceUpstreamError", "10000: Authentication error"),
            ("InferenceUpstreamError", "error code: 1031"),
            ("AiInternalError", "internal error"),
            ("TypeError", "Network connection lost."),
            ("Error", ""),
        ] {
            assert!(
                matches!(classify(name, msg), BindingFailure::Platform(_)),
                "{name}: {msg}"
            );
        }
        let BindingFailure::Platform(d) = classify("AiInternalError", "") else {
            panic!()
        };
        assert_eq!(d, "AiInternalError without a message");
    }

    #[test]
    fn errors_map_to_the_clients_view() {
        let e = classify("E", "3040: busy").into_error(None);
        assert_eq!((e.status().as_u16(), e.retry_after()), (429, Some(1)));
        let e = classify("E", "5007: No such model").into_error(None);
        assert_eq!(
            (e.status().as_u16(), e.code()),
            (404, Some("model_not_found"))
        );
        // An unknown 5xxx code is the request's; an unknown 3xxx one the service's.
        assert_eq!(classify("E", "5006: oneOf").into_error(None).status(), 400);
        assert_eq!(classify("E", "3999: boom").into_error(None).status(), 502);
        assert_eq!(
            classify("E", "3999: boom").into_error(Some(400)).status(),
            400
        );
        let e = classify("Error", "Binding AI needs to be run remotely").into_error(None);
        assert!(is_platform_failure(&e));
        assert_eq!(e.status().as_u16(), 503);
        assert!(e.message().contains("needs to be run remotely"));
        assert!(e.message().contains("CLOUDFLARE_API_TOKEN"));
    }

    #[test]
    fn sniffs_binary_outputs() {
        assert_eq!(sniff_media_type(b"\x89PNG\r\n\x1a\n...."), "image/png");
        assert_eq!(sniff_media_type(b"\xff\xd8\xff\xe0"), "image/jpeg");
        assert_eq!(sniff_media_type(b"RIFF\0\0\0\0WEBPVP8 "), "image/webp");
        assert_eq!(sniff_media_type(b"RIFF\0\0\0\0WAVEfmt "), "audio/wav");
        assert_eq!(sniff_media_type(b"ID3\x04"), "audio/mpeg");
        assert_eq!(sniff_media_type(b"\xff\xfb\x90"), "audio/mpeg");
        assert_eq!(sniff_media_type(b"OggS"), "audio/ogg");
        assert_eq!(sniff_media_type(b"{}"), "application/octet-stream");
        assert_eq!(sniff_media_type(b""), "application/octet-stream");
    }

    #[test]
    fn bytes_input_forms() {
        let f = bytes_input_form;
        assert_eq!(
            f(
                "@cf/black-forest-labs/flux-2-dev",
                "multipart/form-data; boundary=x"
            ),
            BytesInput::Multipart
        );
        assert_eq!(
            f("@cf/deepgram/nova-3", "audio/mpeg"),
            BytesInput::AudioStream
        );
        assert_eq!(
            f("@cf/openai/whisper", "audio/wav"),
            BytesInput::ByteArray("audio")
        );
        assert_eq!(
            f("@cf/microsoft/resnet-50", "image/png"),
            BytesInput::ByteArray("image")
        );
    }
}
