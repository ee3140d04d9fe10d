//! `GET /client/v4/accounts/{id}/ai/models/search`: the fake model catalog, paginated
//! like Cloudflare's (`page`, `per_page`, `result_info`). The entries are
//! `data/models-search.json`: cng's own model table in the catalog's shape, with one
//! model whose context window changed and one model cng does not know
//! (`@cf/cng-test/tiny-chat-1b`), so discovery has something to report.

use http::{HeaderMap, Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::body::ScriptedBody;

const CATALOG: &str = include_str!("../data/models-search.json");

/// Cloudflare's default and largest page sizes.
const DEFAULT_PER_PAGE: usize = 20;
const MAX_PER_PAGE: usize = 1000;

fn respond(status: StatusCode, body: &Value) -> Response<ScriptedBody> {
    let mut res = Response::new(ScriptedBody::full(body.to_string()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    res
}

fn error(status: StatusCode, code: u64, message: &str) -> Response<ScriptedBody> {
    respond(
        status,
        &json!({"result": null, "success": false, "errors": [{"code": code, "message": message}], "messages": []}),
    )
}

/// Answers a catalog search (GET only; a bearer token is required, any token works).
pub(crate) fn search(
    method: &Method,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Response<ScriptedBody> {
    if method != Method::GET {
        return error(StatusCode::METHOD_NOT_ALLOWED, 7001, "Method not allowed");
    }
    let authed = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer "));
    if !authed {
        return error(StatusCode::UNAUTHORIZED, 10000, "Authentication error");
    }
    let mut page = 1usize;
    let mut per_page = DEFAULT_PER_PAGE;
    let mut search: Option<String> = None;
    for pair in query.unwrap_or_default().split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "page" => page = v.parse().unwrap_or(1).max(1),
            "per_page" => per_page = v.parse().unwrap_or(DEFAULT_PER_PAGE).clamp(1, MAX_PER_PAGE),
            "search" if !v.is_empty() => search = Some(v.to_ascii_lowercase()),
            _ => {}
        }
    }
    let all: Value = serde_json::from_str(CATALOG).unwrap_or(Value::Null);
    let items: Vec<&Value> = all
        .get("result")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|m| {
            search.as_ref().is_none_or(|s| {
                m.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.to_ascii_lowercase().contains(s))
            })
        })
        .collect();
    let total = items.len();
    let start = (page - 1).saturating_mul(per_page).min(total);
    let end = start.saturating_add(per_page).min(total);
    let slice: Vec<&Value> = items[start..end].to_vec();
    respond(
        StatusCode::OK,
        &json!({
            "result": slice,
            "success": true,
            "errors": [],
            "messages": [],
            "result_info": {"page": page, "per_page": per_page, "count": slice.len(), "total_count": total},
        }),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    #[test]
    fn the_catalog_parses_and_has_the_new_model() {
        let all: Value = serde_json::from_str(CATALOG).unwrap();
        let items = all["result"].as_array().unwrap();
        assert!(items.len() > 100, "two pages at per_page=100");
        assert!(
            items
                .iter()
                .any(|m| m["name"] == "@cf/cng-test/tiny-chat-1b")
        );
    }
}
