//! Model discovery: Cloudflare's model catalog compared with what the config serves.
//!
//! The host injects a [`ModelSearch`] that reads
//! `GET {api_base}/accounts/{id}/ai/models/search` (every page). [`diff`] says which
//! models are new (Cloudflare lists them, cng does not know them), changed (a fact cng
//! routes or prices by differs: task, context window, function calling, beta,
//! deprecation, price) and removed (the config uses them — alias targets, enabled
//! models, overrides, its own catalog entries — and Cloudflare no longer lists them).
//! [`accept`] applies a diff to the document in one step.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::{GatewayDoc, ModelFacts, task_from_name, task_name};
use crate::catalog::{Catalog, ModelInfo, Task, is_workers_ai_id};
use crate::error::Error;
use crate::usage::{BoxFuture, MaybeSendSync};

/// Reads the account's model catalog (every page), as the result items of
/// Cloudflare's `/ai/models/search`.
pub trait ModelSearch: MaybeSendSync {
    fn search(&self) -> BoxFuture<'_, Result<Vec<Value>, Error>>;

    /// A cheap request that says whether the upstream answers (one catalog entry).
    fn probe(&self) -> BoxFuture<'_, Result<(), Error>>;
}

/// The facts of one search result item; `None` when it has no usable name or task.
pub fn facts_from_search(item: &Value) -> Option<(String, ModelFacts)> {
    let name = item.get("name").and_then(Value::as_str)?;
    if !is_workers_ai_id(name) {
        return None;
    }
    let task = item
        .pointer("/task/name")
        .and_then(Value::as_str)
        .and_then(task_from_name)
        .filter(|t| *t != Task::Other)?;
    let mut props: BTreeMap<&str, &Value> = BTreeMap::new();
    for p in item
        .get("properties")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(id), Some(v)) = (p.get("property_id").and_then(Value::as_str), p.get("value"))
        {
            props.insert(id, v);
        }
    }
    let flag = |k: &str| {
        props.get(k).is_some_and(|v| match v {
            Value::Bool(b) => *b,
            Value::String(s) => s.eq_ignore_ascii_case("true"),
            _ => false,
        })
    };
    let context_window = props.get("context_window").and_then(|v| match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    });
    let price = props
        .get("price")
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    let deprecated = item.get("deprecated").and_then(Value::as_bool) == Some(true)
        || props.contains_key("planned_deprecation_date");
    Some((
        name.to_string(),
        ModelFacts {
            task: task_name(task).to_string(),
            context_window: context_window.and_then(|c| u32::try_from(c).ok()),
            function_calling: flag("function_calling"),
            beta: flag("beta"),
            deprecated,
            price,
            description: item
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect(),
        },
    ))
}

/// One changed fact.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    pub field: &'static str,
    pub from: Value,
    pub to: Value,
}

/// A model whose facts changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Changed {
    pub id: String,
    pub changes: Vec<FieldChange>,
    #[serde(skip)]
    pub facts: ModelFacts,
}

/// A model Cloudflare lists that cng does not know.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct New {
    pub id: String,
    #[serde(flatten)]
    pub facts: ModelFacts,
}

/// The comparison.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Diff {
    pub new: Vec<New>,
    pub changed: Vec<Changed>,
    pub removed: Vec<String>,
}

fn changes(m: &ModelInfo, f: &ModelFacts) -> Vec<FieldChange> {
    let mut out = Vec::new();
    let mut push = |field: &'static str, from: Value, to: Value| {
        if from != to {
            out.push(FieldChange { field, from, to });
        }
    };
    push(
        "task",
        Value::from(task_name(m.task)),
        Value::from(f.task.clone()),
    );
    if f.context_window.is_some() {
        push(
            "context_window",
            m.context_window.map_or(Value::Null, Value::from),
            f.context_window.map_or(Value::Null, Value::from),
        );
    }
    push("beta", Value::from(m.beta), Value::from(f.beta));
    push(
        "deprecated",
        Value::from(m.deprecated),
        Value::from(f.deprecated),
    );
    if !f.price.is_empty() {
        push(
            "price",
            Value::from(m.price.clone()),
            Value::from(f.price.clone()),
        );
    }
    if f.function_calling && !m.function_calling {
        push("function_calling", Value::from(false), Value::from(true));
    }
    out
}

/// The models the config itself uses (see the module docs).
fn used_by(doc: &GatewayDoc, catalog: &Catalog) -> BTreeSet<String> {
    let id_of = |n: &str| {
        catalog
            .get(n)
            .or_else(|| catalog.get_short(n))
            .map_or_else(|| n.to_string(), |m| m.id.clone())
    };
    let mut used: BTreeSet<String> = doc.aliases.values().map(|t| id_of(t)).collect();
    used.extend(doc.models.enabled.iter().flatten().map(|n| id_of(n)));
    used.extend(doc.models.overrides.keys().cloned());
    used.extend(doc.models.catalog.keys().cloned());
    used.retain(|id| is_workers_ai_id(id));
    used
}

