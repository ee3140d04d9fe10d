//! Reading token usage off the answers cng sends, whatever the endpoint or dialect.
//!
//! The gateway counts usage at one place (its `handle`), after an endpoint answered,
//! instead of in every endpoint: it reads `usage` from a JSON body, or from the events
//! of an SSE stream as they pass (only lines that mention `usage` or `error` are
//! parsed; nothing is buffered beyond one line). Recognised: OpenAI's
//! `prompt_tokens`/`completion_tokens` (chat, completions, embeddings), and
//! `input_tokens`/`output_tokens` (Responses API, Anthropic Messages) at `usage`,
//! `message.usage` or `response.usage`.

use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use memchr::memmem::Finder;
use serde_json::Value;

use super::{SharedSink, UsageEvent};
use crate::backend::ByteStream;
use crate::error::Error;

/// Longest SSE line looked at; longer ones (big content deltas) are skipped.
const MAX_LINE: usize = 64 * 1024;

/// Searchers for the member names that make a line worth parsing, built once
/// (building one costs more than a search in a short line).
static USAGE_NAME: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"usage\""));
static ERROR_NAME: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"error\""));

/// Token counts read from an answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    pub input: Option<u64>,
    pub output: Option<u64>,
}

impl Tokens {
    fn absorb(&mut self, v: &Value) {
        for ptr in ["/usage", "/message/usage", "/response/usage"] {
            let Some(u) = v.pointer(ptr).filter(|u| u.is_object()) else {
                continue;
            };
            let num = |names: &[&str]| names.iter().find_map(|n| u.get(*n).and_then(Value::as_u64));
            // Streams repeat usage cumulatively: the largest figure is the total.
            if let Some(i) = num(&["prompt_tokens", "input_tokens"]) {
                self.input = Some(self.input.map_or(i, |x| x.max(i)));
            }
            if let Some(o) = num(&["completion_tokens", "output_tokens"]) {
                self.output = Some(self.output.map_or(o, |x| x.max(o)));
            }
        }
    }
}

/// The top-level `usage` of a JSON answer, read without building the rest of the
/// document (embeddings and images answers can be megabytes: serde skips them).
#[derive(serde::Deserialize)]
struct UsageProbe {
    #[serde(default)]
    usage: Option<UsageFields>,
}

#[derive(serde::Deserialize)]
struct UsageFields {
    #[serde(default, alias = "input_tokens")]
    prompt_tokens: Option<u64>,
    #[serde(default, alias = "output_tokens")]
    completion_tokens: Option<u64>,
}

/// The usage in a whole JSON answer (every dialect puts it at the top level).
pub fn tokens_from_json(body: &[u8]) -> Tokens {
    match serde_json::from_slice::<UsageProbe>(body) {
        Ok(UsageProbe { usage: Some(u) }) => Tokens {
            input: u.prompt_tokens,
            output: u.completion_tokens,
        },
        _ => Tokens::default(),
    }
}

/// Usage a stream's transcoder knew at its end, for answers that do not carry it to
/// the client (a chat stream without `stream_options.include_usage`). The gateway puts
/// it in the response's extensions; [`CountedStream`] falls back on it.
#[derive(Debug, Clone, Default)]
pub struct StreamUsage(std::sync::Arc<std::sync::Mutex<Tokens>>);

impl StreamUsage {
    /// Records the final usage.
    pub fn set(&self, input: u64, output: u64) {
        if let Ok(mut t) = self.0.lock() {
            *t = Tokens {
                input: Some(input),
                output: Some(output),
            };
        }
    }

    /// What was recorded.
    pub fn get(&self) -> Tokens {
        self.0.lock().map(|t| *t).unwrap_or_default()
    }
}

/// Watches SSE bytes for usage and error events.
#[derive(Debug, Default)]
pub struct SseScanner {
    line: Vec<u8>,
    skipping: bool,
    pub tokens: Tokens,
    pub saw_error: bool,
}

impl SseScanner {
    /// Feeds the next bytes of the stream. Whole lines inside `chunk` are looked at
    /// where they are; only a line split across chunks is copied (at most
    /// [`MAX_LINE`] bytes).
    pub fn push(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            let Some(end) = memchr::memchr(b'\n', chunk) else {
                // The line goes on in the next chunk.
                if !self.skipping {
                    if self.line.len() + chunk.len() > MAX_LINE {
                        self.skipping = true;
                        self.line.clear();
                    } else {
                        self.line.extend_from_slice(chunk);
                    }
                }
                return;
            };
            let (part, rest) = (&chunk[..end], &chunk[end + 1..]);
            if !self.skipping {
                if self.line.is_empty() {
                    if part.len() <= MAX_LINE {
                        self.line_done(part);
                    }
                } else if self.line.len() + part.len() <= MAX_LINE {
                    let mut line = std::mem::take(&mut self.line);
                    line.extend_from_slice(part);
                    self.line_done(&line);
                    line.clear();
                    self.line = line;
                }
            }
            self.line.clear();
            self.skipping = false;
            chunk = rest;
        }
    }

    fn line_done(&mut self, line: &[u8]) {
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        let usage = USAGE_NAME.find(data).is_some();
        let error = ERROR_NAME.find(data).is_some();
        if !usage && !error {
            return;
        }
        let Ok(v) = serde_json::from_slice::<Value>(data.trim_ascii()) else {
            return;
        };
        if error
            && (v.get("error").is_some_and(|e| !e.is_null())
                || v.get("type").and_then(Value::as_str) == Some("error"))
        {
            self.saw_error = true;
        }
        if usage {
            self.tokens.absorb(&v);
        }
    }
}

