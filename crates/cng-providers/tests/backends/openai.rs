use std::time::Duration;

use bytes::Bytes;
use cng_core::ErrorKind;
use cng_core::backend::{Backend, InferenceRequest, Input, Output};
use cng_providers::{HttpClient, OpenAiBackend, OpenAiConfig};
use futures_util::StreamExt;
use serde_json::json;

use crate::common::*;

const KEY: &str = "sk-upstream-SECRET-key-42";

fn config(server: &Server, key: Option<&str>, retries: u32) -> OpenAiConfig {
    OpenAiConfig {
        api_key: key.map(str::to_string),
        retries,
        backoff_base: Duration::from_millis(1),
        ..OpenAiConfig::new(format!("{}/v1/", server.url()))
    }
}

fn backend<H: HttpClient>(server: &Server, retries: u32, client: H) -> OpenAiBackend<H> {
    OpenAiBackend::new(config(server, Some(KEY), retries), client)
}

fn chat(stream: bool) -> InferenceRequest {
    InferenceRequest {
        task: cng_core::catalog::Task::TextGeneration,
        model: "qwen2.5:7b".to_string(),
        input: Input::Json(
            json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}),
        ),
        stream,
    }
}

fn completion() -> serde_json::Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "qwen2.5:7b",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}]})
}

#[tokio::test]
async fn sends_the_model_and_the_bearer_key_and_returns_the_body_as_is() {
    let server = Server::start(|_, _| async { json(200, completion()) }).await;
    let out = backend(&server, 0, client())
        .run(chat(false))
        .await
        .unwrap();
    let Output::Json(v) = out else {
        panic!("expected JSON, got {out:?}")
    };
    assert_eq!(v, completion());
    let req = server.request(0);
    assert_eq!(req.method, http::Method::POST);
    assert_eq!(req.path, "/v1/chat/completions");
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.json(),
        json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "model": "qwen2.5:7b"})
    );
}

#[tokio::test]
async fn streams_sse_with_stream_true_in_the_body() {
    let server = Server::start(|_, _| async {
        let (resp, tx) = channel(200, "text/event-stream; charset=utf-8");
        tokio::spawn(async move {
            tx.send(Bytes::from_static(b"data: {\"choices\":[]}\n\n"))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            tx.send(Bytes::from_static(b"data: [DONE]\n\n"))
                .await
                .unwrap();
        });
        resp
    })
    .await;
    let out = backend(&server, 2, client()).run(chat(true)).await.unwrap();
    let Output::Stream(s) = out else {
        panic!("expected a stream, got {out:?}")
    };
    let chunks: Vec<Bytes> = s.map(|c| c.unwrap()).collect().await;
    assert_eq!(
        chunks.concat(),
        b"data: {\"choices\":[]}\n\ndata: [DONE]\n\n"
    );
    assert_eq!(server.request(0).json()["stream"], true);
}

#[tokio::test]
async fn sends_no_authorization_without_a_key() {
    let server = Server::start(|_, _| async { json(200, completion()) }).await;
    OpenAiBackend::new(config(&server, None, 0), client())
        .run(chat(false))
        .await
        .unwrap();
    assert_eq!(server.request(0).header("authorization"), None);
}

