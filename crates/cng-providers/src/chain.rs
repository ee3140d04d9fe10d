//! Fallback chains over backends: an ordered list of targets, each a configured
//! provider's backend and the model id it knows.
//!
//! The rule is [`cng_core::routing::should_fall_back`]: a 429, a 5xx or a timeout
//! *before the first byte* moves on to the next target. A backend returns its error
//! before it hands over a stream, so an `Err` from `run` is exactly that case; once a
//! target answered, its answer (stream or not) is the answer. [`Served`] says which
//! target served, for the `x-cng-target` response header and the usage record.
//!
//! Targets share one backend type (`AnyBackend`, an enum), so the chain is a plain
//! `Vec` — no `dyn Backend` (the trait is not object-safe, see `cng_core::backend`).

use cng_core::Error;
use cng_core::backend::{Backend, InferenceRequest, Output};
use cng_core::routing::{Target, should_fall_back};

/// The answer of a chain and who gave it.
#[derive(Debug)]
pub struct Served {
    pub output: Output,
    /// The target that answered.
    pub target: Target,
    /// The targets tried before it, with why they were left (for logs; messages are
    /// already scrubbed of credentials by each backend).
    pub skipped: Vec<(Target, Error)>,
}

/// An ordered chain of targets.
#[derive(Debug, Clone)]
pub struct Chain<B> {
    targets: Vec<(Target, B)>,
}

impl<B: Backend> Chain<B> {
    pub fn new(targets: Vec<(Target, B)>) -> Self {
        Self { targets }
    }

    /// Runs `request` on each target in turn (its `model` replaced by the target's)
    /// until one answers or fails in a way the next cannot fix. With every target
    /// failed, the last error is returned.
    pub async fn run_traced(&self, request: InferenceRequest) -> Result<Served, Error> {
        let mut skipped = Vec::new();
        let mut last = None;
        for (target, backend) in &self.targets {
            let req = InferenceRequest {
                model: target.model.clone(),
                ..request.clone()
            };
            match backend.run(req).await {
                Ok(output) => {
                    return Ok(Served {
                        output,
                        target: target.clone(),
                        skipped,
                    });
                }
                Err(e) if should_fall_back(&e) => {
                    tracing::info!(target = %target.label(), error = %e.message(), "falling back");
                    last = Some(e.clone());
                    skipped.push((target.clone(), e));
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            Error::new(
                cng_core::ErrorKind::Unavailable,
                "this model has no targets configured",
            )
        }))
    }
}

impl<B: Backend + cng_core::backend::MaybeSend + crate::MaybeSync> Backend for Chain<B> {
    async fn run(&self, request: InferenceRequest) -> Result<Output, Error> {
        self.run_traced(request).await.map(|s| s.output)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use std::sync::{Arc, Mutex};

    use cng_core::ErrorKind;
    use cng_core::backend::Input;
    use cng_core::catalog::Task;
    use serde_json::json;

    use super::*;

    /// Answers with a fixed result and records the models it was asked for.
    #[derive(Clone)]
    struct Fixed {
        answer: Result<&'static str, ErrorKind>,
        asked: Arc<Mutex<Vec<String>>>,
    }

    impl Backend for Fixed {
        async fn run(&self, request: InferenceRequest) -> Result<Output, Error> {
            self.asked.lock().unwrap().push(request.model);
            match self.answer {
                Ok(s) => Ok(Output::Json(json!({ "from": s }))),
                Err(k) => Err(Error::new(k, "failed")),
            }
        }
    }

    fn target(p: &str, m: &str) -> Target {
        Target {
            provider: p.into(),
            model: m.into(),
        }
    }

    fn req() -> InferenceRequest {
        InferenceRequest {
            model: "fast".into(),
            task: Task::TextGeneration,
            input: Input::Json(json!({})),
            stream: false,
        }
    }

    fn chain(
        answers: &[Result<&'static str, ErrorKind>],
    ) -> (Chain<Fixed>, Arc<Mutex<Vec<String>>>) {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let targets = answers
            .iter()
            .enumerate()
            .map(|(i, a)| {
                (
                    target(&format!("p{i}"), &format!("m{i}")),
                    Fixed {
                        answer: *a,
                        asked: asked.clone(),
                    },
                )
            })
            .collect();
        (Chain::new(targets), asked)
    }

    #[tokio::test]
    async fn the_next_target_serves_after_a_429_or_5xx() {
        for k in [
            ErrorKind::RateLimit,
            ErrorKind::Upstream,
            ErrorKind::UpstreamTimeout,
        ] {
            let (c, asked) = chain(&[Err(k), Ok("second")]);
            let served = c.run_traced(req()).await.unwrap();
            assert_eq!(served.target.label(), "p1/m1");
            assert_eq!(served.skipped.len(), 1);
            assert!(matches!(served.output, Output::Json(v) if v["from"] == "second"));
            assert_eq!(*asked.lock().unwrap(), ["m0", "m1"]);
        }
    }

    #[tokio::test]
    async fn a_client_error_is_answered_without_trying_further() {
        let (c, asked) = chain(&[Err(ErrorKind::InvalidRequest), Ok("second")]);
        let e = c.run_traced(req()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidRequest);
        assert_eq!(*asked.lock().unwrap(), ["m0"]);
    }

    #[tokio::test]
    async fn all_failed_returns_the_last_error_and_empty_is_a_503() {
        let (c, _) = chain(&[Err(ErrorKind::RateLimit), Err(ErrorKind::Unavailable)]);
        assert_eq!(
            c.run_traced(req()).await.unwrap_err().kind(),
            ErrorKind::Unavailable
        );
        let (c, _) = chain(&[]);
        assert_eq!(
            c.run(req()).await.unwrap_err().kind(),
            ErrorKind::Unavailable
        );
    }

    #[tokio::test]
    async fn the_first_target_serves_when_it_can() {
        let (c, asked) = chain(&[Ok("first"), Ok("second")]);
        assert_eq!(c.run_traced(req()).await.unwrap().target.label(), "p0/m0");
        assert_eq!(asked.lock().unwrap().len(), 1);
    }
}
