//! The Cloudflare API v4 envelope of `POST /accounts/{id}/ai/run/{model}`:
//! `{"result": …, "success": bool, "errors": [{"code", "message"}], "messages": []}`.

use serde::Deserialize;
use serde_json::Value;

use crate::error::Error;

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    success: Option<bool>,
    #[serde(default)]
    errors: Vec<EnvelopeError>,
}

#[derive(Deserialize)]
struct EnvelopeError {
    #[serde(default)]
    code: Option<u64>,
    #[serde(default)]
    message: String,
}

/// Reads a REST response body (JSON) with its HTTP status into the model's result, or
/// the mapped error.
///
/// A body that is not an envelope (a proxy's HTML error page, say) becomes a 502
/// naming the status, never a parse panic.
pub fn parse(status: u16, body: &[u8]) -> Result<Value, Error> {
    let env: Envelope = match serde_json::from_slice(body) {
        Ok(env) => env,
        Err(_) if (200..300).contains(&status) => {
            return Err(Error::upstream(format!(
                "Workers AI answered HTTP {status} with a body that is not JSON"
            )));
        }
        Err(_) => return Err(Error::from_workers_ai(None, "", status)),
    };
    let failed = env.success == Some(false) || !(200..300).contains(&status);
    if failed {
        let first = env.errors.first();
        let message = env
            .errors
            .iter()
            .map(|e| e.message.as_str())
            .filter(|m| !m.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        let status = if (200..300).contains(&status) {
            500
        } else {
            status
        };
        return Err(Error::from_workers_ai(
            first.and_then(|e| e.code),
            &message,
            status,
        ));
    }
    env.result
        .ok_or_else(|| Error::upstream("Workers AI answered success without a result"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_unwraps_result() {
        let v = parse(
            200,
            br#"{"result":{"response":"hi"},"success":true,"errors":[],"messages":[]}"#,
        )
        .unwrap();
        assert_eq!(v["response"], "hi");
    }

    #[test]
    fn errors_map_by_code() {
        let e = parse(
            400,
            br#"{"result":null,"success":false,"errors":[{"code":5007,"message":"No such model"}],"messages":[]}"#,
        )
        .unwrap_err();
        assert_eq!(e.status().as_u16(), 404);
        assert_eq!(e.code(), Some("model_not_found"));
    }

    #[test]
    fn html_error_pages_are_502_not_panics() {
        let e = parse(502, b"<html>bad gateway</html>").unwrap_err();
        assert_eq!(e.status().as_u16(), 502);
        let e = parse(200, b"<html>").unwrap_err();
        assert_eq!(e.status().as_u16(), 502);
    }
}
