//! `POST /v1/images/generations`, `POST /v1/images/edits`, `GET /img/{id}`.
//!
//! `n` images are made one upstream call each, in turn. `url` answers keep the image
//! in the Store for the config document's `images.cache_ttl_seconds` (default 1 h) and link to `GET /img/{id}`.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};

use super::{Body, Ctx, Gateway, Limiter, json, read_json_body, upload};
use crate::backend::Backend;
use crate::catalog::Task;
use crate::error::{Error, ErrorKind};
use crate::image_store::{self, ImageKind, NS_IMAGES, StoredImage};
use crate::images::{self, ImagePlan};
use crate::openai::images::{ImageData, ImageRequest, ImagesResponse, ResponseFormat};
use crate::openai::parse_json;
use crate::store::{Expect, Store};

/// The model of a request that names none (OpenAI's default).
const DEFAULT_MODEL: &str = "dall-e-2";

pub(super) async fn generations<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    req: Request<Body>,
    ctx: &mut Ctx<'_>,
) -> Result<Response<Body>, Error> {
    let origin = origin(g, req.headers());
    let body = read_json_body(req, g.config.max_body_bytes).await?;
    let parsed = parse_json::<ImageRequest>(&body)?;
    ctx.log.ignored = parsed.ignored;
    let req = parsed.value;
    let model = req.model.clone().unwrap_or_default();
    // An empty model takes the config's default for images, else OpenAI's default.
    let model = if model.is_empty() && ctx.live.default_for(&[Task::TextToImage]).is_none() {
        DEFAULT_MODEL.to_string()
    } else {
        model
    };
    let target = g.resolve(ctx, &model, &[Task::TextToImage])?;
    if g.config.open_models {
        let up = upload::passthrough_json(&target.model.id, Task::TextToImage, &body)?;
        return Ok(upload::passthrough_answer(
            g.backend.run(up).await?,
            &target.requested,
        ));
    }
    let plan = images::plan_generation(&req, &target, &|| upload::boundary(g))?;
    ctx.log.dropped = plan.dropped.clone();
    run(g, plan, origin, ctx.live.doc.images.cache_ttl_seconds).await
}

pub(super) async fn edits<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    req: Request<Body>,
    ctx: &mut Ctx<'_>,
) -> Result<Response<Body>, Error> {
    let origin = origin(g, req.headers());
    let form = upload::read_form(g, req).await?;
    ctx.log.ignored = form.unknown_fields(&[
        "image",
        "mask",
        "prompt",
        "model",
        "n",
        "size",
        "quality",
        "response_format",
        "output_format",
        "background",
        "user",
        "seed",
        "negative_prompt",
        "steps",
        "guidance",
    ]);
    let (req, sources, mask) = images::read_edit_form(&form)?;
    let model = match req.model.clone().filter(|m| !m.is_empty()) {
        Some(m) => m,
        // With no model, the image is edited by the SD 1.5 model that fits: inpainting
        // inside a mask, img2img without one.
        None if mask.is_some() => "@cf/runwayml/stable-diffusion-v1-5-inpainting".into(),
        None => "@cf/runwayml/stable-diffusion-v1-5-img2img".into(),
    };
    let target = g.resolve(ctx, &model, &[Task::TextToImage])?;
    if g.config.open_models {
        let up = upload::passthrough_form(
            &target.model.id,
            Task::TextToImage,
            &form,
            upload::boundary(g),
        );
        return Ok(upload::passthrough_answer(
            g.backend.run(up).await?,
            &target.requested,
        ));
    }
    let plan = images::plan_edit(&req, &target, sources, mask, &|| upload::boundary(g))?;
    ctx.log.dropped = plan.dropped.clone();
    run(g, plan, origin, ctx.live.doc.images.cache_ttl_seconds).await
}

async fn run<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    plan: ImagePlan,
    origin: Option<String>,
    ttl: u64,
) -> Result<Response<Body>, Error> {
    let now = g.services.clock.unix_seconds();
    let mut data = Vec::with_capacity(plan.requests.len());
    let mut format = None;
    for request in plan.requests {
        let (bytes, kind) = images::image_of(g.backend.run(request).await?)?;
        format.get_or_insert(kind.name());
        data.push(match plan.response_format {
            ResponseFormat::B64Json => ImageData {
                b64_json: Some(base64_of(&bytes)),
                url: None,
            },
            ResponseFormat::Url => ImageData {
                b64_json: None,
                url: Some(keep(g, bytes, kind, now + ttl, origin.as_deref()).await?),
            },
        });
    }
    Ok(json(
        StatusCode::OK,
        &ImagesResponse {
            created: now,
            data,
            output_format: format,
        },
    ))
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Stores the image and returns its link.
async fn keep<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    bytes: Bytes,
    kind: ImageKind,
    expires: u64,
    origin: Option<&str>,
) -> Result<String, Error> {
    let origin = origin.ok_or_else(|| {
        Error::invalid_param(
            "response_format",
            "cng cannot tell its own address for an image link (no Host header and no \
             public URL configured); ask for `response_format: b64_json`.",
        )
    })?;
    let id = image_store::new_id(&*g.services.entropy);
    let record = StoredImage {
        expires,
        content_type: kind.mime().to_string(),
        bytes,
    };
    g.store
        .put(NS_IMAGES, &id, record.encode(), Expect::Absent)
        .await?;
    Ok(format!("{}/img/{id}", origin.trim_end_matches('/')))
}

/// Where clients reach cng: the configured public URL, else the request's host (and
/// `X-Forwarded-Proto` behind a TLS-terminating proxy).
fn origin<B: Backend, S: Store, L: Limiter>(g: &Gateway<B, S, L>, h: &HeaderMap) -> Option<String> {
    if let Some(u) = &g.config.public_url {
        return Some(u.clone());
    }
    let host = h.get(HOST).and_then(|v| v.to_str().ok())?;
    if host.is_empty() || !host.bytes().all(|b| b.is_ascii_graphic()) || host.contains('/') {
        return None;
    }
    let proto = match h
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
    {
        Some("https") => "https",
        _ => "http",
    };
    Some(format!("{proto}://{host}"))
}

pub(super) async fn serve<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    id: &str,
) -> Result<Response<Body>, Error> {
    let gone = || {
        Error::new(
            ErrorKind::NotFound,
            "No such image: it never existed or has expired. Generate it again.",
        )
        .with_code("image_not_found")
    };
    if !image_store::is_valid_id(id) {
        return Err(gone());
    }
    let Some(rec) = g.store.get(NS_IMAGES, id).await? else {
        return Err(gone());
    };
    let now = g.services.clock.unix_seconds();
    let Some(img) = StoredImage::decode(&rec.value).filter(|i| i.expires > now) else {
        // Expired (or unreadable): forget it; a failed delete only leaves garbage.
        let _ = g
            .store
            .delete(NS_IMAGES, id, Expect::Version(rec.version))
            .await;
        return Err(gone());
    };
    let len = img.bytes.len();
    let mut resp = upload::bytes_response(&img.content_type, Body::Full(img.bytes), Some(len));
    let h = resp.headers_mut();
    let max_age = img.expires - now;
    if let Ok(v) = HeaderValue::from_str(&format!("private, max-age={max_age}, immutable")) {
        h.insert(CACHE_CONTROL, v);
    }
    h.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    Ok(resp)
}
