//! `GET /api/status`: is the upstream reachable, which models answer, how often they
//! fail (admin only). Always the truth: a failed probe is reported as such with its
//! reason, never as zeros behind a 200 (the reference product's status swallowed its
//! own errors).

use http::{Response, StatusCode};
use serde::Serialize;
use serde_json::json;

use super::admin_usage::price_of;
use super::{Body, Ctx, Gateway, Limiter, json};
use crate::backend::Backend;
use crate::error::Error;
use crate::store::Store;
use crate::usage::{UsageQuery, report};

/// A model's recent health (closed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Its latest outcome in the window was a success.
    Up,
    /// Its latest outcome in the window was a failure of the model or upstream.
    Failing,
    /// No outcome in the window.
    Idle,
}

impl Health {
    pub fn of(last_ok: Option<u64>, last_error: Option<u64>, now: u64, window: u64) -> Self {
        let recent = |t: Option<u64>| t.filter(|t| t.saturating_add(window) >= now);
        match (recent(last_ok), recent(last_error)) {
            (Some(ok), Some(err)) if err > ok => Health::Failing,
            (Some(_), _) => Health::Up,
            (None, Some(_)) => Health::Failing,
            (None, None) => Health::Idle,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Failing => "failing",
            Health::Idle => "no recent calls",
        }
    }
}

pub(super) async fn handle<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    ctx: &mut Ctx<'_>,
) -> Result<Response<Body>, Error> {
    let now = g.services.clock.unix_seconds();
    let window = ctx.live.doc.badges.window_seconds;
    let q = UsageQuery {
        from: now.saturating_sub(86_400),
        to: now,
        key: None,
        model: None,
    };
    let rows = g.usage.query(&q).await?;
    let live = ctx.live.clone();
    let r = report::build(&rows, &|m| price_of(&live, m));
    let models: Vec<_> = r
        .by_model
        .iter()
        .map(|row| {
            let s = &row.summary;
            json!({
                "model": row.name,
                "health": Health::of(s.last_ok, s.last_error, now, window),
                "requests": s.requests,
                "errors": s.errors,
                "upstream_errors": s.upstream_errors,
                "error_rate": s.error_rate,
                "latency_ms": s.latency_ms,
                "last_ok": s.last_ok,
                "last_error": s.last_error,
            })
        })
        .collect();
    let probe = match &g.model_search {
        None => {
            json!({"reachable": null, "detail": "no probe: discovery is not configured for this upstream"})
        }
        Some(s) => match s.probe().await {
            Ok(()) => json!({"reachable": true}),
            Err(e) => json!({"reachable": false, "detail": e.message()}),
        },
    };
    let t = &r.totals;
    Ok(json(
        StatusCode::OK,
        &json!({
            "object": "status",
            "time": now,
            "version": env!("CARGO_PKG_VERSION"),
            "upstream": {
                "kind": g.config.upstream,
                "probe": probe,
                "last_ok": t.last_ok,
                "last_error": t.last_error,
            },
            "config": {"version": live.version, "problem": live.problem},
            "window_seconds": window,
            "last_24h": {
                "requests": t.requests,
                "errors": t.errors,
                "upstream_errors": t.upstream_errors,
                "error_rate": t.error_rate,
                "latency_ms": t.latency_ms,
            },
            "models": models,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_follows_the_latest_outcome_in_the_window() {
        assert_eq!(Health::of(Some(100), None, 150, 60), Health::Up);
        assert_eq!(Health::of(Some(100), Some(120), 150, 60), Health::Failing);
        assert_eq!(Health::of(Some(130), Some(120), 150, 60), Health::Up);
        assert_eq!(Health::of(Some(10), None, 150, 60), Health::Idle);
        assert_eq!(Health::of(None, Some(140), 150, 60), Health::Failing);
    }
}
