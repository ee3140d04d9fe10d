//! `POST /client/v4/graphql`: a fake of Cloudflare's GraphQL Analytics API that knows
//! one dataset, `aiInferenceAdaptiveGroups` of an account, grouped by `modelId`.
//!
//! # Where the figures come from
//!
//! The fake counts the Workers AI inferences it served itself: every `POST
//! /client/v4/accounts/{account}/ai/run/{model}` it received since it started (or since
//! `DELETE /__requests`) is one inference of `{model}` on `{account}` at the second it
//! arrived, worth [`NEURONS_PER_INFERENCE`] neurons whatever it answered. A query gets
//! one group per model: the inferences of the queried `accountTag` whose second lies in
//! `[datetime_geq, datetime_leq]`, `count` = how many, `sum.totalNeurons` = count ×
//! [`NEURONS_PER_INFERENCE`], sorted by model. So a test that sends N requests through
//! cng sees Cloudflare count N (plus retries, plus anything sent to the fake directly:
//! "traffic that did not go through cng").
//!
//! # What it checks
//!
//! Like the catalog search: a bearer token is required (401 with a v4 error envelope
//! otherwise). The body must be JSON with a `query` that asks for
//! `aiInferenceAdaptiveGroups` of `accounts`, and `variables` with a non-empty
//! `accountTag` and RFC 3339 `start` and `end`; anything else is answered the GraphQL
//! way, HTTP 200 with an `errors` array.
//!
//! # Scripted failures
//!
//! A bearer token starting with `!` scripts the answer:
//!
//! | token | answer |
//! |---|---|
//! | `!unauthorized…` | 200, `errors: [{"message": "not authorized for that account (token …)"}]` — the token echoed, so tests can check cng never passes it on |
//! | `!rate-limited` | 200, `errors: [{"message": "quota exceeded, please repeat your request in the next minute"}]` |
//! | `!status-NNN` | HTTP NNN with a v4 error envelope |
//! | `!no-account` | 200, `data.viewer.accounts: []` |
//! | `!wrong-shape` | 200, `aiInferenceAdaptiveGroups` an object instead of a list |
//! | `!not-json` | 200 `text/html` |

use std::collections::BTreeMap;

use chrono::DateTime;
use http::{HeaderMap, Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::body::ScriptedBody;

/// Neurons the fake counts per inference.
pub const NEURONS_PER_INFERENCE: f64 = 12.5;

/// One inference the fake served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Inference {
    pub account: String,
    pub model: String,
    /// Unix seconds.
    pub at: u64,
}

