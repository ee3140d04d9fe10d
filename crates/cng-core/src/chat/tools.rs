//! Recovering tool calls that a model printed as text instead of returning them in
//! `tool_calls` (Llama 3.x and Hermes models do this on Workers AI).
//!
//! Only unambiguous text is recovered: the whole answer (after removing a code fence,
//! `<tool_call>` tags or Llama's `<|python_tag|>`) must be one JSON call, a list of
//! calls, or calls separated by `;`/newlines, and every name must be one of the tools
//! the client offered. Anything else stays text.

use serde_json::Value;

use crate::workers_ai::text::arguments_string;

/// A recovered call: (name, arguments as a JSON string).
pub type RecoveredCall = (String, String);

/// Tries to read `text` as tool calls to `offered` tools.
pub fn recover(text: &str, offered: &[String]) -> Option<Vec<RecoveredCall>> {
    if offered.is_empty() {
        return None;
    }
    let body = unwrap_text(text)?;
    let values = parse_values(body)?;
    let mut calls = Vec::with_capacity(values.len());
    for v in &values {
        calls.push(as_call(v, offered)?);
    }
    (!calls.is_empty()).then_some(calls)
}

fn unwrap_text(text: &str) -> Option<&str> {
    let mut t = text.trim();
    t = t.strip_prefix("<|python_tag|>").unwrap_or(t).trim();
    if let Some(rest) = t.strip_prefix("```") {
        let rest = rest.strip_prefix("json").unwrap_or(rest);
        t = rest.strip_suffix("```")?.trim();
    }
    if let Some(rest) = t.strip_prefix("<tool_call>") {
        t = rest
            .trim_end()
            .strip_suffix("</tool_call>")
            .unwrap_or(rest)
            .trim();
    }
    (t.starts_with('{') || t.starts_with('[')).then_some(t)
}

/// One JSON value, or several separated by whitespace, `;` or `,`.
fn parse_values(body: &str) -> Option<Vec<Value>> {
    let mut out = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(body).into_iter::<Value>();
    loop {
        match stream.next() {
            None => break,
            Some(Ok(Value::Array(items))) => out.extend(items),
            Some(Ok(v)) => out.push(v),
            Some(Err(_)) => {
                // Separators between objects: skip one and go on.
                let rest = body[stream.byte_offset()..].trim_start();
                let rest = rest
                    .strip_prefix(';')
                    .or_else(|| rest.strip_prefix(','))?
                    .trim_start();
                let offset = body.len() - rest.len();
                let mut more = parse_values(&body[offset..])?;
                out.append(&mut more);
                break;
            }
        }
    }
    Some(out)
}

fn as_call(v: &Value, offered: &[String]) -> Option<RecoveredCall> {
    let obj = v.as_object()?;
    let inner = obj
        .get("function")
        .and_then(Value::as_object)
        .unwrap_or(obj);
    let name = inner.get("name")?.as_str()?;
    if !offered.iter().any(|o| o == name) {
        return None;
    }
    let args = inner
        .get("arguments")
        .or_else(|| inner.get("parameters"))
        .cloned()
        .unwrap_or_else(|| Value::Object(Default::default()));
    // Only objects (or strings holding objects) are arguments.
    let args = match &args {
        Value::Object(_) => arguments_string(&args),
        Value::String(s) if serde_json::from_str::<Value>(s).is_ok_and(|v| v.is_object()) => {
            s.clone()
        }
        _ => return None,
    };
    // Nothing but the call: extra keys other than these mean it was data, not a call.
    let allowed = ["name", "arguments", "parameters", "type", "function", "id"];
    if obj.keys().any(|k| !allowed.contains(&k.as_str())) {
        return None;
    }
    Some((name.to_string(), args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered() -> Vec<String> {
        vec!["get_weather".into(), "get_time".into()]
    }

    #[test]
    fn recovers_the_printed_forms() {
        let one = Some(vec![(
            "get_weather".to_string(),
            r#"{"city":"Paris"}"#.to_string(),
        )]);
        for text in [
            r#"{"name": "get_weather", "parameters": {"city": "Paris"}}"#,
            r#"  {"type":"function","name":"get_weather","parameters":{"city":"Paris"}} "#,
            "```json\n{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}\n```",
            "<tool_call>\n{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}\n</tool_call>",
            r#"<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}"#,
        ] {
            assert_eq!(recover(text, &offered()), one, "{text}");
        }
        let two = recover(
            r#"{"name":"get_weather","parameters":{"city":"Oslo"}}; {"name":"get_time","parameters":{}}"#,
            &offered(),
        )
        .unwrap();
        assert_eq!(two.len(), 2);
        assert_eq!(two[1].0, "get_time");
    }

    #[test]
    fn leaves_everything_else_as_text() {
        for text in [
            r#"{"name": "send_email", "parameters": {}}"#,
            r#"Sure! {"name": "get_weather", "parameters": {"city": "Paris"}}"#,
            r#"{"name": "get_weather", "population": 3}"#,
            r#"{"name": "get_weather", "parameters": "Paris"}"#,
            "The weather is fine.",
            "",
        ] {
            assert_eq!(recover(text, &offered()), None, "{text}");
        }
        assert_eq!(
            recover(r#"{"name":"get_weather","parameters":{}}"#, &[]),
            None
        );
    }
}
