//! API keys and roles.
//!
//! Keys look like `cng-` + 43 characters (base64url of 32 random bytes). cng stores
//! only their SHA-256 hash — the plaintext is shown once, at creation — and finds a
//! key by its hash, so a lookup never compares secrets byte by byte. The bootstrap
//! admin key from the environment is compared (hash to hash) in constant time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, ErrorKind};
use crate::ids::{Clock, Entropy};
use crate::store::{Expect, Store};

/// Key records, by hash (hex).
pub const NS_KEYS: &str = "keys";
/// Key names → hash: reserves a name exactly once.
pub const NS_KEY_NAMES: &str = "key_names";

/// What a key may do (closed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including the `/api/*` admin routes.
    Admin,
    /// Inference only.
    Client,
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "admin" => Ok(Role::Admin),
            "client" => Ok(Role::Client),
            other => Err(format!("unknown role `{other}`: use admin or client")),
        }
    }
}

/// A stored key (never its plaintext).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub name: String,
    /// SHA-256 of the key, hex.
    pub hash: String,
    pub role: Role,
    /// Unix seconds.
    pub created: u64,
    #[serde(default)]
    pub expires: Option<u64>,
    #[serde(default)]
    pub disabled: bool,
    /// Models or aliases this key may use; `None` = all.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// Requests per minute; `None` = the config's default for the role.
    #[serde(default)]
    pub rpm: Option<u32>,
    /// Present the gateway as OpenAI to this key: `/v1/models` lists only the
    /// aliases, owned by `openai` (for clients that check model names).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub spoof: bool,
    /// When the secret was last rotated (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated: Option<u64>,
    /// The record of a previous secret, valid until `expires` (a rotation's grace
    /// period); not listed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub superseded: bool,
}

/// A key as listed by the admin API: everything but the hash.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo<'a> {
    pub name: &'a str,
    pub role: Role,
    pub created: u64,
    pub expires: Option<u64>,
    pub disabled: bool,
    pub models: Option<&'a [String]>,
    pub rpm: Option<u32>,
    pub spoof: bool,
    pub rotated: Option<u64>,
}

impl KeyRecord {
    pub fn info(&self) -> KeyInfo<'_> {
        KeyInfo {
            name: &self.name,
            role: self.role,
            created: self.created,
            expires: self.expires,
            disabled: self.disabled,
            models: self.models.as_deref(),
            rpm: self.rpm,
            spoof: self.spoof,
            rotated: self.rotated,
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    pub models: Option<Vec<String>>,
    pub rpm: Option<u32>,
    pub spoof: bool,
    /// Configured provider names this caller may reach (`workers-ai` included);
    /// `None`: all. Only team tokens carry a list (see `crate::teams`).
    pub providers: Option<Vec<String>>,
}

impl Principal {
    /// May this caller reach the configured provider `provider`?
    pub fn may_use_provider(&self, provider: &str) -> bool {
        self.providers
            .as_ref()
            .is_none_or(|list| list.iter().any(|p| p == provider))
    }

    /// May this caller use `requested` (the name sent), which resolved to `model_id`?
    pub fn may_use(&self, requested: &str, model_id: &str) -> bool {
        match &self.models {
            None => true,
            Some(list) => list.iter().any(|m| m == requested || m == model_id),
        }
    }
}

/// SHA-256 of a key.
pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Lowercase hex. Runs on every authenticated request (the store key of a key is its
/// hash in hex): one allocation, not one `format!` per byte (~1 µs saved per request).
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// A new key: `cng-` + base64url(32 random bytes).
pub fn generate_key(entropy: &(impl Entropy + ?Sized)) -> String {
    let mut buf = [0u8; 32];
    entropy.fill(&mut buf);
    format!("cng-{}", URL_SAFE_NO_PAD.encode(buf))
}

/// Reads the key a client sent: `Authorization: Bearer`, then `x-api-key`
/// (Anthropic clients), then `api-key` (Azure-style clients).
pub fn key_from_headers(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") {
            let k = v[7..].trim();
            if !k.is_empty() {
                return Some(k);
            }
        }
    }
    ["x-api-key", "api-key"]
        .iter()
        .filter_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .find(|k| !k.is_empty())
}

