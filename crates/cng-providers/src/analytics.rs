//! Cloudflare's count of the account's Workers AI inferences, from the GraphQL
//! Analytics API, for `GET /api/usage/reconcile` (see `cng_core::usage::reconcile`).
//!
//! One `POST {api_base}/graphql` with [`QUERY`]: the `aiInferenceAdaptiveGroups`
//! dataset of the account, grouped by `modelId`, between two RFC 3339 times. The
//! dataset is widely used (Cloudflare's dashboard, third-party cost trackers) but not in
//! Cloudflare's reference documentation, so the answer is read defensively: every shape
//! it does not expect is an error that says what was wrong, never a silent zero.
//!
//! GraphQL reports most failures as HTTP 200 with an `errors` array (Cloudflare:
//! "Error responses" of the GraphQL Analytics API); those are errors here too:
//! permission problems and rate limits are 503 (something to fix or wait for), anything
//! else 502. The token (Account Analytics Read) travels only in the `Authorization`
//! header and is scrubbed from every message.

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat};
use cng_core::usage::reconcile::{AccountUsage, Analytics, ModelCount};
use cng_core::usage::{BoxFuture, MaybeSendSync};
use cng_core::{Error, ErrorKind};
use serde_json::{Value, json};

use crate::http::{HttpClient, collect_body, redact};
use crate::rest::DEFAULT_API_BASE;

/// Groups asked for at most. An answer this long may have left models out.
pub const LIMIT: usize = 10_000;

/// The query: per-model inferences and neurons of one account over a time range.
pub const QUERY: &str = "query CngReconcile($accountTag: string!, $start: Time!, $end: Time!) {
  viewer {
    accounts(filter: {accountTag: $accountTag}) {
      aiInferenceAdaptiveGroups(limit: 10000, filter: {datetime_geq: $start, datetime_leq: $end}) {
        count
        sum { totalNeurons }
        dimensions { modelId }
      }
    }
  }
}";

/// Largest answer read (10,000 groups are well under 2 MiB).
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Where the analytics are and the credential to read them.
#[derive(Clone)]
pub struct AnalyticsConfig {
    /// Default [`DEFAULT_API_BASE`]; the endpoint is `{api_base}/graphql`.
    pub api_base: String,
    pub account_id: String,
    /// A token with the Account Analytics Read permission (`CNG_CF_ANALYTICS_TOKEN`).
    pub api_token: String,
}

impl AnalyticsConfig {
    pub fn new(account_id: impl Into<String>, api_token: impl Into<String>) -> Self {
        Self {
            api_base: DEFAULT_API_BASE.to_string(),
            account_id: account_id.into(),
            api_token: api_token.into(),
        }
    }
}

impl std::fmt::Debug for AnalyticsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnalyticsConfig")
            .field("api_base", &self.api_base)
            .field("account_id", &self.account_id)
            .field("api_token", &"[redacted]")
            .finish()
    }
}

/// Reads [`QUERY`] over any [`HttpClient`] (reqwest natively, `fetch` in the Worker).
#[derive(Debug, Clone)]
pub struct GraphqlAnalytics<H> {
    config: AnalyticsConfig,
    client: H,
}

/// An RFC 3339 UTC time (`2026-11-23T08:00:00Z`).
fn rfc3339(secs: u64) -> Result<String, Error> {
    i64::try_from(secs)
        .ok()
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .ok_or_else(|| {
            Error::invalid_request(format!("{secs} is not a time the analytics API can take."))
        })
}

impl<H: HttpClient> GraphqlAnalytics<H> {
    pub fn new(config: AnalyticsConfig, client: H) -> Self {
        Self { config, client }
    }

    /// The request body: [`QUERY`] with the account and the range as variables (never
    /// spliced into the query text).
    pub fn body(&self, start: u64, end: u64) -> Result<Value, Error> {
        Ok(json!({
            "query": QUERY,
            "variables": {
                "accountTag": self.config.account_id,
                "start": rfc3339(start)?,
                "end": rfc3339(end)?,
            },
        }))
    }

