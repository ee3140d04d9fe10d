//! What the Worker keeps where, and the messages between the Worker and its two Durable
//! Objects. Platform-independent, so it is tested natively.
//!
//! # KV layout (namespace `CNG_KV`)
//! One KV entry per store record, the value as stored (a key record is its JSON) and
//! the record's version in the entry's metadata (`{"v": 7}`):
//! - `keys/<sha256 hex>`: API keys, by the hash of the secret (the secret is never stored);
//! - `key_names/<name>`: a key's name → its hash;
//! - `GATEWAY_CONFIG`: the gateway config document (`config`/`gateway`), as the reference
//!   product keeps it; other `config` records under `GATEWAY_CONFIG/<key>`;
//! - `<ns>/<key>` for any other namespace (`img/<id>`, ...),
//!
//! except the [object-only](object_only) namespaces: usage counters (`usage-<day>`) and
//! team spend (`team_usage`) are never in KV (see below).
//!
//! # Writes: one Durable Object, versions in its SQLite
//! KV has no compare-and-swap and is eventually consistent, so two admins editing at
//! once would silently overwrite each other. Every write therefore goes to one Durable
//! Object (`CNG_STORE`, named `store`), which holds each record's version in its own
//! SQLite storage (strongly consistent, one writer): it checks the write's
//! [`Expect`] against that version, records the new version and value, then mirrors the
//! record into KV, and only then answers. Writes are serialised (the object blocks other
//! events while one is in flight), so KV receives them in version order. If the KV write
//! fails, the SQLite change is undone and the write fails as a whole. Reads go to KV,
//! near the client; a read may be up to ~60 s stale in other locations, and a write based
//! on a stale read fails with 409 instead of losing the other edit ([`apply`] compares
//! against the object's version, not KV's). Listing reads the object (consistent).
//!
//! # Counters: in the object only
//! Usage counters and team spend change with traffic, not with an admin's edit: a KV
//! mirror would cost one KV write per flush or per admitted request (the free plan
//! allows 1,000 a day), and a KV read of them may be stale, so a compare-and-swap on it
//! would keep failing. Their records ([`object_only`]) therefore live in the object's
//! SQLite alone: written without a mirror, read with [`StoreRequest::Get`] (strongly
//! consistent, no KV operation). The object runs one event at a time, so a budget's
//! compare-and-swap is atomic across isolates and locations.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use cng_core::Error;
use cng_core::gateway::{RateLimiter, RateStatus, rate_limited};
use cng_core::store::{Expect, Versioned, check_expect, conflict};
use cng_core::teams::NS_TEAM_USAGE;
use serde::{Deserialize, Serialize};

/// The KV key of the gateway config document.
pub const CONFIG_KV_KEY: &str = "GATEWAY_CONFIG";
/// The store namespace and key of the gateway config document (cng-core's).
const NS_CONFIG: &str = "config";
const CONFIG_KEY: &str = "gateway";

/// The name of the one store Durable Object.
pub const STORE_OBJECT: &str = "store";

/// The KV key of a store record (see the module docs).
pub fn kv_key(ns: &str, key: &str) -> String {
    if ns == NS_CONFIG {
        if key == CONFIG_KEY {
            return CONFIG_KV_KEY.to_string();
        }
        return format!("{CONFIG_KV_KEY}/{key}");
    }
    format!("{ns}/{key}")
}

/// The prefix of the usage namespaces (`usage-<days since the epoch>`, cng-core's
/// [`namespace`](cng_core::usage::store::namespace)).
const USAGE_NS_PREFIX: &str = "usage-";

/// Whether a namespace's records live in the store object only, never in KV (see the
/// module docs): team spend and usage counters.
pub fn object_only(ns: &str) -> bool {
    ns == NS_TEAM_USAGE
        || ns
            .strip_prefix(USAGE_NS_PREFIX)
            .is_some_and(|day| !day.is_empty() && day.bytes().all(|b| b.is_ascii_digit()))
}

