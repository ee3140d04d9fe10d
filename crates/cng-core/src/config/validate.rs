//! Reading a config document: JSON, then types, then meaning — each error names the
//! field it is about (in `param` and in the message), so the panel can put the message
//! next to the input and an API user knows what to fix.

use std::collections::BTreeSet;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{GatewayDoc, ModelFacts, SCHEMA_VERSION, task_from_name};
use crate::catalog::{Catalog, ModelInfo, Task, is_workers_ai_id};
use crate::error::Error;

/// Longest accepted alias name.
const MAX_ALIAS_LEN: usize = 128;
/// Bounds of `images.cache_ttl_seconds`: a minute to a week.
const IMAGE_TTL_RANGE: (u64, u64) = (60, 7 * 86_400);
/// Bounds of `badges.window_seconds`: a minute to a week.
const BADGE_WINDOW_RANGE: (u64, u64) = (60, 7 * 86_400);
/// Largest rpm a default may set.
const MAX_RPM: u32 = 1_000_000;

/// What the host allows in a document beyond the schema.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rules {
    /// The upstream takes any model name (an OpenAI-compatible server), so names the
    /// catalog lacks are allowed.
    pub open_models: bool,
    /// Which provider URLs are accepted (plain `http` to loopback only when the
    /// operator allowed it, for tests).
    pub url_policy: crate::routing::UrlPolicy,
}

/// Parses a config document sent by a client: returns it with the `version` it
/// carried (if any; `GET /api/config` includes one so that a read-edit-write round
/// trip needs no header).
pub fn parse_doc(
    body: &[u8],
    base: &Catalog,
    rules: Rules,
) -> Result<(GatewayDoc, Option<u64>), Error> {
    let mut value: Value = serde_json::from_slice(body).map_err(|e| {
        Error::invalid_request(format!("The config is not valid JSON: {e}."))
            .with_code("invalid_json")
    })?;
    let Some(obj) = value.as_object_mut() else {
        return Err(Error::invalid_request(
            "The config must be a JSON object (see GET /api/config for its shape).",
        )
        .with_code("invalid_config"));
    };
    let version = match obj.remove("version") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
        Some(_) => {
            return Err(invalid(
                "version",
                "`version` must be the number GET /api/config returned.",
            ));
        }
    };
    let doc: GatewayDoc = from_value(value)?;
    validate(&doc, base, rules)?;
    Ok((doc, version))
}

/// Deserializes with the path of the first wrong or unknown field.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, Error> {
    let mut unknown: Option<String> = None;
    let mut track = serde_path_to_error::Track::new();
    let out = {
        let tracked = serde_path_to_error::Deserializer::new(value, &mut track);
        serde_ignored::deserialize(tracked, |path| {
            unknown.get_or_insert_with(|| path.to_string());
        })
    };
    match out {
        Ok(v) => match unknown {
            None => Ok(v),
            Some(field) => Err(invalid(
                &field,
                format!("`{field}` is not a config field (see GET /api/config for the fields)."),
            )),
        },
        Err(e) => {
            // An unreadable map key shows as `?`: name the map.
            let full = track.path().to_string();
            let path = full.trim_end_matches(".?").to_string();
            let text = e.to_string();
            if let Some(field) = text
                .strip_prefix("missing field `")
                .and_then(|r| r.strip_suffix('`'))
            {
                let param = if path == "." {
                    field.to_string()
                } else {
                    format!("{path}.{field}")
                };
                return Err(invalid(&param, format!("`{param}` is required.")));
            }
            let param = if path == "." { "config" } else { &path };
            Err(invalid(
                param,
                format!("Invalid value for `{param}`: {text}."),
            ))
        }
    }
}

fn invalid(param: &str, message: impl Into<String>) -> Error {
    Error::invalid_param(param, message).with_code("invalid_config")
}

