use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cng_core::ErrorKind;
use cng_core::backend::{Backend, InferenceRequest, Input, Output};
use cng_providers::{HttpClient, RestBackend, RestConfig};
use futures_util::StreamExt;
use serde_json::json;

use crate::common::*;

const MODEL: &str = "@cf/meta/llama-3.1-8b-instruct";

fn config(server: &Server, retries: u32) -> RestConfig {
    RestConfig {
        api_base: format!("{}/client/v4/", server.url()),
        retries,
        backoff_base: Duration::from_millis(1),
        ..RestConfig::new("acc123", TOKEN)
    }
}

fn backend<H: HttpClient>(server: &Server, retries: u32, client: H) -> RestBackend<H> {
    RestBackend::new(config(server, retries), client)
}

fn chat(stream: bool) -> InferenceRequest {
    let mut input = json!({"messages": [{"role": "user", "content": "hi"}]});
    if stream {
        input["stream"] = json!(true);
    }
    InferenceRequest {
        task: cng_core::catalog::Task::TextGeneration,
        model: MODEL.to_string(),
        input: Input::Json(input),
        stream,
    }
}

#[tokio::test]
async fn sends_path_auth_and_json_and_unwraps_the_envelope() {
    let server = Server::start(|_, _| async { envelope(json!({"response": "Hello!"})) }).await;
    let out = backend(&server, 0, client())
        .run(chat(false))
        .await
        .unwrap();
    let Output::Json(v) = out else {
        panic!("expected JSON, got {out:?}")
    };
    assert_eq!(v, json!({"response": "Hello!"}));

    let req = server.request(0);
    assert_eq!(req.method, http::Method::POST);
    assert_eq!(
        req.path,
        "/client/v4/accounts/acc123/ai/run/@cf/meta/llama-3.1-8b-instruct"
    );
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.json(),
        json!({"messages": [{"role": "user", "content": "hi"}]})
    );
}

#[tokio::test]
async fn sends_bytes_input_raw_with_its_content_type() {
    let server = Server::start(|_, _| async { envelope(json!({"text": "hello"})) }).await;
    let req = InferenceRequest {
        task: cng_core::catalog::Task::TextGeneration,
        model: "@cf/openai/whisper".to_string(),
        input: Input::Bytes {
            body: Bytes::from_static(b"ID3\x00\x01audio"),
            content_type: "audio/mpeg".to_string(),
        },
        stream: false,
    };
    let out = backend(&server, 0, client()).run(req).await.unwrap();
    assert!(matches!(out, Output::Json(v) if v["text"] == "hello"));
    let rec = server.request(0);
    assert_eq!(
        rec.path,
        "/client/v4/accounts/acc123/ai/run/@cf/openai/whisper"
    );
    assert_eq!(rec.header("content-type"), Some("audio/mpeg"));
    assert_eq!(&rec.body[..], b"ID3\x00\x01audio");
}

#[tokio::test]
async fn passes_sse_through_chunk_by_chunk_without_buffering() {
    let last_sent = Arc::new(AtomicBool::new(false));
    let flag = last_sent.clone();
    let server = Server::start(move |_, _| {
        let flag = flag.clone();
        async move {
            let (resp, tx) = channel(200, "text/event-stream");
            tokio::spawn(async move {
                tx.send(Bytes::from_static(b"data: {\"response\":\"He\"}\n\n"))
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(300)).await;
                tx.send(Bytes::from_static(b"data: {\"response\":\"llo\"}\n\n"))
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(300)).await;
                flag.store(true, Ordering::SeqCst);
                tx.send(Bytes::from_static(b"data: [DONE]\n\n"))
                    .await
                    .unwrap();
            });
            resp
        }
    })
    .await;
    let out = backend(&server, 2, client()).run(chat(true)).await.unwrap();
    let Output::Stream(mut s) = out else {
        panic!("expected a stream, got {out:?}")
    };
    let first = s.next().await.unwrap().unwrap();
    assert!(
        !last_sent.load(Ordering::SeqCst),
        "the first chunk must arrive before the server sends the last"
    );
    assert_eq!(&first[..], b"data: {\"response\":\"He\"}\n\n");
    let mut all = first.to_vec();
    let mut chunks = 1;
    while let Some(c) = s.next().await {
        all.extend_from_slice(&c.unwrap());
        chunks += 1;
    }
    assert!(chunks >= 3, "chunks were merged: {chunks}");
    assert_eq!(
        all,
        b"data: {\"response\":\"He\"}\n\ndata: {\"response\":\"llo\"}\n\ndata: [DONE]\n\n"
    );
    assert_eq!(server.request(0).json()["stream"], true);
}

