//! The Anthropic Messages API (`POST /v1/messages`, `POST /v1/messages/count_tokens`)
//! over Workers AI.
//!
//! 1. [`plan`] reads a [`MessagesRequest`] and translates it through the chat
//!    translation ([`crate::chat::plan`]);
//! 2. the backend runs it;
//! 3. [`respond`] turns a JSON result into a `message`, or a [`MessagesTranscoder`]
//!    turns the upstream SSE into Anthropic events (the chat reader's
//!    [`StreamEvent`](crate::chat::StreamEvent)s written by a [`MessagesWriter`]).
//!
//! Errors are rendered in Anthropic's shape by [`error::to_json`].

pub mod error;
pub mod messages;
mod request;
mod response;
mod stream;
pub mod tokens;

pub use messages::{MessageResponse, MessagesRequest};
pub use request::{Block, MessagesPlan, parse_blocks, plan};
pub use response::{matched_stop, stop_reason, tool_input};
pub use stream::MessagesWriter;

use serde_json::Value;

use crate::chat::{self, StreamEvent, Transcoder, events};
use crate::error::Error;

/// The transcoder of a streamed Messages answer.
pub type MessagesTranscoder = Transcoder<MessagesWriter>;

/// The transcoder for `plan`'s upstream stream.
pub fn transcoder(plan: &MessagesPlan) -> MessagesTranscoder {
    Transcoder::with_writer(plan.context.clone(), MessagesWriter::new(plan))
}

/// A non-streamed Workers AI result → the `message`.
pub fn respond(plan: &MessagesPlan, result: &Value) -> Result<MessageResponse, Error> {
    let completion = chat::complete(&plan.context, result)?;
    Ok(response::message(
        plan,
        &completion,
        matched_stop(result).as_deref(),
    ))
}

/// A non-streamed result sent as a stream of Anthropic events (JSON mode, which
/// Workers AI does not stream).
pub fn respond_as_events(plan: &MessagesPlan, result: &Value) -> Result<Vec<u8>, Error> {
    let completion = chat::complete(&plan.context, result)?;
    let mut evs = events::completion_events(&completion);
    if let Some(s) = matched_stop(result) {
        for e in &mut evs {
            if let StreamEvent::Finish { stop_sequence, .. } = e {
                *stop_sequence = Some(s.clone());
            }
        }
    }
    Ok(events::write_all(&mut MessagesWriter::new(plan), &evs))
}
