//! [`KvStore`]: cng-core's versioned [`Store`] over Workers KV, with every write going
//! through the [`CngStore`] Durable Object (see [`crate::protocol`] for why and how).
//! Records of the [object-only](protocol::object_only) namespaces (usage counters, team
//! spend) are read from the object too: KV never holds them.

use std::cell::RefCell;
use std::collections::HashMap;

use bytes::Bytes;
use cng_core::store::{Expect, Store, Versioned};
use cng_core::{Error, ErrorKind};
use wasm_bindgen::JsValue;
use worker::{
    DurableObject, Env, Method, ObjectNamespace, Request, RequestInit, Response, SqlStorage,
    SqlStorageValue, State, durable_object,
};

use crate::protocol::{
    self, KvMeta, Mirror, Records, Row, STORE_OBJECT, StoreRequest, StoreResponse, WireRecord,
    kv_key, object_only,
};
use crate::settings::{KV_BINDING, STORE_BINDING};

fn missing(binding: &str, what: &str) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!(
            "This Worker has no {what} bound as `{binding}`; add it to wrangler.toml \
             (see docs/worker.md)."
        ),
    )
    .with_code("store_unavailable")
}

/// Keys and config in KV; writes through the store object.
///
/// It reads its own writes: a record written (or deleted) during a request, or found by
/// the store object when a write conflicted, is answered from memory afterwards, so a
/// create followed by an update in the same request never sees KV's older copy, and a
/// compare-and-swap retry after a 409 starts from the current version.
pub struct KvStore {
    kv: Option<worker::KvStore>,
    writer: Option<ObjectNamespace>,
    written: RefCell<HashMap<(String, String), Option<Versioned>>>,
}

impl KvStore {
    pub fn new(env: &Env) -> Self {
        Self {
            kv: env.kv(KV_BINDING).ok(),
            writer: env.durable_object(STORE_BINDING).ok(),
            written: RefCell::new(HashMap::new()),
        }
    }

    /// Forgets what this store wrote (a pooled gateway starts each request afresh).
    pub fn forget_writes(&self) {
        self.written.borrow_mut().clear();
    }

    fn remember(&self, ns: &str, key: &str, record: Option<Versioned>) {
        // Object-only records are read from the object, which is never stale (and the
        // isolate's usage store would otherwise remember every counter it wrote).
        if object_only(ns) {
            return;
        }
        self.written
            .borrow_mut()
            .insert((ns.to_string(), key.to_string()), record);
    }

    async fn call(&self, req: &StoreRequest) -> Result<StoreResponse, Error> {
        let ns = self
            .writer
            .as_ref()
            .ok_or_else(|| missing(STORE_BINDING, "Durable Object namespace"))?;
        let failed = |e: worker::Error| protocol::store_failed(&e.to_string());
        let stub = ns.get_by_name(STORE_OBJECT).map_err(failed)?;
        let body = serde_json::to_string(req)
            .map_err(|_| Error::internal("a store request could not be serialised"))?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_body(Some(JsValue::from_str(&body)));
        let request = Request::new_with_init("https://cng-store/", &init).map_err(failed)?;
        let mut resp = stub.fetch_with_request(request).await.map_err(failed)?;
        let text = resp.text().await.map_err(failed)?;
        serde_json::from_str(&text)
            .map_err(|_| protocol::store_failed("the store object's answer is unreadable"))
    }
}

impl Store for KvStore {
    async fn get(&self, ns: &str, key: &str) -> Result<Option<Versioned>, Error> {
        if object_only(ns) {
            return protocol::get_result(self.call(&StoreRequest::get(ns, key)).await?);
        }
        if let Some(mine) = self
            .written
            .borrow()
            .get(&(ns.to_string(), key.to_string()))
        {
            return Ok(mine.clone());
        }
        let kv = self
            .kv
            .as_ref()
            .ok_or_else(|| missing(KV_BINDING, "KV namespace"))?;
        let (value, meta) = kv
            .get(&kv_key(ns, key))
            .bytes_with_metadata::<KvMeta>()
            .await
            .map_err(|e| {
                Error::new(ErrorKind::Unavailable, format!("KV could not be read: {e}"))
                    .with_code("store_unavailable")
            })?;
        // An entry written by hand (without metadata) reads as version 0; the store
        // object does not know it, so a compare-and-swap on it fails rather than guess.
        Ok(value.map(|v| Versioned {
            version: meta.map_or(0, |m| m.v),
            value: Bytes::from(v),
        }))
    }

