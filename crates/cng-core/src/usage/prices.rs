//! What a request cost, estimated: neurons and US dollars per model.
//!
//! Workers AI bills in neurons: **$0.011 per 1,000 neurons** above a free 10,000 a day
//! (Cloudflare, "Workers AI pricing", developers.cloudflare.com/workers-ai/platform/pricing/).
//! Per-model prices come, in this order, from:
//! 1. the config's `models.overrides.{id}.price` (an operator's own figures);
//! 2. the model's `price` property in Cloudflare's model catalog (`data/models.json`,
//!    generated from cloudflare-docs' per-model files; `POST /api/discover` refreshes
//!    it), in dollars per million input/output tokens;
//! 3. [`NEURON_TABLE`]: the neurons-per-million-tokens table of the pricing page
//!    (2025), for older models whose catalog entry has no price.
//!
//! Only token prices are estimated (text generation, embeddings, translation,
//! classification). Images (per tile and step), audio (per minute) and speech (per
//! character) are counted as requests but not priced, and reports say how many
//! requests were left unpriced rather than pretending they were free. The estimate is
//! before the free daily allocation, and it is an estimate: Cloudflare's own analytics
//! are the bill.

use serde_json::Value;

use crate::catalog::ModelInfo;

/// Dollars per neuron ($0.011 per 1,000).
pub const USD_PER_NEURON: f64 = 0.011 / 1000.0;

/// Neurons per million (input, output) tokens from Cloudflare's pricing page (2025
/// versions of `workers-ai/platform/pricing.mdx`), for models the catalog gives no
/// `price` for. The page calls the fast 8B model `llama-3.1-8b-instruct-fp8-fast`.
pub const NEURON_TABLE: &[(&str, f64, f64)] = &[
    ("@cf/meta/llama-3.2-1b-instruct", 2457.0, 18252.0),
    ("@cf/meta/llama-3.2-3b-instruct", 4625.0, 30475.0),
    ("@cf/meta/llama-3.1-8b-instruct-fast", 4119.0, 34868.0),
    ("@cf/meta/llama-3.1-70b-instruct", 26668.0, 204805.0),
    ("@cf/mistral/mistral-7b-instruct-v0.1", 10000.0, 17300.0),
    ("@cf/meta/llama-3.1-8b-instruct", 25608.0, 75147.0),
    ("@cf/meta/llama-3-8b-instruct", 25608.0, 75147.0),
    ("@cf/meta/llama-3.1-8b-instruct-fp8", 13778.0, 26128.0),
    ("@cf/meta/llama-3.1-8b-instruct-awq", 11161.0, 24215.0),
    ("@cf/meta/llama-3-8b-instruct-awq", 11161.0, 24215.0),
    ("@cf/meta/llama-2-7b-chat-fp16", 50505.0, 606061.0),
    ("@cf/huggingface/distilbert-sst-2-int8", 2394.0, 0.0),
];

/// An estimated cost.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Cost {
    pub neurons: f64,
    pub usd: f64,
}

/// Where a model's price came from (for the report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceSource {
    /// The model's catalog `price` (or an override of it), in dollars.
    Catalog,
    /// [`NEURON_TABLE`].
    PricingPage,
}

/// Per-million-token rates for one model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// Neurons per million input tokens.
    pub input: f64,
    /// Neurons per million output tokens.
    pub output: f64,
    pub source: PriceSource,
}

/// The token rates of `m`, if it has token prices (its `price` already carries any
/// config override: see `LiveConfig::apply_overrides`).
pub fn rates(m: &ModelInfo) -> Option<Rates> {
    let mut input = None;
    let mut output = None;
    for p in &m.price {
        let unit = p.get("unit").and_then(Value::as_str).unwrap_or_default();
        let Some(usd) = p.get("price").and_then(Value::as_f64) else {
            continue;
        };
        let neurons = usd / USD_PER_NEURON;
        match unit {
            "per M input tokens" => input = Some(neurons),
            "per M output tokens" => output = Some(neurons),
            _ => {}
        }
    }
    if input.is_some() || output.is_some() {
        return Some(Rates {
            input: input.unwrap_or(0.0),
            output: output.unwrap_or(0.0),
            source: PriceSource::Catalog,
        });
    }
    NEURON_TABLE
        .iter()
        .find(|(id, _, _)| *id == m.id)
        .map(|(_, i, o)| Rates {
            input: *i,
            output: *o,
            source: PriceSource::PricingPage,
        })
}

impl Rates {
    /// The cost of `input` and `output` tokens.
    pub fn cost(&self, input: u64, output: u64) -> Cost {
        let neurons = (input as f64 * self.input + output as f64 * self.output) / 1_000_000.0;
        Cost {
            neurons,
            usd: neurons * USD_PER_NEURON,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    #[test]
    fn catalog_prices_become_neurons() {
        let mut m = ModelInfo::unknown("@cf/x/y");
        m.price = vec![
            serde_json::json!({"unit": "per M input tokens", "price": 0.282, "currency": "USD"}),
            serde_json::json!({"unit": "per M output tokens", "price": 0.827, "currency": "USD"}),
        ];
        let r = rates(&m).unwrap();
        assert_eq!(r.source, PriceSource::Catalog);
        let c = r.cost(1_000_000, 1_000_000);
        assert!((c.usd - (0.282 + 0.827)).abs() < 1e-9, "{c:?}");
        assert!((c.neurons - (0.282 + 0.827) / 0.011 * 1000.0).abs() < 1e-6);
    }

    #[test]
    fn older_models_use_the_pricing_page_table() {
        let m = Catalog::builtin()
            .get("@cf/meta/llama-3.1-8b-instruct")
            .unwrap();
        let r = rates(m).unwrap();
        assert_eq!(r.source, PriceSource::PricingPage);
        let c = r.cost(1000, 100);
        assert!((c.neurons - (25.608 + 7.5147)).abs() < 1e-9, "{c:?}");
    }

    #[test]
    fn image_models_are_not_priced_by_token() {
        let m = Catalog::builtin()
            .get("@cf/black-forest-labs/flux-1-schnell")
            .unwrap();
        assert!(rates(m).is_none());
    }
}
