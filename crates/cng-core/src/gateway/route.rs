//! Where a chat-family request (chat completions, completions, responses, messages)
//! goes: the *hops* to try, in order, and the loop that tries them.
//!
//! A model name routes to configured providers (the config's `providers`) when it is
//! - a fallback chain (`targets.{name}`: an ordered list of `provider/model`);
//! - an alias whose target names a provider (`"fast": "openai/gpt-4o-mini"`);
//! - a provider-qualified name (`openai/gpt-4o-mini`, `gpt-4o-mini#openai`).
//!
//! Anything else is one hop on the host's own path (Workers AI, or the single
//! `--upstream`), resolved as before. A hop on a provider runs through
//! [`Backend::run_on`]; its model is OpenAI-shaped ([`ModelInfo::open`]): the request
//! passes through in OpenAI's shape and the provider judges it.
//!
//! The rule for moving on is [`should_fall_back`]: a 429, a 5xx or a timeout from a
//! hop, which a backend reports before it hands over a stream — so no client ever sees
//! two answers spliced together. The hop that served (or failed last) is what the
//! `x-cng-target` response header names and what usage is booked to.
//!
//! Permissions apply per hop: a key's model list may name the chain or the target; a
//! team's provider list (`workers-ai` included) removes the targets it does not cover.
//! A chain with no hop left is refused (403) before anything is sent.

use super::{Ctx, Gateway, Limiter, model_not_allowed};
use crate::alias::Resolved;
use crate::anthropic::MessagesPlan;
use crate::backend::{Backend, InferenceRequest, Output};
use crate::catalog::{ModelInfo, Task};
use crate::chat::ChatPlan;
use crate::config::LiveConfig;
use crate::error::{Error, ErrorKind};
use crate::ids::{Clock, IdSource};
use crate::responses::ResponsesPlan;
use crate::routing::naming::WORKERS_AI;
use crate::routing::{ModelRef, ProviderRoute, Target, TargetChain, should_fall_back};
use crate::store::Store;

/// One place a request can be served.
pub(crate) struct Hop {
    pub resolved: Resolved,
    /// `None`: the host's own path ([`Backend::run`]).
    pub provider: Option<ProviderRoute>,
    /// `provider/model`, for `x-cng-target`.
    pub label: String,
}

impl Hop {
    /// The name usage is booked under: the model id on the host's own path (so the
    /// Workers AI price table applies), `provider/model` on a provider.
    fn usage_model(&self) -> String {
        match self.provider {
            None => self.resolved.model.id.clone(),
            Some(_) => self.label.clone(),
        }
    }
}

/// The provider targets the config routes `name` to, or `None` for the host's own
/// path (see the module docs).
pub(crate) fn provider_targets(
    live: &LiveConfig,
    name: &str,
) -> Result<Option<Vec<Target>>, Error> {
    let providers = &live.doc.providers;
    let is_provider = |p: &str| providers.contains_key(p);
    if let Some(entries) = live.doc.targets.get(name) {
        // Validated when the config was saved; parsed again so a chain is never
        // followed past what the current provider list allows.
        let chain = TargetChain::parse(&format!("targets.{name}"), entries, is_provider)?;
        return Ok(Some(chain.targets().to_vec()));
    }
    if providers.is_empty() {
        return Ok(None);
    }
    let target = live.doc.aliases.get(name).map_or(name, String::as_str);
    let r = ModelRef::parse(target, is_provider)?;
    Ok(match r.provider {
        Some(p) if p != WORKERS_AI => Some(vec![Target {
            provider: p,
            model: r.model,
        }]),
        _ => None,
    })
}

/// A translated request, whatever the dialect: what to send, and what was dropped.
pub(crate) trait Planned {
    fn request(&self) -> &InferenceRequest;
    fn dropped(&self) -> &[&'static str];
}

macro_rules! planned {
    ($($t:ty),*) => {$(
        impl Planned for $t {
            fn request(&self) -> &InferenceRequest {
                &self.request
            }
            fn dropped(&self) -> &[&'static str] {
                &self.dropped
            }
        }
    )*};
}

planned!(ChatPlan, ResponsesPlan, MessagesPlan);

/// The ids and clock a plan draws from.
pub(crate) type PlanSources<'a> = (
    &'a (dyn IdSource + Send + Sync),
    &'a (dyn Clock + Send + Sync),
);

/// 403 for a target a team's provider list does not cover.
pub(crate) fn provider_not_allowed(provider: &str, requested: &str) -> Error {
    Error::new(
        ErrorKind::Permission,
        format!("This token may not use the provider `{provider}` (model `{requested}`)."),
    )
    .with_param("model")
    .with_code("provider_not_allowed")
}

impl<B: Backend, S: Store, L: Limiter> Gateway<B, S, L> {
    fn own_label(&self, id: &str) -> String {
        if self.config.open_models {
            format!("upstream/{id}")
        } else {
            format!("{WORKERS_AI}/{id}")
        }
    }

