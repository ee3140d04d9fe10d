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

fn model_object<'a, B: Backend, S: Store, L: Limiter>(
    g: &'a Gateway<B, S, L>,
    m: &'a ModelInfo,
) -> ModelObject<'a> {
    ModelObject {
        id: &m.id,
        object: "model",
        created: 0,
        owned_by: owner(&m.id),
        task: m.task.label(),
        context_window: m.context_window,
        alias_for: None,
        aliases: g.config.aliases.aliases_of(&m.id).collect(),
    }
}

fn alias_object<'a>(alias: &'a str, target: &'a ModelInfo) -> ModelObject<'a> {
    ModelObject {
        id: alias,
        object: "model",
        created: 0,
        owned_by: "cng",
        task: target.task.label(),
        context_window: target.context_window,
        alias_for: Some(&target.id),
        aliases: Vec::new(),
    }
}

pub(super) fn list<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    ctx: &Ctx<'_>,
) -> Response<Body> {
    let allowed = |name: &str, id: &str| ctx.principal.as_ref().is_none_or(|p| p.may_use(name, id));
    let catalog = &g.config.catalog;
    let mut data: Vec<ModelObject<'_>> = Vec::new();
    for (alias, target) in g.config.aliases.iter() {
        if let Some(m) = catalog.get(target).filter(|m| allowed(alias, &m.id)) {
            data.push(alias_object(alias, m));
        }
    }
    for m in catalog
        .models()
        .iter()
        .filter(|m| routable(m) && allowed(&m.id, &m.id))
    {
        data.push(model_object(g, m));
    }
    json(
        StatusCode::OK,
        &serde_json::json!({"object": "list", "data": data}),
    )
}

pub(super) fn get<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    ctx: &Ctx<'_>,
    id: &str,
) -> Result<Response<Body>, Error> {
    let catalog = &g.config.catalog;
    let visible = |m: &ModelInfo| ctx.principal.as_ref().is_none_or(|p| p.may_use(id, &m.id));
    if let Some(target) = g.config.aliases.get(id).and_then(|t| catalog.get(t)) {
        if visible(target) {
            return Ok(json(StatusCode::OK, &alias_object(id, target)));
        }
    } else if let Some(m) = catalog.get(id).filter(|m| visible(m)) {
        return Ok(json(StatusCode::OK, &model_object(g, m)));
    }
    Err(Error::model_not_found(id))
}