    async fn read(&self, start: u64, end: u64) -> Result<AccountUsage, Error> {
        let body = serde_json::to_vec(&self.body(start, end)?)
            .map_err(|e| Error::internal(e.to_string()))?;
        let url = format!("{}/graphql", self.config.api_base.trim_end_matches('/'));
        let uri = http::Uri::try_from(url).map_err(|_| {
            Error::new(
                ErrorKind::Unavailable,
                "CNG_CF_API_BASE is not a valid URL, so the analytics API cannot be reached.",
            )
            .with_code("analytics_not_configured")
        })?;
        let auth = http::HeaderValue::from_str(&format!("Bearer {}", self.config.api_token))
            .map_err(|_| {
                Error::new(
                    ErrorKind::Unavailable,
                    "CNG_CF_ANALYTICS_TOKEN is not a valid header value (a stray newline or space?).",
                )
                .with_code("analytics_not_configured")
            })?;
        let mut req = http::Request::new(Bytes::from(body));
        *req.method_mut() = http::Method::POST;
        *req.uri_mut() = uri;
        let h = req.headers_mut();
        h.insert(http::header::AUTHORIZATION, auth);
        h.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        let resp = self.client.send(req).await.map_err(|e| {
            let kind = e.kind();
            Error::new(
                kind,
                format!(
                    "Cloudflare's GraphQL Analytics API did not answer: {}",
                    e.message()
                ),
            )
            .with_code("analytics_failed")
        })?;
        let (parts, body) = resp.into_parts();
        let bytes = collect_body(body, MAX_BODY_BYTES).await?;
        parse(parts.status.as_u16(), &bytes)
    }
}

impl<H: HttpClient + MaybeSendSync> Analytics for GraphqlAnalytics<H> {
    fn usage(&self, start: u64, end: u64) -> BoxFuture<'_, Result<AccountUsage, Error>> {
        Box::pin(async move {
            self.read(start, end)
                .await
                .map_err(|e| redact(e, &self.config.api_token))
        })
    }
}

const API: &str = "Cloudflare's GraphQL Analytics API";

fn failed(message: String) -> Error {
    Error::new(ErrorKind::Upstream, message).with_code("analytics_failed")
}

fn unauthorized(detail: &str) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!(
            "{API} refused the request ({detail}): CNG_CF_ANALYTICS_TOKEN needs the Account \
             Analytics Read permission on the account CLOUDFLARE_ACCOUNT_ID names."
        ),
    )
    .with_code("analytics_unauthorized")
}

fn rate_limited(detail: &str) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!(
            "{API} is rate-limiting ({detail}): try again in a minute, or compare a shorter range."
        ),
    )
    .with_code("analytics_rate_limited")
    .with_retry_after(60)
}

/// A wrong shape: what was expected where.
fn shape(what: &str) -> Error {
    failed(format!(
        "{API} answered {what}; the dataset may have changed (it is not in Cloudflare's \
         reference documentation)."
    ))
}

/// The messages of an `errors` array (GraphQL's or the v4 envelope's), at most three.
fn messages(errors: &[Value]) -> String {
    let mut out: Vec<String> = errors
        .iter()
        .take(3)
        .map(|e| {
            e.get("message")
                .and_then(Value::as_str)
                .unwrap_or("an error without a message")
                .chars()
                .take(300)
                .collect()
        })
        .collect();
    if errors.len() > 3 {
        out.push(format!("and {} more", errors.len() - 3));
    }
    out.join("; ")
}

