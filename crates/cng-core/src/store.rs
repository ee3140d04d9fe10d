//! Where cng keeps keys and configuration: a small versioned key-value interface.
//!
//! Every record carries a version; writes say what they expect to find
//! ([`Expect`]) and fail with 409 `Conflict` otherwise. That is how two admins editing
//! the config at once cannot silently overwrite each other (compare-and-swap), and how
//! a key name is reserved exactly once. Implementations: [`MemoryStore`] here (tests,
//! embedding), an embedded on-disk store in the native server, KV in the Worker.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;

use bytes::Bytes;

use crate::backend::MaybeSend;
use crate::error::{Error, ErrorKind};

/// What a write expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Write whatever is there.
    Any,
    /// Write only if the record does not exist.
    Absent,
    /// Write only if the record exists at this version.
    Version(u64),
}

/// A stored value and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub version: u64,
    pub value: Bytes,
}

/// The storage interface (see the module docs). Namespaces are short fixed strings
/// (`keys`, `key_names`, `config`); keys are at most 512 bytes.
pub trait Store {
    fn get(
        &self,
        ns: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<Versioned>, Error>> + MaybeSend;

    /// Writes `value`; returns the new version, or a `Conflict` error when `expect`
    /// does not hold.
    fn put(
        &self,
        ns: &str,
        key: &str,
        value: Bytes,
        expect: Expect,
    ) -> impl Future<Output = Result<u64, Error>> + MaybeSend;

    /// Deletes; returns whether a record was there. `Conflict` when `expect` fails.
    fn delete(
        &self,
        ns: &str,
        key: &str,
        expect: Expect,
    ) -> impl Future<Output = Result<bool, Error>> + MaybeSend;

    /// Every record of a namespace, sorted by key.
    fn list(
        &self,
        ns: &str,
    ) -> impl Future<Output = Result<Vec<(String, Versioned)>, Error>> + MaybeSend;
}

/// The conflict error every store returns when an [`Expect`] fails.
pub fn conflict(ns: &str, key: &str, expect: Expect, found: Option<u64>) -> Error {
    let found = found.map_or("no record".to_string(), |v| format!("version {v}"));
    let wanted = match expect {
        Expect::Any => "any".to_string(),
        Expect::Absent => "no record".to_string(),
        Expect::Version(v) => format!("version {v}"),
    };
    Error::new(
        ErrorKind::Conflict,
        format!("`{ns}/{key}` changed: expected {wanted}, found {found}. Read it again and retry."),
    )
    .with_code("conflict")
}

/// Checks `expect` against the current version (shared by every implementation).
pub fn check_expect(
    ns: &str,
    key: &str,
    expect: Expect,
    current: Option<u64>,
) -> Result<(), Error> {
    let ok = match (expect, current) {
        (Expect::Any, _) => true,
        (Expect::Absent, None) => true,
        (Expect::Version(v), Some(c)) => v == c,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(conflict(ns, key, expect, current))
    }
}

/// An in-memory store: tests, and services that embed cng with their own persistence.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    next_version: u64,
    records: BTreeMap<(String, String), Versioned>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, MemoryInner>, Error> {
        self.inner
            .lock()
            .map_err(|_| Error::internal("the in-memory store's lock is poisoned"))
    }
}

impl Store for MemoryStore {
    async fn get(&self, ns: &str, key: &str) -> Result<Option<Versioned>, Error> {
        Ok(self
            .lock()?
            .records
            .get(&(ns.to_string(), key.to_string()))
            .cloned())
    }

    async fn put(&self, ns: &str, key: &str, value: Bytes, expect: Expect) -> Result<u64, Error> {
        let mut inner = self.lock()?;
        let k = (ns.to_string(), key.to_string());
        check_expect(ns, key, expect, inner.records.get(&k).map(|v| v.version))?;
        inner.next_version += 1;
        let version = inner.next_version;
        inner.records.insert(k, Versioned { version, value });
        Ok(version)
    }

    async fn delete(&self, ns: &str, key: &str, expect: Expect) -> Result<bool, Error> {
        let mut inner = self.lock()?;
        let k = (ns.to_string(), key.to_string());
        check_expect(ns, key, expect, inner.records.get(&k).map(|v| v.version))?;
        Ok(inner.records.remove(&k).is_some())
    }

    async fn list(&self, ns: &str) -> Result<Vec<(String, Versioned)>, Error> {
        Ok(self
            .lock()?
            .records
            .iter()
            .filter(|((n, _), _)| n == ns)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[test]
    fn compare_and_swap() {
        let s = MemoryStore::new();
        let b = |t: &'static str| Bytes::from_static(t.as_bytes());
        let v1 = s
            .put("config", "c", b("a"), Expect::Absent)
            .now_or_never()
            .unwrap()
            .unwrap();
        let again = s
            .put("config", "c", b("x"), Expect::Absent)
            .now_or_never()
            .unwrap();
        assert_eq!(again.unwrap_err().status().as_u16(), 409);
        let v2 = s
            .put("config", "c", b("b"), Expect::Version(v1))
            .now_or_never()
            .unwrap()
            .unwrap();
        let stale = s
            .put("config", "c", b("c"), Expect::Version(v1))
            .now_or_never()
            .unwrap();
        assert!(stale.is_err(), "a stale version must not overwrite");
        let got = s
            .get("config", "c")
            .now_or_never()
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!((got.version, got.value), (v2, b("b")));
        assert!(
            s.delete("config", "c", Expect::Version(v2))
                .now_or_never()
                .unwrap()
                .unwrap()
        );
        assert!(s.list("config").now_or_never().unwrap().unwrap().is_empty());
    }
}