/// Checks a presented key: the bootstrap admin key (constant-time), else a stored key
/// by hash, refused when disabled or expired.
pub async fn authenticate(
    store: &impl Store,
    clock: &(impl Clock + ?Sized),
    admin_hash: Option<&[u8; 32]>,
    presented: Option<&str>,
) -> Result<Principal, Error> {
    let Some(key) = presented else {
        return Err(Error::new(
            ErrorKind::Authentication,
            "Missing API key. Send it as `Authorization: Bearer <key>` \
             (or in an `x-api-key` or `api-key` header).",
        )
        .with_code("missing_api_key"));
    };
    let hash = hash_key(key);
    if let Some(admin) = admin_hash {
        if bool::from(hash.ct_eq(admin)) {
            return Ok(Principal {
                name: "admin".into(),
                role: Role::Admin,
                models: None,
                rpm: None,
                spoof: false,
                providers: None,
            });
        }
    }
    let invalid = || {
        Error::new(ErrorKind::Authentication, "Incorrect API key provided.")
            .with_code("invalid_api_key")
    };
    let Some(rec) = store.get(NS_KEYS, &hex(&hash)).await? else {
        return Err(invalid());
    };
    let version = rec.version;
    let rec: KeyRecord = serde_json::from_slice(&rec.value)
        .map_err(|_| Error::internal("a stored key record is unreadable"))?;
    if rec.disabled {
        return Err(
            Error::new(ErrorKind::Authentication, "This API key is disabled.")
                .with_code("key_disabled"),
        );
    }
    if rec.expires.is_some_and(|e| clock.unix_seconds() >= e) {
        // A rotated-out secret past its grace is of no further use: forget its hash
        // (best effort; a failed delete changes nothing for the caller).
        if rec.superseded {
            let _ = store
                .delete(NS_KEYS, &rec.hash, Expect::Version(version))
                .await;
        }
        return Err(
            Error::new(ErrorKind::Authentication, "This API key has expired.")
                .with_code("key_expired"),
        );
    }
    Ok(Principal {
        name: rec.name,
        role: rec.role,
        models: rec.models,
        rpm: rec.rpm,
        spoof: rec.spoof,
        providers: None,
    })
}

/// What a new key should be.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub name: String,
    pub role: Role,
    pub models: Option<Vec<String>>,
    pub rpm: Option<u32>,
    pub expires: Option<u64>,
}

/// Creates a key: reserves its name, stores its hash, returns the plaintext (once).
pub async fn create_key(
    store: &impl Store,
    entropy: &(impl Entropy + ?Sized),
    clock: &(impl Clock + ?Sized),
    new: NewKey,
) -> Result<(String, KeyRecord), Error> {
    validate_name(&new.name)?;
    let key = generate_key(entropy);
    let hash = hex(&hash_key(&key));
    let rec = KeyRecord {
        name: new.name,
        hash: hash.clone(),
        role: new.role,
        created: clock.unix_seconds(),
        expires: new.expires,
        disabled: false,
        models: new.models,
        rpm: new.rpm,
        spoof: false,
        rotated: None,
        superseded: false,
    };
    let name_taken = |e: Error| {
        if e.kind() == ErrorKind::Conflict {
            Error::new(
                ErrorKind::Conflict,
                format!("A key named `{}` already exists.", rec.name),
            )
            .with_param("name")
            .with_code("key_exists")
        } else {
            e
        }
    };
    // The name is reserved first, then the record written: two writes. A crash between
    // them leaves a reservation pointing at no key; such an orphan is reclaimed here
    // (compare-and-swap on its version), so a name is never lost.
    let expect = match store.get(NS_KEY_NAMES, &rec.name).await? {
        None => Expect::Absent,
        Some(v) => {
            let target = String::from_utf8_lossy(&v.value).to_string();
            if store.get(NS_KEYS, &target).await?.is_some() {
                return Err(name_taken(Error::new(ErrorKind::Conflict, "")));
            }
            Expect::Version(v.version)
        }
    };
    store
        .put(NS_KEY_NAMES, &rec.name, Bytes::from(hash.clone()), expect)
        .await
        .map_err(name_taken)?;
    let body = serde_json::to_vec(&rec).map_err(|e| Error::internal(e.to_string()))?;
    store
        .put(NS_KEYS, &hash, Bytes::from(body), Expect::Absent)
        .await?;
    Ok((key, rec))
}

