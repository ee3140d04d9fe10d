//! `GET /api/usage?key=&model=&from=&to=`: requests, tokens, errors, latency
//! percentiles and estimated neurons and dollars, per key and per model (admin only).
//!
//! `from`/`to` are Unix seconds (default: the last 24 hours); `model` may be an alias
//! (usage is kept per Workers AI model, so it filters by the model it stands for).
//! Figures come from the usage sink ([`crate::usage`]); prices from
//! [`crate::usage::prices`].

use http::{Request, Response, StatusCode};
use serde_json::json;

use super::{Body, Ctx, Gateway, Limiter, json};
use crate::backend::Backend;
use crate::config::LiveConfig;
use crate::error::Error;
use crate::store::Store;
use crate::usage::UsageQuery;
use crate::usage::prices::{Rates, USD_PER_NEURON, rates};
use crate::usage::report;

/// The query string as (name, value) pairs, percent-decoded.
pub(super) fn query_pairs(req: &Request<Body>) -> Vec<(String, String)> {
    req.uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

/// The rates of a model as the config prices it.
pub(super) fn price_of(live: &LiveConfig, model: &str) -> Option<Rates> {
    let mut m = live.catalog.get(model)?.clone();
    live.apply_overrides(&mut m);
    rates(&m)
}

/// The filters a usage route accepts besides `from` and `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Filters {
    /// `key` and `model` (`GET /api/usage`).
    KeyAndModel,
    /// `model` only (`GET /api/usage/reconcile`: Cloudflare has no per-key figures).
    ModelOnly,
}

/// Reads `from`, `to` (Unix seconds, default `default_from` to now), `key` and `model`
/// (an alias filters by the model it stands for) from the query string.
pub(super) fn parse_query(
    req: &Request<Body>,
    ctx: &Ctx<'_>,
    now: u64,
    default_from: u64,
    filters: Filters,
) -> Result<UsageQuery, Error> {
    let mut q = UsageQuery {
        from: default_from,
        to: now,
        key: None,
        model: None,
    };
    for (k, v) in query_pairs(req) {
        let secs = || {
            v.parse::<u64>().map_err(|_| {
                Error::invalid_param(
                    k.clone(),
                    format!("`{k}` is a time in Unix seconds, not `{v}`."),
                )
            })
        };
        match k.as_str() {
            "from" => q.from = secs()?,
            "to" => q.to = secs()?,
            "key" if filters == Filters::ModelOnly => {
                return Err(Error::invalid_param(
                    "key",
                    "Cloudflare's analytics have no per-key figures; filter by model, from, to \
                     (GET /api/usage has per-key usage).",
                ));
            }
            "key" if !v.is_empty() => q.key = Some(v),
            "model" if !v.is_empty() => {
                let id = ctx
                    .live
                    .aliases
                    .resolve(&v, &ctx.live.catalog)
                    .map_or(v, |r| r.model.id);
                q.model = Some(id);
            }
            "key" | "model" => {}
            other => {
                let known = match filters {
                    Filters::KeyAndModel => "key, model, from, to",
                    Filters::ModelOnly => "model, from, to",
                };
                return Err(Error::invalid_param(
                    other,
                    format!("`{other}` is not a filter; use {known}."),
                ));
            }
        }
    }
    if q.from > q.to {
        return Err(Error::invalid_param("from", "`from` is after `to`."));
    }
    Ok(q)
}

pub(super) async fn handle<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    req: Request<Body>,
    ctx: &mut Ctx<'_>,
) -> Result<Response<Body>, Error> {
    let now = g.services.clock.unix_seconds();
    let q = parse_query(
        &req,
        ctx,
        now,
        now.saturating_sub(86_400),
        Filters::KeyAndModel,
    )?;
    let rows = g.usage.query(&q).await?;
    let live = ctx.live.clone();
    let r = report::build(&rows, &|m| price_of(&live, m));
    Ok(json(
        StatusCode::OK,
        &json!({
            "object": "usage",
            "from": q.from,
            "to": q.to,
            "filters": {"key": q.key, "model": q.model},
            "totals": r.totals,
            "by_key": r.by_key,
            "by_model": r.by_model,
            "by_hour": r.by_hour,
            "pricing": {
                "usd_per_1000_neurons": USD_PER_NEURON * 1000.0,
                "note": "Estimates from token counts: prices from the config's overrides, the model catalog's `price`, or Cloudflare's pricing page; images and audio are counted, not priced. See docs/operating.md.",
            },
        }),
    ))
}
