//! `SpinConn`: the connection a component opens, Spin's SQLite or Spin's Postgres.
//!
//! Decision: an enum, not a generic parameter, so `Store` is one concrete type every
//! component names and the choice is made at run time from the `metadata_store` variable.

use artifact_store_core::ports::{MetaResult, MetadataError};

use super::conn::{Dialect, SqlConn, SqlError, SqlRow, SqlValue};
use super::spin_postgres::SpinPostgres;
use super::spin_sqlite::SpinSqlite;

pub enum SpinConn {
    Sqlite(SpinSqlite),
    Postgres(SpinPostgres),
}

impl SpinConn {
    pub fn open_sqlite(label: &str) -> MetaResult<SpinConn> {
        SpinSqlite::open(label)
            .map(SpinConn::Sqlite)
            .map_err(|e| MetadataError::Unavailable(e.message))
    }

    pub fn open_postgres(url: &str) -> MetaResult<SpinConn> {
        SpinPostgres::open(url)
            .map(SpinConn::Postgres)
            .map_err(|e| MetadataError::Unavailable(e.message))
    }
}

impl SqlConn for SpinConn {
    fn dialect(&self) -> Dialect {
        match self {
            SpinConn::Sqlite(_) => Dialect::Sqlite,
            SpinConn::Postgres(_) => Dialect::Postgres,
        }
    }

    async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<u64, SqlError> {
        match self {
            SpinConn::Sqlite(c) => c.run(sql, params).map(|_| c.changes()),
            SpinConn::Postgres(c) => c.execute(sql, params),
        }
    }

    async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<SqlRow>, SqlError> {
        match self {
            SpinConn::Sqlite(c) => c.run(sql, params),
            SpinConn::Postgres(c) => c.query(sql, params),
        }
    }

    fn close_idle(&self) {
        // SQLite is a local file: nothing scarce to give back.
        if let SpinConn::Postgres(c) = self {
            c.close();
        }
    }
}
