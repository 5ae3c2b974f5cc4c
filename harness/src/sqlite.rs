//! `spin:sqlite/sqlite@3.0.0` on rusqlite, one file per database label.
//!
//! Decision: like real Spin, label `default` is `<state-dir>/sqlite_db.db` and any other
//! label must be defined in the runtime config (`[sqlite_database.<label>]`). Each guest
//! `connection` is its own rusqlite connection (so `BEGIN`/`COMMIT` statements span calls on
//! that resource), every call runs on tokio's blocking pool, and a busy timeout makes
//! concurrent writers wait instead of failing with SQLITE_BUSY. Files use WAL so readers do
//! not block the writer.

use crate::bindings::spin::sqlite::sqlite::{self, Error, QueryResult, RowResult, Value};
use crate::runtime_config::{Location, resolve_labels};
use crate::state::HostState;
use anyhow::{Context, Result, bail};
use rusqlite::types::ValueRef;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime::component::Resource;

/// How long a connection waits for another writer before reporting `database is locked`.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// A database a label names: a file (a connection per guest resource) or, with no `path`
/// in the runtime config, one in-memory database behind a single shared connection.
pub enum Db {
    File(PathBuf),
    Memory(Arc<Mutex<rusqlite::Connection>>),
}

impl Db {
    pub fn new(location: &Location) -> Result<Db> {
        Ok(match location {
            Location::File(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                }
                Db::File(path.clone())
            }
            Location::InMemory => Db::Memory(Arc::new(Mutex::new(confine(
                rusqlite::Connection::open_in_memory()?,
            )?))),
        })
    }

    /// A connection for one guest resource (blocking: call it on the blocking pool).
    pub fn connect(&self) -> rusqlite::Result<Arc<Mutex<rusqlite::Connection>>> {
        match self {
            Db::File(path) => Ok(Arc::new(Mutex::new(open_file(path)?))),
            Db::Memory(conn) => Ok(conn.clone()),
        }
    }
}

/// The databases components may open, by label: `default` is `<state-dir>/sqlite_db.db`
/// (as Spin) unless the runtime config says otherwise; any other label must be defined there.
pub struct SqliteDatabases {
    dbs: BTreeMap<String, Arc<Db>>,
}

impl SqliteDatabases {
    /// `uses` is every (component, label) of the manifest; an undefined label fails start
    /// with Spin's message.
    pub fn new<'a>(
        state_dir: &Path,
        configured: &BTreeMap<String, Location>,
        uses: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self> {
        let (locations, undefined) =
            resolve_labels(configured, state_dir.join("sqlite_db.db"), uses);
        let undefined: Vec<String> = undefined
            .iter()
            .map(|(c, label)| format!("- Component {c} uses database '{label}'"))
            .collect();
        if !undefined.is_empty() {
            bail!(
                "One or more components use SQLite databases which are not defined.\n\
                 Check the spelling, or pass a runtime configuration file that defines these stores.\n\
                 Details:\n{}",
                undefined.join("\n")
            );
        }
        let dbs = locations
            .iter()
            .map(|(label, loc)| Ok((label.clone(), Arc::new(Db::new(loc)?))))
            .collect::<Result<_>>()?;
        Ok(Self { dbs })
    }

    pub fn get(&self, label: &str) -> Option<Arc<Db>> {
        self.dbs.get(label).cloned()
    }
}

/// Opens a rusqlite connection configured for concurrent use by several instances.
pub fn open_file(path: &std::path::Path) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    confine(conn)
}

/// Keeps a guest's connection to the database its label grants: no other file may be
/// attached, and `VACUUM INTO` (which attaches its target) cannot write one anywhere.
/// (Extension loading is off in rusqlite unless asked for.)
fn confine(conn: rusqlite::Connection) -> rusqlite::Result<rusqlite::Connection> {
    conn.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_ATTACHED, 0)?;
    Ok(conn)
}

