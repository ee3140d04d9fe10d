//! `GET /api/usage/reconcile?model=&from=&to=`: cng's per-model requests and estimated
//! neurons (the figures of `GET /api/usage`) next to Cloudflare's count of the
//! account's inferences and neurons, with the difference, the ratio and the caveats
//! (admin only). See [`crate::usage::reconcile`].
//!
//! `from`/`to` are Unix seconds (default: the current UTC day so far), parsed like
//! `GET /api/usage`. cng keeps usage per hour, so both sides are compared over the
//! whole hours the range touches (`window`), at most [`MAX_SPAN_SECONDS`] long: the
//! adaptive datasets keep about a month.

use http::{Request, Response, StatusCode};
use serde_json::json;

use super::admin_usage::{Filters, parse_query, price_of};
use super::{Body, Ctx, Gateway, Limiter, json};
use crate::backend::Backend;
use crate::error::{Error, ErrorKind};
use crate::store::Store;
use crate::usage::reconcile::{CAVEATS, compare};
use crate::usage::report;

/// The longest range compared: 31 days.
pub const MAX_SPAN_SECONDS: u64 = 31 * 86_400;

const HOUR: u64 = 3600;

/// 9999-12-31T23:59:59Z: the analytics API takes RFC 3339 times, four-digit years.
const LAST_RFC3339_SECOND: u64 = 253_402_300_799;

pub(super) async fn handle<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    req: Request<Body>,
    ctx: &mut Ctx<'_>,
) -> Result<Response<Body>, Error> {
    let Some(analytics) = &g.analytics else {
        return Err(Error::new(
            ErrorKind::Unavailable,
            "Reconciling reads Cloudflare's GraphQL Analytics API: set CNG_CF_ANALYTICS_TOKEN \
             (an API token with the Account Analytics Read permission) and CLOUDFLARE_ACCOUNT_ID.",
        )
        .with_code("analytics_not_configured"));
    };
    let now = g.services.clock.unix_seconds();
    let q = parse_query(&req, ctx, now, now - now % 86_400, Filters::ModelOnly)?;
    if q.to > LAST_RFC3339_SECOND {
        return Err(Error::invalid_param(
            "to",
            format!("`to` is after the year 9999 (at most {LAST_RFC3339_SECOND})."),
        ));
    }
    let start = q.from - q.from % HOUR;
    let end = (q.to - q.to % HOUR).saturating_add(HOUR - 1);
    if end - start >= MAX_SPAN_SECONDS {
        return Err(Error::invalid_param(
            "from",
            format!(
                "The range covers {} hours; compare at most 31 days (744 hours) at a time.",
                (end - start + 1) / HOUR
            ),
        ));
    }
    let rows = g.usage.query(&q).await?;
    let live = ctx.live.clone();
    let cng = report::build(&rows, &|m| price_of(&live, m));
    let mut account = analytics.usage(start, end).await?;
    let canonical = |id: &str| {
        live.catalog
            .get(id)
            .or_else(|| live.catalog.get_short(id))
            .map_or_else(|| id.to_string(), |m| m.id.clone())
    };
    if let Some(model) = &q.model {
        account.models.retain(|m| canonical(&m.model) == *model);
    }
    let r = compare(&cng.by_model, &account, &canonical);
    let mut caveats: Vec<&str> = CAVEATS.to_vec();
    if r.truncated {
        caveats.push(
            "Cloudflare answered as many models as cng asks for at most: some models may be missing; compare a shorter range.",
        );
    }
    if !r.excluded.is_empty() {
        caveats.push(
            "`excluded` lists models served by configured providers, not Workers AI: Cloudflare's analytics cannot have them.",
        );
    }
    Ok(json(
        StatusCode::OK,
        &json!({
            "object": "usage.reconciliation",
            "from": q.from,
            "to": q.to,
            "window": {"start": start, "end": end},
            "filters": {"model": q.model},
            "source": "cloudflare-graphql-analytics:aiInferenceAdaptiveGroups",
            "models": r.models,
            "totals": r.totals,
            "excluded": r.excluded,
            "truncated": r.truncated,
            "caveats": caveats,
        }),
    ))
}
