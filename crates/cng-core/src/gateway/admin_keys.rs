//! `/api/keys`: API keys, managed over HTTP (admin only).
//!
//! - `GET /api/keys`: every key, without secrets or hashes.
//! - `POST /api/keys`: creates one; the answer holds the plaintext key — the only time
//!   it is ever shown.
//! - `GET`, `PATCH`, `DELETE /api/keys/{name}`: one key; `PATCH` changes role,
//!   models, rpm, expiry, disabled, spoof. A deleted or disabled key stops working on
//!   the next request (keys are never cached: see `auth`).
//! - `POST /api/keys/{name}/rotate`: a new secret (shown once); the old one keeps
//!   working for `grace_seconds` (default an hour), then fails as expired.
//!
//! The last enabled admin key cannot be deleted, disabled or demoted unless a
//! bootstrap admin key (`CNG_ADMIN_KEY`) exists: that would lock every admin out.

use http::{Request, Response, StatusCode};
use serde::{Deserialize, Deserializer};
use serde_json::json;

use super::{Body, Gateway, Limiter, json, read_json_body};
use crate::auth::{self, KeyRecord, NewKey, Role};
use crate::backend::Backend;
use crate::error::{Error, ErrorKind};
use crate::openai::parse_json;
use crate::store::Store;

/// How long an old secret keeps working after a rotation, unless the request says.
pub const DEFAULT_ROTATION_GRACE_SECONDS: u64 = 3600;
/// The longest grace period a rotation may ask for: 30 days.
pub const MAX_ROTATION_GRACE_SECONDS: u64 = 30 * 86_400;
/// Largest admin request body.
const MAX_ADMIN_BODY: usize = 1024 * 1024;

pub(super) async fn list<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
) -> Result<Response<Body>, Error> {
    let keys = auth::list_keys(g.store()).await?;
    let data: Vec<_> = keys.iter().map(|k| k.info()).collect();
    Ok(json(
        StatusCode::OK,
        &json!({"object": "list", "data": data}),
    ))
}

/// Absent → `None`; `null` → `Some(None)`; a value → `Some(Some(v))`.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize)]
struct CreateBody {
    name: String,
    #[serde(default)]
    role: Option<Role>,
    #[serde(default)]
    models: Option<Vec<String>>,
    #[serde(default)]
    rpm: Option<u32>,
    /// Unix seconds.
    #[serde(default)]
    expires: Option<u64>,
    #[serde(default)]
    expires_in_days: Option<u64>,
    #[serde(default)]
    spoof: bool,
}

#[derive(Debug, Deserialize)]
struct PatchBody {
    #[serde(default)]
    role: Option<Role>,
    #[serde(default, deserialize_with = "nullable")]
    models: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    rpm: Option<Option<u32>>,
    #[serde(default, deserialize_with = "nullable")]
    expires: Option<Option<u64>>,
    #[serde(default)]
    disabled: Option<bool>,
    #[serde(default)]
    spoof: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
struct RotateBody {
    #[serde(default)]
    grace_seconds: Option<u64>,
}

/// Parses an admin body, refusing fields it does not know (a typo must not be a
/// silent no-op on a security setting).
pub(super) fn parse_strict<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    let parsed = parse_json::<T>(body)?;
    if let Some(field) = parsed.ignored.first() {
        return Err(Error::invalid_param(
            field.clone(),
            format!("`{field}` is not a field of this request."),
        )
        .with_code("unknown_field"));
    }
    Ok(parsed.value)
}

fn check_rpm(rpm: Option<u32>) -> Result<(), Error> {
    if rpm == Some(0) {
        return Err(Error::invalid_param(
            "rpm",
            "`rpm` must be at least 1; send null for no limit of its own.",
        ));
    }
    Ok(())
}

fn check_expires(expires: Option<u64>, now: u64) -> Result<(), Error> {
    if expires.is_some_and(|e| e <= now) {
        return Err(Error::invalid_param(
            "expires",
            "`expires` (Unix seconds) is in the past.",
        ));
    }
    Ok(())
}

/// Every listed model must be something this gateway serves (a model, an alias, or a
/// name the config routes to providers).
async fn check_models<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    models: Option<&[String]>,
) -> Result<(), Error> {
    let Some(models) = models else {
        return Ok(());
    };
    if models.is_empty() {
        return Err(Error::invalid_param(
            "models",
            "`models` is empty, which would allow nothing; send null to allow every model.",
        ));
    }
    let live = g.live_config().await?;
    for (i, m) in models.iter().enumerate() {
        if g.config.open_models {
            break;
        }
        let routed = matches!(super::route::provider_targets(&live, m), Ok(Some(_)));
        if !routed && live.aliases.resolve(m, &live.catalog).is_err() {
            return Err(Error::invalid_param(
                format!("models[{i}]"),
                format!("`models[{i}]`: `{m}` is not a model or alias this gateway serves."),
            ));
        }
    }
    Ok(())
}

fn key_json(rec: &KeyRecord) -> serde_json::Value {
    let mut v = serde_json::to_value(rec.info()).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("object".into(), json!("key"));
    }
    v
}

