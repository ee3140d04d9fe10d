use cng_core::ErrorKind;
use cng_core::backend::{Backend, InferenceRequest, Input, Output};
use cng_providers::{
    AnyBackend, OpenAiBackend, OpenAiConfig, RestBackend, RestConfig, Unconfigured,
};
use serde_json::json;

use crate::common::*;

fn req() -> InferenceRequest {
    InferenceRequest {
        task: cng_core::catalog::Task::TextGeneration,
        model: "@cf/meta/llama-3.1-8b-instruct".to_string(),
        input: Input::Json(json!({"prompt": "hi"})),
        stream: false,
    }
}

#[tokio::test]
async fn unconfigured_is_a_503_that_says_what_to_set() {
    let e = Unconfigured.run(req()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert_eq!(e.status().as_u16(), 503);
    assert_eq!(e.code(), Some("upstream_not_configured"));
    assert_eq!(
        e.message(),
        "No upstream is configured. Set CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN \
         (Workers AI REST API), or start cng with --upstream URL (and CNG_UPSTREAM_KEY) for \
         an OpenAI-compatible upstream."
    );
}

fn assert_send<T: Send>(t: T) -> T {
    t
}

#[tokio::test]
async fn any_backend_delegates() {
    let server = Server::start(|_, rec| async move {
        if rec.path.ends_with("/chat/completions") {
            json(200, json!({"object": "chat.completion"}))
        } else {
            envelope(json!({"response": "rest"}))
        }
    })
    .await;
    let rest: AnyBackend = RestBackend::new(
        RestConfig {
            api_base: server.url(),
            ..RestConfig::new("acc", TOKEN)
        },
        client(),
    )
    .into();
    let openai: AnyBackend =
        OpenAiBackend::new(OpenAiConfig::new(format!("{}/v1", server.url())), client()).into();
    let none: AnyBackend = Unconfigured.into();

    // The futures are Send: the server runs them on a multi-threaded runtime.
    let out = assert_send(rest.run(req())).await.unwrap();
    assert!(matches!(out, Output::Json(v) if v["response"] == "rest"));
    let out = assert_send(openai.run(req())).await.unwrap();
    assert!(matches!(out, Output::Json(v) if v["object"] == "chat.completion"));
    assert_eq!(none.run(req()).await.unwrap_err().status().as_u16(), 503);
    assert_eq!(server.hits(), 2);
}