/// The catalog a document routes with: the host's table plus the document's own
/// entries, less the models it removed.
pub fn effective_catalog(doc: &GatewayDoc, base: &Catalog) -> Catalog {
    let removed: BTreeSet<&str> = doc.models.removed.iter().map(String::as_str).collect();
    let mut models: Vec<ModelInfo> = base
        .models()
        .iter()
        .filter(|m| !removed.contains(m.id.as_str()))
        .cloned()
        .collect();
    for (id, facts) in &doc.models.catalog {
        if removed.contains(id.as_str()) {
            continue;
        }
        models.push(facts_to_info(id, facts, base.get(id)));
    }
    Catalog::from_models(models)
}

/// A catalog entry from discovered facts, keeping what the built-in table knows of the
/// model's wire format (schema generation, parameters) when it has the model.
pub fn facts_to_info(id: &str, facts: &ModelFacts, known: Option<&ModelInfo>) -> ModelInfo {
    let task = task_from_name(&facts.task).unwrap_or(Task::Other);
    let mut m = match known {
        Some(k) => k.clone(),
        None => ModelInfo::unknown(id),
    };
    m.unknown = false;
    if m.task != task {
        m.task = task;
        // A model that changed task keeps no text-generation wire format it had.
        if task != Task::TextGeneration && task != Task::ImageToText {
            m.chat_schema = None;
        } else if m.chat_schema.is_none() {
            m.chat_schema = ModelInfo::unknown(id).chat_schema;
        }
    }
    if facts.context_window.is_some() {
        m.context_window = facts.context_window;
    }
    m.function_calling = facts.function_calling || (known.is_none() && m.function_calling);
    m.beta = facts.beta;
    m.deprecated = facts.deprecated;
    if !facts.price.is_empty() {
        m.price = facts.price.clone();
    }
    if !facts.description.is_empty() {
        m.description = facts.description.clone();
    }
    m.source = "config (models.catalog)".into();
    m
}

/// The model a name stands for in `catalog`: an exact id, a Workers AI id, or a unique
/// short name.
fn model_of<'a>(catalog: &'a Catalog, name: &str) -> Option<Result<&'a ModelInfo, String>> {
    if let Some(m) = catalog.get(name) {
        return Some(Ok(m));
    }
    if is_workers_ai_id(name) {
        return Some(Err(name.to_string()));
    }
    catalog.get_short(name).map(Ok)
}