    async fn put(&self, ns: &str, key: &str, value: Bytes, expect: Expect) -> Result<u64, Error> {
        let resp = self
            .call(&StoreRequest::put(ns, key, &value, expect))
            .await?;
        if let Some(current) = protocol::conflict_current(&resp) {
            // A retry (read, then write again) starts from the object's record, not
            // from KV's possibly older copy.
            self.remember(ns, key, current);
        }
        let version = protocol::put_result(ns, key, expect, resp)?;
        self.remember(ns, key, Some(Versioned { version, value }));
        Ok(version)
    }

    async fn delete(&self, ns: &str, key: &str, expect: Expect) -> Result<bool, Error> {
        let resp = self.call(&StoreRequest::delete(ns, key, expect)).await?;
        if let Some(current) = protocol::conflict_current(&resp) {
            self.remember(ns, key, current);
        }
        let existed = protocol::delete_result(ns, key, expect, resp)?;
        self.remember(ns, key, None);
        Ok(existed)
    }

    async fn list(&self, ns: &str) -> Result<Vec<(String, Versioned)>, Error> {
        let resp = self.call(&StoreRequest::List { ns: ns.into() }).await?;
        protocol::list_result(resp)
    }
}

/// The one writer: versions in its SQLite storage, each write mirrored to KV before it
/// is acknowledged, except object-only records, which it alone holds (see
/// [`crate::protocol`]).
#[durable_object]
pub struct CngStore {
    state: State,
    env: Env,
}

/// [`Records`] over the object's SQLite storage (synchronous calls).
struct SqlRecords {
    sql: SqlStorage,
}

fn sql_err(e: worker::Error) -> String {
    format!("the store object's storage failed: {e}")
}

impl SqlRecords {
    fn open(sql: SqlStorage) -> Result<Self, String> {
        for stmt in [
            "CREATE TABLE IF NOT EXISTS records (ns TEXT NOT NULL, key TEXT NOT NULL, \
             version INTEGER NOT NULL, value BLOB NOT NULL, PRIMARY KEY (ns, key))",
            "CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY CHECK (id = 0), \
             v INTEGER NOT NULL)",
            "INSERT OR IGNORE INTO counter (id, v) VALUES (0, 0)",
        ] {
            sql.exec(stmt, None).map_err(sql_err)?;
        }
        Ok(Self { sql })
    }

    fn rows(
        &self,
        query: &str,
        args: Vec<SqlStorageValue>,
    ) -> Result<Vec<Vec<SqlStorageValue>>, String> {
        let cursor = self.sql.exec(query, args).map_err(sql_err)?;
        cursor.raw().collect::<Result<Vec<_>, _>>().map_err(sql_err)
    }

    fn list(&self, ns: &str) -> Result<Vec<WireRecord>, String> {
        use base64::Engine as _;
        let rows = self.rows(
            "SELECT key, version, value FROM records WHERE ns = ? ORDER BY key",
            vec![ns.into()],
        )?;
        rows.into_iter()
            .map(|row| match row.as_slice() {
                [
                    SqlStorageValue::String(key),
                    version,
                    SqlStorageValue::Blob(value),
                ] => Ok(WireRecord {
                    key: key.clone(),
                    version: int(version)?,
                    value: base64::engine::general_purpose::STANDARD.encode(value),
                }),
                _ => Err("a stored row has an unexpected shape".to_string()),
            })
            .collect()
    }
}

fn int(v: &SqlStorageValue) -> Result<u64, String> {
    match v {
        SqlStorageValue::Integer(i) => u64::try_from(*i).map_err(|_| "a negative version".into()),
        SqlStorageValue::Float(f) if *f >= 0.0 => Ok(*f as u64),
        _ => Err("a version that is not a number".into()),
    }
}

fn version_value(v: u64) -> SqlStorageValue {
    SqlStorageValue::Integer(i64::try_from(v).unwrap_or(i64::MAX))
}

