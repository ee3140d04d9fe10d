//! The native server's store: SQLite, embedded (no service to run), crash-safe.
//!
//! SQLite rather than a single-process database because `cng keys create` and
//! `cng keys revoke` must work while the server runs: SQLite in WAL mode lets several
//! processes read and write one file safely, and a revoked key stops working on the
//! server's very next request.
//! Versions come from one counter for the whole database, so a record that is
//! deleted and created again never reuses a version (no ABA in compare-and-swap).
//!
//! Reads are served from a per-process cache while the database is unchanged
//! ([`ChangeStamp`]): every authenticated request looks up its key and the config
//! document, and a SQLite read transaction costs four `fcntl` lock calls and the one
//! connection's mutex (docs/performance.md). Whether anything changed is read, on
//! every lookup, from the WAL index that every SQLite connection of every process
//! updates when it commits, so a key revoked by `cng keys revoke` in another process
//! is refused on the very next request, as before.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use cng_core::error::Error;
use cng_core::store::{Expect, Store, Versioned, check_expect};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

/// The file under the data dir.
pub const DB_FILE: &str = "cng.sqlite3";

/// SQLite-backed [`Store`].
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// The WAL index (`cng.sqlite3-shm`), read for [`ChangeStamp`]s; `None` when it
    /// cannot be read (then nothing is cached).
    shm: Option<File>,
    cache: RwLock<Cache>,
}

/// Values cached per entry at most; larger ones (stored images) are always read
/// from the file.
const MAX_CACHED_VALUE: usize = 16 * 1024;
/// Entries cached at most; the cache starts over when full (unknown keys sent by a
/// client are cached too, as absent).
const MAX_CACHED_ENTRIES: usize = 4096;

/// The header of SQLite's WAL index: 48 bytes that change with every commit by any
/// connection of any process (`iChange`, `mxFrame`, the salts; see SQLite's
/// "walformat" document). SQLite keeps two copies, the second written first; a
/// reader that finds them equal has a consistent header, which is how SQLite's own
/// readers check it without a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ChangeStamp([u8; WAL_INDEX_HEADER]);

const WAL_INDEX_HEADER: usize = 48;
/// Offset of `isInit` in the header: 1 once the index is built.
const WAL_INDEX_IS_INIT: usize = 12;

impl ChangeStamp {
    /// The current stamp, or `None` when the index cannot be read or a commit was
    /// writing it at that moment (the caller then reads the database).
    fn read(shm: &File) -> Option<Self> {
        let mut both = [0u8; 2 * WAL_INDEX_HEADER];
        read_at(shm, &mut both)?;
        let (first, second) = both.split_at(WAL_INDEX_HEADER);
        if first != second || first[WAL_INDEX_IS_INIT] != 1 || !checksum_ok(first) {
            return None;
        }
        let mut stamp = [0u8; WAL_INDEX_HEADER];
        stamp.copy_from_slice(first);
        Some(Self(stamp))
    }
}

/// SQLite's check of a WAL index header: its last 8 bytes are a checksum of the
/// first 40 (native byte order, as SQLite writes it in shared memory).
fn checksum_ok(header: &[u8]) -> bool {
    let word = |i: usize| {
        let mut w = [0u8; 4];
        w.copy_from_slice(&header[i * 4..i * 4 + 4]);
        u32::from_ne_bytes(w)
    };
    let (mut s1, mut s2) = (0u32, 0u32);
    for i in (0..10).step_by(2) {
        s1 = s1.wrapping_add(word(i)).wrapping_add(s2);
        s2 = s2.wrapping_add(word(i + 1)).wrapping_add(s1);
    }
    s1 == word(10) && s2 == word(11)
}

#[cfg(unix)]
fn read_at(f: &File, buf: &mut [u8]) -> Option<()> {
    std::os::unix::fs::FileExt::read_exact_at(f, buf, 0).ok()
}

#[cfg(not(unix))]
fn read_at(_: &File, _: &mut [u8]) -> Option<()> {
    None
}

