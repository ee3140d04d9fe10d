//! ReqwestClient's timeouts and transport errors, seen through RestBackend.

use std::time::{Duration, Instant};

use bytes::Bytes;
use cng_core::ErrorKind;
use cng_core::backend::{Backend, InferenceRequest, Input, Output};
use cng_providers::{ReqwestClient, RestBackend, RestConfig};
use futures_util::StreamExt;
use serde_json::json;

use crate::common::*;

fn rest(base: String, retries: u32, client: ReqwestClient) -> RestBackend<ReqwestClient> {
    RestBackend::new(
        RestConfig {
            api_base: base,
            retries,
            backoff_base: Duration::from_millis(1),
            ..RestConfig::new("acc123", TOKEN)
        },
        client,
    )
}

fn req(stream: bool) -> InferenceRequest {
    InferenceRequest {
        task: cng_core::catalog::Task::TextGeneration,
        model: "@cf/meta/llama-3.1-8b-instruct".to_string(),
        input: Input::Json(json!({"prompt": "hi", "stream": stream})),
        stream,
    }
}

#[tokio::test]
async fn first_byte_timeout_is_a_504_and_not_retried() {
    let server = Server::start(|_, _| async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        envelope(json!({}))
    })
    .await;
    let client = ReqwestClient::new(timeouts(200, 2000)).unwrap();
    let start = Instant::now();
    let e = rest(server.url(), 2, client)
        .run(req(false))
        .await
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_millis(1000),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(e.kind(), ErrorKind::UpstreamTimeout);
    assert_eq!(e.status().as_u16(), 504);
    assert_eq!(e.message(), "upstream did not answer within 0.2s");
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn idle_timeout_mid_stream_ends_the_stream_with_an_error() {
    let server = Server::start(|_, _| async {
        let (resp, tx) = channel(200, "text/event-stream");
        tokio::spawn(async move {
            tx.send(Bytes::from_static(b"data: {\"response\":\"a\"}\n\n"))
                .await
                .unwrap();
            // Stall, keeping the connection open.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let _ = tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
        });
        resp
    })
    .await;
    let client = ReqwestClient::new(timeouts(2000, 200)).unwrap();
    let out = rest(server.url(), 0, client).run(req(true)).await.unwrap();
    let Output::Stream(mut s) = out else {
        panic!("expected a stream, got {out:?}")
    };
    let first = s.next().await.unwrap().unwrap();
    assert_eq!(&first[..], b"data: {\"response\":\"a\"}\n\n");
    let start = Instant::now();
    let e = s.next().await.unwrap().unwrap_err();
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(150) && waited < Duration::from_millis(1500),
        "{waited:?}"
    );
    assert_eq!(e.status().as_u16(), 504);
    assert_eq!(e.message(), "the upstream stalled: no data for 0.2s");
    assert!(s.next().await.is_none(), "the stream ends after the error");
}

#[tokio::test]
async fn a_slow_consumer_does_not_trip_the_idle_timeout() {
    let server = Server::start(|_, _| async {
        let (resp, tx) = channel(200, "text/event-stream");
        tokio::spawn(async move {
            for i in 0..3 {
                tx.send(Bytes::from(format!("data: {i}\n\n")))
                    .await
                    .unwrap();
            }
        });
        resp
    })
    .await;
    let client = ReqwestClient::new(timeouts(2000, 200)).unwrap();
    let Output::Stream(mut s) = rest(server.url(), 0, client).run(req(true)).await.unwrap() else {
        panic!("expected a stream")
    };
    let mut all = Vec::new();
    while let Some(c) = s.next().await {
        all.extend_from_slice(&c.unwrap());
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert_eq!(all, b"data: 0\n\ndata: 1\n\ndata: 2\n\n");
}

#[tokio::test]
async fn connection_refused_is_a_502_without_the_token_and_is_retried() {
    let dead = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let client = Recording::new(ReqwestClient::new(timeouts(2000, 2000)).unwrap());
    let b = RestBackend::new(
        RestConfig {
            api_base: format!("http://{dead}/client/v4"),
            retries: 1,
            backoff_base: Duration::from_millis(1),
            ..RestConfig::new("acc123", TOKEN)
        },
        client.clone(),
    );
    let e = b.run(req(false)).await.unwrap_err();
    assert_eq!(e.status().as_u16(), 502);
    assert_eq!(e.kind(), ErrorKind::Upstream);
    assert_eq!(e.code(), Some("upstream_unreachable"));
    assert!(!e.message().contains(TOKEN), "{}", e.message());
    assert!(!e.message().contains("Bearer"), "{}", e.message());
    assert!(e.message().contains(&dead.to_string()), "{}", e.message());
    assert_eq!(client.sleeps().len(), 1, "connect errors are retried");

    // A stream is not retried, even on a connect error.
    let client = Recording::new(ReqwestClient::new(timeouts(2000, 2000)).unwrap());
    let b = RestBackend::new(b.config().clone(), client.clone());
    assert_eq!(b.run(req(true)).await.unwrap_err().status().as_u16(), 502);
    assert!(client.sleeps().is_empty());
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = Server::start(|_, _| async {
        with_header(
            raw(301, "text/plain", ""),
            "location",
            "http://example.invalid/",
        )
    })
    .await;
    let e = rest(server.url(), 2, client())
        .run(req(false))
        .await
        .unwrap_err();
    assert_eq!(e.status().as_u16(), 502);
    assert_eq!(server.hits(), 1);
}