impl Records for SqlRecords {
    fn get(&mut self, ns: &str, key: &str) -> Result<Option<Row>, String> {
        let rows = self.rows(
            "SELECT version, value FROM records WHERE ns = ? AND key = ?",
            vec![ns.into(), key.into()],
        )?;
        match rows.into_iter().next() {
            None => Ok(None),
            Some(row) => match row.as_slice() {
                [version, SqlStorageValue::Blob(value)] => Ok(Some(Row {
                    version: int(version)?,
                    value: value.clone(),
                })),
                _ => Err("a stored row has an unexpected shape".into()),
            },
        }
    }

    fn set(&mut self, ns: &str, key: &str, row: Row) -> Result<(), String> {
        self.rows(
            "INSERT OR REPLACE INTO records (ns, key, version, value) VALUES (?, ?, ?, ?)",
            vec![
                ns.into(),
                key.into(),
                version_value(row.version),
                SqlStorageValue::Blob(row.value),
            ],
        )
        .map(drop)
    }

    fn remove(&mut self, ns: &str, key: &str) -> Result<(), String> {
        self.rows(
            "DELETE FROM records WHERE ns = ? AND key = ?",
            vec![ns.into(), key.into()],
        )
        .map(drop)
    }

    fn next_version(&mut self) -> Result<u64, String> {
        let rows = self.rows(
            "UPDATE counter SET v = v + 1 WHERE id = 0 RETURNING v",
            vec![],
        )?;
        match rows.first().and_then(|r| r.first()) {
            Some(v) => int(v),
            None => Err("the version counter is missing".into()),
        }
    }
}

/// Applies one write and mirrors it to KV; undoes it if KV refuses.
async fn write_through(
    sql: SqlStorage,
    kv: Option<worker::KvStore>,
    req: StoreRequest,
) -> StoreResponse {
    let mut records = match SqlRecords::open(sql) {
        Ok(r) => r,
        Err(message) => return StoreResponse::Failed { message },
    };
    let applied = protocol::apply(&mut records, req);
    let mirrored = match (&applied.mirror, &kv) {
        (Mirror::Nothing, _) => Ok(()),
        (_, None) => Err(format!(
            "the store object has no KV namespace bound as `{KV_BINDING}`"
        )),
        (
            Mirror::Put {
                kv_key,
                value,
                version,
            },
            Some(kv),
        ) => {
            match kv
                .put_bytes(kv_key, value)
                .and_then(|p| p.metadata(KvMeta { v: *version }))
            {
                Ok(put) => put
                    .execute()
                    .await
                    .map_err(|e| format!("KV refused the write: {e}")),
                Err(e) => Err(format!("KV refused the write: {e}")),
            }
        }
        (Mirror::Delete { kv_key }, Some(kv)) => kv
            .delete(kv_key)
            .await
            .map_err(|e| format!("KV refused the delete: {e}")),
    };
    match mirrored {
        Ok(()) => applied.response,
        Err(message) => {
            if let Some(undo) = applied.undo {
                if let Err(e) = undo.run(&mut records) {
                    worker::console_error!("cng store: undo after a failed KV write failed: {e}");
                }
            }
            StoreResponse::Failed { message }
        }
    }
}

impl DurableObject for CngStore {
    fn new(state: State, env: Env) -> Self {
        Self { state, env }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let text = req.text().await?;
        let Ok(request) = serde_json::from_str::<StoreRequest>(&text) else {
            return Response::from_json(&StoreResponse::Failed {
                message: "unreadable store request".into(),
            });
        };
        let resp = match request {
            StoreRequest::List { ns } => {
                match SqlRecords::open(self.state.storage().sql()).and_then(|r| r.list(&ns)) {
                    Ok(records) => StoreResponse::Listed { records },
                    Err(message) => StoreResponse::Failed { message },
                }
            }
            StoreRequest::Get { ns, key } => match SqlRecords::open(self.state.storage().sql()) {
                Ok(mut r) => protocol::read(&mut r, &ns, &key),
                Err(message) => StoreResponse::Failed { message },
            },
            write => {
                let sql = self.state.storage().sql();
                let kv = self.env.kv(KV_BINDING).ok();
                // No other event reaches the object until the write (and its KV mirror)
                // is done: writes reach KV in version order.
                self.state
                    .block_concurrency_while(async move { Ok(write_through(sql, kv, write).await) })
                    .await?
            }
        };
        Response::from_json(&resp)
    }
}
