//! `fermyon:spin/key-value@2.0.0` on SQLite.
//!
//! Decision: one file `<state-dir>/sqlite_key_value.db` (real Spin's file name) with one table
//! per store label (`kv_<label>`); the tables for `default` and every label some component is
//! granted are created at start, so requests only read and write. Each guest `store` resource
//! holds its own connection (WAL, busy timeout) and every call runs on the blocking pool.

use crate::bindings::fermyon::spin::key_value::{self, Error};
use crate::state::HostState;
use anyhow::{Context, Result};
use rusqlite::OptionalExtension;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use wasmtime::component::Resource;

/// The key-value database file and the labels it serves.
pub struct KvBackend {
    path: PathBuf,
    labels: BTreeSet<String>,
}

fn table_name(label: &str) -> String {
    // Quoted identifier: any label is safe as a table name.
    format!("\"kv_{}\"", label.replace('"', "\"\""))
}

impl KvBackend {
    /// Creates the file and one table per label.
    pub fn create(dir: &std::path::Path, labels: BTreeSet<String>) -> Result<Self> {
        let path = dir.join("sqlite_key_value.db");
        let conn = crate::sqlite::open_file(&path)
            .with_context(|| format!("opening key-value database {}", path.display()))?;
        for label in &labels {
            conn.execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS {} (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL)",
                table_name(label)
            ))?;
        }
        Ok(Self { path, labels })
    }
}

/// The host side of a guest `store` resource.
pub struct KvStore {
    table: String,
    conn: Arc<Mutex<rusqlite::Connection>>,
}

fn other(e: impl std::fmt::Display) -> Error {
    Error::Other(e.to_string())
}

type Handle = (Arc<Mutex<rusqlite::Connection>>, String);

impl HostState {
    fn kv_handle(&self, r: &Resource<KvStore>) -> Result<Handle, Error> {
        let store = self.table.get(r).map_err(other)?;
        Ok((store.conn.clone(), store.table.clone()))
    }
}

/// Runs `f(connection, quoted table name)` on the blocking pool.
async fn kv_call<R: Send + 'static>(
    handle: Result<Handle, Error>,
    f: impl FnOnce(&rusqlite::Connection, &str) -> rusqlite::Result<R> + Send + 'static,
) -> Result<R, Error> {
    let (conn, table) = handle?;
    tokio::task::spawn_blocking(move || {
        let guard = conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&guard, &table)
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
        let kv = &self.ctx.shared.kv;
        if !kv.labels.contains(&label) {
            return Err(Error::NoSuchStore);
        }
        let path = kv.path.clone();
        let conn = tokio::task::spawn_blocking(move || crate::sqlite::open_file(&path))
            .await
            .map_err(other)?
            .map_err(other)?;
        self.table
            .push(KvStore {
                table: table_name(&label),
                conn: Arc::new(Mutex::new(conn)),
            })
            .map_err(other)
    }

    async fn get(
        &mut self,
        self_: Resource<KvStore>,
        key: String,
    ) -> Result<Option<Vec<u8>>, Error> {
        kv_call(self.kv_handle(&self_), move |c, t| {
            c.prepare_cached(&format!("SELECT value FROM {t} WHERE key = ?1"))?
                .query_row([key], |r| r.get(0))
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
        kv_call(self.kv_handle(&self_), move |c, t| {
            c.prepare_cached(&format!(
                "INSERT INTO {t} (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value"
            ))?
            .execute(rusqlite::params![key, value])
            .map(|_| ())
        })
        .await
    }

    async fn delete(&mut self, self_: Resource<KvStore>, key: String) -> Result<(), Error> {
        kv_call(self.kv_handle(&self_), move |c, t| {
            c.prepare_cached(&format!("DELETE FROM {t} WHERE key = ?1"))?
                .execute([key])
                .map(|_| ())
        })
        .await
    }

    async fn exists(&mut self, self_: Resource<KvStore>, key: String) -> Result<bool, Error> {
        kv_call(self.kv_handle(&self_), move |c, t| {
            c.prepare_cached(&format!("SELECT 1 FROM {t} WHERE key = ?1"))?
                .exists([key])
        })
        .await
    }

    async fn get_keys(&mut self, self_: Resource<KvStore>) -> Result<Vec<String>, Error> {
        kv_call(self.kv_handle(&self_), move |c, t| {
            let mut stmt = c.prepare_cached(&format!("SELECT key FROM {t} ORDER BY key"))?;
            stmt.query_map([], |r| r.get(0))?.collect()
        })
        .await
    }

    async fn drop(&mut self, rep: Resource<KvStore>) -> wasmtime::Result<()> {
        let store = self.table.delete(rep)?;
        tokio::task::spawn_blocking(move || drop(store));
        Ok(())
    }
}
