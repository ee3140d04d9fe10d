//! `POST /v1/messages` and `/v1/messages/count_tokens` (Anthropic Messages API).

use http::{Request, Response};

use super::{Body, Ctx, Gateway, Limiter, not_implemented};
use crate::backend::Backend;
use crate::error::Error;
use crate::store::Store;

pub(super) async fn messages<B: Backend, S: Store, L: Limiter>(
    _g: &Gateway<B, S, L>,
    _req: Request<Body>,
    _ctx: &mut Ctx<'_>,
) -> Result<Response<Body>, Error> {
    Err(not_implemented("POST /v1/messages"))
}

pub(super) async fn count_tokens<B: Backend, S: Store, L: Limiter>(
    _g: &Gateway<B, S, L>,
    _req: Request<Body>,
    _ctx: &mut Ctx<'_>,
) -> Result<Response<Body>, Error> {
    Err(not_implemented("POST /v1/messages/count_tokens"))
}
