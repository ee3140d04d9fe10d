//! `POST /v1/embeddings`: batches split by the model's limit, run in order, re-joined.

use super::{Body, Ctx, Gateway, Limiter, json, read_json_body, upload};
use crate::backend::{Backend, Input, Output};
use crate::catalog::Task;
use crate::embeddings;
use crate::error::Error;
use crate::openai::{embeddings::EmbeddingsRequest, parse_json};
use crate::store::Store;
use http::{Request, Response, StatusCode};

pub(super) async fn handle<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    req: Request<Body>,
    ctx: &mut Ctx<'_>,
) -> Result<Response<Body>, Error> {
    let body = read_json_body(req, g.config.max_body_bytes).await?;
    let parsed = parse_json::<EmbeddingsRequest>(&body)?;
    ctx.log.ignored = parsed.ignored;
    let req = parsed.value;
    let target = g.resolve(ctx, &req.model, &[Task::TextEmbeddings])?;
    if g.config.open_models {
        let up = upload::passthrough_json(&target.model.id, Task::TextEmbeddings, &body)?;
        return Ok(upload::passthrough_answer(
            g.backend.run(up).await?,
            &target.requested,
        ));
    }
    let plan = embeddings::plan(&req, &target)?;
    let mut vectors = Vec::with_capacity(plan.texts.len());
    for batch in &plan.batches {
        let expected = match &batch.input {
            Input::Json(v) => v["text"].as_array().map_or(0, Vec::len),
            Input::Bytes { .. } => 0,
        };
        match g.backend.run(batch.clone()).await? {
            Output::Json(v) => vectors.extend(embeddings::vectors(&v, expected)?),
            other => return Err(unexpected(&other)),
        }
    }
    Ok(json(StatusCode::OK, &embeddings::complete(&plan, vectors)?))
}

fn unexpected(out: &Output) -> Error {
    match out {
        Output::Bytes { content_type, .. } => Error::upstream(format!(
            "the embedding model answered `{content_type}` bytes where JSON was expected"
        )),
        _ => Error::upstream("the embedding model answered a stream"),
    }
}
