//! `POST /v1/audio/speech`, `/v1/audio/transcriptions`, `/v1/audio/translations`.

use http::{Request, Response};

use super::{Body, Ctx, Gateway, Limiter, read_json_body, upload};
use crate::backend::{Backend, Output};
use crate::catalog::Task;
use crate::error::Error;
use crate::openai::{audio::SpeechRequest, parse_json};
use crate::speech;
use crate::store::Store;
use crate::transcription::{self, SpeechTask};

pub(super) async fn speech<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    req: Request<Body>,
    ctx: &mut Ctx<'_>,
) -> Result<Response<Body>, Error> {
    let body = read_json_body(req, g.config.max_body_bytes).await?;
    let parsed = parse_json::<SpeechRequest>(&body)?;
    ctx.log.ignored = parsed.ignored;
    let req = parsed.value;
    let target = g.resolve(ctx, &req.model, &[Task::TextToSpeech])?;
    if g.config.open_models {
        let up = upload::passthrough_json(&target.model.id, Task::TextToSpeech, &body)?;
        return Ok(upload::passthrough_answer(
            g.backend.run(up).await?,
            &target.requested,
        ));
    }
    let plan = speech::plan(&req, &target)?;
    ctx.log.dropped = plan.dropped.clone();
    let mime = plan.format.mime();
    // The audio goes to the client as the upstream delivers it: a stream is passed on
    // chunk by chunk, bytes as they are (never copied into a new buffer).
    Ok(match g.backend.run(plan.request).await? {
        Output::Stream(s) => upload::bytes_response(mime, Body::Stream(s), None),
        Output::Bytes { body, .. } => {
            let len = body.len();
            upload::bytes_response(mime, Body::Full(body), Some(len))
        }
        Output::Json(v) => {
            // MeloTTS's JSON form: {"audio": base64 MP3}.
            use base64::Engine as _;
            let b64 = v
                .get("audio")
                .and_then(|a| a.as_str())
                .ok_or_else(|| Error::upstream("the speech model answered JSON without `audio`"))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|_| Error::upstream("the speech model's `audio` is not base64"))?;
            let len = bytes.len();
            upload::bytes_response(mime, Body::from(bytes), Some(len))
        }
    })
}

pub(super) async fn transcriptions<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    req: Request<Body>,
    ctx: &mut Ctx<'_>,
) -> Result<Response<Body>, Error> {
    transcribe(g, req, ctx, SpeechTask::Transcribe).await
}

pub(super) async fn translations<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    req: Request<Body>,
    ctx: &mut Ctx<'_>,
) -> Result<Response<Body>, Error> {
    transcribe(g, req, ctx, SpeechTask::Translate).await
}

async fn transcribe<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    req: Request<Body>,
    ctx: &mut Ctx<'_>,
    task: SpeechTask,
) -> Result<Response<Body>, Error> {
    let form = upload::read_form(g, req).await?;
    ctx.log.ignored = form.unknown_fields(&[
        "file",
        "model",
        "language",
        "prompt",
        "response_format",
        "temperature",
        "timestamp_granularities",
        "stream",
        "include",
        "chunking_strategy",
    ]);
    let req = transcription::read_form(&form)?;
    let target = g.resolve(ctx, &req.model, &[Task::AutomaticSpeechRecognition])?;
    if g.config.open_models {
        // OpenAI-compatible upstreams: /audio/transcriptions, or /audio/translations
        // (asked for as the `translation` task).
        let t = match task {
            SpeechTask::Transcribe => Task::AutomaticSpeechRecognition,
            SpeechTask::Translate => Task::Translation,
        };
        let up = upload::passthrough_form(&target.model.id, t, &form, upload::boundary(g));
        return Ok(upload::passthrough_answer(
            g.backend.run(up).await?,
            &target.requested,
        ));
    }
    let plan = transcription::plan(&req, &target, task)?;
    ctx.log.dropped = plan.dropped.clone();
    let result = match g.backend.run(plan.request.clone()).await? {
        Output::Json(v) => v,
        Output::Bytes { content_type, .. } => {
            return Err(Error::upstream(format!(
                "the speech model answered `{content_type}` bytes where JSON was expected"
            )));
        }
        Output::Stream(_) => return Err(Error::upstream("the speech model answered a stream")),
    };
    let t = transcription::transcript(&result)?;
    let (content_type, body) = transcription::render(&plan, &t)?;
    let len = body.len();
    Ok(upload::bytes_response(
        content_type,
        Body::from(body),
        Some(len),
    ))
}
