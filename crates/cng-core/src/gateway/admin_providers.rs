//! `/api/providers`: the configured providers, and their keys set without ever
//! handling a sealed value by hand. Admin only.
//!
//! - `GET /api/providers`: each provider's name, kind, URL, gateway and whether a key
//!   is stored (`key_set`) — never the key, sealed or not.
//! - `PUT /api/providers/{name}/key` `{"key": "sk-…"}`: seals the key with the host's
//!   master key ([`KeySealer`]) and stores it in the config document
//!   (compare-and-swap on the document's version, retried on a concurrent edit, so
//!   no other change is lost). The plaintext is never stored, logged or echoed.
//! - `DELETE /api/providers/{name}/key`: removes the stored key (the provider then
//!   gets no key: an AI Gateway with stored keys, or a local server without auth).
//!
//! The provider itself (kind, URL) is added or changed with `PUT /api/config`.

use http::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::admin_config::store_doc;
use super::{Body, Gateway, Limiter, json, read_json_body};
use crate::backend::Backend;
use crate::config::validate::validate;
use crate::error::{Error, ErrorKind};
use crate::routing::config::ProviderConfig;
use crate::store::Store;

/// Largest accepted provider key (real ones are well under 1 KiB).
const MAX_KEY_BYTES: usize = 4096;
/// Compare-and-swap attempts when admins edit the config at the same moment.
const ATTEMPTS: u32 = 4;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    key: String,
}

fn view(name: &str, p: &ProviderConfig) -> Value {
    json!({
        "object": "provider",
        "name": name,
        "kind": p.kind,
        "base_url": p.base_url,
        "gateway": p.gateway,
        "key_set": p.key.is_some(),
    })
}

pub(super) async fn list<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
) -> Result<Response<Body>, Error> {
    let live = g.live_config().await?;
    let data: Vec<Value> = live
        .doc
        .providers
        .iter()
        .map(|(name, p)| view(name, p))
        .collect();
    Ok(json(
        StatusCode::OK,
        &json!({"object": "list", "data": data}),
    ))
}

pub(super) async fn key<B: Backend, S: Store, L: Limiter>(
    g: &Gateway<B, S, L>,
    req: Request<Body>,
    name: &str,
) -> Result<Response<Body>, Error> {
    let sealed = if req.method() == Method::PUT {
        let body = read_json_body(req, MAX_KEY_BYTES * 2).await?;
        // Parsed by hand: serde's error for a wrong type would quote the value.
        let parsed: KeyBody = serde_json::from_slice(&body).map_err(|_| {
            Error::invalid_param("key", "Send `{\"key\": \"<the provider's API key>\"}`.")
        })?;
        let secret = parsed.key.trim();
        if secret.is_empty()
            || secret.len() > MAX_KEY_BYTES
            || !secret.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(Error::invalid_param(
                "key",
                format!(
                    "`key` must be 1-{MAX_KEY_BYTES} printable ASCII characters without spaces (it is sent in a header)."
                ),
            ));
        }
        let Some(sealer) = &g.sealer else {
            return Err(Error::new(
                ErrorKind::Unavailable,
                "This host has no master key to seal provider keys with: set CNG_MASTER_KEY (natively) or the Worker secret CNG_MASTER_KEY, then retry.",
            )
            .with_code("master_key_missing"));
        };
        let mut nonce = [0u8; 12];
        g.services.entropy.fill(&mut nonce);
        Some(sealer.seal(name, nonce, secret)?)
    } else {
        None
    };
    for _ in 0..ATTEMPTS {
        g.live.invalidate();
        let live = g.live_config().await?;
        let mut doc = live.doc.clone();
        let Some(p) = doc.providers.get_mut(name) else {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "No provider `{name}` is configured; add it under `providers` with PUT /api/config first."
                ),
            )
            .with_code("provider_not_found"));
        };
        p.key = sealed.clone();
        let shown = view(name, p);
        validate(&doc, &g.config.catalog, g.config.doc_rules())?;
        match store_doc(g, &doc, Some(live.version)).await {
            Ok(version) => {
                let mut shown = shown;
                shown["version"] = version.into();
                return Ok(json(StatusCode::OK, &shown));
            }
            Err(e) if e.kind() == ErrorKind::Conflict => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::new(
        ErrorKind::Conflict,
        "The config kept changing while the key was stored; retry.",
    )
    .with_code("stale_version"))
}
