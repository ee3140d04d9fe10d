//! Model names: OpenAI-style aliases (`gpt-4o`) and how a requested name becomes a
//! Workers AI model id.
//!
//! Resolution order (first match wins):
//! 1. an alias of the table (`gpt-4o` → `@cf/meta/llama-4-scout-17b-16e-instruct`);
//! 2. a Workers AI id, optionally behind the `workers-ai/` provider prefix;
//! 3. a catalog short name (`llama-3.1-8b-instruct`) when exactly one model has it.
//!
//! Anything else is a 404 `model_not_found`. The response's `model` always echoes the
//! name the client sent, so clients that check it see what they asked for.

use std::collections::BTreeMap;

use crate::catalog::{Catalog, ModelInfo, Task, is_workers_ai_id};
use crate::error::Error;

/// The default alias table: (alias, target).
///
/// Choices, for a team moving from OpenAI: the closest Workers AI model in ability and
/// modality — `gpt-4o` needs vision and tools (llama-4-scout has both), the `o*`
/// reasoning names map to reasoning models, embeddings keep OpenAI's ordering of
/// size, `whisper-1` is whisper-large-v3-turbo (it can also translate).
pub const DEFAULT_ALIASES: &[(&str, &str)] = &[
    // chat
    ("gpt-4o", "@cf/meta/llama-4-scout-17b-16e-instruct"),
    (
        "chatgpt-4o-latest",
        "@cf/meta/llama-4-scout-17b-16e-instruct",
    ),
    ("gpt-4o-mini", "@cf/meta/llama-3.1-8b-instruct-fast"),
    ("gpt-4.1", "@cf/meta/llama-4-scout-17b-16e-instruct"),
    (
        "gpt-4.1-mini",
        "@cf/mistralai/mistral-small-3.1-24b-instruct",
    ),
    ("gpt-4.1-nano", "@cf/meta/llama-3.2-3b-instruct"),
    ("gpt-4", "@cf/meta/llama-3.3-70b-instruct-fp8-fast"),
    ("gpt-4-turbo", "@cf/meta/llama-3.3-70b-instruct-fp8-fast"),
    ("gpt-3.5-turbo", "@cf/meta/llama-3.1-8b-instruct-fast"),
    ("gpt-5", "@cf/openai/gpt-oss-120b"),
    ("gpt-5-mini", "@cf/openai/gpt-oss-20b"),
    ("gpt-5-nano", "@cf/openai/gpt-oss-20b"),
    ("o1", "@cf/openai/gpt-oss-120b"),
    ("o1-mini", "@cf/qwen/qwq-32b"),
    ("o3", "@cf/openai/gpt-oss-120b"),
    ("o3-mini", "@cf/deepseek-ai/deepseek-r1-distill-qwen-32b"),
    ("o4-mini", "@cf/openai/gpt-oss-20b"),
    ("gpt-oss-120b", "@cf/openai/gpt-oss-120b"),
    ("gpt-oss-20b", "@cf/openai/gpt-oss-20b"),
    // Anthropic names, for clients of `/v1/messages` (Anthropic SDKs) pointed at cng:
    // Haiku-class → a fast vision+tools model, Sonnet-class → llama-4-scout (vision,
    // tools, long context), Opus-class → the strongest reasoning model.
    (
        "claude-3-5-haiku-latest",
        "@cf/mistralai/mistral-small-3.1-24b-instruct",
    ),
    (
        "claude-haiku-4-5",
        "@cf/mistralai/mistral-small-3.1-24b-instruct",
    ),
    (
        "claude-3-5-sonnet-latest",
        "@cf/meta/llama-4-scout-17b-16e-instruct",
    ),
    (
        "claude-3-7-sonnet-latest",
        "@cf/meta/llama-4-scout-17b-16e-instruct",
    ),
    (
        "claude-sonnet-4-0",
        "@cf/meta/llama-4-scout-17b-16e-instruct",
    ),
    (
        "claude-sonnet-4-5",
        "@cf/meta/llama-4-scout-17b-16e-instruct",
    ),
    ("claude-opus-4-0", "@cf/openai/gpt-oss-120b"),
    ("claude-opus-4-1", "@cf/openai/gpt-oss-120b"),
    // embeddings
    ("text-embedding-3-small", "@cf/baai/bge-base-en-v1.5"),
    ("text-embedding-3-large", "@cf/baai/bge-large-en-v1.5"),
    ("text-embedding-ada-002", "@cf/baai/bge-base-en-v1.5"),
    // images
    ("dall-e-2", "@cf/black-forest-labs/flux-1-schnell"),
    ("dall-e-3", "@cf/black-forest-labs/flux-2-klein-4b"),
    ("gpt-image-1", "@cf/black-forest-labs/flux-2-dev"),
    // audio
    ("whisper-1", "@cf/openai/whisper-large-v3-turbo"),
    ("gpt-4o-transcribe", "@cf/openai/whisper-large-v3-turbo"),
    (
        "gpt-4o-mini-transcribe",
        "@cf/openai/whisper-large-v3-turbo",
    ),
    ("tts-1", "@cf/deepgram/aura-2-en"),
    ("tts-1-hd", "@cf/deepgram/aura-2-en"),
    ("gpt-4o-mini-tts", "@cf/myshell-ai/melotts"),
    // moderation
    ("omni-moderation-latest", "@cf/meta/llama-guard-3-8b"),
    ("text-moderation-latest", "@cf/meta/llama-guard-3-8b"),
    ("text-moderation-stable", "@cf/meta/llama-guard-3-8b"),
];