/// What `get` returned while the database had one [`ChangeStamp`].
#[derive(Default)]
struct Cache {
    stamp: Option<ChangeStamp>,
    /// Namespace → key → value (`None`: absent).
    entries: HashMap<String, HashMap<String, Option<Versioned>>>,
    len: usize,
}

impl Cache {
    fn get(&self, stamp: ChangeStamp, ns: &str, key: &str) -> Option<Option<Versioned>> {
        if self.stamp != Some(stamp) {
            return None;
        }
        self.entries.get(ns)?.get(key).cloned()
    }

    /// Records what a read found; `stamp` was read *before* the read, so a commit
    /// in between leaves the entry stale under an old stamp, never under the new one.
    fn put(&mut self, stamp: ChangeStamp, ns: &str, key: &str, value: &Option<Versioned>) {
        if value
            .as_ref()
            .is_some_and(|v| v.value.len() > MAX_CACHED_VALUE)
        {
            return;
        }
        if self.stamp != Some(stamp) || self.len >= MAX_CACHED_ENTRIES {
            self.entries.clear();
            self.len = 0;
            self.stamp = Some(stamp);
        }
        let slot = self.entries.entry(ns.to_string()).or_default();
        if slot.insert(key.to_string(), value.clone()).is_none() {
            self.len += 1;
        }
    }
}

fn db_error(e: rusqlite::Error) -> Error {
    Error::internal(format!("the data store failed: {e}"))
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            Error::internal(format!(
                "cannot create the data dir {}: {e}",
                data_dir.display()
            ))
        })?;
        let conn = Connection::open(data_dir.join(DB_FILE)).map_err(db_error)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(db_error)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_error)?;
        // FULL: a write acknowledged to a client survives power loss, not only a crash.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db_error)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS records (
                 ns TEXT NOT NULL, key TEXT NOT NULL,
                 version INTEGER NOT NULL, value BLOB NOT NULL,
                 PRIMARY KEY (ns, key)) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY CHECK (id = 0), v INTEGER NOT NULL);
             INSERT OR IGNORE INTO counter (id, v) VALUES (0, 0);",
        )
        .map_err(db_error)?;
        // Exists from here on: WAL mode and a write made SQLite create it, and this
        // connection keeps it (SQLite removes it only with the last connection).
        let shm = File::open(data_dir.join(format!("{DB_FILE}-shm")))
            .ok()
            .filter(|f| ChangeStamp::read(f).is_some());
        Ok(Self {
            conn: Mutex::new(conn),
            shm,
            cache: RwLock::new(Cache::default()),
        })
    }

    /// Whether reads can be served from the cache (the WAL index is readable).
    pub fn caches_reads(&self) -> bool {
        self.shm.is_some()
    }

    fn stamp(&self) -> Option<ChangeStamp> {
        self.shm.as_ref().and_then(ChangeStamp::read)
    }

    fn read_record(&self, ns: &str, key: &str) -> Result<Option<Versioned>, Error> {
        self.with(|conn| {
            // Cached: parsing the SQL each time was ~5% of the server's CPU per
            // request (docs/performance.md).
            conn.prepare_cached("SELECT version, value FROM records WHERE ns = ?1 AND key = ?2")
                .map_err(db_error)?
                .query_row(params![ns, key], |r| {
                    Ok(Versioned {
                        version: r.get::<_, i64>(0)? as u64,
                        value: Bytes::from(r.get::<_, Vec<u8>>(1)?),
                    })
                })
                .optional()
                .map_err(db_error)
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T, Error>) -> Result<T, Error> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| Error::internal("the data store's lock is poisoned"))?;
        f(&mut conn)
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.with(|conn| {
            // IMMEDIATE: take the write lock up front, so the check and the write of a
            // compare-and-swap see the same state even with another process writing.
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_error)?;
            let out = f(&tx)?;
            tx.commit().map_err(db_error)?;
            Ok(out)
        })
    }
}

fn current(tx: &rusqlite::Transaction<'_>, ns: &str, key: &str) -> Result<Option<u64>, Error> {
    tx.query_row(
        "SELECT version FROM records WHERE ns = ?1 AND key = ?2",
        params![ns, key],
        |r| r.get::<_, i64>(0),
    )
    .optional()
    .map(|v| v.map(|v| v as u64))
    .map_err(db_error)
}

