//! `POST /v1/audio/speech`, `/v1/audio/transcriptions`, `/v1/audio/translations`.

use http::{Request, Response};

use super::{Body, Ctx, Gateway, Limiter, not_implemented};
use crate::backend::Backend;
use crate::error::Error;
use crate::store::Store;

pub(super) async fn speech<B: Backend, S: Store, L: Limiter>(
    _g: &Gateway<B, S, L>,
    _req: Request<Body>,
    _ctx: &mut Ctx<'_>,
) -> Result<Response<Body>, Error> {
    Err(not_implemented("POST /v1/audio/speech"))
}

pub(super) async fn transcriptions<B: Backend, S: Store, L: Limiter>(
    _g: &Gateway<B, S, L>,
    _req: Request<Body>,
    _ctx: &mut Ctx<'_>,
) -> Result<Response<Body>, Error> {
    Err(not_implemented("POST /v1/audio/transcriptions"))
}

pub(super) async fn translations<B: Backend, S: Store, L: Limiter>(
    _g: &Gateway<B, S, L>,
    _req: Request<Body>,
    _ctx: &mut Ctx<'_>,
) -> Result<Response<Body>, Error> {
    Err(not_implemented("POST /v1/audio/translations"))
}