/// The account of a Workers AI REST path (`/client/v4/accounts/{account}/ai/run/…`).
pub(crate) fn account_of(path: &str) -> Option<&str> {
    let rest = path.split_once("/accounts/")?.1;
    let (account, tail) = rest.split_once('/')?;
    (tail.starts_with("ai/run/") && !account.is_empty()).then_some(account)
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<ScriptedBody> {
    let mut res = Response::new(ScriptedBody::full(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    res
}

fn json_answer(status: StatusCode, body: &Value) -> Response<ScriptedBody> {
    respond(status, "application/json", body.to_string())
}

fn v4_error(status: StatusCode, code: u64, message: &str) -> Response<ScriptedBody> {
    json_answer(
        status,
        &json!({"result": null, "success": false, "errors": [{"code": code, "message": message}], "messages": []}),
    )
}

/// A GraphQL error: HTTP 200, `data: null`, the message in `errors`.
fn graphql_error(message: &str) -> Response<ScriptedBody> {
    json_answer(
        StatusCode::OK,
        &json!({
            "data": null,
            "errors": [{
                "message": message,
                "path": ["viewer", "accounts", "0", "aiInferenceAdaptiveGroups"],
                "extensions": {"timestamp": "2026-01-01T00:00:00Z"},
            }],
        }),
    )
}

fn data(groups: Value) -> Response<ScriptedBody> {
    json_answer(
        StatusCode::OK,
        &json!({"data": {"viewer": {"accounts": [{"aiInferenceAdaptiveGroups": groups}]}}, "errors": null}),
    )
}

fn time(variables: &Value, name: &str) -> Option<u64> {
    let t = DateTime::parse_from_rfc3339(variables.get(name)?.as_str()?).ok()?;
    u64::try_from(t.timestamp()).ok()
}

/// Answers a GraphQL request from the inferences served so far.
pub(crate) fn graphql(
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
    served: &[Inference],
) -> Response<ScriptedBody> {
    if method != Method::POST {
        return v4_error(StatusCode::METHOD_NOT_ALLOWED, 7001, "Method not allowed");
    }
    let token = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer "))
        .map(|v| v[7..].to_string());
    let Some(token) = token else {
        return v4_error(StatusCode::UNAUTHORIZED, 10000, "Authentication error");
    };
    if let Some(directive) = token.strip_prefix('!') {
        if directive.starts_with("unauthorized") {
            return graphql_error(&format!("not authorized for that account (token {token})"));
        }
        if let Some(code) = directive.strip_prefix("status-") {
            let status = code
                .parse()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return v4_error(status, 10001, "scripted failure");
        }
        match directive {
            "rate-limited" => {
                return graphql_error(
                    "quota exceeded, please repeat your request in the next minute",
                );
            }
            "no-account" => {
                return json_answer(
                    StatusCode::OK,
                    &json!({"data": {"viewer": {"accounts": []}}, "errors": null}),
                );
            }
            "wrong-shape" => return data(json!({"count": 1})),
            "not-json" => {
                return respond(
                    StatusCode::OK,
                    "text/html",
                    "<html>maintenance</html>".into(),
                );
            }
            _ => {}
        }
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return graphql_error("error parsing request body: not JSON");
    };
    let query = request.get("query").and_then(Value::as_str).unwrap_or("");
    if !(query.contains("accounts") && query.contains("aiInferenceAdaptiveGroups")) {
        return graphql_error(
            "the fake analytics API answers aiInferenceAdaptiveGroups of accounts only",
        );
    }
    let variables = request.get("variables").cloned().unwrap_or(Value::Null);
    let Some(account) = variables
        .get("accountTag")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
    else {
        return graphql_error("error parsing args: accountTag is required");
    };
    let (Some(start), Some(end)) = (time(&variables, "start"), time(&variables, "end")) else {
        return graphql_error("error parsing args: start and end must be RFC 3339 times");
    };
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for i in served
        .iter()
        .filter(|i| i.account == account && (start..=end).contains(&i.at))
    {
        *counts.entry(&i.model).or_default() += 1;
    }
    let groups: Vec<Value> = counts
        .into_iter()
        .map(|(model, count)| {
            json!({
                "count": count,
                "sum": {"totalNeurons": count as f64 * NEURONS_PER_INFERENCE},
                "dimensions": {"modelId": model},
            })
        })
        .collect();
    data(Value::Array(groups))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;
    use http_body_util::BodyExt as _;

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        h
    }

    async fn answer(token: Option<&str>, body: Value, served: &[Inference]) -> (u16, Value) {
        let headers = token.map(bearer).unwrap_or_default();
        let res = graphql(&Method::POST, &headers, body.to_string().as_bytes(), served);
        let status = res.status().as_u16();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into())),
        )
    }

    fn query(account: &str, start: &str, end: &str) -> Value {
        json!({"query": "query { viewer { accounts { aiInferenceAdaptiveGroups { count } } } }",
               "variables": {"accountTag": account, "start": start, "end": end}})
    }

    fn served(account: &str, model: &str, at: u64) -> Inference {
        Inference {
            account: account.into(),
            model: model.into(),
            at,
        }
    }

    #[test]
    fn accounts_of_paths() {
        assert_eq!(
            account_of("/client/v4/accounts/acc/ai/run/@cf/meta/llama-3.1-8b-instruct"),
            Some("acc")
        );
        assert_eq!(account_of("/client/v4/accounts/acc/ai/models/search"), None);
        assert_eq!(account_of("/v1/chat/completions"), None);
    }

    #[tokio::test]
    async fn groups_the_accounts_inferences_in_the_range() {
        // 2027-01-15T08:00:00Z = 1_800_000_000.
        let log = [
            served("acc", "@cf/b", 1_800_000_000),
            served("acc", "@cf/a", 1_800_000_001),
            served("acc", "@cf/b", 1_800_003_600),
            served("other", "@cf/a", 1_800_000_000),
            served("acc", "@cf/a", 1_799_999_999),
        ];
        let (status, v) = answer(
            Some("t"),
            query("acc", "2027-01-15T08:00:00Z", "2027-01-15T09:00:00Z"),
            &log,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            v["data"]["viewer"]["accounts"][0]["aiInferenceAdaptiveGroups"],
            json!([
                {"count": 1, "sum": {"totalNeurons": 12.5}, "dimensions": {"modelId": "@cf/a"}},
                {"count": 2, "sum": {"totalNeurons": 25.0}, "dimensions": {"modelId": "@cf/b"}},
            ])
        );
    }

    #[tokio::test]
    async fn checks_the_bearer_and_the_variables() {
        let q = query("acc", "2027-01-15T08:00:00Z", "2027-01-15T09:00:00Z");
        assert_eq!(answer(None, q.clone(), &[]).await.0, 401);
        let (status, v) = answer(Some("t"), query("", "x", "y"), &[]).await;
        assert_eq!(status, 200);
        assert!(
            v["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("accountTag")
        );
        let (_, v) = answer(Some("t"), query("acc", "yesterday", "now"), &[]).await;
        assert!(
            v["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("RFC 3339")
        );
        let (_, v) = answer(
            Some("t"),
            json!({"query": "{ viewer { zones { x } } }"}),
            &[],
        )
        .await;
        assert!(v["errors"].is_array());
    }

    #[tokio::test]
    async fn scripted_failures() {
        let q = query("acc", "2027-01-15T08:00:00Z", "2027-01-15T09:00:00Z");
        let (s, v) = answer(Some("!unauthorized-x"), q.clone(), &[]).await;
        assert_eq!(s, 200);
        assert!(
            v["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("!unauthorized-x")
        );
        assert_eq!(answer(Some("!status-503"), q.clone(), &[]).await.0, 503);
        let (_, v) = answer(Some("!no-account"), q.clone(), &[]).await;
        assert_eq!(v["data"]["viewer"]["accounts"], json!([]));
        let (_, v) = answer(Some("!not-json"), q.clone(), &[]).await;
        assert!(v.is_string());
        let (_, v) = answer(Some("!rate-limited"), q, &[]).await;
        assert!(
            v["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("quota")
        );
    }
}
