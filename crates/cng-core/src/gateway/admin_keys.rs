//! `GET /api/keys`: the keys, without secrets or hashes (admin only).

use http::StatusCode;
use serde_json::json;

use super::{Body, Gateway, Limiter, json};
use crate::auth;
use crate::backend::Backend;
use crate::error::Error;
use crate::store::Store;

pub(super) async fn list<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
) -> Result<http::Response<Body>, Error> {
    let keys = auth::list_keys(g.store()).await?;
    let data: Vec<_> = keys.iter().map(|k| k.info()).collect();
    Ok(json(
        StatusCode::OK,
        &json!({"object": "list", "data": data}),
    ))
}
