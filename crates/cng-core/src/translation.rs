//! Text translation, cng's extension `POST /v1/translations` (as in the reference
//! product): `{text, source_lang, target_lang}` through m2m100 or IndicTrans2.
//!
//! m2m100 takes `{text, source_lang, target_lang}` (ISO 639-1 codes) and answers
//! `{translated_text}`; IndicTrans2 (`indictrans2-en-indic-1B`) translates English
//! into 22 Indic languages, takes `{text: [..], target_language}` with FLORES codes
//! (`hin_Deva`) and answers `{translations: [..]}`. ISO codes are mapped for it.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::alias::Resolved;
use crate::backend::{InferenceRequest, Input};
use crate::catalog::Task;
use crate::error::Error;

/// The model used when the request names none.
pub const DEFAULT_MODEL: &str = "@cf/meta/m2m100-1.2b";

/// The body of `POST /v1/translations`. `input`, `source` and `target` are accepted
/// as the reference product's spellings of `text`, `source_lang` and `target_lang`.
#[derive(Debug, Clone, Deserialize)]
pub struct TranslationRequest {
    pub model: Option<String>,
    #[serde(alias = "input")]
    pub text: Option<Value>,
    #[serde(alias = "source")]
    pub source_lang: Option<String>,
    #[serde(alias = "target")]
    pub target_lang: Option<String>,
}

/// The answer: `translated_text` is a string or an array, as `text` was.
#[derive(Debug, Clone, Serialize)]
pub struct TranslationResponse {
    pub object: &'static str,
    pub model: String,
    pub source_lang: String,
    pub target_lang: String,
    pub translated_text: Value,
}

/// The upstream calls and how to answer.
#[derive(Debug, Clone)]
pub struct TranslationPlan {
    pub requests: Vec<InferenceRequest>,
    pub batch: bool,
    pub source_lang: String,
    pub target_lang: String,
    indic: bool,
}

const INDIC: &[(&str, &str)] = &[
    ("as", "asm_Beng"),
    ("bn", "ben_Beng"),
    ("brx", "brx_Deva"),
    ("doi", "doi_Deva"),
    ("gom", "gom_Deva"),
    ("gu", "guj_Gujr"),
    ("hi", "hin_Deva"),
    ("kn", "kan_Knda"),
    ("ks", "kas_Arab"),
    ("mai", "mai_Deva"),
    ("ml", "mal_Mlym"),
    ("mni", "mni_Mtei"),
    ("mr", "mar_Deva"),
    ("ne", "npi_Deva"),
    ("or", "ory_Orya"),
    ("pa", "pan_Guru"),
    ("sa", "san_Deva"),
    ("sat", "sat_Olck"),
    ("sd", "snd_Arab"),
    ("ta", "tam_Taml"),
    ("te", "tel_Telu"),
    ("ur", "urd_Arab"),
];

/// Plans a translation.
pub fn plan(req: &TranslationRequest, target: &Resolved) -> Result<TranslationPlan, Error> {
    let who = target.describe();
    let texts: Vec<String> = match &req.text {
        Some(Value::String(s)) if !s.trim().is_empty() => vec![s.clone()],
        Some(Value::Array(a))
            if !a.is_empty()
                && a.iter()
                    .all(|v| v.as_str().is_some_and(|s| !s.trim().is_empty())) =>
        {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        }
        None => {
            return Err(Error::invalid_param(
                "text",
                "`text` is required: the text to translate.",
            ));
        }
        _ => {
            return Err(Error::invalid_param(
                "text",
                "`text` must be a non-empty string or an array of non-empty strings.",
            ));
        }
    };
    let batch = matches!(req.text, Some(Value::Array(_)));
    let target_lang = req
        .target_lang
        .clone()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| {
            Error::invalid_param(
                "target_lang",
                "`target_lang` is required (for example `es`).",
            )
        })?;
    let source_lang = req.source_lang.clone().unwrap_or_else(|| "en".into());
    let indic = target.model.id.contains("indictrans");
    let requests = if indic {
        if !source_lang.starts_with("en") {
            return Err(Error::invalid_param(
                "source_lang",
                format!("{who} translates from English only; use m2m100 for `{source_lang}`."),
            ));
        }
        let code = if target_lang.contains('_') {
            target_lang.clone()
        } else {
            INDIC
                .iter()
                .find(|(iso, _)| *iso == target_lang)
                .map(|(_, f)| (*f).to_string())
                .ok_or_else(|| {
                    Error::invalid_param(
                        "target_lang",
                        format!(
                            "{who} translates into Indic languages ({}); `{target_lang}` is not one.",
                            INDIC.iter().map(|(i, _)| *i).collect::<Vec<_>>().join(", ")
                        ),
                    )
                })?
        };
        vec![InferenceRequest {
            model: target.model.id.clone(),
            task: Task::Translation,
            input: Input::Json(json!({ "text": texts, "target_language": code })),
            stream: false,
        }]
    } else {
        texts
            .iter()
            .map(|t| InferenceRequest {
                model: target.model.id.clone(),
                task: Task::Translation,
                input: Input::Json(json!({
                    "text": t, "source_lang": source_lang, "target_lang": target_lang
                })),
                stream: false,
            })
            .collect()
    };
    Ok(TranslationPlan {
        requests,
        batch,
        source_lang,
        target_lang,
        indic,
    })
}

/// Reads the upstream answers (in order) into the translated texts.
pub fn translations(plan: &TranslationPlan, results: &[Value]) -> Result<Vec<String>, Error> {
    if plan.indic {
        let list = results
            .first()
            .and_then(|r| r.get("translations"))
            .and_then(Value::as_array)
            .ok_or_else(|| {
                Error::upstream("the translation model answered without `translations`")
            })?;
        return list
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                Error::upstream("the translation model answered a non-text translation")
            });
    }
    results
        .iter()
        .map(|r| {
            r.get("translated_text")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| {
                    Error::upstream("the translation model answered without `translated_text`")
                })
        })
        .collect()
}

/// The answer.
pub fn complete(
    plan: &TranslationPlan,
    requested: &str,
    texts: Vec<String>,
) -> TranslationResponse {
    let translated_text = if plan.batch {
        json!(texts)
    } else {
        json!(texts.into_iter().next().unwrap_or_default())
    };
    TranslationResponse {
        object: "translation",
        model: requested.to_string(),
        source_lang: plan.source_lang.clone(),
        target_lang: plan.target_lang.clone(),
        translated_text,
    }
}