    /// The hops for `requested` (non-empty), with the caller's permissions applied.
    pub(crate) fn hops(
        &self,
        ctx: &mut Ctx<'_>,
        requested: &str,
        tasks: &[Task],
    ) -> Result<Vec<Hop>, Error> {
        let requested = self.requested_name(ctx, requested, tasks);
        let live = ctx.live.clone();
        let Some(targets) = provider_targets(&live, &requested)? else {
            let resolved = self.resolve(ctx, &requested, tasks)?;
            let label = self.own_label(&resolved.model.id);
            return Ok(vec![Hop {
                resolved,
                provider: None,
                label,
            }]);
        };
        ctx.log.model = Some(requested.clone());
        let mut hops = Vec::with_capacity(targets.len());
        let mut refused = None;
        for t in targets {
            let label = t.label();
            let hop = if t.provider == WORKERS_AI {
                match self.lookup(&live, &t.model, tasks) {
                    Ok(r) => Hop {
                        label: self.own_label(&r.model.id),
                        resolved: Resolved {
                            requested: requested.clone(),
                            alias: Some(requested.clone()),
                            model: r.model,
                        },
                        provider: None,
                    },
                    Err(e) => {
                        refused.get_or_insert(e);
                        continue;
                    }
                }
            } else {
                let Some(config) = live.doc.providers.get(&t.provider) else {
                    continue;
                };
                Hop {
                    resolved: Resolved {
                        requested: requested.clone(),
                        alias: (requested != label).then(|| requested.clone()),
                        model: ModelInfo::open(&t.model),
                    },
                    provider: Some(ProviderRoute {
                        name: t.provider.clone(),
                        config: config.clone(),
                    }),
                    label,
                }
            };
            if let Some(p) = &ctx.principal {
                if !p.may_use(&requested, &hop.label) && !p.may_use(&requested, &hop.usage_model())
                {
                    refused.get_or_insert_with(|| model_not_allowed(&requested));
                    continue;
                }
                if !p.may_use_provider(&t.provider) {
                    refused.get_or_insert_with(|| provider_not_allowed(&t.provider, &requested));
                    continue;
                }
            }
            hops.push(hop);
        }
        match hops.first() {
            Some(first) => {
                ctx.log.resolved_model = Some(first.usage_model());
                Ok(hops)
            }
            None => Err(refused.unwrap_or_else(|| Error::model_not_found(&requested))),
        }
    }

    /// A chat-family request end to end: its hops for `model`, each planned by `plan`
    /// and tried in order ([`Self::run_hops`]); the log gets what was dropped.
    pub(crate) async fn run_model<P: Planned>(
        &self,
        ctx: &mut Ctx<'_>,
        model: &str,
        tasks: &[Task],
        plan: impl Fn(&Resolved, PlanSources<'_>) -> Result<P, Error>,
    ) -> Result<(P, Output), Error> {
        let hops = self.hops(ctx, model, tasks)?;
        let sources: PlanSources<'_> = (&*self.services.ids, &*self.services.clock);
        let (plan, output) = self
            .run_hops(
                ctx,
                hops,
                |target| plan(target, sources),
                |p| p.request().clone(),
            )
            .await?;
        ctx.log.dropped = plan.dropped().to_vec();
        Ok((plan, output))
    }

    /// Tries `hops` in order: plans the request for each hop's model, runs it, and
    /// moves on after an error [`should_fall_back`] allows. A hop whose plan fails
    /// (the request asks for something that model cannot do) is skipped; with no hop
    /// run, the first such error is the answer.
    pub(crate) async fn run_hops<P>(
        &self,
        ctx: &mut Ctx<'_>,
        hops: Vec<Hop>,
        plan: impl Fn(&Resolved) -> Result<P, Error>,
        request: impl Fn(&P) -> InferenceRequest,
    ) -> Result<(P, Output), Error> {
        let count = hops.len();
        let mut refused = None;
        let mut failed = None;
        for (i, hop) in hops.into_iter().enumerate() {
            let p = match plan(&hop.resolved) {
                Ok(p) => p,
                Err(e) if count > 1 => {
                    refused.get_or_insert(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let req = request(&p);
            let result = match &hop.provider {
                None => self.backend.run(req).await,
                Some(provider) => self.backend.run_on(provider, req).await,
            };
            ctx.log.resolved_model = Some(hop.usage_model());
            ctx.log.target = Some(hop.label.clone());
            match result {
                Ok(out) => return Ok((p, out)),
                Err(e) if i + 1 < count && should_fall_back(&e) => {
                    ctx.log
                        .fallbacks
                        .push(format!("{}: {}", hop.label, e.message()));
                    failed = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(failed
            .or(refused)
            .unwrap_or_else(|| Error::internal("no hop to run")))
    }
}