#[tokio::test]
async fn returns_binary_png_with_its_content_type() {
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR fake";
    let server = Server::start(|_, _| async { raw(200, "image/png", PNG) }).await;
    let req = InferenceRequest {
        task: cng_core::catalog::Task::TextGeneration,
        model: "@cf/stabilityai/stable-diffusion-xl-base-1.0".to_string(),
        input: Input::Json(json!({"prompt": "a cat"})),
        stream: false,
    };
    match backend(&server, 0, client()).run(req).await.unwrap() {
        Output::Bytes { body, content_type } => {
            assert_eq!(&body[..], PNG);
            assert_eq!(content_type, "image/png");
        }
        other => panic!("expected bytes, got {other:?}"),
    }
}

#[tokio::test]
async fn maps_workers_ai_error_codes() {
    let server = Server::start(|n, _| async move {
        match n {
            0 => envelope_error(400, 5007, "No such model @cf/nope or task"),
            1 => with_header(
                envelope_error(429, 3040, "No more data centers to forward the request to"),
                "retry-after",
                "7",
            ),
            2 => envelope_error(413, 3006, "Request is too large"),
            3 => envelope_error(429, 3036, "You have used up your daily free allocation"),
            _ => raw(502, "text/html", "<html>bad gateway</html>"),
        }
    })
    .await;
    let b = backend(&server, 0, client());

    let e = b.run(chat(false)).await.unwrap_err();
    assert_eq!(e.status().as_u16(), 404);
    assert_eq!(e.code(), Some("model_not_found"));

    let e = b.run(chat(false)).await.unwrap_err();
    assert_eq!(e.status().as_u16(), 429);
    assert_eq!(e.kind(), ErrorKind::RateLimit);
    assert_eq!(e.retry_after(), Some(7), "Retry-After header wins");

    let e = b.run(chat(false)).await.unwrap_err();
    assert_eq!(e.status().as_u16(), 413);
    assert_eq!(e.code(), Some("workers_ai_3006"));

    let e = b.run(chat(false)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::QuotaExceeded);

    let e = b.run(chat(false)).await.unwrap_err();
    assert_eq!(e.status().as_u16(), 502);
    assert_eq!(server.hits(), 5);
}

#[tokio::test]
async fn success_false_in_a_2xx_is_an_error() {
    let server = Server::start(|_, _| async {
        json(
            200,
            json!({"result": null, "success": false,
            "errors": [{"code": 5004, "message": "Invalid data"}], "messages": []}),
        )
    })
    .await;
    let e = backend(&server, 0, client())
        .run(chat(false))
        .await
        .unwrap_err();
    assert_eq!(e.status().as_u16(), 400);
}

#[tokio::test]
async fn a_stream_request_answered_with_json_is_parsed() {
    let server = Server::start(|_, _| async { envelope(json!({"response": "whole"})) }).await;
    let out = backend(&server, 0, client()).run(chat(true)).await.unwrap();
    assert!(matches!(out, Output::Json(v) if v["response"] == "whole"));
}

