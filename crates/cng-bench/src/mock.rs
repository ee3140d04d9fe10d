//! The harness's own mock upstream: as little work per request as possible, so what
//! the harness measures is the gateway in front of it, not the mock.
//!
//! Unlike `cng-testkit`'s fake upstream (which parses every body, matches fixtures and
//! records requests), this one answers fixed bytes prepared at start-up:
//!
//! - `POST …/ai/run/{model}` (Workers AI REST): the v4 envelope around a short
//!   `{"response", "usage"}`, or, when the body asks for `"stream": true`, a 21-event
//!   stream (20 `{"response": …}` events, the last with `usage`, then `[DONE]`).
//! - `POST …/chat/completions` (OpenAI shape): a short `chat.completion`, or a 21-event
//!   stream (role chunk, 18 content chunks, finish chunk, `[DONE]`).
//! - `GET /health`: 200.
//!
//! Stream events are separate body frames with no pause between them.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Events in every mock stream, `[DONE]` included.
pub const STREAM_EVENTS: usize = 21;

/// The words the mock streams spell, one per content event.
const WORDS: [&str; 18] = [
    "Hello",
    "!",
    " I",
    " am",
    " a",
    " mock",
    " upstream",
    " that",
    " answers",
    " in",
    " a",
    " fixed",
    " number",
    " of",
    " tiny",
    " events",
    " for",
    " benchmarks.",
];

/// Prepared answers.
struct Answers {
    wa_json: Bytes,
    wa_stream: Vec<Bytes>,
    oa_json: Bytes,
    oa_stream: Vec<Bytes>,
}

fn answers() -> Answers {
    let usage = r#"{"prompt_tokens":12,"completion_tokens":20,"total_tokens":32}"#;
    let wa_json = format!(
        r#"{{"result":{{"response":"Hello! I am a mock upstream.","tool_calls":[],"usage":{usage}}},"success":true,"errors":[],"messages":[]}}"#
    );
    let mut wa_stream: Vec<Bytes> = Vec::with_capacity(STREAM_EVENTS);
    wa_stream.push(Bytes::from_static(
        b"data: {\"response\":\"\",\"tool_calls\":[],\"p\":\"abcdefgh\"}\n\n",
    ));
    for w in WORDS {
        wa_stream.push(Bytes::from(format!(
            "data: {{\"response\":\"{w}\",\"tool_calls\":[],\"p\":\"abcdefgh\"}}\n\n"
        )));
    }
    wa_stream.push(Bytes::from(format!(
        "data: {{\"response\":\"\",\"usage\":{usage}}}\n\n"
    )));
    wa_stream.push(Bytes::from_static(b"data: [DONE]\n\n"));

    let oa_json = format!(
        r#"{{"id":"chatcmpl-mock","object":"chat.completion","created":1700000000,"model":"bench-model","choices":[{{"index":0,"message":{{"role":"assistant","content":"Hello! I am a mock upstream."}},"logprobs":null,"finish_reason":"stop"}}],"usage":{usage}}}"#
    );
    let chunk = |delta: &str, finish: &str| {
        Bytes::from(format!(
            "data: {{\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench-model\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}]}}\n\n"
        ))
    };
    let mut oa_stream: Vec<Bytes> = Vec::with_capacity(STREAM_EVENTS);
    oa_stream.push(chunk(r#"{"role":"assistant","content":""}"#, "null"));
    for w in WORDS {
        oa_stream.push(chunk(&format!(r#"{{"content":"{w}"}}"#), "null"));
    }
    oa_stream.push(chunk("{}", "\"stop\""));
    oa_stream.push(Bytes::from_static(b"data: [DONE]\n\n"));
    Answers {
        wa_json: Bytes::from(wa_json),
        wa_stream,
        oa_json: Bytes::from(oa_json),
        oa_stream,
    }
}

/// A response body that yields prepared frames one by one.
pub struct Frames {
    frames: std::vec::IntoIter<Bytes>,
    /// Streams have no declared length (chunked, as real SSE upstreams send them).
    exact: bool,
}

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.frames.next().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.frames.len() == 0
    }

    fn size_hint(&self) -> SizeHint {
        if !self.exact {
            return SizeHint::default();
        }
        let n: usize = self.frames.as_slice().iter().map(Bytes::len).sum();
        SizeHint::with_exact(n as u64)
    }
}

/// Does a JSON body ask for a stream? A byte search, not a parse: the mock must stay
/// cheap. Matches `"stream":true` with or without a space after the colon.
fn wants_stream(body: &[u8]) -> bool {
    let needle = b"\"stream\"";
    let mut rest = body;
    while let Some(i) = find(rest, needle) {
        let after = &rest[i + needle.len()..];
        let after = trim_start(after);
        if let Some(after) = after.strip_prefix(b":") {
            if trim_start(after).starts_with(b"true") {
                return true;
            }
        }
        rest = &rest[i + needle.len()..];
    }
    false
}

fn trim_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn handle(
    answers: &'static Answers,
    req: Request<Incoming>,
) -> Result<Response<Frames>, Infallible> {
    let path = req.uri().path().to_owned();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let stream = wants_stream(&body);
    let (frames, content_type, status) = if path.contains("/ai/run/") {
        if stream {
            (
                answers.wa_stream.clone(),
                "text/event-stream",
                StatusCode::OK,
            )
        } else {
            (
                vec![answers.wa_json.clone()],
                "application/json",
                StatusCode::OK,
            )
        }
    } else if path.ends_with("/chat/completions") {
        if stream {
            (
                answers.oa_stream.clone(),
                "text/event-stream",
                StatusCode::OK,
            )
        } else {
            (
                vec![answers.oa_json.clone()],
                "application/json",
                StatusCode::OK,
            )
        }
    } else if path == "/health" {
        (
            vec![Bytes::from_static(b"{\"ok\":true}")],
            "application/json",
            StatusCode::OK,
        )
    } else {
        (
            vec![Bytes::from_static(
                b"{\"result\":null,\"success\":false,\"errors\":[{\"code\":7000,\"message\":\"No route for that URI\"}],\"messages\":[]}",
            )],
            "application/json",
            StatusCode::NOT_FOUND,
        )
    };
    let exact = content_type != "text/event-stream";
    let mut res = Response::new(Frames {
        frames: frames.into_iter(),
        exact,
    });
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(res)
}

/// Serves on `addr` until the process ends (HTTP/1.1 keep-alive, one task per connection).
pub async fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    println!(
        "cng-bench mock listening on http://{}",
        listener.local_addr()?
    );
    let answers: &'static Answers = Box::leak(Box::new(answers()));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(answers, req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn stream_detection() {
        assert!(wants_stream(br#"{"stream":true}"#));
        assert!(wants_stream(br#"{"model":"x", "stream" : true}"#));
        assert!(!wants_stream(br#"{"stream":false}"#));
        assert!(!wants_stream(br#"{"messages":[{"content":"stream"}]}"#));
    }

    #[test]
    fn streams_have_21_events() {
        let a = answers();
        assert_eq!(a.wa_stream.len(), STREAM_EVENTS);
        assert_eq!(a.oa_stream.len(), STREAM_EVENTS);
        for e in a.wa_stream.iter().chain(&a.oa_stream) {
            let s = std::str::from_utf8(e).unwrap();
            let data = s.strip_prefix("data: ").unwrap().trim_end();
            assert!(data == "[DONE]" || serde_json::from_str::<serde_json::Value>(data).is_ok());
        }
        serde_json::from_slice::<serde_json::Value>(&a.wa_json).unwrap();
        serde_json::from_slice::<serde_json::Value>(&a.oa_json).unwrap();
    }
}
