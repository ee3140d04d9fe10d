//! Embeddings: an OpenAI request becomes one Workers AI call per batch the model
//! accepts, and the vectors come back as one OpenAI answer, in input order.
//!
//! Workers AI embedding models take `{"text": [..]}` and answer `{"shape", "data"}`
//! (the BGE family, embeddinggemma, qwen3-embedding, plamo). They report no token
//! usage, so `usage` is an estimate (a token per four characters). Vectors are
//! rounded to `f32`, as OpenAI sends them: the `float` and `base64` encodings then
//! decode to exactly the same numbers.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::alias::Resolved;
use crate::backend::{InferenceRequest, Input};
use crate::catalog::Task;
use crate::error::Error;
use crate::openai::embeddings::{
    Embedding, EmbeddingVector, EmbeddingsRequest, EmbeddingsResponse, EmbeddingsUsage,
    EncodingFormat,
};

/// The most inputs one request may carry (OpenAI's own limit).
pub const MAX_INPUTS: usize = 2048;

/// What to send upstream and how to answer.
#[derive(Debug, Clone)]
pub struct EmbeddingsPlan {
    /// The model name the client sent (echoed).
    pub requested: String,
    pub texts: Vec<String>,
    /// One request per batch, in input order.
    pub batches: Vec<InferenceRequest>,
    pub encoding: EncodingFormat,
    pub dimensions: Option<u32>,
    matryoshka: bool,
    model: String,
}

/// Reads the request and plans the upstream calls.
pub fn plan(req: &EmbeddingsRequest, target: &Resolved) -> Result<EmbeddingsPlan, Error> {
    let texts = texts(&req.input)?;
    let media = &target.model.media;
    if let Some(d) = req.dimensions {
        check_dimensions(d, media.dimensions, media.matryoshka, target)?;
    }
    let size = media.max_batch.map_or(texts.len(), |m| m.max(1) as usize);
    let batches = texts
        .chunks(size.max(1))
        .map(|chunk| InferenceRequest {
            model: target.model.id.clone(),
            task: Task::TextEmbeddings,
            input: Input::Json(json!({ "text": chunk })),
            stream: false,
        })
        .collect();
    Ok(EmbeddingsPlan {
        requested: target.requested.clone(),
        texts,
        batches,
        encoding: req.encoding_format.unwrap_or_default(),
        dimensions: req.dimensions,
        matryoshka: media.matryoshka,
        model: target.describe(),
    })
}

fn texts(input: &Value) -> Result<Vec<String>, Error> {
    let bad = |msg: &str| Error::invalid_param("input", msg.to_string());
    let texts = match input {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) if items.is_empty() => {
            return Err(bad("`input` is an empty array: send at least one text."));
        }
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) => out.push(s.clone()),
                    Value::Number(_) | Value::Array(_) => {
                        return Err(bad(
                            "`input` holds token ids; Workers AI embedding models take text. \
                             Send the text itself (a string or an array of strings).",
                        )
                        .with_code("token_input_not_supported"));
                    }
                    _ => {
                        return Err(Error::invalid_param(
                            format!("input[{i}]"),
                            format!("`input[{i}]` must be a string."),
                        ));
                    }
                }
            }
            out
        }
        _ => return Err(bad("`input` must be a string or an array of strings.")),
    };
    if texts.len() > MAX_INPUTS {
        return Err(bad(&format!(
            "`input` has {} items; at most {MAX_INPUTS} are allowed per request.",
            texts.len()
        )));
    }
    if let Some(i) = texts.iter().position(|t| t.trim().is_empty()) {
        let param = if matches!(input, Value::String(_)) {
            "input".to_string()
        } else {
            format!("input[{i}]")
        };
        return Err(Error::invalid_param(
            param.clone(),
            format!("`{param}` is empty; the model needs at least one character of text."),
        ));
    }
    Ok(texts)
}

fn check_dimensions(
    d: u32,
    native: Option<u32>,
    matryoshka: bool,
    target: &Resolved,
) -> Result<(), Error> {
    let err = |msg: String| Error::invalid_param("dimensions", msg);
    if d == 0 {
        return Err(err("`dimensions` must be at least 1.".into()));
    }
    match native {
        Some(n) if d > n => Err(err(format!(
            "{} makes {n}-dimensional vectors; `dimensions` can be at most {n}.",
            target.describe()
        ))),
        Some(n) if d < n && !matryoshka => Err(err(format!(
            "{} makes {n}-dimensional vectors and was not trained to be shortened; \
             omit `dimensions` or use a model that allows it (embeddinggemma-300m, \
             qwen3-embedding-0.6b).",
            target.describe()
        ))),
        _ => Ok(()),
    }
}

