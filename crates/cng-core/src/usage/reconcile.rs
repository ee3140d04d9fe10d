//! cng's usage estimate next to Cloudflare's own count of the account's inferences.
//!
//! cng estimates neurons from token counts and a price table ([`super::prices`]); the
//! bill is Cloudflare's. The host injects an [`Analytics`] (the native server and the
//! Worker read Cloudflare's GraphQL Analytics API, dataset `aiInferenceAdaptiveGroups`)
//! and [`compare`] puts both side by side per model, which is what
//! `GET /api/usage/reconcile` answers.
//!
//! The comparison can only ever be approximate, and the report says why
//! ([`CAVEATS`]): Cloudflare counts the whole account (traffic that never went through
//! this cng included), its analytics are not a billing measure, and cng's side is an
//! estimate that leaves out requests it cannot price.

use std::collections::BTreeMap;

use serde::Serialize;

use super::report::Row;
use super::{BoxFuture, MaybeSendSync};
use crate::catalog::is_workers_ai_id;
use crate::error::Error;

/// Cloudflare's figures for one model over a time range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelCount {
    /// The model id as Cloudflare reports it (`@cf/meta/llama-3.1-8b-instruct`).
    pub model: String,
    /// Inferences.
    pub requests: u64,
    /// Neurons Cloudflare counted.
    pub neurons: f64,
}

/// What an [`Analytics`] read.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AccountUsage {
    pub models: Vec<ModelCount>,
    /// The source answered as many groups as it was asked for at most: there may be
    /// more models than listed.
    pub truncated: bool,
}

/// Reads the account's Workers AI usage as Cloudflare counts it.
pub trait Analytics: MaybeSendSync {
    /// Per-model inferences and neurons between `start` and `end`, Unix seconds, both
    /// inclusive. Errors are OpenAI-shaped and say what to fix; they never contain the
    /// credential.
    fn usage(&self, start: u64, end: u64) -> BoxFuture<'_, Result<AccountUsage, Error>>;
}

/// What the report says about every comparison (`caveats`).
pub const CAVEATS: &[&str] = &[
    "Cloudflare's figures cover the whole account: Workers AI traffic that did not go through this cng (other Workers, other gateways, the dashboard's playground) is in them.",
    "Analytics are not a billing measure: Cloudflare's invoice is the authority. The adaptive datasets may be sampled and lag by a few minutes.",
    "cng's neurons are estimates from token counts and the price table; requests without token counts and models without a token price (images, audio) are counted but not in the estimate (`unpriced_requests`).",
    "The dataset (`aiInferenceAdaptiveGroups` of Cloudflare's GraphQL Analytics API) is widely used but not in Cloudflare's reference documentation: it may change without notice.",
    "cng keeps usage per hour: both sides cover the whole hours of `window`.",
];

/// cng's side of one model.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CngSide {
    pub requests: u64,
    /// `null` when none of the model's requests could be priced.
    pub estimated_neurons: Option<f64>,
    pub unpriced_requests: u64,
}

/// Cloudflare's side of one model.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CloudflareSide {
    pub requests: u64,
    pub neurons: f64,
}

/// Cloudflare minus cng: positive when Cloudflare counted more.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Difference {
    pub requests: i64,
    /// `null` when cng has no estimate.
    pub neurons: Option<f64>,
}

/// Cloudflare divided by cng; `null` when cng's side is zero or has no estimate.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Ratio {
    pub requests: Option<f64>,
    pub neurons: Option<f64>,
}

/// One model (or the totals) compared.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Compared {
    pub model: String,
    pub cng: CngSide,
    pub cloudflare: CloudflareSide,
    pub difference: Difference,
    pub ratio: Ratio,
}

/// A model cng counted that does not run on Workers AI (a configured provider's):
/// Cloudflare's analytics cannot have it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Excluded {
    pub model: String,
    pub requests: u64,
}

