//! Cloudflare's model catalog: `GET {api_base}/accounts/{account_id}/ai/models/search`,
//! every page, for `POST /api/discover` (see `cng_core::config::discovery`), and a
//! one-entry read as the upstream probe of `GET /api/status`.
//!
//! Generic over [`HttpClient`] like the backends, so the native server (reqwest) and
//! the Worker (`worker::Fetch`) share it. The token needs Workers AI Read. Errors never
//! contain the token.

use bytes::Bytes;
use cng_core::config::discovery::ModelSearch;
use cng_core::usage::BoxFuture;
use cng_core::{Error, ErrorKind};
use serde_json::Value;

use crate::http::{HttpClient, collect_body, redact};
use crate::rest::RestConfig;

/// Entries asked for per page.
pub const PER_PAGE: usize = 100;
/// Pages read at most (10,000 models: far above the catalog's size).
pub const MAX_PAGES: usize = 100;
/// Largest page body read.
const MAX_PAGE_BYTES: usize = 16 * 1024 * 1024;

/// Reads the model catalog of the account a [`RestConfig`] names.
#[derive(Debug, Clone)]
pub struct CatalogSearch<H> {
    config: RestConfig,
    client: H,
}

impl<H: HttpClient> CatalogSearch<H> {
    pub fn new(config: RestConfig, client: H) -> Self {
        Self { config, client }
    }

    async fn page(&self, page: usize, per_page: usize) -> Result<(Vec<Value>, Option<u64>), Error> {
        let url = format!(
            "{}/accounts/{}/ai/models/search?page={page}&per_page={per_page}",
            self.config.api_base.trim_end_matches('/'),
            self.config.account_id
        );
        let uri = http::Uri::try_from(url).map_err(|_| {
            Error::new(
                ErrorKind::Unavailable,
                "the configured Cloudflare API base or account id is not a valid URL",
            )
        })?;
        let auth = http::HeaderValue::from_str(&format!("Bearer {}", self.config.api_token))
            .map_err(|_| {
                Error::new(
                    ErrorKind::Unavailable,
                    "the configured Cloudflare API token is not a valid header value",
                )
            })?;
        let mut req = http::Request::new(Bytes::new());
        *req.method_mut() = http::Method::GET;
        *req.uri_mut() = uri;
        req.headers_mut().insert(http::header::AUTHORIZATION, auth);
        let resp = self.client.send(req).await?;
        let (parts, body) = resp.into_parts();
        let bytes = collect_body(body, MAX_PAGE_BYTES).await?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|_| {
            Error::upstream(format!(
                "the model catalog answered HTTP {} with a body that is not JSON",
                parts.status.as_u16()
            ))
        })?;
        if !parts.status.is_success() || v.get("success") == Some(&Value::Bool(false)) {
            let msg = v
                .pointer("/errors/0/message")
                .and_then(Value::as_str)
                .unwrap_or("no message");
            let kind = match parts.status.as_u16() {
                401 | 403 => ErrorKind::Unavailable,
                _ => ErrorKind::Upstream,
            };
            let hint = if kind == ErrorKind::Unavailable {
                " (the API token needs the Workers AI Read permission)"
            } else {
                ""
            };
            return Err(Error::new(
                kind,
                format!(
                    "the model catalog answered HTTP {}: {msg}{hint}",
                    parts.status.as_u16()
                ),
            )
            .with_code("catalog_unavailable"));
        }
        let items = v
            .get("result")
            .and_then(Value::as_array)
            .cloned()
            .ok_or_else(|| Error::upstream("the model catalog answered without a `result` list"))?;
        let total = v
            .pointer("/result_info/total_count")
            .and_then(Value::as_u64);
        Ok((items, total))
    }

    /// Every catalog entry.
    pub async fn all(&self) -> Result<Vec<Value>, Error> {
        let mut out = Vec::new();
        for page in 1..=MAX_PAGES {
            let (items, total) = self.page(page, PER_PAGE).await?;
            let n = items.len();
            out.extend(items);
            let done = n < PER_PAGE || total.is_some_and(|t| out.len() as u64 >= t);
            if done {
                return Ok(out);
            }
        }
        Ok(out)
    }
}

impl<H: HttpClient + cng_core::usage::MaybeSendSync> ModelSearch for CatalogSearch<H> {
    fn search(&self) -> BoxFuture<'_, Result<Vec<Value>, Error>> {
        Box::pin(async move {
            self.all()
                .await
                .map_err(|e| redact(e, &self.config.api_token))
        })
    }

    fn probe(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            self.page(1, 1)
                .await
                .map(|_| ())
                .map_err(|e| redact(e, &self.config.api_token))
        })
    }
}
