//! Image generation and editing: OpenAI's images API → the request shape of each
//! Workers AI image model → OpenAI's answer.
//!
//! What a model takes comes from its catalog entry: `inputs` (the declared fields and
//! their ranges), `input` (`json`, or a `multipart` form for FLUX.2) and `output`
//! (raw PNG or JPEG bytes, or `{"image": base64}`). A parameter the model has no field
//! for is refused with a 400 that says so, never silently dropped — except the pure
//! hints (`style`, `user`, `moderation`, `quality` on models with fixed steps).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::alias::Resolved;
use crate::backend::{InferenceRequest, Input, Output};
use crate::catalog::{MediaInput, ModelInfo, Range, Task};
use crate::error::Error;
use crate::image_store::{ImageKind, sniff};
use crate::multipart::{Form, FormWriter};
use crate::openai::images::{ImageRequest, ResponseFormat};

/// OpenAI's limit on `n`.
pub const MAX_IMAGES: u32 = 10;
/// FLUX.2 takes at most four reference images.
const MAX_FLUX_IMAGES: usize = 4;

/// The upstream calls for one images request.
#[derive(Debug, Clone)]
pub struct ImagePlan {
    /// One request per image (`n`), in order.
    pub requests: Vec<InferenceRequest>,
    pub response_format: ResponseFormat,
    /// Request fields that were ignored as hints.
    pub dropped: Vec<&'static str>,
}

/// An input image of an edit (already checked to be a PNG, JPEG or WebP).
#[derive(Debug, Clone)]
pub struct SourceImage {
    pub kind: ImageKind,
    pub bytes: Bytes,
}

/// One field value for the model.
enum Field {
    Text(String),
    Int(i64),
    Num(f64),
    Bytes(SourceImage),
}

/// Plans `POST /v1/images/generations`. `boundary` names a fresh multipart boundary.
pub fn plan_generation(
    req: &ImageRequest,
    target: &Resolved,
    boundary: &dyn Fn() -> String,
) -> Result<ImagePlan, Error> {
    plan(req, target, Vec::new(), None, boundary)
}

/// The fields of `POST /v1/images/edits` (a multipart form), read into the JSON
/// request shape plus the uploaded images.
pub fn read_edit_form(
    form: &Form,
) -> Result<(ImageRequest, Vec<SourceImage>, Option<SourceImage>), Error> {
    let prompt = form
        .text("prompt")?
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| {
            Error::invalid_param("prompt", "`prompt` is required: describe the edit.")
        })?;
    let response_format = match form.text("response_format")? {
        None => None,
        Some("url") => Some(ResponseFormat::Url),
        Some("b64_json") => Some(ResponseFormat::B64Json),
        Some(other) => {
            return Err(Error::invalid_param(
                "response_format",
                format!("`response_format` must be `url` or `b64_json`, not `{other}`."),
            ));
        }
    };
    let text = |k: &str| -> Result<Option<String>, Error> { Ok(form.text(k)?.map(str::to_string)) };
    let req = ImageRequest {
        model: text("model")?,
        prompt: prompt.to_string(),
        n: form.number("n")?,
        size: text("size")?,
        quality: text("quality")?,
        response_format,
        output_format: text("output_format")?,
        background: text("background")?,
        user: text("user")?,
        seed: form.number("seed")?,
        negative_prompt: text("negative_prompt")?,
        steps: form.number("steps")?,
        guidance: form.number("guidance")?,
        ..ImageRequest::default()
    };
    let mut images = Vec::new();
    for (i, part) in form.all("image").enumerate() {
        images.push(source_image(
            &part.data,
            if i == 0 { "image" } else { "image[]" },
        )?);
    }
    if images.is_empty() {
        return Err(Error::invalid_param(
            "image",
            "`image` is required: upload the image to edit as a file field.",
        ));
    }
    let mask = form
        .get("mask")
        .map(|m| source_image(&m.data, "mask"))
        .transpose()?;
    Ok((req, images, mask))
}

fn source_image(data: &Bytes, param: &str) -> Result<SourceImage, Error> {
    match sniff(data) {
        Some(kind) => Ok(SourceImage {
            kind,
            bytes: data.clone(),
        }),
        None => Err(Error::invalid_param(
            param,
            format!("`{param}` is not a PNG, JPEG or WebP image (its first bytes are not an image signature)."),
        )
        .with_code("invalid_image")),
    }
}

