//! Cloudflare Access in front of cng (optional; off unless a team domain and an audience
//! are configured; cargo feature `access`).
//!
//! Behind Access, Cloudflare adds a `Cf-Access-Jwt-Assertion` header to every request
//! it lets through: an RS256 JWT signed with the team's keys, published at
//! `https://<team domain>/cdn-cgi/access/certs`. When a request carries one and no API
//! key, cng verifies it — signature against the team's keys (cached an hour, fetched
//! again at most once a minute when a token names a key not seen yet), audience (the
//! Access application's AUD tag), issuer (`https://<team domain>`), expiry and
//! not-before against the injected clock — and maps the identity (the `email` claim, or
//! a service token's `common_name`) to a role: admin when it matches an `admins`
//! entry, client when it matches a `clients` entry (or any verified identity when that
//! list is empty), refused otherwise. An entry is an address or `@domain`.
//!
//! The browser sends the Access cookie with every request to the site, so a request
//! authenticated this way must not come from another site: one whose
//! `Sec-Fetch-Site` says `cross-site` or `same-site` is refused (403), which is what keeps a
//! form on another site from acting with the operator's identity. API keys are unaffected.

use std::sync::{Arc, Mutex};

use http::HeaderMap;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::auth::{Principal, Role};
use crate::error::{Error, ErrorKind};
use crate::usage::{BoxFuture, MaybeSendSync};

/// The header Cloudflare Access adds.
pub const ASSERTION_HEADER: &str = "cf-access-jwt-assertion";
/// How long fetched certificates are used.
pub const CERTS_TTL_SECONDS: u64 = 3600;
/// The least time between two fetches (a token naming an unknown key cannot make cng
/// fetch on every request).
pub const MIN_REFETCH_SECONDS: u64 = 60;
/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 60;

/// What Access is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessConfig {
    /// `<team>.cloudflareaccess.com`.
    pub team_domain: String,
    /// The Access application's audience (AUD) tag.
    pub audience: String,
    /// Identities (`alice@example.com`, `@example.com`) that get the admin role.
    pub admins: Vec<String>,
    /// Identities that get the client role; empty: every verified identity.
    pub clients: Vec<String>,
}

impl AccessConfig {
    /// Where the team's signing keys are published.
    pub fn certs_url(&self) -> String {
        format!(
            "https://{}/cdn-cgi/access/certs",
            self.team_domain.trim_end_matches('/')
        )
    }
}

/// Fetches the team's keys (a JWKS document). Injected: natively over reqwest, in the
/// Worker over `fetch`, in tests from memory.
pub trait CertSource: MaybeSendSync {
    fn fetch(&self) -> BoxFuture<'_, Result<Vec<u8>, Error>>;
}

#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    common_name: Option<String>,
    exp: u64,
    #[serde(default)]
    nbf: Option<u64>,
}

#[derive(Debug, Default)]
struct Cache {
    keys: Option<JwkSet>,
    fetched_at: Option<u64>,
}

/// Verifies Access assertions (see the module docs).
pub struct AccessVerifier {
    config: AccessConfig,
    source: Arc<dyn CertSource>,
    cache: Mutex<Cache>,
}

fn unauthorized(message: &str) -> Error {
    Error::new(
        ErrorKind::Authentication,
        format!("The Cloudflare Access assertion was refused: {message}."),
    )
    .with_code("invalid_access_token")
}

fn matches(list: &[String], identity: &str) -> bool {
    let id = identity.to_ascii_lowercase();
    list.iter().any(|e| {
        let e = e.trim().to_ascii_lowercase();
        !e.is_empty() && (e == id || (e.starts_with('@') && id.ends_with(&e)))
    })
}

impl AccessVerifier {
    pub fn new(config: AccessConfig, source: Arc<dyn CertSource>) -> Self {
        // The one backend this crate enables; installing it explicitly keeps
        // jsonwebtoken from guessing when another crate enables a second one.
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
        Self {
            config,
            source,
            cache: Mutex::new(Cache::default()),
        }
    }

    pub fn config(&self) -> &AccessConfig {
        &self.config
    }

    fn cached(&self) -> (Option<JwkSet>, Option<u64>) {
        let g = match self.cache.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        (g.keys.clone(), g.fetched_at)
    }

