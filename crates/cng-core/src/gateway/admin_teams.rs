//! `/api/teams`: team tokens (see [`crate::teams`]).
//!
//! - `GET /api/teams` (admin): every team, without token hashes.
//! - `POST /api/teams` (admin): creates one from a [`TeamSpec`]; the answer holds the
//!   token — the only time it is shown.
//! - `GET`, `DELETE /api/teams/{id}` (admin).
//! - `POST /api/teams/{id}/rotate` `{"grace_seconds"?}`: a new token; the old one keeps
//!   working for the grace period (default an hour). Allowed to an admin key or to the
//!   team's own token — never to another team or key, never unauthenticated.
//!
//! Team tokens authenticate in [`Gateway::authenticate`] as client principals named
//! `team:{id}`; [`admit`] takes one unit of the team's daily budget per inference.

use http::{HeaderMap, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::admin_keys::parse_strict;
use super::routes::Route;
use super::{Body, Ctx, Gateway, Limiter, json, read_json_body};
use crate::auth::{self, Role};
use crate::backend::Backend;
use crate::error::{Error, ErrorKind};
use crate::store::{Expect, Store};
use crate::teams::{self, DEFAULT_GRACE_SECONDS, NS_TEAM_TOKENS, NS_TEAMS, TeamSpec};

const MAX_ADMIN_BODY: usize = 64 * 1024;

pub(super) async fn list<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
) -> Result<Response<Body>, Error> {
    let mut data = Vec::new();
    for (id, _) in g.store().list(NS_TEAMS).await? {
        if let Some((rec, _)) = teams::token::load(g.store(), &id).await? {
            data.push(rec.public_view());
        }
    }
    Ok(json(
        StatusCode::OK,
        &json!({"object": "list", "data": data}),
    ))
}

pub(super) async fn create<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    req: Request<Body>,
) -> Result<Response<Body>, Error> {
    let body = read_json_body(req, MAX_ADMIN_BODY).await?;
    let spec: TeamSpec = parse_strict(&body)?;
    let now = g.services().clock.unix_seconds();
    let (rec, token) = teams::create(g.store(), &*g.services().entropy, now, spec).await?;
    let mut out = rec.public_view();
    if let Some(o) = out.as_object_mut() {
        o.insert("token".into(), json!(token));
    }
    Ok(json(StatusCode::CREATED, &out))
}

pub(super) async fn one<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    req: Request<Body>,
    id: &str,
) -> Result<Response<Body>, Error> {
    let not_found = || Error::new(ErrorKind::NotFound, format!("No team `{id}`."));
    let (rec, version) = teams::token::load(g.store(), id)
        .await?
        .ok_or_else(not_found)?;
    if req.method() == http::Method::DELETE {
        g.store()
            .delete(NS_TEAMS, id, Expect::Version(version))
            .await?;
        let hashes = std::iter::once(rec.token_hash.clone())
            .chain(rec.previous.as_ref().map(|p| p.hash.clone()));
        for h in hashes {
            g.store().delete(NS_TEAM_TOKENS, &h, Expect::Any).await?;
        }
        return Ok(json(StatusCode::OK, &json!({"id": id, "deleted": true})));
    }
    Ok(json(StatusCode::OK, &rec.public_view()))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RotateBody {
    grace_seconds: Option<u64>,
}

pub(super) async fn rotate<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    req: Request<Body>,
    ctx: &Ctx<'_>,
    id: &str,
) -> Result<Response<Body>, Error> {
    let allowed = ctx
        .principal
        .as_ref()
        .is_some_and(|p| p.role == Role::Admin || p.name == format!("team:{id}"));
    if !allowed {
        return Err(Error::new(
            ErrorKind::Permission,
            "Only an admin key or the team's own token may rotate this team's token.",
        )
        .with_code("admin_required"));
    }
    let body = read_json_body(req, MAX_ADMIN_BODY).await?;
    let b: RotateBody = parse_strict(&body)?;
    let grace = b.grace_seconds.unwrap_or(DEFAULT_GRACE_SECONDS);
    let now = g.services().clock.unix_seconds();
    let (rec, token) = teams::rotate(g.store(), &*g.services().entropy, now, id, grace).await?;
    let mut out = rec.public_view();
    if let Some(o) = out.as_object_mut() {
        o.insert("token".into(), json!(token));
    }
    Ok(json(StatusCode::OK, &out))
}

/// Takes one unit of a team's budget for an inference route (no-op for other callers
/// and for the model list, the rotation and admin routes). 429 with `retry-after`
/// when spent.
pub(super) async fn admit<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    headers: &HeaderMap,
    route: &Route,
) -> Result<(), Error> {
    if matches!(
        route,
        Route::Models | Route::Model(_) | Route::AdminTeamRotate(_)
    ) {
        return Ok(());
    }
    let Some(token) = auth::key_from_headers(headers) else {
        return Ok(());
    };
    let now = g.services().clock.unix_seconds();
    if let Some(rec) = teams::authenticate(g.store(), now, token).await? {
        teams::admit(g.store(), &rec, now).await?;
    }
    Ok(())
}