/// Reads the vectors of one batch's answer (`{"data": [[..], ..]}`); `expected` is the
/// number of texts in the batch.
pub fn vectors(result: &Value, expected: usize) -> Result<Vec<Vec<f32>>, Error> {
    let data = result
        .get("data")
        .or_else(|| result.get("response"))
        .and_then(Value::as_array)
        .ok_or_else(|| Error::upstream("the embedding model answered without `data`"))?;
    if data.len() != expected {
        return Err(Error::upstream(format!(
            "the embedding model answered {} vectors for {expected} texts",
            data.len()
        )));
    }
    data.iter()
        .map(|v| {
            v.as_array()
                .and_then(|xs| {
                    xs.iter()
                        .map(|x| x.as_f64().map(|f| f as f32))
                        .collect::<Option<Vec<f32>>>()
                })
                .ok_or_else(|| Error::upstream("the embedding model answered a non-numeric vector"))
        })
        .collect()
}

/// The OpenAI answer for all vectors (in input order).
pub fn complete(
    plan: &EmbeddingsPlan,
    vectors: Vec<Vec<f32>>,
) -> Result<EmbeddingsResponse, Error> {
    let mut data = Vec::with_capacity(vectors.len());
    for (index, v) in vectors.into_iter().enumerate() {
        let v = match plan.dimensions {
            Some(d) => shorten(v, d as usize, plan.matryoshka, &plan.model)?,
            None => v,
        };
        let embedding = match plan.encoding {
            // Widening an f32 to f64 is exact, so both encodings decode to equal floats.
            EncodingFormat::Float => {
                EmbeddingVector::Float(v.iter().map(|&x| f64::from(x)).collect())
            }
            EncodingFormat::Base64 => {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                EmbeddingVector::Base64(STANDARD.encode(bytes))
            }
        };
        data.push(Embedding {
            object: "embedding",
            index,
            embedding,
        });
    }
    let tokens = plan.texts.iter().map(|t| estimate_tokens(t)).sum();
    Ok(EmbeddingsResponse {
        object: "list",
        data,
        model: plan.requested.clone(),
        usage: EmbeddingsUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    })
}

/// Applies `dimensions`: the same length passes; a Matryoshka model's vector is cut to
/// its first `d` values and scaled back to unit length (as OpenAI's shortened vectors are).
fn shorten(v: Vec<f32>, d: usize, matryoshka: bool, model: &str) -> Result<Vec<f32>, Error> {
    if v.len() == d {
        return Ok(v);
    }
    if d > v.len() || !matryoshka {
        return Err(Error::invalid_param(
            "dimensions",
            format!(
                "{model} made {}-dimensional vectors; it cannot give {d} dimensions. Omit \
                 `dimensions` or send {}.",
                v.len(),
                v.len()
            ),
        ));
    }
    let mut cut: Vec<f32> = v.into_iter().take(d).collect();
    let norm = cut
        .iter()
        .map(|x| f64::from(*x).powi(2))
        .sum::<f64>()
        .sqrt();
    if norm > 0.0 {
        for x in &mut cut {
            *x = (f64::from(*x) / norm) as f32;
        }
    }
    Ok(cut)
}

/// A rough token count: one token per four characters, at least one.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_little_endian_f32() {
        let plan = EmbeddingsPlan {
            requested: "m".into(),
            texts: vec!["abcd".into()],
            batches: vec![],
            encoding: EncodingFormat::Base64,
            dimensions: None,
            matryoshka: false,
            model: "m".into(),
        };
        let r = complete(&plan, vec![vec![1.0, -0.5]]).unwrap();
        let EmbeddingVector::Base64(b) = &r.data[0].embedding else {
            panic!("base64 expected")
        };
        let bytes = STANDARD.decode(b).unwrap();
        assert_eq!(bytes, [0, 0, 128, 63, 0, 0, 0, 191]);
        assert_eq!(r.usage.prompt_tokens, 1);
    }

    #[test]
    fn matryoshka_cut_is_unit_length() {
        let v = shorten(vec![3.0, 4.0, 12.0], 2, true, "m").unwrap();
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        assert!(shorten(vec![1.0, 2.0], 1, false, "m").is_err());
        assert!(shorten(vec![1.0, 2.0], 3, true, "m").is_err());
    }
}