/// A KV entry's metadata: the record's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvMeta {
    pub v: u64,
}

/// [`Expect`] on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireExpect {
    Any,
    Absent,
    Version(u64),
}

impl From<Expect> for WireExpect {
    fn from(e: Expect) -> Self {
        match e {
            Expect::Any => Self::Any,
            Expect::Absent => Self::Absent,
            Expect::Version(v) => Self::Version(v),
        }
    }
}

impl From<WireExpect> for Expect {
    fn from(e: WireExpect) -> Self {
        match e {
            WireExpect::Any => Self::Any,
            WireExpect::Absent => Self::Absent,
            WireExpect::Version(v) => Self::Version(v),
        }
    }
}

/// A request to the store object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum StoreRequest {
    Put {
        ns: String,
        key: String,
        /// Base64.
        value: String,
        expect: WireExpect,
    },
    Delete {
        ns: String,
        key: String,
        expect: WireExpect,
    },
    List {
        ns: String,
    },
    /// One record, from the object (for [`object_only`] namespaces, which KV lacks).
    Get {
        ns: String,
        key: String,
    },
}

impl StoreRequest {
    pub fn put(ns: &str, key: &str, value: &[u8], expect: Expect) -> Self {
        Self::Put {
            ns: ns.into(),
            key: key.into(),
            value: STANDARD.encode(value),
            expect: expect.into(),
        }
    }

    pub fn delete(ns: &str, key: &str, expect: Expect) -> Self {
        Self::Delete {
            ns: ns.into(),
            key: key.into(),
            expect: expect.into(),
        }
    }

    pub fn get(ns: &str, key: &str) -> Self {
        Self::Get {
            ns: ns.into(),
            key: key.into(),
        }
    }
}

/// A record on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireRecord {
    pub key: String,
    pub version: u64,
    /// Base64.
    pub value: String,
}

/// The store object's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum StoreResponse {
    Written {
        version: u64,
    },
    Deleted {
        existed: bool,
    },
    /// The write's expectation failed; `found` is the current version, `current` the
    /// current record (so that a retry can start from it, whatever KV still says).
    Conflict {
        found: Option<u64>,
        #[serde(default)]
        current: Option<WireRecord>,
    },
    Listed {
        records: Vec<WireRecord>,
    },
    /// The answer to a [`StoreRequest::Get`] (`None`: no such record).
    Found {
        record: Option<WireRecord>,
    },
    /// The object could not do it (storage or KV failed); nothing changed.
    Failed {
        message: String,
    },
}

/// One stored record as the store object keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub version: u64,
    pub value: Vec<u8>,
}

/// The store object's storage, as [`apply`] sees it (SQLite in the object; a map in
/// tests).
pub trait Records {
    fn get(&mut self, ns: &str, key: &str) -> Result<Option<Row>, String>;
    fn set(&mut self, ns: &str, key: &str, row: Row) -> Result<(), String>;
    fn remove(&mut self, ns: &str, key: &str) -> Result<(), String>;
    /// The next version: one counter for every record, so a record that is deleted and
    /// written again never reuses a version (no ABA).
    fn next_version(&mut self) -> Result<u64, String>;
}

/// What KV must be told after a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mirror {
    Put {
        kv_key: String,
        value: Vec<u8>,
        version: u64,
    },
    Delete {
        kv_key: String,
    },
    Nothing,
}

/// How to take a write back when KV refused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undo {
    ns: String,
    key: String,
    previous: Option<Row>,
}

impl Undo {
    pub fn run<R: Records>(self, r: &mut R) -> Result<(), String> {
        match self.previous {
            Some(row) => r.set(&self.ns, &self.key, row),
            None => r.remove(&self.ns, &self.key),
        }
    }
}

/// A write applied to the object's storage: the answer, and what KV must be told.
#[derive(Debug)]
pub struct Applied {
    pub response: StoreResponse,
    pub mirror: Mirror,
    pub undo: Option<Undo>,
}