/// Checks what types cannot: versions, names, that every alias and default points at
/// a model this document serves (or a configured provider's model), ranges. With
/// `rules.open_models`, any model name is one the upstream may know.
pub fn validate(doc: &GatewayDoc, base: &Catalog, rules: Rules) -> Result<(), Error> {
    let open_models = rules.open_models;
    if doc.schema_version != SCHEMA_VERSION {
        return Err(invalid(
            "schema_version",
            format!(
                "`schema_version` {} is not one this build reads; use {SCHEMA_VERSION}.",
                doc.schema_version
            ),
        ));
    }
    // Upstream URLs in the document: https only (plain http to loopback only when
    // the operator allowed it, for tests).
    crate::routing::config::validate(&doc.providers, &doc.targets, rules.url_policy)?;
    for name in doc.targets.keys() {
        let p = format!("targets.{name}");
        if doc.aliases.contains_key(name) {
            return Err(invalid(
                &p,
                format!(
                    "`{p}`: `{name}` is also an alias; a name routes one way, so keep one of the two."
                ),
            ));
        }
        if is_workers_ai_id(name) {
            return Err(invalid(
                &p,
                format!(
                    "`{p}`: a chain may not be named like a Workers AI id; it would hide the model."
                ),
            ));
        }
    }
    for (id, facts) in &doc.models.catalog {
        let p = format!("models.catalog.{id}");
        if !is_workers_ai_id(id) {
            return Err(invalid(
                &p,
                format!("`{p}`: catalog entries are Workers AI ids (`@cf/...`, `@hf/...`)."),
            ));
        }
        if task_from_name(&facts.task).is_none() {
            return Err(invalid(
                &format!("{p}.task"),
                format!(
                    "`{p}.task` is `{}`, not a Workers AI task such as `text-generation`.",
                    facts.task
                ),
            ));
        }
    }
    let catalog = effective_catalog(doc, base);
    // A name a configured provider serves (`openai/gpt-4o-mini`, `m#openai`, a
    // chain): its model is the provider's to judge. `workers-ai/…` names the catalog.
    let provider_model = |name: &str| -> Result<Option<String>, Error> {
        if doc.targets.contains_key(name) {
            return Ok(Some(name.to_string()));
        }
        let r = crate::routing::ModelRef::parse(name, |p| doc.providers.contains_key(p))?;
        Ok(match r.provider.as_deref() {
            Some(crate::routing::naming::WORKERS_AI) | None => None,
            Some(_) => Some(name.to_string()),
        })
    };
    let strip_workers_ai = |name: &str| -> String {
        name.strip_prefix("workers-ai/")
            .or_else(|| name.strip_suffix("#workers-ai"))
            .unwrap_or(name)
            .to_string()
    };
    let model_of = |catalog: &Catalog, name: &str| -> Option<Result<ModelInfo, String>> {
        match model_of(catalog, &strip_workers_ai(name)) {
            Some(Ok(m)) => Some(Ok(m.clone())),
            Some(Err(id)) => Some(Err(id)),
            None => open_models.then(|| Err(name.to_string())),
        }
    };
    let enabled: Option<BTreeSet<String>> = match &doc.models.enabled {
        None => None,
        Some(list) => {
            let mut set = BTreeSet::new();
            for (i, name) in list.iter().enumerate() {
                let p = format!("models.enabled[{i}]");
                match model_of(&catalog, name) {
                    Some(Ok(m)) => set.insert(m.id.clone()),
                    Some(Err(id)) => set.insert(id),
                    None => {
                        return Err(invalid(
                            &p,
                            format!("`{p}`: `{name}` is not a model this gateway knows."),
                        ));
                    }
                };
            }
            Some(set)
        }
    };
    let is_enabled = |id: &str| enabled.as_ref().is_none_or(|s| s.contains(id));
    for (id, o) in &doc.models.overrides {
        let p = format!("models.overrides.{id}");
        if model_of(&catalog, id).is_none() {
            return Err(invalid(
                &p,
                format!("`{p}`: `{id}` is not a model this gateway knows."),
            ));
        }
        if o.max_tokens == Some(0) {
            return Err(invalid(
                &format!("{p}.max_tokens"),
                format!("`{p}.max_tokens` must be at least 1."),
            ));
        }
        if o.context_window == Some(0) {
            return Err(invalid(
                &format!("{p}.context_window"),
                format!("`{p}.context_window` must be at least 1."),
            ));
        }
        if let Some(prices) = &o.price {
            for (i, price) in prices.iter().enumerate() {
                let ok = price.get("unit").is_some_and(Value::is_string)
                    && price
                        .get("price")
                        .and_then(Value::as_f64)
                        .is_some_and(|x| x >= 0.0);
                if !ok {
                    return Err(invalid(
                        &format!("{p}.price[{i}]"),
                        format!(
                            "`{p}.price[{i}]` must look like {{\"unit\": \"per M input tokens\", \"price\": 0.282}}."
                        ),
                    ));
                }
            }
        }
    }
    for (alias, target) in &doc.aliases {
        let p = format!("aliases.{alias}");
        if alias.is_empty()
            || alias.len() > MAX_ALIAS_LEN
            || alias.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid(
                &p,
                format!("`{p}`: an alias is 1-{MAX_ALIAS_LEN} characters without spaces."),
            ));
        }
        if is_workers_ai_id(alias) {
            return Err(invalid(
                &p,
                format!(
                    "`{p}`: an alias may not look like a Workers AI id; it would hide the model."
                ),
            ));
        }
        if doc.aliases.contains_key(target) {
            return Err(invalid(
                &p,
                format!("`{p}` points at `{target}`, another alias; point it at a model."),
            ));
        }
        let provider_target = provider_model(target)
            .map_err(|e| invalid(&p, format!("`{p}` points at `{target}`: {}", e.message())))?;
        if provider_target.is_some() {
            continue;
        }
        let id = match model_of(&catalog, target) {
            Some(Ok(m)) => m.id.clone(),
            Some(Err(id)) => id,
            None => {
                return Err(invalid(
                    &p,
                    format!("`{p}` points at `{target}`, which is not a model this gateway knows."),
                ));
            }
        };
        if !is_enabled(&id) {
            return Err(invalid(
                &p,
                format!("`{p}` points at `{id}`, which is not in `models.enabled`."),
            ));
        }
    }
    for (endpoint, name) in &doc.defaults {
        let p = format!("defaults.{}", endpoint.key());
        let target = doc.aliases.get(name).unwrap_or(name);
        let model = match provider_model(target) {
            // Providers serve chat (routing::config).
            Ok(Some(id)) => Some(Err(id)),
            _ => model_of(&catalog, target),
        };
        let task = match model {
            Some(Ok(m)) => m.task,
            Some(Err(_)) => Task::TextGeneration,
            None => {
                return Err(invalid(
                    &p,
                    format!("`{p}` is `{name}`, which is not a model or alias this gateway knows."),
                ));
            }
        };
        if !endpoint.tasks().contains(&task) {
            return Err(invalid(
                &p,
                format!(
                    "`{p}` is `{name}`, a {} model; it cannot serve {}.",
                    task.label(),
                    endpoint.key()
                ),
            ));
        }
    }
    let ttl = doc.images.cache_ttl_seconds;
    if !(IMAGE_TTL_RANGE.0..=IMAGE_TTL_RANGE.1).contains(&ttl) {
        return Err(invalid(
            "images.cache_ttl_seconds",
            format!(
                "`images.cache_ttl_seconds` is {ttl}; use {} to {} (a minute to a week).",
                IMAGE_TTL_RANGE.0, IMAGE_TTL_RANGE.1
            ),
        ));
    }
    let window = doc.badges.window_seconds;
    if !(BADGE_WINDOW_RANGE.0..=BADGE_WINDOW_RANGE.1).contains(&window) {
        return Err(invalid(
            "badges.window_seconds",
            format!(
                "`badges.window_seconds` is {window}; use {} to {}.",
                BADGE_WINDOW_RANGE.0, BADGE_WINDOW_RANGE.1
            ),
        ));
    }
    for (field, rpm) in [
        ("rate_limits.client_rpm", doc.rate_limits.client_rpm),
        ("rate_limits.admin_rpm", doc.rate_limits.admin_rpm),
    ] {
        if let Some(r) = rpm {
            if r == 0 || r > MAX_RPM {
                return Err(invalid(
                    field,
                    format!("`{field}` is {r}; use 1 to {MAX_RPM}, or null for no limit."),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<GatewayDoc, Error> {
        parse_doc(
            v.to_string().as_bytes(),
            Catalog::builtin(),
            Rules::default(),
        )
        .map(|(d, _)| d)
    }

    fn param(v: Value) -> String {
        parse(v).unwrap_err().param().unwrap_or("-").to_string()
    }

    #[test]
    fn a_partial_document_gets_defaults() {
        let d = parse(json!({"aliases": {"fast": "@cf/meta/llama-3.1-8b-instruct-fast"}})).unwrap();
        assert_eq!(d.aliases.len(), 1);
        assert_eq!(d.images.cache_ttl_seconds, 3600);
        let (_, v) = parse_doc(br#"{"version": 7}"#, Catalog::builtin(), Rules::default()).unwrap();
        assert_eq!(v, Some(7));
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(param(json!({"aliases": {"x": "nope"}})), "aliases.x");
        assert_eq!(param(json!({"aliases": {"x": 3}})), "aliases.x");
        assert_eq!(param(json!({"imagez": {}})), "imagez");
        assert_eq!(param(json!({"images": {"ttl": 5}})), "images.ttl");
        assert_eq!(
            param(json!({"images": {"cache_ttl_seconds": 5}})),
            "images.cache_ttl_seconds"
        );
        assert_eq!(
            param(json!({"images": {"cache_ttl_seconds": -5}})),
            "images.cache_ttl_seconds"
        );
        assert_eq!(
            param(
                json!({"models": {"overrides": {"@cf/meta/llama-3.1-8b-instruct": {"max_tokens": 0}}}})
            ),
            "models.overrides.@cf/meta/llama-3.1-8b-instruct.max_tokens"
        );
        assert_eq!(
            param(json!({"models": {"enabled": ["@cf/meta/llama-3.1-8b-instruct", "gpt-17"]}})),
            "models.enabled[1]"
        );
        assert_eq!(
            param(json!({"defaults": {"chat": "dall-e-3"}})),
            "defaults.chat"
        );
        assert_eq!(param(json!({"defaults": {"dance": "gpt-4o"}})), "defaults");
        assert_eq!(
            param(json!({"rate_limits": {"client_rpm": 0}})),
            "rate_limits.client_rpm"
        );
        assert_eq!(param(json!({"schema_version": 9})), "schema_version");
        assert_eq!(param(json!({"version": "x"})), "version");
        assert_eq!(
            param(json!({"models": {"catalog": {"@cf/a/b": {"task": "dancing"}}}})),
            "models.catalog.@cf/a/b.task"
        );
    }

    #[test]
    fn aliases_must_reach_enabled_models_and_not_chain() {
        let e = parse(json!({
            "aliases": {"fast": "@cf/meta/llama-3.1-8b-instruct-fast"},
            "models": {"enabled": ["@cf/meta/llama-3.1-8b-instruct"]}
        }))
        .unwrap_err();
        assert!(e.message().contains("models.enabled"), "{}", e.message());
        assert_eq!(
            param(json!({"aliases": {"a": "b", "b": "@cf/meta/llama-3.1-8b-instruct"}})),
            "aliases.a"
        );
        assert_eq!(
            param(json!({"aliases": {"@cf/x/y": "@cf/meta/llama-3.1-8b-instruct"}})),
            "aliases.@cf/x/y"
        );
    }

    #[test]
    fn open_upstreams_take_any_model_name() {
        let doc = json!({"aliases": {"fast": "llama3.2:3b"}, "defaults": {"chat": "fast"}});
        assert_eq!(param(doc.clone()), "aliases.fast");
        let (d, _) = parse_doc(
            doc.to_string().as_bytes(),
            Catalog::builtin(),
            Rules {
                open_models: true,
                ..Rules::default()
            },
        )
        .unwrap();
        assert_eq!(d.aliases["fast"], "llama3.2:3b");
    }

    #[test]
    fn not_an_object_and_not_json() {
        let e = parse_doc(b"null", Catalog::builtin(), Rules::default()).unwrap_err();
        assert_eq!(e.status().as_u16(), 400);
        let e = parse_doc(b"{", Catalog::builtin(), Rules::default()).unwrap_err();
        assert_eq!(e.code(), Some("invalid_json"));
    }

    #[test]
    fn discovered_models_join_the_catalog() {
        let d = parse(json!({
            "models": {"catalog": {"@cf/acme/new-image": {"task": "text-to-image"}}},
            "aliases": {"pic": "@cf/acme/new-image"},
            "defaults": {"images": "pic"}
        }))
        .unwrap();
        let cat = effective_catalog(&d, Catalog::builtin());
        assert_eq!(
            cat.get("@cf/acme/new-image").map(|m| m.task),
            Some(Task::TextToImage)
        );
    }
}