/// Plans `POST /v1/images/edits`.
pub fn plan_edit(
    req: &ImageRequest,
    target: &Resolved,
    images: Vec<SourceImage>,
    mask: Option<SourceImage>,
    boundary: &dyn Fn() -> String,
) -> Result<ImagePlan, Error> {
    let m = &target.model;
    let takes_images = has(m, "image") || has(m, "input_image_0");
    if !takes_images {
        return Err(Error::invalid_param(
            "model",
            format!(
                "{} generates from text only and cannot edit an image; use \
                 @cf/runwayml/stable-diffusion-v1-5-inpainting (with a mask), \
                 @cf/runwayml/stable-diffusion-v1-5-img2img or a FLUX.2 model.",
                target.describe()
            ),
        )
        .with_code("model_not_supported"));
    }
    plan(req, target, images, mask, boundary)
}

fn has(m: &ModelInfo, field: &str) -> bool {
    m.media.inputs.contains_key(field)
}

fn range(m: &ModelInfo, field: &str) -> Option<Range> {
    m.media.inputs.get(field).copied()
}

fn plan(
    req: &ImageRequest,
    target: &Resolved,
    images: Vec<SourceImage>,
    mask: Option<SourceImage>,
    boundary: &dyn Fn() -> String,
) -> Result<ImagePlan, Error> {
    let m = &target.model;
    let who = target.describe();
    let mut dropped = Vec::new();
    if req.prompt.trim().is_empty() {
        return Err(Error::invalid_param(
            "prompt",
            "`prompt` is empty: describe the image.",
        ));
    }
    let n = req.n.unwrap_or(1);
    if n == 0 || n > MAX_IMAGES {
        return Err(Error::invalid_param(
            "n",
            format!("`n` must be between 1 and {MAX_IMAGES}."),
        ));
    }
    if req.stream == Some(true) {
        return Err(Error::invalid_param(
            "stream",
            "Streaming partial images is not available: Workers AI models return whole images. Omit `stream`.",
        ));
    }
    if req.background.as_deref() == Some("transparent") {
        return Err(Error::invalid_param(
            "background",
            format!(
                "{who} cannot make transparent backgrounds; omit `background` or use `opaque`."
            ),
        ));
    }
    if let Some(f) = req.output_format.as_deref() {
        check_output_format(m, f, &who)?;
    }
    for (set, name) in [
        (req.style.is_some(), "style"),
        (req.user.is_some(), "user"),
        (req.moderation.is_some(), "moderation"),
        (req.output_compression.is_some(), "output_compression"),
    ] {
        if set {
            dropped.push(name);
        }
    }

    let mut fields: Vec<(String, Field)> = vec![("prompt".into(), Field::Text(req.prompt.clone()))];
    if let Some(size) = req.size.as_deref().filter(|s| *s != "auto") {
        let (w, h) = parse_size(size)?;
        let (Some(rw), Some(rh)) = (range(m, "width"), range(m, "height")) else {
            return Err(Error::invalid_param(
                "size",
                format!(
                    "{who} makes images of one fixed size and takes no `size`; omit it (or send `auto`)."
                ),
            ));
        };
        for (v, r, side) in [(w, rw, "width"), (h, rh, "height")] {
            if !within(v as f64, r) {
                return Err(Error::invalid_param(
                    "size",
                    format!(
                        "{who} takes a {side} of {}; `{size}` is outside it.",
                        describe_range(r)
                    ),
                ));
            }
        }
        fields.push(("width".into(), Field::Int(w.into())));
        fields.push(("height".into(), Field::Int(h.into())));
    }
    let steps_field = ["num_steps", "steps"].into_iter().find(|f| has(m, f));
    match (req.steps, steps_field) {
        (Some(s), Some(f)) => {
            let r = range(m, f).unwrap_or(Range(None, None));
            if !within(s as f64, r) {
                return Err(Error::invalid_param(
                    "steps",
                    format!("{who} takes {} steps.", describe_range(r)),
                ));
            }
            fields.push((f.into(), Field::Int(s.into())));
        }
        (Some(_), None) => {
            return Err(Error::invalid_param(
                "steps",
                format!("{who} runs a fixed number of steps; omit `steps`."),
            ));
        }
        (None, Some(f)) => {
            if let Some(s) = quality_steps(req.quality.as_deref(), range(m, f))? {
                fields.push((f.into(), Field::Int(s)));
            }
        }
        (None, None) => {
            quality_steps(req.quality.as_deref(), None)?;
            if req.quality.is_some() {
                dropped.push("quality");
            }
        }
    }
    if let Some(g) = req.guidance {
        let r = range(m, "guidance").ok_or_else(|| {
            Error::invalid_param("guidance", format!("{who} takes no `guidance`; omit it."))
        })?;
        if !within(g, r) {
            return Err(Error::invalid_param(
                "guidance",
                format!("{who} takes a guidance of {}.", describe_range(r)),
            ));
        }
        fields.push(("guidance".into(), Field::Num(g)));
    }
    if let Some(np) = &req.negative_prompt {
        if !has(m, "negative_prompt") {
            return Err(Error::invalid_param(
                "negative_prompt",
                format!("{who} takes no `negative_prompt`; omit it."),
            ));
        }
        fields.push(("negative_prompt".into(), Field::Text(np.clone())));
    }
    if req.seed.is_some() && !has(m, "seed") {
        return Err(Error::invalid_param(
            "seed",
            format!("{who} takes no `seed`; omit it."),
        ));
    }
    if let Some(seed) = req.seed {
        if seed < 0 {
            return Err(Error::invalid_param("seed", "`seed` must not be negative."));
        }
    }

    // Input images of an edit.
    if has(m, "input_image_0") {
        if mask.is_some() {
            return Err(Error::invalid_param(
                "mask",
                format!(
                    "{who} takes no mask: describe the change in the prompt, or use \
                     @cf/runwayml/stable-diffusion-v1-5-inpainting for masked edits."
                ),
            ));
        }
        if images.len() > MAX_FLUX_IMAGES {
            return Err(Error::invalid_param(
                "image",
                format!("{who} takes at most {MAX_FLUX_IMAGES} images."),
            ));
        }
        for (i, img) in images.into_iter().enumerate() {
            fields.push((format!("input_image_{i}"), Field::Bytes(img)));
        }
    } else if images.len() > 1 {
        return Err(Error::invalid_param(
            "image",
            format!("{who} edits one image at a time; send a single `image`."),
        ));
    } else if let Some(img) = images.into_iter().next() {
        let inpainting = m.id.contains("inpainting");
        if inpainting && mask.is_none() {
            return Err(Error::invalid_param(
                "mask",
                format!(
                    "{who} paints inside a mask: upload `mask` (white where the image should change)."
                ),
            ));
        }
        fields.push(("image".into(), Field::Bytes(img)));
        if let Some(mk) = mask {
            if !has(m, "mask") {
                return Err(Error::invalid_param(
                    "mask",
                    format!("{who} takes no mask."),
                ));
            }
            fields.push(("mask".into(), Field::Bytes(mk)));
        }
    }

    let mut requests = Vec::with_capacity(n as usize);
    for i in 0..n {
        let seed = req.seed.map(|s| s + i64::from(i));
        requests.push(InferenceRequest {
            model: m.id.clone(),
            task: Task::TextToImage,
            input: render(m, &fields, seed, boundary)?,
            stream: false,
        });
    }
    let response_format = req.response_format.unwrap_or(
        if target.requested == "gpt-image-1" || target.requested.starts_with("gpt-image") {
            ResponseFormat::B64Json
        } else {
            ResponseFormat::Url
        },
    );
    Ok(ImagePlan {
        requests,
        response_format,
        dropped,
    })
}

