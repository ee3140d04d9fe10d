//! The native server's store: SQLite, embedded (no service to run), crash-safe.
//!
//! SQLite rather than a single-process database because `cng keys create` and
//! `cng keys revoke` must work while the server runs: SQLite in WAL mode lets several
//! processes read and write one file safely, and a revoked key stops working on the
//! server's very next request (every lookup reads the file; nothing is cached).
//! Versions come from one counter for the whole database, so a record that is
//! deleted and created again never reuses a version (no ABA in compare-and-swap).

use std::path::Path;
use std::sync::Mutex;
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
        Ok(Self {
            conn: Mutex::new(conn),
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
        self.with(|conn| {
            // Cached: every authenticated request runs this; parsing the SQL each time
            // was ~5% of the server's CPU per request (docs/performance.md).
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
