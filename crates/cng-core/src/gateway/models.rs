//! `GET /v1/models` and `GET /v1/models/{id}`: the models and aliases this gateway
//! serves, with what each is for.

use http::{Response, StatusCode};
use serde::Serialize;

use super::{Body, Ctx, Gateway, Limiter, json};
use crate::backend::Backend;
use crate::catalog::{ModelInfo, Task};
use crate::error::Error;
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