fn render(
    m: &ModelInfo,
    fields: &[(String, Field)],
    seed: Option<i64>,
    boundary: &dyn Fn() -> String,
) -> Result<Input, Error> {
    if m.media.input == Some(MediaInput::Multipart) {
        let mut w = FormWriter::new(boundary());
        for (k, v) in fields {
            w = match v {
                Field::Text(s) => w.text(k, s),
                Field::Int(i) => w.text(k, &i.to_string()),
                Field::Num(f) => w.text(k, &f.to_string()),
                Field::Bytes(img) => {
                    let name = format!("{k}.{}", ext(img.kind));
                    w.file(k, &name, img.kind.mime(), &img.bytes)
                }
            };
        }
        if let Some(s) = seed {
            w = w.text("seed", &s.to_string());
        }
        let (body, content_type) = w.finish();
        return Ok(Input::Bytes { body, content_type });
    }
    let mut obj = Map::new();
    for (k, v) in fields {
        let value = match v {
            Field::Text(s) => json!(s),
            Field::Int(i) => json!(i),
            Field::Num(f) => json!(f),
            // The SD family's schema takes images (and masks) as arrays of bytes.
            Field::Bytes(img) => Value::Array(img.bytes.iter().map(|b| json!(b)).collect()),
        };
        obj.insert(k.clone(), value);
    }
    if let Some(s) = seed {
        obj.insert("seed".into(), json!(s));
    }
    Ok(Input::Json(Value::Object(obj)))
}

fn ext(kind: ImageKind) -> &'static str {
    match kind {
        ImageKind::Png => "png",
        ImageKind::Jpeg => "jpg",
        ImageKind::Webp => "webp",
    }
}