pub(super) async fn create<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    req: Request<Body>,
) -> Result<Response<Body>, Error> {
    let body = read_json_body(req, MAX_ADMIN_BODY).await?;
    let b: CreateBody = parse_strict(&body)?;
    let now = g.services.clock.unix_seconds();
    check_rpm(b.rpm)?;
    let expires = match (b.expires, b.expires_in_days) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid_param(
                "expires_in_days",
                "Send `expires` or `expires_in_days`, not both.",
            ));
        }
        (e, None) => e,
        (None, Some(0)) => {
            return Err(Error::invalid_param(
                "expires_in_days",
                "`expires_in_days` must be at least 1.",
            ));
        }
        (None, Some(d)) => Some(now.saturating_add(d.saturating_mul(86_400))),
    };
    check_expires(expires, now)?;
    check_models(g, b.models.as_deref()).await?;
    let new = NewKey {
        name: b.name,
        role: b.role.unwrap_or(Role::Client),
        models: b.models,
        rpm: b.rpm,
        expires,
    };
    let (key, mut rec) =
        auth::create_key(g.store(), &*g.services.entropy, &*g.services.clock, new).await?;
    if b.spoof {
        rec = auth::update_key(g.store(), &rec.name, |r| r.spoof = true).await?;
    }
    let mut out = key_json(&rec);
    if let Some(o) = out.as_object_mut() {
        // The only time the plaintext leaves cng.
        o.insert("key".into(), json!(key));
    }
    Ok(json(StatusCode::CREATED, &out))
}

/// Would this change leave no way to administer the gateway?
async fn guard_last_admin<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    name: &str,
) -> Result<(), Error> {
    if g.config.admin_key_hash.is_some() {
        return Ok(());
    }
    let now = g.services.clock.unix_seconds();
    let others = auth::list_keys(g.store()).await?.into_iter().any(|k| {
        k.name != name && k.role == Role::Admin && !k.disabled && k.expires.is_none_or(|e| e > now)
    });
    if others {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Conflict,
            format!("`{name}` is the last admin key; create another admin key first."),
        )
        .with_code("last_admin_key"))
    }
}

pub(super) async fn one<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    req: Request<Body>,
    name: &str,
) -> Result<Response<Body>, Error> {
    let not_found = || {
        Error::new(
            ErrorKind::NotFound,
            format!("There is no key named `{name}`. GET /api/keys lists them."),
        )
        .with_code("key_not_found")
    };
    match req.method().as_str() {
        "GET" => {
            let (rec, _) = auth::get_key(g.store(), name)
                .await?
                .ok_or_else(not_found)?;
            Ok(json(StatusCode::OK, &key_json(&rec)))
        }
        "DELETE" => {
            let (rec, _) = auth::get_key(g.store(), name)
                .await?
                .ok_or_else(not_found)?;
            if rec.role == Role::Admin {
                guard_last_admin(g, name).await?;
            }
            auth::revoke_key(g.store(), name).await?;
            Ok(json(
                StatusCode::OK,
                &json!({"object": "key", "name": name, "deleted": true}),
            ))
        }
        _ => {
            let body = read_json_body(req, MAX_ADMIN_BODY).await?;
            let p: PatchBody = parse_strict(&body)?;
            let now = g.services.clock.unix_seconds();
            if let Some(rpm) = p.rpm {
                check_rpm(rpm)?;
            }
            if let Some(e) = p.expires {
                check_expires(e, now)?;
            }
            if let Some(m) = &p.models {
                check_models(g, m.as_deref()).await?;
            }
            let (rec, _) = auth::get_key(g.store(), name)
                .await?
                .ok_or_else(not_found)?;
            let loses_admin = rec.role == Role::Admin
                && (p.role == Some(Role::Client) || p.disabled == Some(true));
            if loses_admin {
                guard_last_admin(g, name).await?;
            }
            let rec = auth::update_key(g.store(), name, |r| {
                if let Some(role) = p.role {
                    r.role = role;
                }
                if let Some(m) = &p.models {
                    r.models = m.clone();
                }
                if let Some(rpm) = p.rpm {
                    r.rpm = rpm;
                }
                if let Some(e) = p.expires {
                    r.expires = e;
                }
                if let Some(d) = p.disabled {
                    r.disabled = d;
                }
                if let Some(s) = p.spoof {
                    r.spoof = s;
                }
            })
            .await?;
            Ok(json(StatusCode::OK, &key_json(&rec)))
        }
    }
}

pub(super) async fn rotate<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    req: Request<Body>,
    name: &str,
) -> Result<Response<Body>, Error> {
    let body = read_json_body(req, MAX_ADMIN_BODY).await?;
    let b: RotateBody = parse_strict(&body)?;
    let grace = b.grace_seconds.unwrap_or(DEFAULT_ROTATION_GRACE_SECONDS);
    if grace > MAX_ROTATION_GRACE_SECONDS {
        return Err(Error::invalid_param(
            "grace_seconds",
            format!("`grace_seconds` is at most {MAX_ROTATION_GRACE_SECONDS} (30 days)."),
        ));
    }
    let (key, rec) = auth::rotate_key(
        g.store(),
        &*g.services.entropy,
        &*g.services.clock,
        name,
        grace,
    )
    .await?;
    let now = g.services.clock.unix_seconds();
    let mut out = key_json(&rec);
    if let Some(o) = out.as_object_mut() {
        o.insert("key".into(), json!(key));
        o.insert(
            "previous_key_valid_until".into(),
            if grace == 0 {
                json!(null)
            } else {
                json!(now + grace)
            },
        );
    }
    Ok(json(StatusCode::OK, &out))
}