impl Applied {
    fn answer(response: StoreResponse) -> Self {
        Self {
            response,
            mirror: Mirror::Nothing,
            undo: None,
        }
    }

    /// A write done: KV is told `mirror`, unless the namespace is [`object_only`]
    /// (then there is nothing to tell, and nothing to undo).
    fn written(
        response: StoreResponse,
        ns: String,
        key: String,
        mirror: Mirror,
        previous: Option<Row>,
    ) -> Self {
        if object_only(&ns) {
            return Self::answer(response);
        }
        Self {
            response,
            mirror,
            undo: Some(Undo { ns, key, previous }),
        }
    }
}

/// Applies a write (put or delete) to the object's storage; `List` and `Get` are
/// answered by the object directly. Checks the expectation against the object's own
/// version.
pub fn apply<R: Records>(r: &mut R, req: StoreRequest) -> Applied {
    let failed = |message: String| Applied::answer(StoreResponse::Failed { message });
    match req {
        StoreRequest::Put {
            ns,
            key,
            value,
            expect,
        } => {
            let Ok(value) = STANDARD.decode(value.as_bytes()) else {
                return failed("the value is not base64".into());
            };
            let previous = match r.get(&ns, &key) {
                Ok(p) => p,
                Err(e) => return failed(e),
            };
            let current = previous.as_ref().map(|p| p.version);
            if check_expect(&ns, &key, expect.into(), current).is_err() {
                return Applied::answer(conflict_answer(&key, previous));
            }
            let version = match r.next_version() {
                Ok(v) => v,
                Err(e) => return failed(e),
            };
            let row = Row {
                version,
                value: value.clone(),
            };
            if let Err(e) = r.set(&ns, &key, row) {
                return failed(e);
            }
            let mirror = Mirror::Put {
                kv_key: kv_key(&ns, &key),
                value,
                version,
            };
            Applied::written(
                StoreResponse::Written { version },
                ns,
                key,
                mirror,
                previous,
            )
        }
        StoreRequest::Delete { ns, key, expect } => {
            let previous = match r.get(&ns, &key) {
                Ok(p) => p,
                Err(e) => return failed(e),
            };
            let current = previous.as_ref().map(|p| p.version);
            if check_expect(&ns, &key, expect.into(), current).is_err() {
                return Applied::answer(conflict_answer(&key, previous));
            }
            if previous.is_none() {
                return Applied::answer(StoreResponse::Deleted { existed: false });
            }
            if let Err(e) = r.remove(&ns, &key) {
                return failed(e);
            }
            let mirror = Mirror::Delete {
                kv_key: kv_key(&ns, &key),
            };
            Applied::written(
                StoreResponse::Deleted { existed: true },
                ns,
                key,
                mirror,
                previous,
            )
        }
        StoreRequest::List { .. } | StoreRequest::Get { .. } => {
            failed("only puts and deletes are writes".into())
        }
    }
}

/// Answers a [`StoreRequest::Get`] from the object's storage.
pub fn read<R: Records>(r: &mut R, ns: &str, key: &str) -> StoreResponse {
    match r.get(ns, key) {
        Ok(row) => StoreResponse::Found {
            record: row.map(|p| WireRecord {
                key: key.to_string(),
                version: p.version,
                value: STANDARD.encode(&p.value),
            }),
        },
        Err(message) => StoreResponse::Failed { message },
    }
}

fn conflict_answer(key: &str, previous: Option<Row>) -> StoreResponse {
    StoreResponse::Conflict {
        found: previous.as_ref().map(|p| p.version),
        current: previous.map(|p| WireRecord {
            key: key.to_string(),
            version: p.version,
            value: STANDARD.encode(&p.value),
        }),
    }
}