impl Store for SqliteStore {
    async fn get(&self, ns: &str, key: &str) -> Result<Option<Versioned>, Error> {
        let Some(stamp) = self.stamp() else {
            return self.read_record(ns, key);
        };
        if let Ok(cache) = self.cache.read() {
            if let Some(hit) = cache.get(stamp, ns, key) {
                return Ok(hit);
            }
        }
        let found = self.read_record(ns, key)?;
        if let Ok(mut cache) = self.cache.write() {
            cache.put(stamp, ns, key, &found);
        }
        Ok(found)
    }

    async fn put(&self, ns: &str, key: &str, value: Bytes, expect: Expect) -> Result<u64, Error> {
        self.write(|tx| {
            check_expect(ns, key, expect, current(tx, ns, key)?)?;
            let version: i64 = tx
                .query_row("UPDATE counter SET v = v + 1 WHERE id = 0 RETURNING v", [], |r| r.get(0))
                .map_err(db_error)?;
            tx.execute(
                "INSERT INTO records (ns, key, version, value) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (ns, key) DO UPDATE SET version = excluded.version, value = excluded.value",
                params![ns, key, version, value.as_ref()],
            )
            .map_err(db_error)?;
            Ok(version as u64)
        })
    }

    async fn delete(&self, ns: &str, key: &str, expect: Expect) -> Result<bool, Error> {
        self.write(|tx| {
            let found = current(tx, ns, key)?;
            check_expect(ns, key, expect, found)?;
            tx.execute(
                "DELETE FROM records WHERE ns = ?1 AND key = ?2",
                params![ns, key],
            )
            .map_err(db_error)?;
            Ok(found.is_some())
        })
    }

