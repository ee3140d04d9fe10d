//! Adding hourly buckets up into what `GET /api/usage` and `GET /api/status` answer.

use std::collections::BTreeMap;

use serde::Serialize;

use super::prices::{PriceSource, Rates};
use super::{BucketKey, Counters};

/// Totals of a group of buckets, as reported.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub requests: u64,
    pub errors: u64,
    pub upstream_errors: u64,
    pub error_rate: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Requests whose answer carried token counts.
    pub requests_with_tokens: u64,
    pub latency_ms: Latency,
    /// Estimated from token counts and the price table; `null` when nothing in the
    /// group could be priced.
    pub estimated_neurons: Option<f64>,
    pub estimated_usd: Option<f64>,
    /// Requests whose model has no token price (images, audio) or whose answer had no
    /// token counts: not in the estimate.
    pub unpriced_requests: u64,
    pub last_ok: Option<u64>,
    pub last_error: Option<u64>,
}

/// Latency percentiles (milliseconds, within ±9 %).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Latency {
    pub p50: Option<u64>,
    pub p95: Option<u64>,
    pub p99: Option<u64>,
}

/// Accumulates counters and cost.
#[derive(Debug, Default)]
struct Acc {
    c: Counters,
    neurons: Option<f64>,
    usd: Option<f64>,
    unpriced: u64,
}

impl Acc {
    fn add(&mut self, c: &Counters, cost: Option<(f64, f64)>) {
        self.c.merge(c);
        match cost {
            Some((n, u)) => {
                *self.neurons.get_or_insert(0.0) += n;
                *self.usd.get_or_insert(0.0) += u;
                self.unpriced += c.requests - c.with_tokens;
            }
            None => self.unpriced += c.requests,
        }
    }

    fn summary(&self) -> Summary {
        let c = &self.c;
        Summary {
            requests: c.requests,
            errors: c.errors,
            upstream_errors: c.upstream_errors,
            error_rate: if c.requests == 0 {
                0.0
            } else {
                c.errors as f64 / c.requests as f64
            },
            input_tokens: c.input_tokens,
            output_tokens: c.output_tokens,
            requests_with_tokens: c.with_tokens,
            latency_ms: Latency {
                p50: c.latency.quantile(0.50),
                p95: c.latency.quantile(0.95),
                p99: c.latency.quantile(0.99),
            },
            estimated_neurons: self.neurons.map(round3),
            estimated_usd: self.usd.map(|u| (u * 1e6).round() / 1e6),
            unpriced_requests: self.unpriced,
            last_ok: c.last_ok,
            last_error: c.last_error,
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A group in a report.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: String,
    #[serde(flatten)]
    pub summary: Summary,
    /// For models: where the price came from (`catalog`, `pricing-page`), if priced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_source: Option<&'static str>,
}

/// One hour of the time series (for the chart).
#[derive(Debug, Clone, Serialize)]
pub struct HourRow {
    pub hour: u64,
    pub requests: u64,
    pub errors: u64,
    pub estimated_neurons: Option<f64>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub totals: Summary,
    pub by_key: Vec<Row>,
    pub by_model: Vec<Row>,
    pub by_hour: Vec<HourRow>,
}

/// Adds `rows` up per key, per model and per hour, pricing each bucket with the rates
/// `price_of` gives for its model.
pub fn build(rows: &[(BucketKey, Counters)], price_of: &dyn Fn(&str) -> Option<Rates>) -> Report {
    let mut totals = Acc::default();
    let mut by_key: BTreeMap<&str, Acc> = BTreeMap::new();
    let mut by_model: BTreeMap<&str, Acc> = BTreeMap::new();
    let mut by_hour: BTreeMap<u64, Acc> = BTreeMap::new();
    let mut sources: BTreeMap<&str, &'static str> = BTreeMap::new();
    for (k, c) in rows {
        let r = price_of(&k.model);
        let cost = r.map(|r| {
            let x = r.cost(c.input_tokens, c.output_tokens);
            (x.neurons, x.usd)
        });
        if let Some(r) = r {
            sources.insert(
                &k.model,
                match r.source {
                    PriceSource::Catalog => "catalog",
                    PriceSource::PricingPage => "pricing-page",
                },
            );
        }
        totals.add(c, cost);
        by_key.entry(&k.key).or_default().add(c, cost);
        by_model.entry(&k.model).or_default().add(c, cost);
        by_hour.entry(k.hour).or_default().add(c, cost);
    }
    let rows_of = |m: BTreeMap<&str, Acc>, with_source: bool| -> Vec<Row> {
        let mut v: Vec<Row> = m
            .into_iter()
            .map(|(name, acc)| Row {
                name: name.to_string(),
                summary: acc.summary(),
                price_source: if with_source {
                    sources.get(name).copied()
                } else {
                    None
                },
            })
            .collect();
        v.sort_by(|a, b| {
            b.summary
                .requests
                .cmp(&a.summary.requests)
                .then(a.name.cmp(&b.name))
        });
        v
    };
    Report {
        totals: totals.summary(),
        by_key: rows_of(by_key, false),
        by_model: rows_of(by_model, true),
        by_hour: by_hour
            .into_iter()
            .map(|(hour, acc)| {
                let s = acc.summary();
                HourRow {
                    hour,
                    requests: s.requests,
                    errors: s.errors,
                    estimated_neurons: s.estimated_neurons,
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::usage::prices::rates;
    use crate::usage::tests::event;

    #[test]
    fn prices_per_model_and_counts_unpriced() {
        let mut chat = Counters::default();
        let mut e = event(3600, "a", "@cf/meta/llama-3.1-8b-instruct", 200, 100);
        e.input_tokens = Some(1_000_000);
        e.output_tokens = Some(0);
        chat.add(&e);
        let mut img = Counters::default();
        img.add(&event(
            3600,
            "a",
            "@cf/black-forest-labs/flux-1-schnell",
            200,
            900,
        ));
        let rows = vec![
            (
                BucketKey {
                    hour: 3600,
                    key: "a".into(),
                    model: "@cf/meta/llama-3.1-8b-instruct".into(),
                },
                chat,
            ),
            (
                BucketKey {
                    hour: 3600,
                    key: "a".into(),
                    model: "@cf/black-forest-labs/flux-1-schnell".into(),
                },
                img,
            ),
        ];
        let r = build(&rows, &|m| Catalog::builtin().get(m).and_then(rates));
        assert_eq!(r.totals.requests, 2);
        assert_eq!(r.totals.unpriced_requests, 1);
        assert_eq!(r.totals.estimated_neurons, Some(25608.0));
        let usd = r.totals.estimated_usd.unwrap();
        assert!((usd - 0.281688).abs() < 1e-6, "{usd}");
        assert_eq!(r.by_key.len(), 1);
        assert_eq!(r.by_model.len(), 2);
        let llama = r
            .by_model
            .iter()
            .find(|m| m.name.contains("llama"))
            .unwrap();
        assert_eq!(llama.price_source, Some("pricing-page"));
        assert_eq!(r.by_hour.len(), 1);
        assert_eq!(r.totals.latency_ms.p99.map(|p| p > 800), Some(true));
    }
}