/// Alias → Workers AI model id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasTable {
    map: BTreeMap<String, String>,
}

impl Default for AliasTable {
    fn default() -> Self {
        Self::new(
            DEFAULT_ALIASES
                .iter()
                .map(|(a, t)| (a.to_string(), t.to_string())),
        )
    }
}

/// A requested name, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// What the client sent; echoed in responses.
    pub requested: String,
    /// The alias that was used, if any.
    pub alias: Option<String>,
    /// What cng knows of the model (defaults for an unknown Workers AI id).
    pub model: ModelInfo,
}

impl Resolved {
    /// How to name the model in a message: the alias and what it stands for, or the id.
    pub fn describe(&self) -> String {
        if self.requested == self.model.id {
            format!("`{}`", self.model.id)
        } else {
            format!("`{}` ({})", self.requested, self.model.id)
        }
    }
}

impl AliasTable {
    /// A table from (alias, target) pairs.
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            map: pairs.into_iter().collect(),
        }
    }

    /// The table without any alias.
    pub fn empty() -> Self {
        Self {
            map: BTreeMap::new(),
        }
    }

    /// The target of `alias`.
    pub fn get(&self, alias: &str) -> Option<&str> {
        self.map.get(alias).map(String::as_str)
    }

    /// All (alias, target) pairs, sorted by alias.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.iter().map(|(a, t)| (a.as_str(), t.as_str()))
    }

    /// Aliases pointing at `target`.
    pub fn aliases_of<'a>(&'a self, target: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.iter()
            .filter(move |(_, t)| *t == target)
            .map(|(a, _)| a)
    }

    /// Resolves a requested model name (see the module docs for the order).
    pub fn resolve(&self, requested: &str, catalog: &Catalog) -> Result<Resolved, Error> {
        let name = requested.trim();
        if name.is_empty() {
            return Err(Error::invalid_param(
                "model",
                "`model` is empty: name a Workers AI model (`@cf/...`) or an alias such as `gpt-4o`.",
            ));
        }
        let (alias, id) = match self.get(name) {
            Some(target) => (Some(name.to_string()), target),
            None => (None, name.strip_prefix("workers-ai/").unwrap_or(name)),
        };
        let model = if let Some(m) = catalog.get(id) {
            m.clone()
        } else if is_workers_ai_id(id) {
            ModelInfo::unknown(id)
        } else if let Some(m) = catalog.get_short(id) {
            m.clone()
        } else {
            return Err(Error::model_not_found(requested));
        };
        Ok(Resolved {
            requested: requested.to_string(),
            alias,
            model,
        })
    }

    /// Resolves and checks the model serves `task`, so that `dall-e-3` sent to the chat
    /// endpoint is a clear 400 instead of an image model run as a chat model.
    pub fn resolve_for(
        &self,
        requested: &str,
        catalog: &Catalog,
        tasks: &[Task],
    ) -> Result<Resolved, Error> {
        let r = self.resolve(requested, catalog)?;
        if tasks.contains(&r.model.task) {
            return Ok(r);
        }
        let want = tasks.first().map_or("this endpoint", |t| t.label());
        Err(Error::invalid_param(
            "model",
            format!(
                "{} is {} {} model, not a {want} model; send it to {}.",
                r.describe(),
                article(r.model.task.label()),
                r.model.task.label(),
                r.model.task.endpoint()
            ),
        )
        .with_code("model_not_supported"))
    }
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_alias_targets_a_catalog_model() {
        let cat = Catalog::builtin();
        for (alias, target) in DEFAULT_ALIASES {
            assert!(
                cat.get(target).is_some(),
                "{alias} → {target} is not in the catalog"
            );
        }
    }

    #[test]
    fn resolution_order() {
        let cat = Catalog::builtin();
        let t = AliasTable::default();
        let r = t.resolve("gpt-4o", cat).unwrap();
        assert_eq!(r.alias.as_deref(), Some("gpt-4o"));
        assert_eq!(r.requested, "gpt-4o");
        assert!(!r.model.unknown);
        let r = t
            .resolve("workers-ai/@cf/meta/llama-3.1-8b-instruct", cat)
            .unwrap();
        assert_eq!(r.model.id, "@cf/meta/llama-3.1-8b-instruct");
        let r = t.resolve("llama-3.1-8b-instruct", cat).unwrap();
        assert_eq!(r.model.id, "@cf/meta/llama-3.1-8b-instruct");
        let r = t.resolve("@cf/acme/new-model", cat).unwrap();
        assert!(r.model.unknown);
        let e = t.resolve("gpt-17", cat).unwrap_err();
        assert_eq!(e.status().as_u16(), 404);
        assert_eq!(e.code(), Some("model_not_found"));
    }

    #[test]
    fn wrong_task_is_a_400_naming_the_right_endpoint() {
        let e = AliasTable::default()
            .resolve_for("dall-e-3", Catalog::builtin(), &[Task::TextGeneration])
            .unwrap_err();
        assert_eq!(e.status().as_u16(), 400);
        assert!(
            e.message().contains("/v1/images/generations"),
            "{}",
            e.message()
        );
    }
}