    async fn list(&self, ns: &str) -> Result<Vec<(String, Versioned)>, Error> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare("SELECT key, version, value FROM records WHERE ns = ?1 ORDER BY key")
                .map_err(db_error)?;
            let rows = stmt
                .query_map(params![ns], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        Versioned {
                            version: r.get::<_, i64>(1)? as u64,
                            value: Bytes::from(r.get::<_, Vec<u8>>(2)?),
                        },
                    ))
                })
                .map_err(db_error)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_error)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Set in the child process of `a_write_by_another_process_is_read_next`.
    const CHILD_DIR: &str = "CNG_STORE_TEST_CHILD_DIR";

    #[tokio::test]
    async fn reads_are_cached_and_never_outlive_a_write_of_another_handle() {
        let dir = tempfile::tempdir().unwrap();
        let a = SqliteStore::open(dir.path()).unwrap();
        let b = SqliteStore::open(dir.path()).unwrap();
        assert!(
            a.caches_reads(),
            "the WAL index is readable on this platform"
        );
        let stamp = a.stamp().unwrap();
        assert_eq!(a.stamp(), Some(stamp), "no commit, same stamp");
        let mut expected: Option<Bytes> = None;
        for i in 0..300u32 {
            // `a` reads (and caches) twice, `b` writes, `a` must see it at once.
            for _ in 0..2 {
                let got = a.get("keys", "k").await.unwrap().map(|v| v.value);
                assert_eq!(got, expected, "round {i}");
            }
            if i % 3 == 2 {
                b.delete("keys", "k", Expect::Any).await.unwrap();
                expected = None;
            } else {
                let v = Bytes::from(format!("value {i}"));
                b.put("keys", "k", v.clone(), Expect::Any).await.unwrap();
                expected = Some(v);
            }
            assert_ne!(a.stamp(), Some(stamp), "a commit changes the stamp");
        }
        // A write through the same handle is read back too.
        a.put("keys", "k", Bytes::from_static(b"mine"), Expect::Any)
            .await
            .unwrap();
        assert_eq!(
            &a.get("keys", "k").await.unwrap().unwrap().value[..],
            b"mine"
        );
    }

    #[tokio::test]
    async fn a_write_by_another_process_is_read_next() {
        if std::env::var_os(CHILD_DIR).is_some() {
            return; // this is the child; it only runs `child_writes`
        }
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        for round in 0..5u32 {
            let before = store.get("keys", "revoked").await.unwrap();
            assert_eq!(before.is_some(), round % 2 == 1, "round {round}");
            let status = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "store::tests::child_writes",
                    "--test-threads",
                    "1",
                ])
                .env(CHILD_DIR, dir.path())
                .env("CNG_STORE_TEST_ROUND", round.to_string())
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(status.success());
            let after = store.get("keys", "revoked").await.unwrap();
            assert_eq!(
                after.is_some(),
                round % 2 == 0,
                "round {round}: the other process's write is seen"
            );
        }
    }

    /// The other process of `a_write_by_another_process_is_read_next`: creates the
    /// record in even rounds, deletes it in odd ones. A no-op in a normal test run.
    #[tokio::test]
    async fn child_writes() {
        let Some(dir) = std::env::var_os(CHILD_DIR) else {
            return;
        };
        let round: u32 = std::env::var("CNG_STORE_TEST_ROUND")
            .unwrap()
            .parse()
            .unwrap();
        let store = SqliteStore::open(Path::new(&dir)).unwrap();
        if round % 2 == 0 {
            store
                .put("keys", "revoked", Bytes::from_static(b"{}"), Expect::Absent)
                .await
                .unwrap();
        } else {
            assert!(store.delete("keys", "revoked", Expect::Any).await.unwrap());
        }
    }

    #[test]
    fn torn_or_foreign_headers_are_not_stamps() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let shm = dir.path().join(format!("{DB_FILE}-shm"));
        let mut header = std::fs::read(&shm).unwrap();
        header.truncate(2 * WAL_INDEX_HEADER);
        let valid = ChangeStamp::read(&File::open(&shm).unwrap()).unwrap();
        assert_eq!(&valid.0[..], &header[..WAL_INDEX_HEADER]);
        let check = |bytes: &[u8]| {
            let path = dir.path().join("copy");
            std::fs::write(&path, bytes).unwrap();
            ChangeStamp::read(&File::open(&path).unwrap())
        };
        assert_eq!(check(&header), Some(valid));
        // The two copies differ (a commit was writing): not a stamp.
        let mut torn = header.clone();
        torn[WAL_INDEX_HEADER + 16] ^= 1;
        assert_eq!(check(&torn), None);
        // Both copies changed alike but the checksum does not match.
        let mut forged = header.clone();
        forged[16] ^= 1;
        forged[WAL_INDEX_HEADER + 16] ^= 1;
        assert_eq!(check(&forged), None);
        // Too short, or not built yet.
        assert_eq!(check(&header[..50]), None);
        assert_eq!(check(&[0u8; 96]), None);
        drop(store);
    }

    #[tokio::test]
    async fn cas_across_two_handles_like_two_processes() {
        let dir = tempfile::tempdir().unwrap();
        let a = SqliteStore::open(dir.path()).unwrap();
        let b = SqliteStore::open(dir.path()).unwrap();
        let v1 = a
            .put("config", "c", Bytes::from_static(b"1"), Expect::Absent)
            .await
            .unwrap();
        assert_eq!(b.get("config", "c").await.unwrap().unwrap().version, v1);
        let v2 = b
            .put("config", "c", Bytes::from_static(b"2"), Expect::Version(v1))
            .await
            .unwrap();
        let stale = a
            .put("config", "c", Bytes::from_static(b"3"), Expect::Version(v1))
            .await;
        assert_eq!(stale.unwrap_err().status().as_u16(), 409);
        assert!(a.delete("config", "c", Expect::Version(v2)).await.unwrap());
        // Re-created: never the old version again.
        let v3 = a
            .put("config", "c", Bytes::from_static(b"4"), Expect::Absent)
            .await
            .unwrap();
        assert!(v3 > v2);
        assert_eq!(a.list("config").await.unwrap().len(), 1);
        drop((a, b));
        let again = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(
            &again.get("config", "c").await.unwrap().unwrap().value[..],
            b"4"
        );
    }
}
