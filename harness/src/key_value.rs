//! `fermyon:spin/key-value@2.0.0` on SQLite, in Spin's own file format.
//!
//! Decision: each store label is a SQLite database with Spin's table
//! `spin_key_value (store, key, value)` (store = the label), so `spin up` and the harness
//! read and write the same files: label `default` is `<state-dir>/sqlite_key_value.db` and
//! any other label must be defined in the runtime config (`[key_value_store.<label>]`),
//! else start fails with Spin's message. Each guest `store` resource holds its own
//! connection (WAL, busy timeout) and every call runs on the blocking pool.

use crate::bindings::fermyon::spin::key_value::{self, Error};
use crate::runtime_config::{Location, resolve_labels};
use crate::sqlite::Db;
use crate::state::HostState;
use anyhow::{Result, bail};
use rusqlite::OptionalExtension;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use wasmtime::component::Resource;

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS spin_key_value (
    store TEXT NOT NULL,
    key   TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (store, key)
)";

/// The stores components may open, by label.
pub struct KvBackend {
    stores: BTreeMap<String, Arc<Db>>,
}

impl KvBackend {
    /// `uses` is every (component, label) of the manifest; an undefined label fails start
    /// with Spin's message. Creates each store's table.
    pub fn create<'a>(
        state_dir: &Path,
        configured: &BTreeMap<String, Location>,
        uses: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self> {
        let (locations, undefined) =
            resolve_labels(configured, state_dir.join("sqlite_key_value.db"), uses);
        if let Some((component, label)) = undefined.first() {
            bail!("unknown key_value_stores label {label:?} for component {component:?}");
        }
        let mut stores = BTreeMap::new();
        for (label, location) in &locations {
            let db = Db::new(location)?;
            let conn = db.connect()?;
            conn.lock()
                .unwrap_or_else(|p| p.into_inner())
                .execute_batch(CREATE_TABLE)?;
            stores.insert(label.clone(), Arc::new(db));
        }
        Ok(Self { stores })
    }
}

/// The host side of a guest `store` resource.
pub struct KvStore {
    label: String,
    conn: Arc<Mutex<rusqlite::Connection>>,
}

fn other(e: impl std::fmt::Display) -> Error {
    Error::Other(e.to_string())
}

type Handle = (Arc<Mutex<rusqlite::Connection>>, String);

impl HostState {
    fn kv_handle(&self, r: &Resource<KvStore>) -> Result<Handle, Error> {
        let store = self.table.get(r).map_err(other)?;
        Ok((store.conn.clone(), store.label.clone()))
    }
}

/// Runs `f(connection, store label)` on the blocking pool.
async fn kv_call<R: Send + 'static>(
    handle: Result<Handle, Error>,
    f: impl FnOnce(&rusqlite::Connection, &str) -> rusqlite::Result<R> + Send + 'static,
) -> Result<R, Error> {
    let (conn, label) = handle?;
    tokio::task::spawn_blocking(move || {
        let guard = conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&guard, &label)
    })
    .await
    .map_err(other)?
    .map_err(other)
}

impl key_value::Host for HostState {}

impl key_value::HostStore for HostState {
    async fn open(&mut self, label: String) -> Result<Resource<KvStore>, Error> {
        if !self.ctx.key_value_stores.contains(&label) {
            return Err(Error::AccessDenied);
        }
        let Some(db) = self.ctx.shared.kv.stores.get(&label).cloned() else {
            return Err(Error::NoSuchStore);
        };
        let conn = tokio::task::spawn_blocking(move || db.connect())
            .await
            .map_err(other)?
            .map_err(other)?;
        self.table.push(KvStore { label, conn }).map_err(other)
    }

    async fn get(
        &mut self,
        self_: Resource<KvStore>,
        key: String,
    ) -> Result<Option<Vec<u8>>, Error> {
        kv_call(self.kv_handle(&self_), move |c, store| {
            c.prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .query_row([store, &key], |r| r.get(0))
                .optional()
        })
        .await
    }

    async fn set(
        &mut self,
        self_: Resource<KvStore>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), Error> {
        kv_call(self.kv_handle(&self_), move |c, store| {
            c.prepare_cached(
                "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(store, key) DO UPDATE SET value = excluded.value",
            )?
            .execute(rusqlite::params![store, key, value])
            .map(|_| ())
        })
        .await
    }

    async fn delete(&mut self, self_: Resource<KvStore>, key: String) -> Result<(), Error> {
        kv_call(self.kv_handle(&self_), move |c, store| {
            c.prepare_cached("DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .execute([store, &key])
                .map(|_| ())
        })
        .await
    }

    async fn exists(&mut self, self_: Resource<KvStore>, key: String) -> Result<bool, Error> {
        kv_call(self.kv_handle(&self_), move |c, store| {
            c.prepare_cached("SELECT 1 FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .exists([store, &key])
        })
        .await
    }

    async fn get_keys(&mut self, self_: Resource<KvStore>) -> Result<Vec<String>, Error> {
        kv_call(self.kv_handle(&self_), move |c, store| {
            let mut stmt =
                c.prepare_cached("SELECT key FROM spin_key_value WHERE store = ?1 ORDER BY key")?;
            stmt.query_map([store], |r| r.get(0))?.collect()
        })
        .await
    }

    async fn drop(&mut self, rep: Resource<KvStore>) -> wasmtime::Result<()> {
        let store = self.table.delete(rep)?;
        tokio::task::spawn_blocking(move || drop(store));
        Ok(())
    }
}
