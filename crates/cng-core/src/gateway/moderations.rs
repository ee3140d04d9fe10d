//! `POST /v1/moderations` through Llama Guard 3, one input after another.

use http::{Request, Response, StatusCode};

use super::{Body, Ctx, Gateway, Limiter, json, read_json_body, upload};
use crate::backend::{Backend, Output};
use crate::catalog::Task;
use crate::error::Error;
use crate::moderation;
use crate::openai::moderations::{ModerationRequest, ModerationResponse};
use crate::openai::parse_json;
use crate::store::Store;

/// The model of a request that names none (OpenAI's default).
const DEFAULT_MODEL: &str = "omni-moderation-latest";

pub(super) async fn handle<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    req: Request<Body>,
    ctx: &mut Ctx<'_>,
) -> Result<Response<Body>, Error> {
    let body = read_json_body(req, g.config.max_body_bytes).await?;
    let parsed = parse_json::<ModerationRequest>(&body)?;
    ctx.log.ignored = parsed.ignored;
    let req = parsed.value;
    let tasks = [Task::TextClassification, Task::TextGeneration];
    let model = match req.model.clone().filter(|m| !m.is_empty()) {
        Some(m) => m,
        None if ctx.live.default_for(&tasks).is_some() => String::new(),
        None => DEFAULT_MODEL.to_string(),
    };
    let target = g.resolve(ctx, &model, &tasks)?;
    if g.config.open_models {
        let up = upload::passthrough_json(&target.model.id, Task::TextClassification, &body)?;
        return Ok(upload::passthrough_answer(
            g.backend.run(up).await?,
            &target.requested,
        ));
    }
    moderation::check_model(&target)?;
    let texts = moderation::texts(&req.input)?;
    let mut results = Vec::with_capacity(texts.len());
    for text in &texts {
        let v = match g.backend.run(moderation::request(&target, text)).await? {
            Output::Json(v) => v,
            _ => {
                return Err(Error::upstream(
                    "Llama Guard answered something other than JSON",
                ));
            }
        };
        let (flagged, codes) = moderation::verdict(&v)?;
        results.push(moderation::result(flagged, codes));
    }
    Ok(json(
        StatusCode::OK,
        &ModerationResponse {
            id: format!("modr-{}", g.services.ids.fresh_id()),
            model: target.requested.clone(),
            results,
        },
    ))
}