#[tokio::test]
async fn retries_a_503_then_succeeds() {
    let server = Server::start(|n, _| async move {
        if n == 0 {
            envelope_error(503, 9999, "overloaded")
        } else {
            envelope(json!({"response": "ok"}))
        }
    })
    .await;
    let out = backend(&server, 2, client())
        .run(chat(false))
        .await
        .unwrap();
    assert!(matches!(out, Output::Json(v) if v["response"] == "ok"));
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn gives_up_after_the_configured_retries() {
    let server = Server::start(|_, _| async { raw(500, "text/plain", "boom") }).await;
    let client = Recording::new(client());
    let e = backend(&server, 2, client.clone())
        .run(chat(false))
        .await
        .unwrap_err();
    assert_eq!(e.status().as_u16(), 502);
    assert_eq!(server.hits(), 3);
    let sleeps = client.sleeps();
    assert_eq!(sleeps.len(), 2);
    // Full jitter under an exponential ceiling (base 1 ms).
    assert!(sleeps[0] <= Duration::from_millis(1), "{sleeps:?}");
    assert!(sleeps[1] <= Duration::from_millis(2), "{sleeps:?}");
}

#[tokio::test]
async fn does_not_retry_a_400() {
    let server =
        Server::start(|_, _| async { envelope_error(400, 5004, "Invalid data type") }).await;
    let e = backend(&server, 2, client())
        .run(chat(false))
        .await
        .unwrap_err();
    assert_eq!(e.status().as_u16(), 400);
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn honours_retry_after_capped_at_ten_seconds() {
    let server = Server::start(|n, _| async move {
        match n {
            0 => with_header(envelope_error(429, 3040, "busy"), "retry-after", "1"),
            1 => with_header(raw(503, "text/plain", "down"), "retry-after", "3600"),
            _ => envelope(json!({"response": "ok"})),
        }
    })
    .await;
    let client = Recording::new(client());
    let out = backend(&server, 2, client.clone())
        .run(chat(false))
        .await
        .unwrap();
    assert!(matches!(out, Output::Json(_)));
    assert_eq!(
        client.sleeps(),
        vec![Duration::from_secs(1), Duration::from_secs(10)]
    );
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn really_sleeps_between_attempts() {
    let server = Server::start(|n, _| async move {
        if n == 0 {
            with_header(raw(503, "text/plain", "down"), "retry-after", "0")
        } else {
            envelope(json!({}))
        }
    })
    .await;
    let mut cfg = config(&server, 1);
    cfg.backoff_base = Duration::from_millis(200);
    // Retry-After: 0 means no wait even with a long backoff base.
    let start = Instant::now();
    RestBackend::new(cfg, client())
        .run(chat(false))
        .await
        .unwrap();
    assert!(start.elapsed() < Duration::from_millis(150));
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn never_retries_a_stream() {
    let server = Server::start(|_, _| async { envelope_error(503, 9999, "overloaded") }).await;
    let e = backend(&server, 2, client())
        .run(chat(true))
        .await
        .unwrap_err();
    assert_eq!(e.status().as_u16(), 502);
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn caps_the_response_size() {
    let server = Server::start(|_, _| async { raw(200, "image/png", vec![0u8; 4096]) }).await;
    let mut cfg = config(&server, 0);
    cfg.max_response_bytes = 1000;
    let e = RestBackend::new(cfg, client())
        .run(chat(false))
        .await
        .unwrap_err();
    assert_eq!(e.status().as_u16(), 502);
    assert_eq!(e.message(), "upstream response over 1000 bytes");
}

#[tokio::test]
async fn refuses_model_ids_that_would_change_the_path() {
    let server = Server::start(|_, _| async { envelope(json!({})) }).await;
    let mut req = chat(false);
    req.model = "@cf/../../../user/tokens".to_string();
    let e = backend(&server, 0, client()).run(req).await.unwrap_err();
    assert_eq!(e.status().as_u16(), 400);
    assert_eq!(server.hits(), 0);
}

#[tokio::test]
async fn an_upstream_echoing_the_token_is_redacted() {
    let server = Server::start(|_, _| async {
        envelope_error(400, 5004, &format!("bad header Bearer {TOKEN}"))
    })
    .await;
    let e = backend(&server, 0, client())
        .run(chat(false))
        .await
        .unwrap_err();
    assert!(!e.message().contains(TOKEN), "{}", e.message());
    assert!(e.message().contains("[redacted]"));
}