/// Every key, sorted by name.
pub async fn list_keys(store: &impl Store) -> Result<Vec<KeyRecord>, Error> {
    let mut keys: Vec<KeyRecord> = store
        .list(NS_KEYS)
        .await?
        .into_iter()
        .filter_map(|(_, v)| serde_json::from_slice::<KeyRecord>(&v.value).ok())
        .filter(|k| !k.superseded)
        .collect();
    keys.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(keys)
}

/// Deletes the key named `name`; it stops working at once. Returns whether it existed.
pub async fn revoke_key(store: &impl Store, name: &str) -> Result<bool, Error> {
    let Some(hash) = store.get(NS_KEY_NAMES, name).await? else {
        return Ok(false);
    };
    let hash = String::from_utf8_lossy(&hash.value).to_string();
    store.delete(NS_KEYS, &hash, Expect::Any).await?;
    // Secrets still in a rotation's grace period go too.
    for old in superseded_of(store, name).await? {
        store.delete(NS_KEYS, &old.hash, Expect::Any).await?;
    }
    store.delete(NS_KEY_NAMES, name, Expect::Any).await?;
    Ok(true)
}

/// The records of previous secrets of `name` (rotation grace periods).
async fn superseded_of(store: &impl Store, name: &str) -> Result<Vec<KeyRecord>, Error> {
    Ok(store
        .list(NS_KEYS)
        .await?
        .into_iter()
        .filter_map(|(_, v)| serde_json::from_slice::<KeyRecord>(&v.value).ok())
        .filter(|k| k.superseded && k.name == name)
        .collect())
}

/// The key named `name` and its record's version.
pub async fn get_key(store: &impl Store, name: &str) -> Result<Option<(KeyRecord, u64)>, Error> {
    let Some(hash) = store.get(NS_KEY_NAMES, name).await? else {
        return Ok(None);
    };
    let hash = String::from_utf8_lossy(&hash.value).to_string();
    let Some(rec) = store.get(NS_KEYS, &hash).await? else {
        return Ok(None);
    };
    let key: KeyRecord = serde_json::from_slice(&rec.value)
        .map_err(|_| Error::internal("a stored key record is unreadable"))?;
    Ok(Some((key, rec.version)))
}

fn key_not_found(name: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("There is no key named `{name}`. GET /api/keys lists them."),
    )
    .with_code("key_not_found")
}

/// Changes the key named `name` (compare-and-swap on its record: a concurrent change
/// is a 409). What `change` sets — role, models, limits, `disabled` — applies to the
/// secret in a rotation's grace period too, so disabling a key disables both.
pub async fn update_key(
    store: &impl Store,
    name: &str,
    change: impl Fn(&mut KeyRecord),
) -> Result<KeyRecord, Error> {
    let (mut rec, version) = get_key(store, name)
        .await?
        .ok_or_else(|| key_not_found(name))?;
    change(&mut rec);
    let body = serde_json::to_vec(&rec).map_err(|e| Error::internal(e.to_string()))?;
    store
        .put(
            NS_KEYS,
            &rec.hash,
            Bytes::from(body),
            Expect::Version(version),
        )
        .await?;
    for mut old in superseded_of(store, name).await? {
        let expires = old.expires;
        change(&mut old);
        old.expires = expires;
        old.superseded = true;
        let body = serde_json::to_vec(&old).map_err(|e| Error::internal(e.to_string()))?;
        store
            .put(NS_KEYS, &old.hash, Bytes::from(body), Expect::Any)
            .await?;
    }
    Ok(rec)
}

