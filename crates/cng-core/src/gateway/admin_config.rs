//! `/api/config`: the gateway config document (see [`crate::config`]), admin only.
//!
//! - `GET /api/config`: the document in force plus its `version` (also the `ETag`);
//!   version 0 means nothing was saved yet and the defaults apply.
//! - `PUT /api/config`: replaces it. The write names the version it was based on —
//!   `If-Match: "7"`, or the `version` member that `GET` returned — and a stale one is
//!   a 409, so two admins editing at once never overwrite each other silently. The
//!   document is validated first; errors name the field (`param`).
//! - `GET /api/config/export`: the document as a file, without version.
//! - `POST /api/config/import`: replaces the document with an exported one (validated;
//!   `If-Match` is honoured when sent, otherwise the import wins — it is a restore).

use bytes::Bytes;
use http::header::{CONTENT_DISPOSITION, ETAG, HeaderValue, IF_MATCH};
use http::{Request, Response, StatusCode};
use serde_json::Value;

use super::{Body, Ctx, Gateway, Limiter, json, read_json_body};
use crate::backend::Backend;
use crate::config::{CONFIG_KEY, GatewayDoc, NS_CONFIG, parse_doc};
use crate::error::{Error, ErrorKind};
use crate::store::{Expect, Store};

/// Largest config document accepted.
const MAX_CONFIG_BYTES: usize = 2 * 1024 * 1024;

/// The document with its version, as `GET` answers and `PUT` returns.
fn with_version(doc: &GatewayDoc, version: u64) -> Result<Response<Body>, Error> {
    let mut v = serde_json::to_value(doc).map_err(|e| Error::internal(e.to_string()))?;
    if let Some(o) = v.as_object_mut() {
        o.insert("version".into(), Value::from(version));
    }
    let mut resp = json(StatusCode::OK, &v);
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{version}\"")) {
        resp.headers_mut().insert(ETAG, etag);
    }
    Ok(resp)
}

/// The version an `If-Match` header names: `"7"`, `W/"7"` or `7`.
fn if_match(req: &Request<Body>) -> Result<Option<u64>, Error> {
    let Some(raw) = req.headers().get(IF_MATCH) else {
        return Ok(None);
    };
    let s = raw.to_str().unwrap_or_default().trim();
    let s = s.strip_prefix("W/").unwrap_or(s).trim_matches('"');
    s.parse().map(Some).map_err(|_| {
        Error::invalid_request(format!(
            "`If-Match` must be the config's version as GET /api/config returns it in `ETag` (e.g. \"7\"), not `{s}`."
        ))
        .with_param("If-Match")
        .with_code("invalid_if_match")
    })
}

fn stale(expected: u64) -> Error {
    Error::new(
        ErrorKind::Conflict,
        format!(
            "The config changed since version {expected}: GET /api/config again, reapply your change and retry."
        ),
    )
    .with_code("stale_version")
}

async fn save<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    doc: &GatewayDoc,
    expected: Option<u64>,
) -> Result<Response<Body>, Error> {
    let version = store_doc(g, doc, expected).await?;
    with_version(doc, version)
}

/// Stores a validated document, expecting `expected` (`None`: any version; `Some(0)`:
/// nothing stored yet); a stale expectation is a 409 `stale_version`. Returns the new
/// version.
pub(super) async fn store_doc<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    doc: &GatewayDoc,
    expected: Option<u64>,
) -> Result<u64, Error> {
    let body = serde_json::to_vec(doc).map_err(|e| Error::internal(e.to_string()))?;
    let expect = match expected {
        None => Expect::Any,
        Some(0) => Expect::Absent,
        Some(v) => Expect::Version(v),
    };
    let version = g
        .store
        .put(NS_CONFIG, CONFIG_KEY, Bytes::from(body), expect)
        .await
        .map_err(|e| match (e.kind(), expected) {
            (ErrorKind::Conflict, Some(v)) => stale(v),
            _ => e,
        })?;
    g.live.invalidate();
    Ok(version)
}

pub(super) async fn handle<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    req: Request<Body>,
    ctx: &mut Ctx<'_>,
) -> Result<Response<Body>, Error> {
    if req.method() == http::Method::GET {
        return with_version(&ctx.live.doc, ctx.live.version);
    }
    let header = if_match(&req)?;
    let body = read_json_body(req, MAX_CONFIG_BYTES).await?;
    let (doc, body_version) = parse_doc(&body, &g.config.catalog, g.config.doc_rules())?;
    let Some(expected) = header.or(body_version) else {
        return Err(Error::invalid_request(
            "Say which version you edited: send `If-Match: \"<version>\"` or the `version` member GET /api/config returned.",
        )
        .with_param("version")
        .with_code("version_required"));
    };
    save(g, &doc, Some(expected)).await
}

pub(super) fn export(ctx: &Ctx<'_>) -> Response<Body> {
    let mut resp = json(StatusCode::OK, &ctx.live.doc);
    resp.headers_mut().insert(
        CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"cng-config.json\""),
    );
    resp
}

pub(super) async fn import<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    req: Request<Body>,
    _ctx: &mut Ctx<'_>,
) -> Result<Response<Body>, Error> {
    let header = if_match(&req)?;
    let body = read_json_body(req, MAX_CONFIG_BYTES).await?;
    let (doc, _) = parse_doc(&body, &g.config.catalog, g.config.doc_rules())?;
    save(g, &doc, header).await
}