/// The comparison.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Reconciliation {
    /// Sorted by Cloudflare's neurons, then cng's requests, then name.
    pub models: Vec<Compared>,
    /// The sums of `models` (`model` is `*`).
    pub totals: Compared,
    pub excluded: Vec<Excluded>,
    pub truncated: bool,
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn finish(model: String, cng: CngSide, cf: CloudflareSide) -> Compared {
    let estimate = cng.estimated_neurons;
    let div = |num: f64, den: f64| (den > 0.0).then(|| round3(num / den));
    Compared {
        model,
        difference: Difference {
            requests: i64::try_from(cf.requests)
                .unwrap_or(i64::MAX)
                .saturating_sub(i64::try_from(cng.requests).unwrap_or(i64::MAX)),
            neurons: estimate.map(|e| round3(cf.neurons - e)),
        },
        ratio: Ratio {
            requests: div(cf.requests as f64, cng.requests as f64),
            neurons: estimate.and_then(|e| div(cf.neurons, e)),
        },
        cng: CngSide {
            estimated_neurons: estimate.map(round3),
            ..cng
        },
        cloudflare: CloudflareSide {
            neurons: round3(cf.neurons),
            ..cf
        },
    }
}

/// Puts cng's per-model rows (`report::build(..).by_model`) next to Cloudflare's.
///
/// `canonical` maps Cloudflare's model ids onto cng's (the catalog's full id for a
/// short name), so both sides meet on one row; ids Cloudflare reports twice are added
/// up. Models only one side knows get a row with zeros on the other side: a model cng
/// never served has an estimate of 0, not `null`.
pub fn compare(
    cng: &[Row],
    cloudflare: &AccountUsage,
    canonical: &dyn Fn(&str) -> String,
) -> Reconciliation {
    let mut rows: BTreeMap<String, (CngSide, CloudflareSide)> = BTreeMap::new();
    let mut excluded = Vec::new();
    for r in cng {
        if !is_workers_ai_id(&r.name) {
            excluded.push(Excluded {
                model: r.name.clone(),
                requests: r.summary.requests,
            });
            continue;
        }
        let side = &mut rows.entry(r.name.clone()).or_default().0;
        side.requests += r.summary.requests;
        side.unpriced_requests += r.summary.unpriced_requests;
        if let Some(n) = r.summary.estimated_neurons {
            *side.estimated_neurons.get_or_insert(0.0) += n;
        }
    }
    for m in &cloudflare.models {
        let side = &mut rows.entry(canonical(&m.model)).or_default().1;
        side.requests += m.requests;
        side.neurons += m.neurons;
    }
    let mut totals_cng = CngSide::default();
    let mut totals_cf = CloudflareSide::default();
    let mut models: Vec<Compared> = rows
        .into_iter()
        .map(|(model, (mut c, f))| {
            if c.requests == 0 {
                c.estimated_neurons = Some(0.0);
            }
            totals_cng.requests += c.requests;
            totals_cng.unpriced_requests += c.unpriced_requests;
            if let Some(n) = c.estimated_neurons {
                *totals_cng.estimated_neurons.get_or_insert(0.0) += n;
            }
            totals_cf.requests += f.requests;
            totals_cf.neurons += f.neurons;
            finish(model, c, f)
        })
        .collect();
    models.sort_by(|a, b| {
        b.cloudflare
            .neurons
            .total_cmp(&a.cloudflare.neurons)
            .then(b.cng.requests.cmp(&a.cng.requests))
            .then(a.model.cmp(&b.model))
    });
    Reconciliation {
        models,
        totals: finish("*".into(), totals_cng, totals_cf),
        excluded,
        truncated: cloudflare.truncated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::report::Summary;

    fn row(name: &str, requests: u64, neurons: Option<f64>, unpriced: u64) -> Row {
        Row {
            name: name.into(),
            summary: Summary {
                requests,
                estimated_neurons: neurons,
                unpriced_requests: unpriced,
                ..Summary::default()
            },
            price_source: None,
        }
    }

    fn cf(model: &str, requests: u64, neurons: f64) -> ModelCount {
        ModelCount {
            model: model.into(),
            requests,
            neurons,
        }
    }

    const LLAMA: &str = "@cf/meta/llama-3.1-8b-instruct";
    const FLUX: &str = "@cf/black-forest-labs/flux-1-schnell";

    #[test]
    fn both_sides_per_model_with_difference_ratio_and_totals() {
        let cng = [
            row(LLAMA, 4, Some(100.0), 0),
            row(FLUX, 2, None, 2),
            row("openai/gpt-4o", 3, Some(1.0), 0),
        ];
        let account = AccountUsage {
            models: vec![
                cf(LLAMA, 5, 125.0),
                cf("@cf/baai/bge-m3", 7, 3.5),
                cf(FLUX, 2, 40.0),
            ],
            truncated: false,
        };
        let r = compare(&cng, &account, &|m| m.to_string());
        let names: Vec<&str> = r.models.iter().map(|m| m.model.as_str()).collect();
        assert_eq!(names, [LLAMA, FLUX, "@cf/baai/bge-m3"]);
        let llama = &r.models[0];
        assert_eq!(llama.difference.requests, 1);
        assert_eq!(llama.difference.neurons, Some(25.0));
        assert_eq!(llama.ratio.neurons, Some(1.25));
        assert_eq!(llama.ratio.requests, Some(1.25));
        let flux = &r.models[1];
        assert_eq!(flux.cng.estimated_neurons, None, "unpriced stays unknown");
        assert_eq!((flux.difference.neurons, flux.ratio.neurons), (None, None));
        assert_eq!(flux.ratio.requests, Some(1.0));
        let bge = &r.models[2];
        assert_eq!(bge.cng.estimated_neurons, Some(0.0), "cng never served it");
        assert_eq!(bge.difference.neurons, Some(3.5));
        assert_eq!((bge.ratio.requests, bge.ratio.neurons), (None, None));
        assert_eq!(r.totals.model, "*");
        assert_eq!(
            (r.totals.cng.requests, r.totals.cloudflare.requests),
            (6, 14)
        );
        assert_eq!(r.totals.cng.estimated_neurons, Some(100.0));
        assert_eq!(r.totals.cng.unpriced_requests, 2);
        assert_eq!(r.totals.cloudflare.neurons, 168.5);
        assert_eq!(r.totals.difference.requests, 8);
        assert_eq!(
            r.excluded,
            vec![Excluded {
                model: "openai/gpt-4o".into(),
                requests: 3
            }]
        );
    }

    #[test]
    fn cloudflare_ids_meet_cngs_and_duplicates_add_up() {
        let account = AccountUsage {
            models: vec![cf("llama-3.1-8b-instruct", 1, 1.0), cf(LLAMA, 2, 2.0004)],
            truncated: true,
        };
        let canonical = |m: &str| {
            if m.starts_with('@') {
                m.to_string()
            } else {
                format!("@cf/meta/{m}")
            }
        };
        let r = compare(&[row(LLAMA, 3, Some(3.0), 0)], &account, &canonical);
        assert_eq!(r.models.len(), 1);
        assert_eq!(r.models[0].cloudflare.requests, 3);
        assert_eq!(r.models[0].cloudflare.neurons, 3.0);
        assert_eq!(r.models[0].difference.requests, 0);
        assert!(r.truncated);
    }

    #[test]
    fn nothing_on_either_side_is_an_empty_comparison() {
        let r = compare(&[], &AccountUsage::default(), &|m| m.to_string());
        assert!(r.models.is_empty());
        assert_eq!(r.totals.cng.estimated_neurons, None);
        assert_eq!(r.totals.ratio, Ratio::default());
        assert_eq!(r.totals.difference.requests, 0);
    }
}
