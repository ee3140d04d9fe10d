//! `POST /v1/messages` and `/v1/messages/count_tokens` (Anthropic Messages API).
//!
//! Keys come as `x-api-key` (as Anthropic's SDKs send them) or any form the gateway
//! accepts; `anthropic-version` and `anthropic-beta` are accepted and not needed.
//! Every error of these routes — the gateway's own (authentication, rate limits,
//! unknown methods) included — is answered in Anthropic's error shape
//! ([`reshape_error`]).

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, StatusCode};
use serde_json::Value;

use super::{Body, Ctx, Gateway, Limiter, json, read_json_body, sse};
use crate::anthropic::{self, MessagesRequest, error as anthropic_error, tokens};
use crate::backend::{Backend, Output};
use crate::catalog::Task;
use crate::chat::events::transcode_stream;
use crate::error::{Error, ErrorKind};
use crate::openai::parse_json;
use crate::store::Store;

pub(super) async fn messages<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    req: Request<Body>,
    ctx: &mut Ctx<'_>,
) -> Result<Response<Body>, Error> {
    let body = read_json_body(req, g.config.max_body_bytes).await?;
    let parsed = parse_json::<MessagesRequest>(&body)?;
    ctx.log.ignored = parsed.ignored;
    let req = parsed.value;
    let (plan, output) = g
        .run_model(
            ctx,
            &req.model,
            &[Task::TextGeneration, Task::ImageToText],
            |target, (ids, clock)| anthropic::plan(&req, target, ids, clock),
        )
        .await?;
    match output {
        Output::Json(v) if plan.stream => {
            Ok(sse(Body::from(anthropic::respond_as_events(&plan, &v)?)))
        }
        Output::Json(v) => Ok(json(StatusCode::OK, &anthropic::respond(&plan, &v)?)),
        Output::Stream(s) => Ok(sse(Body::Stream(transcode_stream(
            s,
            anthropic::transcoder(&plan),
        )))),
        Output::Bytes { content_type, .. } => Err(Error::upstream(format!(
            "the upstream answered `{content_type}` bytes where text was expected"
        ))),
    }
}

pub(super) async fn count_tokens<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    req: Request<Body>,
    ctx: &mut Ctx<'_>,
) -> Result<Response<Body>, Error> {
    let body = read_json_body(req, g.config.max_body_bytes).await?;
    let parsed = parse_json::<MessagesRequest>(&body)?;
    ctx.log.ignored = parsed.ignored;
    let req = parsed.value;
    // The model must exist and the key may use it, as for /v1/messages.
    g.hops(ctx, &req.model, &[Task::TextGeneration, Task::ImageToText])?;
    let input_tokens = tokens::estimate(&req)?;
    Ok(json(
        StatusCode::OK,
        &anthropic::messages::TokenCount { input_tokens },
    ))
}

/// True for the routes that speak Anthropic's dialect (as the route table matches
/// them: with or without `/v1`).
pub(super) fn is_anthropic_path(path: &str) -> bool {
    let p = path
        .strip_prefix("/v1")
        .filter(|p| p.starts_with('/'))
        .unwrap_or(path);
    p == "/messages" || p == "/messages/count_tokens"
}

/// Rewrites an OpenAI-shaped error response (whatever produced it: a handler, the
/// authentication or the rate limiter) as Anthropic's error body, keeping the status
/// and headers (`Retry-After`, `Allow`, rate-limit headers). Other responses pass.
pub(super) fn reshape_error(mut resp: Response<Body>, request_id: &str) -> Response<Body> {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let Body::Full(bytes) = resp.body() else {
        return resp;
    };
    let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
        return resp;
    };
    let Some(err) = v.get("error").filter(|e| e.is_object()) else {
        return resp;
    };
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("error")
        .to_string();
    let mut e = Error::new(kind_of(status), message);
    if let Some(p) = err.get("param").and_then(Value::as_str) {
        e = e.with_param(p);
    }
    let body = anthropic_error::to_json(&e, Some(request_id));
    let len = body.len();
    *resp.body_mut() = Body::Full(Bytes::from(body));
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    resp
}

/// The error kind an error status stands for (each kind has one status; 429 is a
/// rate limit either way for Anthropic).
fn kind_of(status: StatusCode) -> ErrorKind {
    match status.as_u16() {
        401 => ErrorKind::Authentication,
        403 => ErrorKind::Permission,
        404 => ErrorKind::NotFound,
        405 => ErrorKind::MethodNotAllowed,
        408 => ErrorKind::RequestTimeout,
        409 => ErrorKind::Conflict,
        413 => ErrorKind::PayloadTooLarge,
        415 => ErrorKind::UnsupportedMediaType,
        429 => ErrorKind::RateLimit,
        501 => ErrorKind::NotImplemented,
        502 => ErrorKind::Upstream,
        503 => ErrorKind::Unavailable,
        504 => ErrorKind::UpstreamTimeout,
        400..=499 => ErrorKind::InvalidRequest,
        _ => ErrorKind::Internal,
    }
}
