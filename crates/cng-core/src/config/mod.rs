//! The gateway config document: everything an operator changes at run time, as one
//! versioned JSON document in the [`Store`](crate::store::Store).
//!
//! One document rather than many records because an operator edits it as a whole
//! (the panel, `GET`/`PUT /api/config`, export and import) and because a single
//! version makes concurrent edits safe: a write names the version it read
//! (`If-Match`) and a stale one is a 409, never a silent overwrite — the reference
//! product's last-writer-wins `POST /api/config` lost edits that way.
//!
//! - [`GatewayDoc`]: the document and its defaults (what `GET /api/config` shows before
//!   anything was saved).
//! - [`validate`]: parsing with errors that name the field (`aliases.gpt-4o`,
//!   `models.overrides.@cf/meta/llama-3.1-8b-instruct.max_tokens`).
//! - [`live`]: the parsed document the gateway serves with, cached by version.

pub mod discovery;
pub mod live;
pub mod validate;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::alias::AliasTable;
use crate::catalog::Task;

pub use live::{LiveCache, LiveConfig};
pub use validate::parse_doc;

/// The store namespace of the config document.
pub const NS_CONFIG: &str = "config";
/// Its key.
pub const CONFIG_KEY: &str = "gateway";
/// The document format this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;
/// Default lifetime of a generated image kept for `response_format: url`.
pub const DEFAULT_IMAGE_TTL_SECONDS: u64 = 3600;
/// Default window in which a model counts as "answered recently" for its badge.
pub const DEFAULT_BADGE_WINDOW_SECONDS: u64 = 900;

/// The whole gateway config (see the module docs). Every member has a default, so a
/// partial document is complete once read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GatewayDoc {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Alias → model id (or another name the catalog knows).
    pub aliases: BTreeMap<String, String>,
    /// The model each endpoint uses when a request sends an empty `model`.
    pub defaults: BTreeMap<Endpoint, String>,
    pub models: ModelsConfig,
    pub images: ImagesConfig,
    pub rate_limits: RateLimitsConfig,
    pub badges: BadgesConfig,
    /// Third-party providers by name (see [`crate::routing::config`]).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub providers: BTreeMap<String, crate::routing::config::ProviderConfig>,
    /// Fallback chains: alias → ordered `provider/model` targets.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub targets: BTreeMap<String, Vec<String>>,
}

/// The endpoints a default model can be set for (closed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    Chat,
    Embeddings,
    Images,
    Speech,
    Transcriptions,
    Moderations,
    Translations,
}

impl Endpoint {
    /// Every endpoint, in a stable order.
    pub const ALL: [Endpoint; 7] = [
        Endpoint::Chat,
        Endpoint::Embeddings,
        Endpoint::Images,
        Endpoint::Speech,
        Endpoint::Transcriptions,
        Endpoint::Moderations,
        Endpoint::Translations,
    ];

    /// The tasks whose models serve this endpoint.
    pub fn tasks(self) -> &'static [Task] {
        match self {
            Endpoint::Chat => &[Task::TextGeneration, Task::ImageToText],
            Endpoint::Embeddings => &[Task::TextEmbeddings],
            Endpoint::Images => &[Task::TextToImage],
            Endpoint::Speech => &[Task::TextToSpeech],
            Endpoint::Transcriptions => &[Task::AutomaticSpeechRecognition],
            Endpoint::Moderations => &[Task::TextClassification],
            Endpoint::Translations => &[Task::Translation],
        }
    }

    /// The endpoint a set of tasks (as handlers pass them to `resolve`) belongs to.
    pub fn for_tasks(tasks: &[Task]) -> Option<Endpoint> {
        let first = tasks.first()?;
        Endpoint::ALL
            .into_iter()
            .find(|e| e.tasks().contains(first))
    }

    /// The config key (`chat`, `embeddings`, ...).
    pub fn key(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Images => "images",
            Endpoint::Speech => "speech",
            Endpoint::Transcriptions => "transcriptions",
            Endpoint::Moderations => "moderations",
            Endpoint::Translations => "translations",
        }
    }
}

/// Which models are served, and what cng knows of them beyond its built-in table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelsConfig {
    /// The models this gateway serves; `null` serves every model of the catalog (and
    /// any Workers AI id). When set, other models are a 404 `model_not_found`.
    pub enabled: Option<Vec<String>>,
    /// Per-model adjustments, by model id.
    pub overrides: BTreeMap<String, ModelOverride>,
    /// Models cng's built-in table lacks, or newer facts about ones it has — what
    /// `POST /api/discover` accepts from Cloudflare's catalog. Keyed by model id.
    pub catalog: BTreeMap<String, ModelFacts>,
    /// Models Cloudflare no longer lists (accepted from discovery): no longer served.
    pub removed: Vec<String>,
}