/// Gives the key named `name` a new secret (returned once). The old secret keeps
/// working for `grace_seconds` (0: it stops at once), then fails as expired.
pub async fn rotate_key(
    store: &impl Store,
    entropy: &(impl Entropy + ?Sized),
    clock: &(impl Clock + ?Sized),
    name: &str,
    grace_seconds: u64,
) -> Result<(String, KeyRecord), Error> {
    let Some(name_rec) = store.get(NS_KEY_NAMES, name).await? else {
        return Err(key_not_found(name));
    };
    let (old, old_version) = get_key(store, name)
        .await?
        .ok_or_else(|| key_not_found(name))?;
    let now = clock.unix_seconds();
    // Secrets of earlier rotations whose grace is over go now.
    for stale in superseded_of(store, name).await? {
        if stale.expires.is_some_and(|e| now >= e) {
            store.delete(NS_KEYS, &stale.hash, Expect::Any).await?;
        }
    }
    let key = generate_key(entropy);
    let hash = hex(&hash_key(&key));
    let mut rec = old.clone();
    rec.hash = hash.clone();
    rec.rotated = Some(now);
    let body = serde_json::to_vec(&rec).map_err(|e| Error::internal(e.to_string()))?;
    store
        .put(NS_KEYS, &hash, Bytes::from(body), Expect::Absent)
        .await?;
    // The name now points at the new secret; a concurrent rotation loses here (409).
    if let Err(e) = store
        .put(
            NS_KEY_NAMES,
            name,
            Bytes::from(hash.clone()),
            Expect::Version(name_rec.version),
        )
        .await
    {
        store.delete(NS_KEYS, &hash, Expect::Any).await?;
        return Err(e);
    }
    if grace_seconds == 0 {
        store
            .delete(NS_KEYS, &old.hash, Expect::Version(old_version))
            .await?;
    } else {
        let mut prev = old;
        prev.superseded = true;
        let until = now.saturating_add(grace_seconds);
        prev.expires = Some(prev.expires.map_or(until, |e| e.min(until)));
        let body = serde_json::to_vec(&prev).map_err(|e| Error::internal(e.to_string()))?;
        store
            .put(NS_KEYS, &prev.hash, Bytes::from(body), Expect::Any)
            .await?;
    }
    Ok((key, rec))
}

/// True when a usable admin key (not disabled, not expired at `now`) exists.
pub async fn has_admin_key(store: &impl Store, now: u64) -> Result<bool, Error> {
    Ok(list_keys(store)
        .await?
        .iter()
        .any(|k| k.role == Role::Admin && !k.disabled && k.expires.is_none_or(|e| e > now)))
}