/// The current record a conflict answer carries (`Some(None)`: there is none; `None`:
/// not a conflict).
pub fn conflict_current(resp: &StoreResponse) -> Option<Option<Versioned>> {
    match resp {
        StoreResponse::Conflict { current, .. } => Some(current.as_ref().and_then(|r| {
            let value = STANDARD.decode(r.value.as_bytes()).ok()?;
            Some(Versioned {
                version: r.version,
                value: Bytes::from(value),
            })
        })),
        _ => None,
    }
}

/// The store object's answer to a put, as the `Store` trait returns it.
pub fn put_result(ns: &str, key: &str, expect: Expect, resp: StoreResponse) -> Result<u64, Error> {
    match resp {
        StoreResponse::Written { version } => Ok(version),
        other => Err(unexpected(ns, key, expect, other)),
    }
}

/// The store object's answer to a delete, as the `Store` trait returns it.
pub fn delete_result(
    ns: &str,
    key: &str,
    expect: Expect,
    resp: StoreResponse,
) -> Result<bool, Error> {
    match resp {
        StoreResponse::Deleted { existed } => Ok(existed),
        other => Err(unexpected(ns, key, expect, other)),
    }
}

/// The store object's answer to a get, as the `Store` trait returns it.
pub fn get_result(resp: StoreResponse) -> Result<Option<Versioned>, Error> {
    match resp {
        StoreResponse::Found { record: None } => Ok(None),
        StoreResponse::Found { record: Some(r) } => {
            let value = STANDARD
                .decode(r.value.as_bytes())
                .map_err(|_| Error::internal("the store object sent a value that is not base64"))?;
            Ok(Some(Versioned {
                version: r.version,
                value: Bytes::from(value),
            }))
        }
        StoreResponse::Failed { message } => Err(store_failed(&message)),
        _ => Err(Error::internal(
            "the store object answered a get with something else",
        )),
    }
}

/// The store object's answer to a list, as the `Store` trait returns it.
pub fn list_result(resp: StoreResponse) -> Result<Vec<(String, Versioned)>, Error> {
    match resp {
        StoreResponse::Listed { records } => records
            .into_iter()
            .map(|r| {
                let value = STANDARD.decode(r.value.as_bytes()).map_err(|_| {
                    Error::internal("the store object sent a value that is not base64")
                })?;
                Ok((
                    r.key,
                    Versioned {
                        version: r.version,
                        value: Bytes::from(value),
                    },
                ))
            })
            .collect(),
        StoreResponse::Failed { message } => Err(store_failed(&message)),
        _ => Err(Error::internal(
            "the store object answered a list with something else",
        )),
    }
}

fn unexpected(ns: &str, key: &str, expect: Expect, resp: StoreResponse) -> Error {
    match resp {
        StoreResponse::Conflict { found, .. } => conflict(ns, key, expect, found),
        StoreResponse::Failed { message } => store_failed(&message),
        _ => Error::internal("the store object answered something unexpected"),
    }
}

/// A store failure as the client sees it.
pub fn store_failed(message: &str) -> Error {
    Error::new(
        cng_core::ErrorKind::Unavailable,
        format!("The Worker's store could not complete the request: {message}. Retry shortly."),
    )
    .with_code("store_unavailable")
}

/// A request to a rate-limiter object (one object per key name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HitRequest {
    pub limit: u32,
    /// Unix seconds, from the Worker's clock.
    pub now: u64,
}

/// A rate-limiter object's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HitResponse {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    pub reset: u64,
}

/// Counts one hit in the object's in-memory window (cng-core's fixed one-minute
/// window; the object holds one key, so the key name inside is constant).
pub fn hit(limiter: &RateLimiter, req: &HitRequest) -> HitResponse {
    match limiter.check("key", req.limit, req.now) {
        Ok(s) => HitResponse {
            allowed: true,
            limit: s.limit,
            remaining: s.remaining,
            reset: s.reset,
        },
        Err((_, s)) => HitResponse {
            allowed: false,
            limit: s.limit,
            remaining: s.remaining,
            reset: s.reset,
        },
    }
}