#[tokio::test]
async fn maps_error_bodies_by_status() {
    let server = Server::start(|n, _| async move {
        let err = |status, msg: &str, ty: &str, code: serde_json::Value| {
            json(
                status,
                json!({"error": {"message": msg, "type": ty, "param": null, "code": code}}),
            )
        };
        match n {
            0 => err(
                400,
                "max_tokens is too large",
                "invalid_request_error",
                json!("invalid_value"),
            ),
            1 => err(
                401,
                &format!("Incorrect API key provided: {KEY}"),
                "invalid_request_error",
                json!("invalid_api_key"),
            ),
            2 => err(403, "forbidden", "permission_error", json!(null)),
            3 => err(
                404,
                "The model `qwen2.5:7b` does not exist",
                "invalid_request_error",
                json!("model_not_found"),
            ),
            4 => err(408, "slow", "timeout", json!(null)),
            5 => err(413, "too big", "invalid_request_error", json!(null)),
            6 => with_header(
                err(
                    429,
                    "Rate limit reached",
                    "requests",
                    json!("rate_limit_exceeded"),
                ),
                "retry-after",
                "3",
            ),
            7 => err(500, "The server had an error", "server_error", json!(null)),
            _ => json(
                404,
                json!({"error": "model \"x\" not found, try pulling it first"}),
            ),
        }
    })
    .await;
    let b = backend(&server, 0, client());
    let next = async || b.run(chat(false)).await.unwrap_err();

    let e = next().await;
    assert_eq!(
        (e.kind(), e.message()),
        (ErrorKind::InvalidRequest, "max_tokens is too large")
    );
    assert_eq!(e.code(), Some("invalid_value"));

    for _ in 0..2 {
        let e = next().await;
        assert_eq!(e.status().as_u16(), 502, "401/403 do not blame the client");
        assert!(e.message().contains("refused the gateway's key"));
        assert!(!e.message().contains(KEY));
    }

    let e = next().await;
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(e.code(), Some("model_not_found"));
    assert!(e.message().contains("does not exist"));

    assert_eq!(next().await.kind(), ErrorKind::UpstreamTimeout);
    assert_eq!(next().await.kind(), ErrorKind::PayloadTooLarge);

    let e = next().await;
    assert_eq!(e.kind(), ErrorKind::RateLimit);
    assert_eq!(e.retry_after(), Some(3));
    assert_eq!(e.message(), "Rate limit reached");

    let e = next().await;
    assert_eq!(e.status().as_u16(), 502);
    assert!(e.message().contains("The server had an error"));

    let e = next().await;
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.message().starts_with("model \"x\" not found"));
    assert_eq!(server.hits(), 9);
}

#[tokio::test]
async fn refuses_bytes_input() {
    let server = Server::start(|_, _| async { json(200, completion()) }).await;
    let req = InferenceRequest {
        task: cng_core::catalog::Task::TextGeneration,
        model: "whisper-1".to_string(),
        input: Input::Bytes {
            body: Bytes::from_static(b"audio"),
            content_type: "audio/mpeg".to_string(),
        },
        stream: false,
    };
    let e = backend(&server, 0, client()).run(req).await.unwrap_err();
    assert_eq!(e.status().as_u16(), 400);
    assert_eq!(e.message(), "this upstream only serves JSON endpoints");
    assert_eq!(server.hits(), 0);
}

#[tokio::test]
async fn retries_like_rest() {
    let server = Server::start(|n, _| async move {
        match n {
            0 => with_header(
                json(429, json!({"error": {"message": "slow down"}})),
                "retry-after",
                "2",
            ),
            1 => raw(502, "text/html", "<html>"),
            _ => json(200, completion()),
        }
    })
    .await;
    let rec = Recording::new(client());
    let out = backend(&server, 2, rec.clone())
        .run(chat(false))
        .await
        .unwrap();
    assert!(matches!(out, Output::Json(_)));
    assert_eq!(server.hits(), 3);
    let sleeps = rec.sleeps();
    assert_eq!(sleeps[0], Duration::from_secs(2));
    assert!(sleeps[1] <= Duration::from_millis(2));

    // 400 is final.
    let server =
        Server::start(|_, _| async { json(400, json!({"error": {"message": "bad"}})) }).await;
    assert!(
        backend(&server, 2, client())
            .run(chat(false))
            .await
            .is_err()
    );
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn a_2xx_that_is_not_json_is_a_502() {
    let server = Server::start(|_, _| async { raw(200, "text/html", "<html>hi</html>") }).await;
    let e = backend(&server, 0, client())
        .run(chat(false))
        .await
        .unwrap_err();
    assert_eq!(e.status().as_u16(), 502);
}
