//! `POST /v1/translations`, cng's text translation extension (m2m100, IndicTrans2).

use http::{Request, Response, StatusCode};

use super::{Body, Ctx, Gateway, Limiter, json, read_json_body};
use crate::backend::{Backend, Output};
use crate::catalog::Task;
use crate::error::{Error, ErrorKind};
use crate::openai::parse_json;
use crate::store::Store;
use crate::translation::{self, TranslationRequest};

pub(super) async fn handle<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    req: Request<Body>,
    ctx: &mut Ctx<'_>,
) -> Result<Response<Body>, Error> {
    let body = read_json_body(req, g.config.max_body_bytes).await?;
    let parsed = parse_json::<TranslationRequest>(&body)?;
    ctx.log.ignored = parsed.ignored;
    let req = parsed.value;
    if g.config.open_models {
        return Err(Error::new(
            ErrorKind::NotImplemented,
            "POST /v1/translations is a Workers AI extension; an OpenAI-compatible upstream has no such endpoint.",
        )
        .with_code("not_implemented"));
    }
    let model = match req.model.clone().filter(|m| !m.is_empty()) {
        Some(m) => m,
        None if ctx.live.default_for(&[Task::Translation]).is_some() => String::new(),
        None => translation::DEFAULT_MODEL.to_string(),
    };
    let target = g.resolve(ctx, &model, &[Task::Translation])?;
    let plan = translation::plan(&req, &target)?;
    let mut results = Vec::with_capacity(plan.requests.len());
    for r in &plan.requests {
        match g.backend.run(r.clone()).await? {
            Output::Json(v) => results.push(v),
            _ => {
                return Err(Error::upstream(
                    "the translation model answered something other than JSON",
                ));
            }
        }
    }
    let texts = translation::translations(&plan, &results)?;
    Ok(json(
        StatusCode::OK,
        &translation::complete(&plan, &target.requested, texts),
    ))
}
