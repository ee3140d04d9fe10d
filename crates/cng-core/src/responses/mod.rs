//! The OpenAI Responses API (`POST /v1/responses`) over Workers AI.
//!
//! 1. [`plan`] reads a [`ResponsesRequest`] and translates it: gpt-oss gets its native
//!    Responses input, every other model (and gpt-oss streams) goes through the chat
//!    translation ([`crate::chat::plan`]);
//! 2. the backend runs it;
//! 3. [`respond`] turns a JSON result into a `response` object, or a
//!    [`ResponsesTranscoder`] turns the upstream SSE into Responses events — both
//!    through the chat reader and the one [`ResponsesWriter`], so a response reads the
//!    same streamed or not.

pub mod input;
mod request;
mod stream;
pub mod wire;

pub use request::{ResponsesPlan, plan};
pub use stream::ResponsesWriter;
pub use wire::{ResponseObject, ResponsesRequest};

use serde_json::Value;

use crate::chat::{self, EventWriter, Transcoder, events};
use crate::error::Error;

/// The transcoder of a streamed Responses answer.
pub type ResponsesTranscoder = Transcoder<ResponsesWriter>;

/// The transcoder for `plan`'s upstream stream.
pub fn transcoder(plan: &ResponsesPlan) -> ResponsesTranscoder {
    Transcoder::with_writer(
        plan.context.clone(),
        ResponsesWriter::new(plan.head.clone()),
    )
}

/// A non-streamed Workers AI result (any generation, or gpt-oss's Responses object)
/// → the `response` object.
pub fn respond(plan: &ResponsesPlan, result: &Value) -> Result<ResponseObject, Error> {
    let completion = chat::complete(&plan.context, result)?;
    let mut w = ResponsesWriter::silent(plan.head.clone());
    let mut sink = Vec::new();
    for e in events::completion_events(&completion) {
        w.write(&e, &mut sink);
    }
    Ok(w.into_response())
}

/// A non-streamed result sent as a stream of Responses events (JSON mode, which
/// Workers AI does not stream).
pub fn respond_as_events(plan: &ResponsesPlan, result: &Value) -> Result<Vec<u8>, Error> {
    let completion = chat::complete(&plan.context, result)?;
    let mut w = ResponsesWriter::new(plan.head.clone());
    Ok(events::write_all(
        &mut w,
        &events::completion_events(&completion),
    ))
}
