//! Test support for cng: [`FakeUpstream`], a fake Workers AI REST API and OpenAI-compatible
//! upstream that replays the project's fixture corpus (`fixtures/`) and records every
//! request it receives.
//!
//! # Routes
//!
//! - `POST /client/v4/accounts/{account_id}/ai/run/{model...}`: Workers AI REST. JSON
//!   results come wrapped in the v4 envelope `{"result", "success", "errors", "messages"}`,
//!   streams as raw `text/event-stream`, binary outputs as raw bytes, errors as their
//!   envelope with their HTTP status. (`…/workers-ai/{model...}`, the AI Gateway form, is
//!   answered the same way.)
//! - `POST /v1/chat/completions` (or any path ending in `/chat/completions`): an
//!   OpenAI-compatible upstream, answering OpenAI-shaped bodies, chunks and errors.
//! - `GET /client/v4/accounts/{account_id}/ai/models/search`: a fake model catalog
//!   (paginated, bearer token required; see `data/models-search.json`).
//! - `POST /client/v4/graphql`: a fake GraphQL Analytics API answering
//!   `aiInferenceAdaptiveGroups` per model from the `/ai/run/` requests the fake served
//!   (one inference each, [`NEURONS_PER_INFERENCE`] neurons; bearer token required;
//!   `!`-tokens script failures; see `src/analytics.rs`).
//! - `GET /__requests`: every recorded request as a JSON array of [`RecordedRequest`];
//!   `DELETE /__requests` clears it; `GET /__health`: 200.
//!
//! # Matching
//!
//! A request is answered by the fixture case whose request has the same **last user
//! message text** (string content, or its text parts joined with "\n"; whitespace runs
//! collapsed), preferring cases with the same **model**. A text that no case with this
//! model has still matches when exactly one fixture request carries it (alias cases such
//! as `gpt-4o` arrive under the model the alias resolves to). Cases sharing text and model
//! are told apart by `stream`, their other top-level fields and their message count.
//! Anything else gets a deterministic default answer (see [`DEFAULT_TEXT`]).
//!
//! # Scripted faults
//!
//! A last user message starting with a directive scripts the answer (first line only;
//! extra words after the arguments are ignored, so tests can make texts unique):
//!
//! | directive | answer |
//! |---|---|
//! | `!status 429 3040` | that status with an error envelope carrying that code (`Retry-After: 1` on 429; default codes: 429 → 3040, others → 3030) |
//! | `!delay-headers MS` | sleeps MS before sending headers, then the default answer |
//! | `!stall-after N` | N events of the default stream, then nothing more (connection kept open) |
//! | `!truncate` | 3 events of the default stream, half an event, then the connection is cut |
//! | `!trickle MS` | the default stream with MS between events |
//! | `!flaky N` | 503 (code 3040) for the first N requests with this exact text, then the default answer |
//! | `!garbage` | 200 `application/json` with a body that is not JSON |

mod analytics;
mod body;
mod catalog;
mod corpus;
mod media;
mod server;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use analytics::NEURONS_PER_INFERENCE;

/// The text of every default answer (non-streamed `response`; streams spell it out over
/// several events).
pub const DEFAULT_TEXT: &str = "ok";

/// One request the fake received, as listed by `GET /__requests`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub method: String,
    /// The URI path, e.g. `/client/v4/accounts/acc/ai/run/@cf/meta/llama-3.1-8b-instruct`.
    pub path: String,
    /// The query string, if any (without `?`).
    #[serde(default)]
    pub query: Option<String>,
    /// Header names lowercased; repeated headers joined with ", ". `authorization` is kept.
    pub headers: BTreeMap<String, String>,
    /// The body parsed as JSON when it is JSON, else a base64 (standard) string; `null`
    /// when empty.
    pub body: Value,
    /// What answered it: the fixture case (`chat/legacy-basic`), `default`, `directive` or
    /// `no-route`. Also sent back as the `x-fake-answer` response header.
    #[serde(default)]
    pub answered_with: Option<String>,
}

impl RecordedRequest {
    /// A header value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The token of an `Authorization: Bearer …` header.
    pub fn bearer(&self) -> Option<&str> {
        let value = self.header("authorization")?;
        let (scheme, token) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    }

    /// The model the request was for: the path after `/ai/run/` (or `/workers-ai/`), else
    /// the body's `model`.
    pub fn model(&self) -> Option<String> {
        server::model_from_path(&self.path).or_else(|| {
            self.body
                .get("model")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
    }
}

/// The fake upstream server, running on the current tokio runtime. Dropping it stops the
/// server and every open connection.
#[derive(Debug)]
pub struct FakeUpstream {
    addr: SocketAddr,
    shared: Arc<server::Shared>,
    task: JoinHandle<()>,
}

impl FakeUpstream {
    /// Loads fixtures from `fixtures_dir` (the repo's `fixtures/`) and listens on
    /// 127.0.0.1:`port` (0 = ephemeral).
    pub async fn start(fixtures_dir: &Path, port: u16) -> std::io::Result<FakeUpstream> {
        let corpus = corpus::Corpus::load(fixtures_dir)?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(server::Shared::new(corpus));
        let task = tokio::spawn(server::serve(listener, Arc::clone(&shared)));
        Ok(FakeUpstream { addr, shared, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Base for `CNG_CF_API_BASE`: `http://127.0.0.1:PORT/client/v4`.
    pub fn cf_api_base(&self) -> String {
        format!("http://{}/client/v4", self.addr)
    }

    /// Base for an OpenAI-compatible upstream: `http://127.0.0.1:PORT/v1`.
    pub fn openai_base(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every request received so far (admin routes `/__*` excluded), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests()
    }

    /// Forgets the recorded requests and the `!flaky` attempt counters.
    pub fn clear(&self) {
        self.shared.clear();
    }

    /// How many fixture cases were loaded (with or without an upstream answer).
    pub fn case_count(&self) -> usize {
        self.shared.case_count()
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The repo's `fixtures/` directory (`CARGO_MANIFEST_DIR/../../fixtures`).
pub fn fixtures_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("..")
        .join("fixtures");
    dir.canonicalize().unwrap_or(dir)
}
