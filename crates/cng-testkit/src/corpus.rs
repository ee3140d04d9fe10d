//! The fixture corpus: loading `fixtures/<kind>/<case>/` and picking the case an incoming
//! upstream request stands for.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde_json::Value;

/// What a case answers with.
#[derive(Debug, Clone)]
pub(crate) enum Answer {
    /// `upstream.json`: the Workers AI `result` object (wrapped in the v4 envelope on the
    /// Workers AI route).
    Json(Value),
    /// `upstream.sse`: raw SSE bytes, replayed event by event.
    Sse(Bytes),
    /// `upstream-error.json`: `{"status": N, "body": <error envelope>}`.
    Error { status: u16, body: Value },
    /// `upstream.bin`: raw bytes (binary outputs), with `content_type` from `case.json`
    /// (default `application/octet-stream`).
    Binary { content_type: String, bytes: Bytes },
}

/// One fixture case that has an upstream answer.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    /// `<kind>/<case>`, e.g. `chat/legacy-basic`.
    pub name: String,
    /// The `model` of the case's request.json (before any alias resolution).
    pub model: Option<String>,
    /// The case's request body, used to break ties between cases sharing a text.
    pub request: Value,
    pub answer: Answer,
}

/// Every case, indexed by the normalised text of its request (see [`request_text`]).
#[derive(Debug, Default)]
pub(crate) struct Corpus {
    /// Cases with an upstream answer, by text key.
    by_text: HashMap<String, Vec<Case>>,
    /// How many fixture requests (answered or refused up front) carry each text key.
    text_counts: HashMap<String, usize>,
    /// Total number of cases loaded (with or without an answer).
    pub total: usize,
}

impl Corpus {
    /// Loads every `<dir>/<kind>/<case>/request.json` and its answer file.
    pub fn load(dir: &Path) -> io::Result<Corpus> {
        let mut corpus = Corpus::default();
        for kind_dir in sorted_dirs(dir)? {
            for case_dir in sorted_dirs(&kind_dir)? {
                let request_path = case_dir.join("request.json");
                if !request_path.is_file() {
                    continue;
                }
                corpus.total += 1;
                let request = read_json(&request_path)?;
                let Some(key) = request_text(&request) else {
                    continue;
                };
                *corpus.text_counts.entry(key.clone()).or_default() += 1;
                let Some(answer) = load_answer(&case_dir)? else {
                    continue;
                };
                let name = format!("{}/{}", file_name(&kind_dir), file_name(&case_dir));
                let model = request
                    .get("model")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                corpus.by_text.entry(key).or_default().push(Case {
                    name,
                    model,
                    request,
                    answer,
                });
            }
        }
        Ok(corpus)
    }

    /// Picks the case an incoming request stands for.
    ///
    /// 1. Cases whose request has the same text key (last user message, else `prompt` /
    ///    `input` / `text`).
    /// 2. Of those, the ones with the same model; if none has it, the text alone decides
    ///    only when exactly one fixture request (refused ones included) carries it — this
    ///    is how alias cases (`gpt-4o`) are found under whatever model they arrive with,
    ///    while a common text like "Hi" on another model gets the default answer.
    /// 3. Ties are broken by a score: same `stream` flag, same values for the case's other
    ///    top-level request fields, closest message count. Equal scores: first by name.
    pub fn find(&self, model: Option<&str>, body: &Value) -> Option<&Case> {
        let key = request_text(body)?;
        let candidates = self.by_text.get(&key)?;
        let same_model: Vec<&Case> = candidates
            .iter()
            .filter(|c| model.is_some() && c.model.as_deref() == model)
            .collect();
        let pool: Vec<&Case> = if !same_model.is_empty() {
            same_model
        } else if self.text_counts.get(&key).copied() == Some(1) {
            candidates.iter().collect()
        } else {
            return None;
        };
        let mut best: Option<(i64, &Case)> = None;
        for case in pool {
            let score = tie_score(&case.request, body);
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, case));
            }
        }
        best.map(|(_, c)| c)
    }
}