/// `WxH` → (width, height).
pub fn parse_size(size: &str) -> Result<(u32, u32), Error> {
    let bad = || {
        Error::invalid_param(
            "size",
            format!(
                "`size` must be `WIDTHxHEIGHT` in pixels (such as `1024x1024`) or `auto`, not `{size}`."
            ),
        )
    };
    let (w, h) = size.trim().split_once(['x', 'X']).ok_or_else(bad)?;
    let w: u32 = w.trim().parse().map_err(|_| bad())?;
    let h: u32 = h.trim().parse().map_err(|_| bad())?;
    if w == 0 || h == 0 {
        return Err(bad());
    }
    Ok((w, h))
}

fn within(v: f64, r: Range) -> bool {
    r.0.is_none_or(|lo| v >= lo) && r.1.is_none_or(|hi| v <= hi)
}

fn describe_range(r: Range) -> String {
    match (r.0, r.1) {
        (Some(lo), Some(hi)) => format!("{lo} to {hi}"),
        (Some(lo), None) => format!("at least {lo}"),
        (None, Some(hi)) => format!("at most {hi}"),
        (None, None) => "any value".into(),
    }
}

/// `quality` as a number of steps: `hd`/`high` take the model's most steps, `low` a
/// quarter of them, `standard`/`medium`/`auto` the model's default (nothing sent).
fn quality_steps(quality: Option<&str>, r: Option<Range>) -> Result<Option<i64>, Error> {
    let Some(q) = quality else { return Ok(None) };
    let max = r.and_then(|r| r.1);
    match q {
        "standard" | "medium" | "auto" => Ok(None),
        "hd" | "high" => Ok(max.map(|m| m as i64)),
        "low" => Ok(max.map(|m| ((m / 4.0).ceil() as i64).max(1))),
        other => Err(Error::invalid_param(
            "quality",
            format!(
                "`quality` must be one of standard, hd, low, medium, high or auto, not `{other}`."
            ),
        )),
    }
}

fn check_output_format(m: &ModelInfo, f: &str, who: &str) -> Result<(), Error> {
    use crate::catalog::MediaOutput;
    let made = match m.media.output {
        Some(MediaOutput::PngBytes) => Some("png"),
        Some(MediaOutput::JpegBytes) => Some("jpeg"),
        _ => None,
    };
    match (f, made) {
        ("png" | "jpeg" | "webp", Some(made)) if made == f => Ok(()),
        ("png" | "jpeg" | "webp", Some(made)) => Err(Error::invalid_param(
            "output_format",
            format!(
                "{who} makes {made} images and cng does not convert them; ask for `{made}` or omit `output_format`."
            ),
        )),
        ("png" | "jpeg" | "webp", None) => Err(Error::invalid_param(
            "output_format",
            format!(
                "{who} chooses its own image format (the answer's `output_format` says which); omit `output_format`."
            ),
        )),
        _ => Err(Error::invalid_param(
            "output_format",
            "`output_format` must be png, jpeg or webp.",
        )),
    }
}

/// The image an upstream answer carries: raw bytes, or `{"image": base64}`. Its type
/// is read from the bytes themselves (so a JPEG is never labelled PNG).
pub fn image_of(output: Output) -> Result<(Bytes, ImageKind), Error> {
    let bytes = match output {
        Output::Bytes { body, .. } => body,
        Output::Json(v) => {
            let b64 = v
                .get("image")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::upstream("the image model answered JSON without `image`"))?;
            let b64 = b64.split_once("base64,").map_or(b64, |(_, d)| d);
            Bytes::from(
                STANDARD
                    .decode(b64.trim())
                    .map_err(|_| Error::upstream("the image model's `image` is not base64"))?,
            )
        }
        Output::Stream(_) => {
            return Err(Error::upstream("the image model answered a stream"));
        }
    };
    let kind = sniff(&bytes).ok_or_else(|| {
        Error::upstream("the image model answered bytes that are not a PNG, JPEG or WebP image")
    })?;
    Ok((bytes, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1792x1024").unwrap(), (1792, 1024));
        assert!(parse_size("big").is_err());
        assert!(parse_size("0x5").is_err());
        assert!(within(1024.0, Range(Some(256.0), Some(2048.0))));
        assert!(!within(4096.0, Range(Some(256.0), Some(2048.0))));
    }

    #[test]
    fn quality_maps_to_steps() {
        let r = Some(Range(None, Some(20.0)));
        assert_eq!(quality_steps(Some("hd"), r).unwrap(), Some(20));
        assert_eq!(quality_steps(Some("low"), r).unwrap(), Some(5));
        assert_eq!(quality_steps(Some("standard"), r).unwrap(), None);
        assert!(quality_steps(Some("ultra"), r).is_err());
    }
}