fn validate_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_param(
            "name",
            "A key name is 1-64 characters of letters, digits and `-_.@`.",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{CountingEntropy, FixedClock};
    use crate::store::MemoryStore;
    use futures_util::FutureExt;

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        f.now_or_never().expect("memory store futures are ready")
    }

    #[test]
    fn key_format() {
        let k = generate_key(&CountingEntropy::default());
        assert!(k.starts_with("cng-"));
        assert_eq!(k.len(), 4 + 43);
        assert!(
            k[4..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn headers_in_order_of_preference() {
        let mut h = HeaderMap::new();
        h.insert("x-api-key", "from-x".parse().unwrap());
        assert_eq!(key_from_headers(&h), Some("from-x"));
        h.insert("authorization", "bearer  from-auth ".parse().unwrap());
        assert_eq!(key_from_headers(&h), Some("from-auth"));
        let mut h = HeaderMap::new();
        h.insert("api-key", "azure".parse().unwrap());
        assert_eq!(key_from_headers(&h), Some("azure"));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(key_from_headers(&h), Some("azure"));
    }

    #[test]
    fn lifecycle_create_authenticate_disable_expire_revoke() {
        let store = MemoryStore::new();
        let clock = FixedClock(1000);
        let e = CountingEntropy::default();
        let new = NewKey {
            name: "ci".into(),
            role: Role::Client,
            models: None,
            rpm: None,
            expires: Some(2000),
        };
        let (key, rec) = run(create_key(&store, &e, &clock, new.clone())).unwrap();
        assert_ne!(rec.hash, key, "only the hash is stored");
        let stored = run(store.list(NS_KEYS)).unwrap();
        assert!(!String::from_utf8_lossy(&stored[0].1.value).contains(&key));
        assert_eq!(
            run(authenticate(&store, &clock, None, Some(&key)))
                .unwrap()
                .name,
            "ci"
        );
        // same name again → 409
        assert_eq!(
            run(create_key(&store, &e, &clock, new))
                .unwrap_err()
                .status()
                .as_u16(),
            409
        );
        // wrong key, missing key
        let err = run(authenticate(&store, &clock, None, Some("cng-nope"))).unwrap_err();
        assert_eq!(
            (err.status().as_u16(), err.code()),
            (401, Some("invalid_api_key"))
        );
        assert!(!err.message().contains("cng-nope"));
        assert_eq!(
            run(authenticate(&store, &clock, None, None))
                .unwrap_err()
                .code(),
            Some("missing_api_key")
        );
        // expired
        let late = FixedClock(2000);
        assert_eq!(
            run(authenticate(&store, &late, None, Some(&key)))
                .unwrap_err()
                .code(),
            Some("key_expired")
        );
        // revoked
        assert!(run(revoke_key(&store, "ci")).unwrap());
        assert!(run(authenticate(&store, &clock, None, Some(&key))).is_err());
        assert!(!run(revoke_key(&store, "ci")).unwrap());
    }

    #[test]
    fn a_name_orphaned_by_a_crash_between_the_two_writes_is_reclaimed() {
        let store = MemoryStore::new();
        let clock = FixedClock(10);
        // What a crash after the name reservation leaves: a name, no record.
        run(store.put(
            NS_KEY_NAMES,
            "ci",
            Bytes::from_static(b"deadbeef"),
            Expect::Absent,
        ))
        .unwrap();
        let new = NewKey {
            name: "ci".into(),
            role: Role::Client,
            models: None,
            rpm: None,
            expires: None,
        };
        let (key, _) = run(create_key(
            &store,
            &CountingEntropy::default(),
            &clock,
            new.clone(),
        ))
        .unwrap();
        assert_eq!(
            run(authenticate(&store, &clock, None, Some(&key)))
                .unwrap()
                .name,
            "ci"
        );
        // A live key's name is still refused.
        let e = run(create_key(&store, &CountingEntropy::default(), &clock, new)).unwrap_err();
        assert_eq!(e.code(), Some("key_exists"));
    }

    #[test]
    fn disabled_keys_are_refused() {
        let store = MemoryStore::new();
        let clock = FixedClock(10);
        let new = NewKey {
            name: "off".into(),
            role: Role::Client,
            models: None,
            rpm: None,
            expires: None,
        };
        let (key, mut rec) =
            run(create_key(&store, &CountingEntropy::default(), &clock, new)).unwrap();
        rec.disabled = true;
        let body = Bytes::from(serde_json::to_vec(&rec).unwrap());
        run(store.put(NS_KEYS, &rec.hash, body, Expect::Any)).unwrap();
        let err = run(authenticate(&store, &clock, None, Some(&key))).unwrap_err();
        assert_eq!(
            (err.status().as_u16(), err.code()),
            (401, Some("key_disabled"))
        );
    }

    #[test]
    fn bootstrap_admin_key() {
        let store = MemoryStore::new();
        let admin = hash_key("cng-admin-secret");
        let p = run(authenticate(
            &store,
            &FixedClock(0),
            Some(&admin),
            Some("cng-admin-secret"),
        ))
        .unwrap();
        assert_eq!(p.role, Role::Admin);
        assert!(
            run(authenticate(
                &store,
                &FixedClock(0),
                Some(&admin),
                Some("cng-admin-secreT")
            ))
            .is_err()
        );
    }
}