/// Compares Cloudflare's catalog (`remote`) with the config's effective catalog.
pub fn diff(doc: &GatewayDoc, catalog: &Catalog, remote: &[(String, ModelFacts)]) -> Diff {
    let mut d = Diff::default();
    let listed: BTreeSet<&str> = remote.iter().map(|(id, _)| id.as_str()).collect();
    for (id, facts) in remote {
        match catalog.get(id) {
            None => d.new.push(New {
                id: id.clone(),
                facts: facts.clone(),
            }),
            Some(m) => {
                let c = changes(m, facts);
                if !c.is_empty() {
                    d.changed.push(Changed {
                        id: id.clone(),
                        changes: c,
                        facts: facts.clone(),
                    });
                }
            }
        }
    }
    d.removed = used_by(doc, catalog)
        .into_iter()
        .filter(|id| !listed.contains(id.as_str()))
        .collect();
    d
}

/// Which parts of a diff to accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptParts {
    pub new: bool,
    pub changed: bool,
    pub removed: bool,
}

/// What accepting did besides adding and removing models.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Accepted {
    pub added: usize,
    pub updated: usize,
    pub removed: usize,
    /// Aliases dropped because their model was removed.
    pub dropped_aliases: Vec<String>,
}

/// Applies the chosen parts of `d` to `doc`.
pub fn accept(doc: &mut GatewayDoc, d: &Diff, parts: AcceptParts) -> Accepted {
    let mut out = Accepted::default();
    if parts.new {
        for n in &d.new {
            doc.models.catalog.insert(n.id.clone(), n.facts.clone());
            doc.models.removed.retain(|r| *r != n.id);
            if let Some(list) = &mut doc.models.enabled {
                if !list.contains(&n.id) {
                    list.push(n.id.clone());
                }
            }
            out.added += 1;
        }
    }
    if parts.changed {
        for c in &d.changed {
            doc.models.catalog.insert(c.id.clone(), c.facts.clone());
            out.updated += 1;
        }
    }
    if parts.removed {
        for id in &d.removed {
            let short = id.rsplit('/').next().unwrap_or(id);
            let gone = |t: &String| t == id || t == short;
            let dropped: Vec<String> = doc
                .aliases
                .iter()
                .filter(|(_, t)| gone(t))
                .map(|(a, _)| a.clone())
                .collect();
            for a in &dropped {
                doc.aliases.remove(a);
            }
            doc.defaults.retain(|_, m| !gone(m) && !dropped.contains(m));
            out.dropped_aliases.extend(dropped);
            if let Some(list) = &mut doc.models.enabled {
                list.retain(|m| !gone(m));
            }
            doc.models.overrides.remove(id);
            doc.models.catalog.remove(id);
            if !doc.models.removed.contains(id) {
                doc.models.removed.push(id.clone());
            }
            out.removed += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::{effective_catalog, validate};
    use serde_json::json;

    fn item(name: &str, task: &str, props: Value) -> Value {
        json!({"id": "uuid", "name": name, "description": "d", "task": {"name": task}, "properties": props})
    }

    #[test]
    fn reads_search_items() {
        let (id, f) = facts_from_search(&item(
            "@cf/acme/chat-9b",
            "Text Generation",
            json!([{"property_id": "context_window", "value": "128000"},
                   {"property_id": "function_calling", "value": "true"},
                   {"property_id": "price", "value": [{"unit": "per M input tokens", "price": 0.1, "currency": "USD"}]}]),
        ))
        .unwrap();
        assert_eq!(id, "@cf/acme/chat-9b");
        assert_eq!(f.task, "text-generation");
        assert_eq!(f.context_window, Some(128_000));
        assert!(f.function_calling && !f.beta);
        assert_eq!(f.price.len(), 1);
        assert!(facts_from_search(&item("no-prefix", "Text Generation", json!([]))).is_none());
        assert!(facts_from_search(&item("@cf/a/b", "Dancing", json!([]))).is_none());
    }

    #[test]
    fn new_changed_removed_and_accept_in_one_step() {
        let mut doc = GatewayDoc::default();
        doc.aliases.clear();
        doc.aliases
            .insert("fast".into(), "@cf/meta/llama-3.1-8b-instruct-fast".into());
        doc.aliases
            .insert("old".into(), "@cf/meta/llama-2-7b-chat-fp16".into());
        let base = Catalog::builtin();
        let catalog = effective_catalog(&doc, base);
        let fast = base.get("@cf/meta/llama-3.1-8b-instruct-fast").unwrap();
        let remote = vec![
            facts_from_search(&item("@cf/acme/chat-9b", "Text Generation", json!([]))).unwrap(),
            facts_from_search(&item(
                &fast.id,
                "Text Generation",
                json!([{"property_id": "context_window", "value": fast.context_window.unwrap_or(1) + 1}]),
            ))
            .unwrap(),
        ];
        let d = diff(&doc, &catalog, &remote);
        assert_eq!(d.new.len(), 1);
        assert_eq!(d.changed.len(), 1);
        assert_eq!(d.changed[0].changes[0].field, "context_window");
        assert_eq!(d.removed, vec!["@cf/meta/llama-2-7b-chat-fp16".to_string()]);
        let all = AcceptParts {
            new: true,
            changed: true,
            removed: true,
        };
        let out = accept(&mut doc, &d, all);
        assert_eq!((out.added, out.updated, out.removed), (1, 1, 1));
        assert_eq!(out.dropped_aliases, vec!["old".to_string()]);
        validate(&doc, base, Default::default()).unwrap();
        let after = effective_catalog(&doc, base);
        assert!(after.get("@cf/acme/chat-9b").is_some());
        assert!(after.get("@cf/meta/llama-2-7b-chat-fp16").is_none());
        assert!(
            diff(&doc, &after, &remote).new.is_empty(),
            "accepted: nothing new"
        );
    }
}
