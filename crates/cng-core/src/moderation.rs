//! Moderation: OpenAI's `POST /v1/moderations` through Llama Guard 3.
//!
//! Each input is one Llama Guard call (in turn, never fanned out). Llama Guard answers
//! `safe`, or `unsafe` and the hazard codes it found (`S1`..`S14`), as text or as
//! `{"safe", "categories"}`; the codes are mapped onto OpenAI's categories with
//! [`HAZARDS`]. Llama Guard gives no probabilities: a category's score is 1 when it
//! was found and 0 otherwise.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::alias::Resolved;
use crate::backend::{InferenceRequest, Input};
use crate::catalog::Task;
use crate::error::Error;
use crate::openai::moderations::ModerationResult;

/// The most inputs one request may carry.
pub const MAX_INPUTS: usize = 32;

/// OpenAI's moderation categories (the omni model's set).
pub const OPENAI_CATEGORIES: [&str; 13] = [
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
];

/// Llama Guard 3's hazard taxonomy and the OpenAI categories each code flags. Codes
/// with no OpenAI counterpart (specialized advice, privacy, intellectual property,
/// elections) still flag the input and are listed in `hazard_categories`.
pub const HAZARDS: [(&str, &str, &[&str]); 14] = [
    ("S1", "Violent Crimes", &["violence", "illicit/violent"]),
    ("S2", "Non-Violent Crimes", &["illicit"]),
    ("S3", "Sex-Related Crimes", &["sexual", "illicit"]),
    (
        "S4",
        "Child Sexual Exploitation",
        &["sexual/minors", "sexual"],
    ),
    ("S5", "Defamation", &["harassment"]),
    ("S6", "Specialized Advice", &[]),
    ("S7", "Privacy", &[]),
    ("S8", "Intellectual Property", &[]),
    (
        "S9",
        "Indiscriminate Weapons",
        &["illicit/violent", "violence"],
    ),
    ("S10", "Hate", &["hate"]),
    ("S11", "Suicide & Self-Harm", &["self-harm"]),
    ("S12", "Sexual Content", &["sexual"]),
    ("S13", "Elections", &[]),
    ("S14", "Code Interpreter Abuse", &["illicit"]),
];

/// Reads `input` into the texts to check.
pub fn texts(input: &Value) -> Result<Vec<String>, Error> {
    let bad = |m: String| Error::invalid_param("input", m);
    let out = match input {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) if items.is_empty() => {
            return Err(bad("`input` is an empty array.".into()));
        }
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        Value::Array(parts) if parts.iter().all(Value::is_object) => {
            // Multi-modal parts: one input whose text parts are joined.
            let mut text = Vec::new();
            for p in parts {
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        text.push(p.get("text").and_then(Value::as_str).unwrap_or_default())
                    }
                    Some("image_url") => {
                        return Err(bad(
                            "Llama Guard 3 reads text only; remove the `image_url` parts.".into(),
                        ));
                    }
                    _ => {
                        return Err(bad(
                            "each part of `input` must be `{\"type\": \"text\", \"text\": ...}`."
                                .into(),
                        ));
                    }
                }
            }
            vec![text.join("\n")]
        }
        _ => {
            return Err(bad(
                "`input` must be a string or an array of strings.".into()
            ));
        }
    };
    if out.len() > MAX_INPUTS {
        return Err(bad(format!(
            "`input` has {} items; at most {MAX_INPUTS} are allowed.",
            out.len()
        )));
    }
    Ok(out)
}

/// Checks the model is a Llama Guard model.
pub fn check_model(target: &Resolved) -> Result<(), Error> {
    let id = target.model.id.to_ascii_lowercase();
    if target.model.task == Task::TextGeneration
        && (id.contains("llama-guard") || id.contains("llamaguard"))
    {
        return Ok(());
    }
    Err(Error::invalid_param(
        "model",
        format!(
            "{} is not a moderation model; use omni-moderation-latest (@cf/meta/llama-guard-3-8b).",
            target.describe()
        ),
    )
    .with_code("model_not_supported"))
}

/// The Llama Guard call for one text.
pub fn request(target: &Resolved, text: &str) -> InferenceRequest {
    InferenceRequest {
        model: target.model.id.clone(),
        task: Task::TextGeneration,
        input: Input::Json(json!({ "messages": [{ "role": "user", "content": text }] })),
        stream: false,
    }
}

/// Reads Llama Guard's verdict: (unsafe, hazard codes).
pub fn verdict(result: &Value) -> Result<(bool, Vec<String>), Error> {
    let response = result.get("response").unwrap_or(result);
    if let Some(obj) = response.as_object() {
        let safe = obj
            .get("safe")
            .and_then(Value::as_bool)
            .ok_or_else(|| Error::upstream("Llama Guard answered an object without `safe`"))?;
        let codes = obj
            .get("categories")
            .and_then(Value::as_array)
            .map(|c| {
                c.iter()
                    .filter_map(Value::as_str)
                    .map(normalise_code)
                    .collect()
            })
            .unwrap_or_default();
        return Ok((!safe, codes));
    }
    let text = response
        .as_str()
        .ok_or_else(|| Error::upstream("Llama Guard answered without a verdict"))?
        .trim();
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default().trim().to_ascii_lowercase();
    match first.as_str() {
        "safe" => Ok((false, Vec::new())),
        "unsafe" => {
            let codes = lines
                .flat_map(|l| l.split(','))
                .map(normalise_code)
                .filter(|c| !c.is_empty())
                .collect();
            Ok((true, codes))
        }
        _ => Err(Error::upstream(format!(
            "Llama Guard answered neither `safe` nor `unsafe`: {:?}",
            text.chars().take(80).collect::<String>()
        ))),
    }
}

fn normalise_code(c: &str) -> String {
    c.trim().to_ascii_uppercase()
}

/// The OpenAI result for one verdict.
pub fn result(flagged: bool, codes: Vec<String>) -> ModerationResult {
    let mut categories: BTreeMap<&'static str, bool> =
        OPENAI_CATEGORIES.iter().map(|c| (*c, false)).collect();
    for code in &codes {
        if let Some((_, _, cats)) = HAZARDS.iter().find(|(c, _, _)| c == code) {
            for cat in cats.iter() {
                categories.insert(cat, true);
            }
        }
    }
    let category_scores = categories
        .iter()
        .map(|(k, v)| (*k, if *v { 1.0 } else { 0.0 }))
        .collect();
    let category_applied_input_types = OPENAI_CATEGORIES
        .iter()
        .map(|c| (*c, vec!["text"]))
        .collect();
    ModerationResult {
        flagged: flagged || !codes.is_empty(),
        categories,
        category_scores,
        category_applied_input_types,
        hazard_categories: codes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hazard_is_mapped_and_categories_are_openais() {
        for (code, _, cats) in HAZARDS {
            for c in cats {
                assert!(OPENAI_CATEGORIES.contains(c), "{code} → unknown {c}");
            }
        }
        let (unsafe_, codes) = verdict(&json!({"response": "unsafe\nS1,S10"})).unwrap();
        assert!(unsafe_);
        let r = result(unsafe_, codes);
        assert!(r.categories["violence"] && r.categories["hate"] && !r.categories["sexual"]);
        let (u, c) = verdict(&json!({"response": {"safe": false, "categories": ["s7"]}})).unwrap();
        let r = result(u, c);
        assert!(r.flagged && r.categories.values().all(|v| !v));
        assert_eq!(r.hazard_categories, ["S7"]);
        assert!(verdict(&json!({"response": "maybe"})).is_err());
    }
}