/// Adjustments to one model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelOverride {
    /// Clamp on output tokens: requests asking for more get this many.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// The context window to plan with (when the catalog's is wrong or missing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u32>,
    /// Prices to estimate cost with, in the catalog's `price` format
    /// (`[{"unit": "per M input tokens", "price": 0.282, "currency": "USD"}]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<Vec<Value>>,
}

/// What Cloudflare's catalog says of a model (the subset cng routes by).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelFacts {
    /// The Workers AI task, kebab-case (`text-generation`, `text-to-image`, ...).
    pub task: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u32>,
    pub function_calling: bool,
    pub beta: bool,
    pub deprecated: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub price: Vec<Value>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// Generated images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImagesConfig {
    /// How long `GET /img/{id}` serves an image made for `response_format: url`.
    pub cache_ttl_seconds: u64,
}

impl Default for ImagesConfig {
    fn default() -> Self {
        Self {
            cache_ttl_seconds: DEFAULT_IMAGE_TTL_SECONDS,
        }
    }
}

/// Requests-per-minute limits for keys that set none themselves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimitsConfig {
    /// For `client` keys without their own `rpm`; `null` = unlimited.
    pub client_rpm: Option<u32>,
    /// For `admin` keys without their own `rpm`; `null` = unlimited.
    pub admin_rpm: Option<u32>,
}

/// `GET /badge/{model}.svg`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BadgesConfig {
    /// Serve badges without a key (they show only a model's recent health).
    pub public: bool,
    /// A model is "up" when it answered within this many seconds.
    pub window_seconds: u64,
}

impl Default for BadgesConfig {
    fn default() -> Self {
        Self {
            public: true,
            window_seconds: DEFAULT_BADGE_WINDOW_SECONDS,
        }
    }
}

impl Default for GatewayDoc {
    fn default() -> Self {
        Self::with_aliases(&AliasTable::default())
    }
}

impl GatewayDoc {
    /// The default document around a host's alias table.
    pub fn with_aliases(aliases: &AliasTable) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            aliases: aliases
                .iter()
                .map(|(a, t)| (a.to_string(), t.to_string()))
                .collect(),
            defaults: BTreeMap::new(),
            providers: BTreeMap::new(),
            targets: BTreeMap::new(),
            models: ModelsConfig::default(),
            images: ImagesConfig::default(),
            rate_limits: RateLimitsConfig::default(),
            badges: BadgesConfig::default(),
        }
    }
}

/// A task from its kebab-case name (`text-generation`) or Cloudflare's display name
/// (`Text Generation`); `None` for a task cng does not know.
pub fn task_from_name(name: &str) -> Option<Task> {
    let kebab: String = name
        .trim()
        .chars()
        .map(|c| {
            if c == ' ' || c == '_' {
                '-'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    match serde_json::from_value::<Task>(Value::String(kebab.clone())) {
        Ok(Task::Other) if kebab != "other" => None,
        Ok(t) => Some(t),
        Err(_) => None,
    }
}

/// The kebab-case name of a task (the inverse of [`task_from_name`]).
pub fn task_name(task: Task) -> &'static str {
    match task {
        Task::TextGeneration => "text-generation",
        Task::TextEmbeddings => "text-embeddings",
        Task::TextToImage => "text-to-image",
        Task::ImageToText => "image-to-text",
        Task::AutomaticSpeechRecognition => "automatic-speech-recognition",
        Task::TextToSpeech => "text-to-speech",
        Task::Translation => "translation",
        Task::TextClassification => "text-classification",
        Task::Summarization => "summarization",
        Task::ObjectDetection => "object-detection",
        Task::ImageClassification => "image-classification",
        Task::Other => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_names_round_trip() {
        for t in [
            Task::TextGeneration,
            Task::TextEmbeddings,
            Task::TextToImage,
            Task::AutomaticSpeechRecognition,
            Task::TextToSpeech,
            Task::TextClassification,
        ] {
            assert_eq!(task_from_name(task_name(t)), Some(t));
        }
        assert_eq!(
            task_from_name("Automatic Speech Recognition"),
            Some(Task::AutomaticSpeechRecognition)
        );
        assert_eq!(task_from_name("Text-to-Image"), Some(Task::TextToImage));
        assert_eq!(task_from_name("Dance"), None);
    }

    #[test]
    fn default_document_has_the_default_aliases() {
        let d = GatewayDoc::default();
        assert_eq!(d.schema_version, SCHEMA_VERSION);
        assert!(d.aliases.contains_key("gpt-4o"));
        assert_eq!(d.images.cache_ttl_seconds, 3600);
        assert!(d.badges.public);
    }

    #[test]
    fn endpoints_for_tasks() {
        assert_eq!(
            Endpoint::for_tasks(&[Task::TextGeneration, Task::ImageToText]),
            Some(Endpoint::Chat)
        );
        assert_eq!(
            Endpoint::for_tasks(&[Task::TextToImage]),
            Some(Endpoint::Images)
        );
        assert_eq!(Endpoint::for_tasks(&[]), None);
    }
}
