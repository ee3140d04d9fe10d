//! OpenAI's wire formats, as cng's clients speak them.

pub mod audio;
pub mod chat;
pub mod completions;
pub mod embeddings;
pub mod images;
pub mod moderations;

use serde::de::DeserializeOwned;

use crate::error::Error;

/// A parsed request body and the fields that were not understood.
#[derive(Debug)]
pub struct Parsed<T> {
    pub value: T,
    /// Paths of ignored (unknown) fields, for a debug log; clients send many.
    pub ignored: Vec<String>,
}

/// Parses a JSON request body into `T`.
///
/// Errors are 400 `invalid_request_error`s that say what is wrong and where: syntax
/// errors give the line and column, type errors give the field path in `param`.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<Parsed<T>, Error> {
    let mut ignored = Vec::new();
    let mut json = serde_json::Deserializer::from_slice(body);
    let mut track = serde_path_to_error::Track::new();
    let value = {
        let tracked = serde_path_to_error::Deserializer::new(&mut json, &mut track);
        serde_ignored::deserialize(tracked, |path| ignored.push(path.to_string()))
    };
    let value = value.and_then(|v| json.end().map(|()| v));
    match value {
        Ok(value) => Ok(Parsed { value, ignored }),
        Err(err) => {
            let path = track.path().to_string();
            Err(json_error(&err, &path))
        }
    }
}

/// Deserializes a part of a request already read as JSON (a content block, an input
/// item), with errors that name the field under `param` as [`parse_json`]'s do.
pub fn parse_value<T: DeserializeOwned>(param: &str, v: &serde_json::Value) -> Result<T, Error> {
    serde_path_to_error::deserialize::<_, T>(v).map_err(|e| {
        let path = e.path().to_string();
        let full = if path == "." {
            param.to_string()
        } else {
            format!("{param}.{path}")
        };
        data_error(&e.into_inner().to_string(), &full)
    })
}

/// A 400 for a value of the wrong shape at `path` ("" = the whole body).
fn data_error(text: &str, path: &str) -> Error {
    // serde_json appends " at line L column C"; keep the sentence short.
    let reason = text.split(" at line ").next().unwrap_or(text);
    // "missing field `x`" is about x itself: point `param` at it.
    if let Some(field) = reason
        .strip_prefix("missing field `")
        .and_then(|r| r.strip_suffix('`'))
    {
        let param = if path.is_empty() {
            field.to_string()
        } else {
            format!("{path}.{field}")
        };
        return Error::invalid_param(param.clone(), format!("`{param}` is required."));
    }
    if path.is_empty() {
        Error::invalid_request(format!("Invalid request body: {reason}."))
    } else {
        Error::invalid_param(path, format!("Invalid value for `{path}`: {reason}."))
    }
}

fn json_error(err: &serde_json::Error, path: &str) -> Error {
    use serde_json::error::Category;
    match err.classify() {
        Category::Syntax | Category::Eof | Category::Io => Error::invalid_request(format!(
            "The request body is not valid JSON: {err}. Send a JSON object with \
             `Content-Type: application/json`."
        ))
        .with_code("invalid_json"),
        Category::Data => data_error(&err.to_string(), if path == "." { "" } else { path }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::chat::ChatRequest;

    #[test]
    fn syntax_errors_name_line_and_column() {
        let err = parse_json::<ChatRequest>(b"{\n  \"model\": \"x\",\n  oops }").unwrap_err();
        assert_eq!(err.status().as_u16(), 400);
        assert!(
            err.message().contains("line 3 column 3"),
            "{}",
            err.message()
        );
        assert_eq!(err.code(), Some("invalid_json"));
    }

    #[test]
    fn type_errors_name_the_field() {
        let body =
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":"hot"}"#;
        let err = parse_json::<ChatRequest>(body).unwrap_err();
        assert_eq!(err.param(), Some("temperature"));
        assert!(err.message().contains("invalid type"), "{}", err.message());
    }

    #[test]
    fn missing_fields_are_the_param() {
        let err = parse_json::<ChatRequest>(br#"{"model":"m"}"#).unwrap_err();
        assert_eq!(err.param(), Some("messages"));
        let body = br#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#;
        let err = parse_json::<ChatRequest>(body).unwrap_err();
        assert_eq!(err.param(), Some("messages[0].tool_call_id"));
    }

    #[test]
    fn unknown_fields_are_tolerated_and_listed() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"frobnicate":1,"store":false}"#;
        let parsed = parse_json::<ChatRequest>(body).unwrap();
        assert_eq!(parsed.ignored, vec!["frobnicate", "store"]);
    }

    #[test]
    fn trailing_garbage_is_refused() {
        let body = br#"{"model":"m","messages":[]} {"#;
        assert!(parse_json::<ChatRequest>(body).is_err());
    }
}