/// A response stream that counts itself when it ends or is dropped (the client went
/// away): tokens and errors seen on the way go into the event.
pub struct CountedStream {
    inner: ByteStream,
    scanner: SseScanner,
    pending: Option<(UsageEvent, SharedSink)>,
    reported: Option<StreamUsage>,
}

impl CountedStream {
    pub fn new(inner: ByteStream, event: UsageEvent, sink: SharedSink) -> Self {
        Self {
            inner,
            scanner: SseScanner::default(),
            pending: Some((event, sink)),
            reported: None,
        }
    }

    /// Falls back on `usage` when the stream itself shows none.
    pub fn with_reported(mut self, usage: Option<StreamUsage>) -> Self {
        self.reported = usage;
        self
    }

    fn finish(&mut self) {
        if let Some((mut e, sink)) = self.pending.take() {
            let seen = self.scanner.tokens;
            let reported = self
                .reported
                .as_ref()
                .map(StreamUsage::get)
                .unwrap_or_default();
            e.input_tokens = seen.input.or(reported.input);
            e.output_tokens = seen.output.or(reported.output);
            e.stream_error = self.scanner.saw_error;
            sink.record(e);
        }
    }
}

impl Stream for CountedStream {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(b))) => {
                this.scanner.push(&b);
                Poll::Ready(Some(Ok(b)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.scanner.saw_error = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.finish();
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for CountedStream {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_usage_of_every_dialect() {
        let chat = br#"{"usage":{"prompt_tokens":12,"completion_tokens":3}}"#;
        assert_eq!(
            tokens_from_json(chat),
            Tokens {
                input: Some(12),
                output: Some(3)
            }
        );
        let anthropic = br#"{"type":"message","usage":{"input_tokens":7,"output_tokens":2}}"#;
        assert_eq!(tokens_from_json(anthropic).output, Some(2));
        let embeddings = br#"{"data":[],"usage":{"prompt_tokens":4,"total_tokens":4}}"#;
        assert_eq!(
            tokens_from_json(embeddings),
            Tokens {
                input: Some(4),
                output: None
            }
        );
        assert_eq!(tokens_from_json(b"not json"), Tokens::default());
    }

    #[test]
    fn sse_usage_at_any_split() {
        let sse = concat!(
            "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n",
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":4}}\n\n",
            "data: [DONE]\n\n"
        )
        .as_bytes();
        for split in 0..sse.len() {
            let mut s = SseScanner::default();
            s.push(&sse[..split]);
            s.push(&sse[split..]);
            assert_eq!(
                s.tokens,
                Tokens {
                    input: Some(9),
                    output: Some(4)
                },
                "split at {split}"
            );
            assert!(!s.saw_error);
        }
    }

    #[test]
    fn sse_usage_at_any_three_way_split() {
        let sse = concat!(
            "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":4}}\n\n",
            "data: {\"error\":{\"message\":\"late\"}}\n",
            "data: [DONE]\n\n"
        )
        .as_bytes();
        for i in 0..sse.len() {
            for j in i..sse.len() {
                let mut s = SseScanner::default();
                s.push(&sse[..i]);
                s.push(&sse[i..j]);
                s.push(&sse[j..]);
                assert_eq!(s.tokens.output, Some(4), "split at {i}, {j}");
                assert!(s.saw_error, "split at {i}, {j}");
            }
        }
    }

    #[test]
    fn lines_over_the_limit_are_skipped_whole_at_any_split() {
        let usage = |pad: usize| {
            // A data line of MAX_LINE + pad bytes, padded inside a JSON string so it
            // stays valid JSON.
            let head = "data: {\"usage\":{\"completion_tokens\":7},\"p\":\"";
            let tail = "\"}";
            let fill = MAX_LINE + pad - head.len() - tail.len();
            format!("{head}{}{tail}\n\n", "x".repeat(fill))
        };
        let at_limit = usage(0);
        let over = usage(1);
        assert_eq!(at_limit.len(), MAX_LINE + 2);
        for line in [&at_limit, &over] {
            let b = line.as_bytes();
            for split in [
                0,
                1,
                6,
                100,
                MAX_LINE - 1,
                MAX_LINE,
                MAX_LINE + 1,
                b.len() - 1,
            ] {
                let mut s = SseScanner::default();
                s.push(&b[..split]);
                s.push(&b[split..]);
                // A short line after it is read as usual.
                s.push(b"data: {\"usage\":{\"prompt_tokens\":3}}\n\n");
                let expect = (line == &at_limit).then_some(7);
                assert_eq!(s.tokens.output, expect, "len {}, split {split}", b.len());
                assert_eq!(s.tokens.input, Some(3));
            }
        }
    }

    #[test]
    fn sse_error_events_are_seen() {
        let mut s = SseScanner::default();
        s.push(b"data: {\"error\":{\"message\":\"upstream broke\"}}\n\n");
        assert!(s.saw_error);
        let mut s = SseScanner::default();
        s.push(b"data: {\"delta\":{\"content\":\"an error of mine\"}}\n\n");
        assert!(!s.saw_error, "the word in content is not an error event");
    }
}