    async fn refresh(&self, now: u64) -> Result<JwkSet, Error> {
        let bytes = self.source.fetch().await.map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!(
                    "Cloudflare Access keys could not be fetched from {}: {}",
                    self.config.certs_url(),
                    e.message()
                ),
            )
            .with_code("access_certs_unavailable")
        })?;
        let set: JwkSet = serde_json::from_slice(&bytes).map_err(|_| {
            Error::new(
                ErrorKind::Unavailable,
                "Cloudflare Access keys are not a JWKS document",
            )
            .with_code("access_certs_unavailable")
        })?;
        let mut g = match self.cache.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.keys = Some(set.clone());
        g.fetched_at = Some(now);
        Ok(set)
    }

    /// The key a token names: from the cache, else (at most once a minute) fetched.
    async fn key_for(&self, kid: &str, now: u64) -> Result<DecodingKey, Error> {
        let (keys, fetched_at) = self.cached();
        let fresh = fetched_at.is_some_and(|t| now < t.saturating_add(CERTS_TTL_SECONDS));
        if let Some(jwk) = keys.as_ref().filter(|_| fresh).and_then(|s| s.find(kid)) {
            return DecodingKey::from_jwk(jwk).map_err(|_| unauthorized("unusable signing key"));
        }
        let may_fetch = fetched_at.is_none_or(|t| now >= t.saturating_add(MIN_REFETCH_SECONDS));
        let set = if may_fetch || !fresh {
            self.refresh(now).await?
        } else {
            keys.unwrap_or(JwkSet { keys: Vec::new() })
        };
        let jwk = set
            .find(kid)
            .ok_or_else(|| unauthorized("signed with a key the team does not publish"))?;
        DecodingKey::from_jwk(jwk).map_err(|_| unauthorized("unusable signing key"))
    }

    /// The caller, when the request carries an assertion (and no API key was sent:
    /// the caller checks that); `Ok(None)` without one.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        now: u64,
    ) -> Result<Option<Principal>, Error> {
        let Some(token) = headers
            .get(ASSERTION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|t| !t.is_empty())
        else {
            return Ok(None);
        };
        let site = headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none");
        if site != "same-origin" && site != "none" {
            return Err(Error::new(
                ErrorKind::Permission,
                "A request authenticated by Cloudflare Access must come from cng's own pages, \
                 not from another site.",
            )
            .with_code("cross_site_request"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| unauthorized("not a JWT"))?;
        if header.alg != Algorithm::RS256 {
            return Err(unauthorized("not signed with RS256"));
        }
        let kid = header.kid.ok_or_else(|| unauthorized("no key id"))?;
        let key = self.key_for(&kid, now).await?;
        let mut v = Validation::new(Algorithm::RS256);
        v.set_audience(&[&self.config.audience]);
        v.set_issuer(&[format!(
            "https://{}",
            self.config.team_domain.trim_end_matches('/')
        )]);
        // Time is checked below against the injected clock, not the system's.
        v.validate_exp = false;
        v.validate_nbf = false;
        v.set_required_spec_claims(&["exp", "aud", "iss"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            unauthorized(match e.kind() {
                K::InvalidSignature => "bad signature",
                K::InvalidAudience => "wrong audience",
                K::InvalidIssuer => "wrong issuer",
                K::MissingRequiredClaim(_) => "a required claim is missing",
                _ => "malformed token",
            })
        })?;
        let c = data.claims;
        if now >= c.exp.saturating_add(LEEWAY_SECONDS) {
            return Err(unauthorized("expired"));
        }
        if c.nbf
            .is_some_and(|nbf| now.saturating_add(LEEWAY_SECONDS) < nbf)
        {
            return Err(unauthorized("not valid yet"));
        }
        let (identity, name) = match (c.email, c.common_name) {
            (Some(email), _) => (email.clone(), format!("access:{email}")),
            (None, Some(cn)) => (cn.clone(), format!("access-service:{cn}")),
            (None, None) => return Err(unauthorized("no identity (email or common_name)")),
        };
        let role = if matches(&self.config.admins, &identity) {
            Role::Admin
        } else if self.config.clients.is_empty() || matches(&self.config.clients, &identity) {
            Role::Client
        } else {
            return Err(Error::new(
                ErrorKind::Permission,
                format!("`{identity}` passed Cloudflare Access but has no role in cng."),
            )
            .with_code("access_not_allowed"));
        };
        Ok(Some(Principal {
            name,
            role,
            models: None,
            rpm: None,
            spoof: false,
            providers: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_match_addresses_and_domains() {
        let list = vec![
            "alice@example.com".to_string(),
            "@ops.example.com".to_string(),
        ];
        assert!(matches(&list, "Alice@Example.com"));
        assert!(matches(&list, "bob@ops.example.com"));
        assert!(!matches(&list, "bob@example.com"));
        assert!(!matches(&list, "mallory@evilops.example.com.attacker"));
        assert!(!matches(&[String::new()], "x@y"));
    }
}