/// The host side of a guest `connection` resource.
pub struct SqliteConnection {
    conn: Arc<Mutex<rusqlite::Connection>>,
}

fn io_err(e: impl std::fmt::Display) -> Error {
    Error::Io(e.to_string())
}

fn execute_blocking(
    conn: &rusqlite::Connection,
    statement: &str,
    parameters: Vec<Value>,
) -> rusqlite::Result<QueryResult> {
    let mut stmt = conn.prepare_cached(statement)?;
    let columns: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
    let params = parameters.into_iter().map(|v| match v {
        Value::Integer(i) => rusqlite::types::Value::Integer(i),
        Value::Real(f) => rusqlite::types::Value::Real(f),
        Value::Text(s) => rusqlite::types::Value::Text(s),
        Value::Blob(b) => rusqlite::types::Value::Blob(b),
        Value::Null => rusqlite::types::Value::Null,
    });
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut values = Vec::with_capacity(columns.len());
        for i in 0..columns.len() {
            values.push(match row.get_ref(i)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(i) => Value::Integer(i),
                ValueRef::Real(f) => Value::Real(f),
                ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Value::Blob(b.to_vec()),
            });
        }
        out.push(RowResult { values });
    }
    Ok(QueryResult { columns, rows: out })
}

impl HostState {
    fn sqlite_conn(
        &self,
        r: &Resource<SqliteConnection>,
    ) -> Result<Arc<Mutex<rusqlite::Connection>>, Error> {
        self.table
            .get(r)
            .map(|c| c.conn.clone())
            .map_err(|_| Error::InvalidConnection)
    }
}

/// Runs `f` on the connection on the blocking pool.
async fn with_conn<R: Send + 'static>(
    conn: Arc<Mutex<rusqlite::Connection>>,
    f: impl FnOnce(&rusqlite::Connection) -> R + Send + 'static,
) -> Result<R, Error> {
    tokio::task::spawn_blocking(move || {
        let guard = conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&guard)
    })
    .await
    .map_err(io_err)
}

impl sqlite::Host for HostState {}

impl sqlite::HostConnection for HostState {
    async fn open(&mut self, database: String) -> Result<Resource<SqliteConnection>, Error> {
        if !self.ctx.sqlite_databases.contains(&database) {
            return Err(Error::AccessDenied);
        }
        let db = self
            .ctx
            .shared
            .sqlite
            .get(&database)
            .ok_or(Error::NoSuchDatabase)?;
        let conn = tokio::task::spawn_blocking(move || db.connect())
            .await
            .map_err(io_err)?
            .map_err(io_err)?;
        self.table.push(SqliteConnection { conn }).map_err(io_err)
    }

    async fn execute(
        &mut self,
        self_: Resource<SqliteConnection>,
        statement: String,
        parameters: Vec<Value>,
    ) -> Result<QueryResult, Error> {
        let conn = self.sqlite_conn(&self_)?;
        with_conn(conn, move |c| execute_blocking(c, &statement, parameters))
            .await?
            .map_err(io_err)
    }

    async fn last_insert_rowid(&mut self, self_: Resource<SqliteConnection>) -> i64 {
        match self.sqlite_conn(&self_) {
            Ok(conn) => with_conn(conn, |c| c.last_insert_rowid())
                .await
                .unwrap_or(0),
            Err(_) => 0,
        }
    }

    async fn changes(&mut self, self_: Resource<SqliteConnection>) -> u64 {
        match self.sqlite_conn(&self_) {
            Ok(conn) => with_conn(conn, |c| c.changes()).await.unwrap_or(0),
            Err(_) => 0,
        }
    }

    async fn drop(&mut self, rep: Resource<SqliteConnection>) -> wasmtime::Result<()> {
        let conn = self.table.delete(rep)?;
        // Closing may roll back an open transaction (blocking I/O): do it off the workers.
        tokio::task::spawn_blocking(move || drop(conn));
        Ok(())
    }
}