/// Higher is closer. Only used between cases with the same text (and model).
fn tie_score(case_request: &Value, incoming: &Value) -> i64 {
    let mut score = 0;
    if is_stream(case_request) == is_stream(incoming) {
        score += 100;
    }
    if let Some(fields) = case_request.as_object() {
        for (k, v) in fields {
            if matches!(
                k.as_str(),
                "model" | "messages" | "stream" | "stream_options"
            ) {
                continue;
            }
            if incoming.get(k) == Some(v) {
                score += 1;
            } else {
                score -= 1;
            }
        }
    }
    let count = |v: &Value| {
        v.get("messages")
            .and_then(Value::as_array)
            .map_or(0, |m| i64::try_from(m.len()).unwrap_or(i64::MAX))
    };
    score - (count(case_request) - count(incoming)).abs()
}

/// `"stream": true` in a request body.
pub(crate) fn is_stream(body: &Value) -> bool {
    body.get("stream").and_then(Value::as_bool) == Some(true)
}

/// The text a request is keyed by: the last `user` message (string content, or its `text`
/// parts joined with "\n"), else a top-level `prompt`, `input` or `text` string.
/// Whitespace runs are collapsed to one space and the ends trimmed, so small layout
/// differences introduced by translation do not matter.
pub(crate) fn request_text(body: &Value) -> Option<String> {
    raw_request_text(body).map(|t| normalise(&t))
}

/// Like [`request_text`] but without normalisation (used for directives).
pub(crate) fn raw_request_text(body: &Value) -> Option<String> {
    if let Some(messages) = body.get("messages").and_then(Value::as_array) {
        let last_user = messages
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))?;
        return content_text(last_user.get("content")?);
    }
    // `prompt` (images, MeloTTS), `input` (OpenAI embeddings, speech, moderation),
    // `text` (Workers AI embeddings, Aura, m2m100); arrays of strings are joined.
    ["prompt", "input", "text"]
        .iter()
        .find_map(|k| match body.get(*k)? {
            Value::String(s) => Some(s.clone()),
            Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_string) => Some(
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            _ => None,
        })
}

fn content_text(content: &Value) -> Option<String> {
    match content {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str).unwrap_or("text") == "text")
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            Some(texts.join("\n"))
        }
        _ => None,
    }
}

fn normalise(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn load_answer(case_dir: &Path) -> io::Result<Option<Answer>> {
    let json = case_dir.join("upstream.json");
    if json.is_file() {
        return Ok(Some(Answer::Json(read_json(&json)?)));
    }
    let sse = case_dir.join("upstream.sse");
    if sse.is_file() {
        return Ok(Some(Answer::Sse(Bytes::from(std::fs::read(&sse)?))));
    }
    let err = case_dir.join("upstream-error.json");
    if err.is_file() {
        let v = read_json(&err)?;
        let status = v
            .get("status")
            .and_then(Value::as_u64)
            .and_then(|s| u16::try_from(s).ok())
            .ok_or_else(|| invalid(&err, "missing or invalid \"status\""))?;
        let body = v.get("body").cloned().unwrap_or(Value::Null);
        return Ok(Some(Answer::Error { status, body }));
    }
    let bin = case_dir.join("upstream.bin");
    if bin.is_file() {
        let case_json = case_dir.join("case.json");
        let content_type = if case_json.is_file() {
            let case = read_json(&case_json)?;
            ["content_type", "upstream_content_type"]
                .iter()
                .find_map(|k| case.get(*k).and_then(Value::as_str))
                .map(str::to_owned)
        } else {
            None
        };
        return Ok(Some(Answer::Binary {
            content_type: content_type.unwrap_or_else(|| "application/octet-stream".to_owned()),
            bytes: Bytes::from(std::fs::read(&bin)?),
        }));
    }
    Ok(None)
}

fn read_json(path: &Path) -> io::Result<Value> {
    let bytes = std::fs::read(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    serde_json::from_slice(&bytes).map_err(|e| invalid(path, &e.to_string()))
}

fn invalid(path: &Path, msg: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {msg}", path.display()),
    )
}

fn sorted_dirs(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
    let mut dirs = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        reason = "test code"
    )]

    use super::*;
    use serde_json::json;

    #[test]
    fn text_of_parts_and_prompt() {
        let body = json!({"messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "x"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url"}, {"type": "text", "text": "b"}]}
        ]});
        assert_eq!(raw_request_text(&body).as_deref(), Some("a\nb"));
        assert_eq!(request_text(&body).as_deref(), Some("a b"));
        assert_eq!(
            request_text(&json!({"prompt": "  hi   there "})).as_deref(),
            Some("hi there")
        );
        assert_eq!(request_text(&json!({"messages": []})), None);
    }
}
