//! `POST /v1/responses` (OpenAI Responses API).

use http::{Request, Response, StatusCode};

use super::{Body, Ctx, Gateway, Limiter, json, read_json_body, sse};
use crate::backend::{Backend, Output};
use crate::catalog::Task;
use crate::chat::events::transcode_stream;
use crate::error::Error;
use crate::openai::parse_json;
use crate::responses::{self, ResponsesRequest};
use crate::store::Store;

pub(super) async fn handle<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    req: Request<Body>,
    ctx: &mut Ctx<'_>,
) -> Result<Response<Body>, Error> {
    let body = read_json_body(req, g.config.max_body_bytes).await?;
    let parsed = parse_json::<ResponsesRequest>(&body)?;
    ctx.log.ignored = parsed.ignored;
    let req = parsed.value;
    let (plan, output) = g
        .run_model(
            ctx,
            &req.model,
            &[Task::TextGeneration, Task::ImageToText],
            |target, (ids, clock)| responses::plan(&req, target, ids, clock),
        )
        .await?;
    let stream = plan.stream;
    match output {
        Output::Json(v) if stream => Ok(sse(Body::from(responses::respond_as_events(&plan, &v)?))),
        Output::Json(v) => Ok(json(StatusCode::OK, &responses::respond(&plan, &v)?)),
        Output::Stream(s) => Ok(sse(Body::Stream(transcode_stream(
            s,
            responses::transcoder(&plan),
        )))),
        Output::Bytes { content_type, .. } => Err(Error::upstream(format!(
            "the upstream answered `{content_type}` bytes where text was expected"
        ))),
    }
}