/// Reads an answer of [`QUERY`]: HTTP status and body.
pub fn parse(status: u16, body: &[u8]) -> Result<AccountUsage, Error> {
    let v: Option<Value> = serde_json::from_slice(body).ok();
    let errors = v
        .as_ref()
        .and_then(|v| v.get("errors"))
        .and_then(Value::as_array)
        .filter(|e| !e.is_empty());
    if !(200..300).contains(&status) {
        let detail = match errors {
            Some(e) => format!("HTTP {status}: {}", messages(e)),
            None => format!("HTTP {status}"),
        };
        return Err(match status {
            401 | 403 => unauthorized(&detail),
            429 => rate_limited(&detail),
            _ => failed(format!("{API} answered {detail}.")),
        });
    }
    let Some(v) = v else {
        return Err(failed(format!(
            "{API} answered HTTP {status} with a body that is not JSON."
        )));
    };
    match v.get("errors") {
        None | Some(Value::Null) => {}
        Some(Value::Array(e)) if e.is_empty() => {}
        Some(Value::Array(e)) => {
            let text = messages(e);
            let lower = text.to_ascii_lowercase();
            return Err(
                if [
                    "not authorized",
                    "unauthorized",
                    "authentication",
                    "permission",
                    "authz",
                ]
                .iter()
                .any(|w| lower.contains(w))
                {
                    unauthorized(&text)
                } else if [
                    "quota exceeded",
                    "rate limit",
                    "limit reached",
                    "budget depleted",
                ]
                .iter()
                .any(|w| lower.contains(w))
                {
                    rate_limited(&text)
                } else {
                    failed(format!("{API} answered errors: {text}."))
                },
            );
        }
        Some(_) => return Err(shape("an `errors` field that is not a list")),
    }
    let accounts = v
        .pointer("/data/viewer/accounts")
        .and_then(Value::as_array)
        .ok_or_else(|| shape("without a `data.viewer.accounts` list"))?;
    let Some(account) = accounts.first() else {
        return Err(Error::new(
            ErrorKind::Unavailable,
            format!(
                "{API} returned no account: check CLOUDFLARE_ACCOUNT_ID, and that \
                 CNG_CF_ANALYTICS_TOKEN covers that account."
            ),
        )
        .with_code("analytics_no_account"));
    };
    let groups = account
        .get("aiInferenceAdaptiveGroups")
        .and_then(Value::as_array)
        .ok_or_else(|| shape("without an `aiInferenceAdaptiveGroups` list"))?;
    let mut models = Vec::with_capacity(groups.len());
    for (i, g) in groups.iter().enumerate() {
        let model = g
            .pointer("/dimensions/modelId")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
            .ok_or_else(|| shape(&format!("group {i} without a `dimensions.modelId`")))?;
        let requests = g
            .get("count")
            .and_then(|c| c.as_u64().or_else(|| c.as_str()?.parse().ok()))
            .ok_or_else(|| shape(&format!("group {i} ({model}) without a whole `count`")))?;
        let neurons = match g.pointer("/sum/totalNeurons") {
            // No neurons (failed inferences only).
            Some(Value::Null) => 0.0,
            Some(n) => n
                .as_f64()
                .or_else(|| n.as_str()?.parse().ok())
                .filter(|n: &f64| n.is_finite() && *n >= 0.0)
                .ok_or_else(|| {
                    shape(&format!(
                        "group {i} ({model}) with a `sum.totalNeurons` that is not a number"
                    ))
                })?,
            None => {
                return Err(shape(&format!(
                    "group {i} ({model}) without a `sum.totalNeurons`"
                )));
            }
        };
        models.push(ModelCount {
            model: model.to_string(),
            requests,
            neurons,
        });
    }
    Ok(AccountUsage {
        truncated: groups.len() >= LIMIT,
        models,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use cng_core::backend::{ByteStream, MaybeSend};

    fn data(groups: Value) -> Vec<u8> {
        json!({"data": {"viewer": {"accounts": [{"aiInferenceAdaptiveGroups": groups}]}}, "errors": null})
            .to_string()
            .into_bytes()
    }

    fn err(r: Result<AccountUsage, Error>) -> Error {
        r.expect_err("an error")
    }

    #[test]
    fn reads_groups() {
        let body = data(json!([
            {"count": 3, "sum": {"totalNeurons": 12.5}, "dimensions": {"modelId": "@cf/meta/llama-3.1-8b-instruct"}},
            {"count": "2", "sum": {"totalNeurons": null}, "dimensions": {"modelId": "@cf/baai/bge-m3"}},
        ]));
        let u = parse(200, &body).unwrap();
        assert_eq!(
            u.models,
            vec![
                ModelCount {
                    model: "@cf/meta/llama-3.1-8b-instruct".into(),
                    requests: 3,
                    neurons: 12.5
                },
                ModelCount {
                    model: "@cf/baai/bge-m3".into(),
                    requests: 2,
                    neurons: 0.0
                },
            ]
        );
        assert!(!u.truncated);
        assert!(parse(200, &data(json!([]))).unwrap().models.is_empty());
    }

    #[test]
    fn a_full_answer_is_marked_truncated() {
        let g =
            json!({"count": 1, "sum": {"totalNeurons": 1}, "dimensions": {"modelId": "@cf/a/b"}});
        let body = data(Value::Array(vec![g; LIMIT]));
        assert!(parse(200, &body).unwrap().truncated);
    }

    #[test]
    fn graphql_errors_in_a_200_are_errors() {
        let body = |m: &str| {
            json!({"data": null, "errors": [{"message": m, "path": ["viewer", "accounts", "0"], "extensions": {"timestamp": "2026-01-01T00:00:00Z"}}]})
                .to_string()
                .into_bytes()
        };
        let e = err(parse(200, &body("not authorized for that account")));
        assert_eq!(
            (e.kind(), e.code()),
            (ErrorKind::Unavailable, Some("analytics_unauthorized"))
        );
        assert!(
            e.message().contains("Account Analytics Read"),
            "{}",
            e.message()
        );
        assert!(e.message().contains("not authorized for that account"));
        let e = err(parse(
            200,
            &body("quota exceeded, please repeat your request in the next minute"),
        ));
        assert_eq!(e.code(), Some("analytics_rate_limited"));
        assert_eq!(e.retry_after(), Some(60));
        let e = err(parse(200, &body("cannot request data older than 2678400s")));
        assert_eq!(
            (e.kind(), e.code()),
            (ErrorKind::Upstream, Some("analytics_failed"))
        );
        assert!(e.message().contains("older than 2678400s"));
        // Many errors: three messages and a count.
        let many: Vec<Value> = (0..5)
            .map(|i| json!({"message": format!("e{i}")}))
            .collect();
        let e = err(parse(200, json!({"errors": many}).to_string().as_bytes()));
        assert!(
            e.message().contains("e0; e1; e2; and 2 more"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn http_failures_by_status() {
        let v4 = json!({"success": false, "errors": [{"code": 10000, "message": "Authentication error"}]})
            .to_string();
        let e = err(parse(403, v4.as_bytes()));
        assert_eq!(e.code(), Some("analytics_unauthorized"));
        assert!(
            e.message().contains("HTTP 403: Authentication error"),
            "{}",
            e.message()
        );
        assert_eq!(err(parse(429, b"")).code(), Some("analytics_rate_limited"));
        let e = err(parse(500, b"<html>oops</html>"));
        assert_eq!((e.kind(), e.status().as_u16()), (ErrorKind::Upstream, 502));
        assert!(e.message().contains("HTTP 500"));
        let e = err(parse(200, b"<html>maintenance</html>"));
        assert!(e.message().contains("not JSON"), "{}", e.message());
    }

    #[test]
    fn wrong_shapes_say_what_was_wrong() {
        let cases: &[(Value, &str)] = &[
            (json!({"data": null}), "data.viewer.accounts"),
            (
                json!({"data": {"viewer": {"accounts": {}}}}),
                "data.viewer.accounts",
            ),
            (
                json!({"data": {"viewer": {"accounts": [{}]}}}),
                "aiInferenceAdaptiveGroups",
            ),
            (
                json!({"data": {"viewer": {"accounts": [{"aiInferenceAdaptiveGroups": {}}]}}}),
                "aiInferenceAdaptiveGroups",
            ),
            (json!({"errors": "boom"}), "`errors` field"),
            (
                json!({"data": {"viewer": {"accounts": [{"aiInferenceAdaptiveGroups": [{"count": 1, "sum": {"totalNeurons": 1}}]}]}}}),
                "group 0 without a `dimensions.modelId`",
            ),
            (
                json!({"data": {"viewer": {"accounts": [{"aiInferenceAdaptiveGroups": [{"count": -1, "sum": {"totalNeurons": 1}, "dimensions": {"modelId": "@cf/a/b"}}]}]}}}),
                "group 0 (@cf/a/b) without a whole `count`",
            ),
            (
                json!({"data": {"viewer": {"accounts": [{"aiInferenceAdaptiveGroups": [{"count": 1, "sum": {"totalNeurons": "lots"}, "dimensions": {"modelId": "@cf/a/b"}}]}]}}}),
                "not a number",
            ),
            (
                json!({"data": {"viewer": {"accounts": [{"aiInferenceAdaptiveGroups": [{"count": 1, "sum": {}, "dimensions": {"modelId": "@cf/a/b"}}]}]}}}),
                "without a `sum.totalNeurons`",
            ),
        ];
        for (body, says) in cases {
            let e = err(parse(200, body.to_string().as_bytes()));
            assert_eq!(e.status().as_u16(), 502, "{body}");
            assert!(e.message().contains(says), "{body}: {}", e.message());
        }
        let e = err(parse(
            200,
            json!({"data": {"viewer": {"accounts": []}}})
                .to_string()
                .as_bytes(),
        ));
        assert_eq!(
            (e.status().as_u16(), e.code()),
            (503, Some("analytics_no_account"))
        );
        assert!(e.message().contains("CLOUDFLARE_ACCOUNT_ID"));
    }

    /// Answers one canned response and keeps the request.
    #[derive(Debug, Clone)]
    struct Canned {
        status: u16,
        body: &'static str,
        seen: Arc<Mutex<Vec<http::Request<Bytes>>>>,
    }

    impl HttpClient for Canned {
        fn send(
            &self,
            req: http::Request<Bytes>,
        ) -> impl std::future::Future<Output = Result<http::Response<ByteStream>, Error>> + MaybeSend
        {
            self.seen.lock().unwrap().push(req);
            let (status, body) = (self.status, self.body);
            async move {
                let stream: ByteStream = Box::pin(futures_util::stream::iter([Ok(
                    Bytes::from_static(body.as_bytes()),
                )]));
                let mut resp = http::Response::new(stream);
                *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
                Ok(resp)
            }
        }

        async fn sleep(&self, _d: Duration) {}
    }

    const TOKEN: &str = "cf-analytics-secret-token";

    fn client(status: u16, body: &'static str) -> (GraphqlAnalytics<Canned>, Canned) {
        let canned = Canned {
            status,
            body,
            seen: Arc::default(),
        };
        let mut config = AnalyticsConfig::new("acc123", TOKEN);
        config.api_base = "http://127.0.0.1:9/client/v4/".into();
        (GraphqlAnalytics::new(config, canned.clone()), canned)
    }

    #[tokio::test]
    async fn sends_the_query_with_variables_and_the_bearer() {
        let (a, canned) = client(
            200,
            r#"{"data":{"viewer":{"accounts":[{"aiInferenceAdaptiveGroups":[]}]}},"errors":null}"#,
        );
        let u = a
            .usage(1_800_000_000 - 28_800, 1_800_003_599)
            .await
            .unwrap();
        assert!(u.models.is_empty());
        let seen = canned.seen.lock().unwrap();
        let req = &seen[0];
        assert_eq!(req.method(), http::Method::POST);
        assert_eq!(req.uri(), "http://127.0.0.1:9/client/v4/graphql");
        assert_eq!(req.headers()["authorization"], format!("Bearer {TOKEN}"));
        assert_eq!(req.headers()["content-type"], "application/json");
        let body: Value = serde_json::from_slice(req.body()).unwrap();
        assert_eq!(
            body["variables"],
            json!({"accountTag": "acc123", "start": "2027-01-15T00:00:00Z", "end": "2027-01-15T08:59:59Z"})
        );
        let q = body["query"].as_str().unwrap();
        assert!(!q.contains("acc123"), "the account is a variable");
        assert!(q.contains("aiInferenceAdaptiveGroups(limit: 10000"));
        assert!(q.contains("datetime_geq: $start, datetime_leq: $end"));
    }

    #[tokio::test]
    async fn the_token_never_appears_in_an_error() {
        // An upstream that echoes the token back in its error message.
        let (a, _) = client(
            200,
            r#"{"data":null,"errors":[{"message":"token cf-analytics-secret-token is not authorized"}]}"#,
        );
        let e = a.usage(0, 3599).await.unwrap_err();
        assert!(!e.message().contains(TOKEN), "{}", e.message());
        assert!(e.message().contains("[redacted]"));
        assert_eq!(e.code(), Some("analytics_unauthorized"));
        let shown = format!("{:?}", AnalyticsConfig::new("acc123", TOKEN));
        assert!(!shown.contains(TOKEN), "{shown}");
    }

    #[test]
    fn times_out_of_range_are_refused() {
        assert_eq!(rfc3339(0).unwrap(), "1970-01-01T00:00:00Z");
        assert!(rfc3339(u64::MAX).is_err());
    }
}
