//! `GET /v1/models` and `GET /v1/models/{id}`: the models and aliases this gateway
//! serves, with what each is for.

use http::{Response, StatusCode};
use serde::Serialize;

use std::collections::BTreeSet;

use super::{Body, Ctx, Gateway, Limiter, json};
use crate::backend::Backend;
use crate::catalog::{ModelInfo, Task};
use crate::error::Error;
use crate::routing::Target;
use crate::routing::naming::WORKERS_AI;
use crate::store::Store;

/// One entry of the list: OpenAI's model object plus what cng knows.
#[derive(Debug, Serialize)]
struct ModelObject<'a> {
    id: &'a str,
    object: &'static str,
    /// Workers AI's catalog gives no creation time cng can rely on.
    created: u64,
    owned_by: &'a str,
    task: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    context_window: Option<u32>,
    /// For an alias: the model it stands for.
    #[serde(skip_serializing_if = "Option::is_none")]
    alias_for: Option<&'a str>,
    /// For a model: the aliases that point to it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    aliases: Vec<&'a str>,
    /// For a name routed to configured providers: where it goes, in fallback order
    /// (`provider/model`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    targets: Vec<String>,
}

/// The names the config routes to providers (chains, and aliases naming a provider's
/// model) that the caller may use, with their targets.
fn routed(ctx: &Ctx<'_>) -> Vec<(String, Vec<Target>)> {
    let live = &ctx.live;
    let names = live
        .doc
        .targets
        .keys()
        .chain(live.doc.aliases.keys())
        .cloned()
        .collect::<BTreeSet<_>>();
    names
        .into_iter()
        .filter_map(|name| {
            let targets = super::route::provider_targets(live, &name).ok()??;
            let usable = targets.iter().any(|t| {
                ctx.principal.as_ref().is_none_or(|p| {
                    // As the request path checks (gateway::route): the chain's name,
                    // `provider/model`, or a Workers AI target's id.
                    (p.may_use(&name, &t.label())
                        || (t.provider == WORKERS_AI && p.may_use(&name, &t.model)))
                        && p.may_use_provider(&t.provider)
                })
            });
            usable.then_some((name, targets))
        })
        .collect()
}

fn routed_object<'a>(name: &'a str, targets: &'a [Target], spoof: bool) -> ModelObject<'a> {
    let owner = match targets {
        [one] if !spoof => one.provider.as_str(),
        _ if spoof => "openai",
        _ => "cng",
    };
    ModelObject {
        id: name,
        object: "model",
        created: 0,
        owned_by: owner,
        task: Task::TextGeneration.label(),
        context_window: None,
        alias_for: None,
        aliases: Vec::new(),
        targets: if spoof {
            Vec::new()
        } else {
            targets.iter().map(Target::label).collect()
        },
    }
}

fn routable(m: &ModelInfo) -> bool {
    !m.deprecated
        && (m.task != Task::TextGeneration || m.chat_schema.is_some())
        && m.task != Task::Other
}

fn owner(id: &str) -> &str {
    id.trim_start_matches('@')
        .split('/')
        .nth(1)
        .unwrap_or("cloudflare")
}

fn model_object<'a>(aliases: &'a crate::alias::AliasTable, m: &'a ModelInfo) -> ModelObject<'a> {
    ModelObject {
        id: &m.id,
        object: "model",
        created: 0,
        owned_by: owner(&m.id),
        task: m.task.label(),
        context_window: m.context_window,
        alias_for: None,
        aliases: aliases.aliases_of(&m.id).collect(),
        targets: Vec::new(),
    }
}

fn alias_object<'a>(alias: &'a str, target: &'a ModelInfo, spoof: bool) -> ModelObject<'a> {
    ModelObject {
        id: alias,
        object: "model",
        created: 0,
        // A spoofing key sees an OpenAI-looking list (see `KeyRecord::spoof`).
        owned_by: if spoof { "openai" } else { "cng" },
        task: target.task.label(),
        context_window: target.context_window,
        alias_for: (!spoof).then_some(target.id.as_str()),
        aliases: Vec::new(),
        targets: Vec::new(),
    }
}

pub(super) fn list<B: Backend, S: Store, L: Limiter>(
    _g: &Gateway<B, S, L>,
    ctx: &Ctx<'_>,
) -> Response<Body> {
    let live = &ctx.live;
    let allowed = |name: &str, id: &str| {
        live.is_enabled(id) && ctx.principal.as_ref().is_none_or(|p| p.may_use(name, id))
    };
    let spoof = ctx.principal.as_ref().is_some_and(|p| p.spoof);
    let catalog = &live.catalog;
    let mut data: Vec<ModelObject<'_>> = Vec::new();
    let routed = routed(ctx);
    for (name, targets) in &routed {
        data.push(routed_object(name, targets, spoof));
    }
    for (alias, target) in live.aliases.iter() {
        if let Some(m) = catalog.get(target).filter(|m| allowed(alias, &m.id)) {
            data.push(alias_object(alias, m, spoof));
        }
    }
    for m in catalog
        .models()
        .iter()
        .filter(|m| !spoof && routable(m) && allowed(&m.id, &m.id))
    {
        data.push(model_object(&live.aliases, m));
    }
    json(
        StatusCode::OK,
        &serde_json::json!({"object": "list", "data": data}),
    )
}

pub(super) fn get<B: Backend, S: Store, L: Limiter>(
    _g: &Gateway<B, S, L>,
    ctx: &Ctx<'_>,
    id: &str,
) -> Result<Response<Body>, Error> {
    let live = &ctx.live;
    let catalog = &live.catalog;
    let spoof = ctx.principal.as_ref().is_some_and(|p| p.spoof);
    let visible = |m: &ModelInfo| {
        live.is_enabled(&m.id) && ctx.principal.as_ref().is_none_or(|p| p.may_use(id, &m.id))
    };
    if let Some((name, targets)) = routed(ctx).into_iter().find(|(n, _)| n == id) {
        return Ok(json(StatusCode::OK, &routed_object(&name, &targets, spoof)));
    }
    if let Some(target) = live.aliases.get(id).and_then(|t| catalog.get(t)) {
        if visible(target) {
            return Ok(json(StatusCode::OK, &alias_object(id, target, spoof)));
        }
    } else if let Some(m) = catalog.get(id).filter(|m| !spoof && visible(m)) {
        // A spoofing key sees the OpenAI names only, in the list and one by one.
        return Ok(json(StatusCode::OK, &model_object(&live.aliases, m)));
    }
    Err(Error::model_not_found(id))
}