/// The object's answer as the gateway's `Limiter` returns it (the 429 and its headers
/// are cng-core's).
pub fn hit_result(resp: HitResponse, now: u64) -> Result<RateStatus, (Error, RateStatus)> {
    if resp.allowed {
        Ok(RateStatus {
            limit: resp.limit,
            remaining: resp.remaining,
            reset: resp.reset,
        })
    } else {
        Err(rate_limited(resp.limit, now, resp.reset))
    }
}

/// What the Worker assumes when a limiter object cannot be reached: the request is let
/// through (a broken limiter must not take the gateway down), with the full window.
pub fn fail_open(limit: u32, now: u64) -> RateStatus {
    RateStatus {
        limit,
        remaining: limit,
        reset: now - now % 60 + 60,
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        reason = "test code"
    )]

    use super::*;
    use std::collections::BTreeMap;

    #[derive(Default)]
    struct Map {
        rows: BTreeMap<(String, String), Row>,
        counter: u64,
        fail_next_set: bool,
    }

    impl Records for Map {
        fn get(&mut self, ns: &str, key: &str) -> Result<Option<Row>, String> {
            Ok(self.rows.get(&(ns.into(), key.into())).cloned())
        }
        fn set(&mut self, ns: &str, key: &str, row: Row) -> Result<(), String> {
            if std::mem::take(&mut self.fail_next_set) {
                return Err("disk full".into());
            }
            self.rows.insert((ns.into(), key.into()), row);
            Ok(())
        }
        fn remove(&mut self, ns: &str, key: &str) -> Result<(), String> {
            self.rows.remove(&(ns.into(), key.into()));
            Ok(())
        }
        fn next_version(&mut self) -> Result<u64, String> {
            self.counter += 1;
            Ok(self.counter)
        }
    }

    #[test]
    fn kv_keys() {
        assert_eq!(kv_key("config", "gateway"), "GATEWAY_CONFIG");
        assert_eq!(kv_key("config", "other"), "GATEWAY_CONFIG/other");
        assert_eq!(kv_key("keys", "ab12"), "keys/ab12");
        assert_eq!(kv_key("key_names", "app"), "key_names/app");
    }

    #[test]
    fn core_names_match() {
        // The config document's place in the store is cng-core's; the KV key is ours.
        assert_eq!(cng_core::auth::NS_KEYS, "keys");
        assert_eq!(cng_core::auth::NS_KEY_NAMES, "key_names");
    }

    #[test]
    fn compare_and_swap_against_the_objects_versions() {
        let mut m = Map::default();
        let a = apply(
            &mut m,
            StoreRequest::put("keys", "h", b"one", Expect::Absent),
        );
        assert_eq!(a.response, StoreResponse::Written { version: 1 });
        assert_eq!(
            a.mirror,
            Mirror::Put {
                kv_key: "keys/h".into(),
                value: b"one".to_vec(),
                version: 1
            }
        );
        // A second create, and a write based on a stale read, are refused.
        let again = apply(&mut m, StoreRequest::put("keys", "h", b"x", Expect::Absent));
        assert!(matches!(
            again.response,
            StoreResponse::Conflict { found: Some(1), .. }
        ));
        // The conflict carries the current record, for a retry to start from.
        let current = conflict_current(&again.response).unwrap().unwrap();
        assert_eq!((current.version, &current.value[..]), (1, &b"one"[..]));
        assert_eq!(again.mirror, Mirror::Nothing);
        let ok = apply(
            &mut m,
            StoreRequest::put("keys", "h", b"two", Expect::Version(1)),
        );
        assert_eq!(ok.response, StoreResponse::Written { version: 2 });
        let stale = apply(
            &mut m,
            StoreRequest::put("keys", "h", b"lost", Expect::Version(1)),
        );
        assert!(matches!(
            stale.response,
            StoreResponse::Conflict { found: Some(2), .. }
        ));
        assert_eq!(m.rows[&("keys".into(), "h".into())].value, b"two");

        let e = put_result("keys", "h", Expect::Version(1), stale.response).unwrap_err();
        assert_eq!(e.status().as_u16(), 409);
        assert!(e.message().contains("expected version 1, found version 2"));
    }

    #[test]
    fn deletes_and_versions_never_reused() {
        let mut m = Map::default();
        apply(
            &mut m,
            StoreRequest::put("config", "gateway", b"{}", Expect::Any),
        );
        let d = apply(
            &mut m,
            StoreRequest::delete("config", "gateway", Expect::Version(1)),
        );
        assert_eq!(d.response, StoreResponse::Deleted { existed: true });
        assert_eq!(
            d.mirror,
            Mirror::Delete {
                kv_key: "GATEWAY_CONFIG".into()
            }
        );
        let gone = apply(
            &mut m,
            StoreRequest::delete("config", "gateway", Expect::Any),
        );
        assert_eq!(gone.response, StoreResponse::Deleted { existed: false });
        assert_eq!(gone.mirror, Mirror::Nothing);
        let w = apply(
            &mut m,
            StoreRequest::put("config", "gateway", b"{}", Expect::Absent),
        );
        assert_eq!(w.response, StoreResponse::Written { version: 2 });
    }

    #[test]
    fn undo_restores_the_previous_state() {
        let mut m = Map::default();
        apply(&mut m, StoreRequest::put("keys", "h", b"one", Expect::Any));
        let a = apply(&mut m, StoreRequest::put("keys", "h", b"two", Expect::Any));
        a.undo.unwrap().run(&mut m).unwrap();
        assert_eq!(
            m.rows[&("keys".into(), "h".into())],
            Row {
                version: 1,
                value: b"one".to_vec()
            }
        );
        let b = apply(&mut m, StoreRequest::put("keys", "new", b"x", Expect::Any));
        b.undo.unwrap().run(&mut m).unwrap();
        assert!(!m.rows.contains_key(&("keys".into(), "new".into())));
    }

    #[test]
    fn storage_failures_change_nothing() {
        let mut m = Map {
            fail_next_set: true,
            ..Map::default()
        };
        let a = apply(&mut m, StoreRequest::put("keys", "h", b"one", Expect::Any));
        assert!(matches!(a.response, StoreResponse::Failed { .. }));
        assert_eq!(a.mirror, Mirror::Nothing);
        let e = put_result("keys", "h", Expect::Any, a.response).unwrap_err();
        assert_eq!(
            (e.status().as_u16(), e.code()),
            (503, Some("store_unavailable"))
        );
    }

    #[test]
    fn wire_shapes() {
        let r = StoreRequest::put("keys", "h", b"hi", Expect::Version(3));
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"op": "put", "ns": "keys", "key": "h", "value": "aGk=", "expect": {"version": 3}})
        );
        assert_eq!(serde_json::from_value::<StoreRequest>(j).unwrap(), r);
        let listed = StoreResponse::Listed {
            records: vec![WireRecord {
                key: "h".into(),
                version: 4,
                value: "aGk=".into(),
            }],
        };
        let back: StoreResponse =
            serde_json::from_str(&serde_json::to_string(&listed).unwrap()).unwrap();
        let list = list_result(back).unwrap();
        assert_eq!(list[0].0, "h");
        assert_eq!((list[0].1.version, &list[0].1.value[..]), (4, &b"hi"[..]));
    }

    #[test]
    fn counters_live_in_the_object_only() {
        use cng_core::usage::store::namespace;
        assert!(object_only(cng_core::teams::NS_TEAM_USAGE));
        assert!(object_only(&namespace(20_000)));
        assert!(object_only(&namespace(0)));
        for ns in [
            "keys",
            "key_names",
            "config",
            "teams",
            "team_tokens",
            "img",
            "usage-",
            "usage-x1",
            "usage",
        ] {
            assert!(!object_only(ns), "{ns}");
        }
    }

    #[test]
    fn object_only_writes_are_not_mirrored_but_still_compare_and_swap() {
        let mut m = Map::default();
        for ns in ["team_usage", "usage-20000"] {
            let a = apply(
                &mut m,
                StoreRequest::put(ns, "green:1", b"1", Expect::Absent),
            );
            let StoreResponse::Written { version } = a.response else {
                panic!("{:?}", a.response)
            };
            assert_eq!((a.mirror, a.undo), (Mirror::Nothing, None));
            // Two isolates that read the same spend: the second write loses.
            let first = apply(
                &mut m,
                StoreRequest::put(ns, "green:1", b"2", Expect::Version(version)),
            );
            assert!(matches!(first.response, StoreResponse::Written { .. }));
            let second = apply(
                &mut m,
                StoreRequest::put(ns, "green:1", b"2", Expect::Version(version)),
            );
            assert!(matches!(second.response, StoreResponse::Conflict { .. }));
            let d = apply(&mut m, StoreRequest::delete(ns, "green:1", Expect::Any));
            assert_eq!(d.response, StoreResponse::Deleted { existed: true });
            assert_eq!((d.mirror, d.undo), (Mirror::Nothing, None));
        }
        // Other namespaces are still mirrored.
        let k = apply(
            &mut m,
            StoreRequest::put("teams", "green", b"{}", Expect::Any),
        );
        assert!(matches!(k.mirror, Mirror::Put { .. }) && k.undo.is_some());
    }

    #[test]
    fn gets_read_the_objects_record() {
        let mut m = Map::default();
        apply(
            &mut m,
            StoreRequest::put("team_usage", "t:1", b"41", Expect::Any),
        );
        let req = StoreRequest::get("team_usage", "t:1");
        let j = serde_json::to_value(&req).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"op": "get", "ns": "team_usage", "key": "t:1"})
        );
        let StoreRequest::Get { ns, key } = serde_json::from_value(j).unwrap() else {
            panic!("not a get")
        };
        // Over the wire and back, as KvStore sees it.
        let resp: StoreResponse =
            serde_json::from_str(&serde_json::to_string(&read(&mut m, &ns, &key)).unwrap())
                .unwrap();
        let got = get_result(resp).unwrap().unwrap();
        assert_eq!((got.version, &got.value[..]), (1, &b"41"[..]));
        assert_eq!(get_result(read(&mut m, "team_usage", "t:2")).unwrap(), None);
        // A get is not a write.
        let a = apply(&mut m, StoreRequest::get("team_usage", "t:1"));
        assert!(matches!(a.response, StoreResponse::Failed { .. }));
        let e = get_result(StoreResponse::Failed {
            message: "storage down".into(),
        })
        .unwrap_err();
        assert_eq!(
            (e.status().as_u16(), e.code()),
            (503, Some("store_unavailable"))
        );
        assert!(get_result(StoreResponse::Deleted { existed: true }).is_err());
    }

    #[test]
    fn rate_limit_round_trip() {
        let l = RateLimiter::default();
        let req = HitRequest { limit: 2, now: 125 };
        let first = hit(&l, &req);
        assert_eq!(
            first,
            HitResponse {
                allowed: true,
                limit: 2,
                remaining: 1,
                reset: 180
            }
        );
        assert!(hit_result(first, 125).is_ok());
        hit(&l, &req);
        let third = hit(&l, &req);
        assert!(!third.allowed);
        let (e, s) = hit_result(third, 125).unwrap_err();
        assert_eq!(
            (e.status().as_u16(), e.retry_after(), s.remaining),
            (429, Some(55), 0)
        );
        assert_eq!(
            fail_open(5, 125),
            RateStatus {
                limit: 5,
                remaining: 5,
                reset: 180
            }
        );
    }
}
