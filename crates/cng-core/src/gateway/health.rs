//! `GET /health`: no auth; says the gateway is up and which upstream it uses.

use http::StatusCode;
use serde_json::json;

use super::{Body, Gateway, Limiter, json};
use crate::backend::Backend;
use crate::store::Store;

pub(super) fn handle<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
) -> http::Response<Body> {
    json(
        StatusCode::OK,
        &json!({
            "status": "ok",
            "service": "cng",
            "version": env!("CARGO_PKG_VERSION"),
            "upstream": g.config().upstream,
        }),
    )
}
