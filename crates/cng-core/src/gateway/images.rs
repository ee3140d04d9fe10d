//! `POST /v1/images/generations`, `POST /v1/images/edits`, `GET /img/{id}`.

use http::{Request, Response};

use super::{Body, Ctx, Gateway, Limiter, not_implemented};
use crate::backend::Backend;
use crate::error::Error;
use crate::store::Store;

pub(super) async fn generations<B: Backend, S: Store, L: Limiter>(
    _g: &Gateway<B, S, L>,
    _req: Request<Body>,
    _ctx: &mut Ctx<'_>,
) -> Result<Response<Body>, Error> {
    Err(not_implemented("POST /v1/images/generations"))
}

pub(super) async fn edits<B: Backend, S: Store, L: Limiter>(
    _g: &Gateway<B, S, L>,
    _req: Request<Body>,
    _ctx: &mut Ctx<'_>,
) -> Result<Response<Body>, Error> {
    Err(not_implemented("POST /v1/images/edits"))
}

pub(super) async fn serve<B: Backend, S: Store, L: Limiter>(
    _g: &Gateway<B, S, L>,
    _id: &str,
) -> Result<Response<Body>, Error> {
    Err(not_implemented("GET /img/{id}"))
}
