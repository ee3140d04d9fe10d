//! `POST /v1/chat/completions`.

use http::{Request, Response, StatusCode};

use super::{Body, Ctx, Gateway, Limiter, json, read_json_body, sse};
use crate::backend::{Backend, Output};
use crate::catalog::Task;
use crate::chat::events::transcode_stream;
use crate::chat::{self, ChatPlan, StreamTranscoder};
use crate::error::Error;
use crate::openai::{chat::ChatRequest, parse_json};
use crate::store::Store;
use crate::usage::observe::StreamUsage;

pub(super) async fn handle<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    req: Request<Body>,
    ctx: &mut Ctx<'_>,
) -> Result<Response<Body>, Error> {
    let body = read_json_body(req, g.config.max_body_bytes).await?;
    let parsed = parse_json::<ChatRequest>(&body)?;
    ctx.log.ignored = parsed.ignored;
    let req = parsed.value;
    let (plan, output) = g
        .run_model(
            ctx,
            &req.model,
            &[Task::TextGeneration, Task::ImageToText],
            |target, (ids, clock)| chat::plan(&req, target, ids, clock),
        )
        .await?;
    respond(plan, output)
}

/// Answers a chat request's upstream output in the plan's dialect.
pub(super) fn respond(plan: ChatPlan, output: Output) -> Result<Response<Body>, Error> {
    let client_stream = plan.request.stream || plan.emulate_stream;
    match output {
        Output::Json(v) => {
            let completion = chat::complete(&plan.context, &v)?;
            if client_stream {
                let usage = plan.context.include_usage;
                let bytes = match plan.context.dialect {
                    chat::Dialect::Chat => chat::completion_to_sse(&completion, usage),
                    chat::Dialect::TextCompletion => super::completions::to_sse(
                        &super::completions::from_chat(completion),
                        usage,
                    ),
                };
                return Ok(sse(Body::from(bytes)));
            }
            Ok(match plan.context.dialect {
                chat::Dialect::Chat => json(StatusCode::OK, &completion),
                chat::Dialect::TextCompletion => {
                    json(StatusCode::OK, &super::completions::from_chat(completion))
                }
            })
        }
        Output::Stream(s) => {
            let report = StreamUsage::default();
            let t = StreamTranscoder::new(plan.context).reporting(report.clone());
            let mut resp = sse(Body::Stream(transcode_stream(s, t)));
            resp.extensions_mut().insert(report);
            Ok(resp)
        }
        Output::Bytes { content_type, .. } => Err(Error::upstream(format!(
            "the upstream answered `{content_type}` bytes where text was expected"
        ))),
    }
}
