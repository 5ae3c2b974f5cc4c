//! The one seam between SQL text and a database client: `SqlConn`.
//!
//! Decision: the store speaks plain SQL with `?` placeholders and a four-variant value
//! type, so the same query text runs on Spin's SQLite, Spin's Postgres and the native test
//! clients (rusqlite, tokio-postgres). The few dialect differences live in `Dialect`, not
//! in the queries. Cost: no typed query builder; every query is checked by the real-database
//! tests instead.

#![allow(async_fn_in_trait)] // guests are single-threaded: no `Send` bounds wanted

use std::borrow::Cow;

/// A value crossing the SQL boundary. Integers are 64-bit (`BIGINT` columns in both
/// dialects), timestamps travel as `Text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlValue {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<&str> for SqlValue {
    fn from(s: &str) -> Self {
        SqlValue::Text(s.to_string())
    }
}

impl From<String> for SqlValue {
    fn from(s: String) -> Self {
        SqlValue::Text(s)
    }
}

impl From<&String> for SqlValue {
    fn from(s: &String) -> Self {
        SqlValue::Text(s.clone())
    }
}

impl From<i64> for SqlValue {
    fn from(v: i64) -> Self {
        SqlValue::Int(v)
    }
}

impl From<u64> for SqlValue {
    fn from(v: u64) -> Self {
        SqlValue::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(SqlValue::Null, Into::into)
    }
}

/// One result row, columns in `SELECT` order.
pub type SqlRow = Vec<SqlValue>;

/// Which SQL flavour a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// Rewrites `?` placeholders into `$1, $2...` for Postgres. Queries never contain a
    /// literal `?`.
    pub fn placeholders<'a>(self, sql: &'a str) -> Cow<'a, str> {
        match self {
            Dialect::Sqlite => Cow::Borrowed(sql),
            Dialect::Postgres => {
                let mut out = String::with_capacity(sql.len() + 16);
                let mut n = 0;
                for ch in sql.chars() {
                    if ch == '?' {
                        n += 1;
                        out.push('$');
                        out.push_str(&n.to_string());
                    } else {
                        out.push(ch);
                    }
                }
                Cow::Owned(out)
            }
        }
    }

    /// Starts a transaction that will write. SQLite takes the database write lock now
    /// (so reads inside see what the write will be based on); Postgres locks rows as it
    /// goes (`row_lock`, `audit_chain_head FOR UPDATE`).
    pub fn begin_write(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        }
    }

    /// Suffix that locks the selected rows until commit (SQLite is already serialized).
    pub fn row_lock(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }

    /// A statement that locks one text key to the end of the transaction, where a row to
    /// lock may not exist yet (Postgres advisory lock; SQLite is already serialized).
    pub fn key_lock(self) -> Option<&'static str> {
        match self {
            Dialect::Sqlite => None,
            Dialect::Postgres => {
                Some("SELECT 1 FROM (SELECT pg_advisory_xact_lock(hashtextextended(?, 7))) AS l")
            }
        }
    }

    /// Suffix for claims: concurrent claimers skip each other's rows.
    pub fn skip_locked(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }
}

/// What went wrong in the database client, classified just enough for the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlErrorKind {
    /// A `UNIQUE`/`PRIMARY KEY` constraint refused the write.
    UniqueViolation,
    /// A table or other object does not exist (e.g. before the first migration).
    MissingObject,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SqlError {
    pub kind: SqlErrorKind,
    pub message: String,
}

impl SqlError {
    pub fn other(message: impl Into<String>) -> SqlError {
        SqlError {
            kind: SqlErrorKind::Other,
            message: message.into(),
        }
    }
}

/// A database connection. Statements arrive already in the connection's dialect
/// (placeholders converted); transactions are plain `BEGIN`/`COMMIT`/`ROLLBACK` statements
/// on the same connection.
pub trait SqlConn {
    fn dialect(&self) -> Dialect;
    /// Runs one statement; returns the number of rows it changed (the store relies on the
    /// count, e.g. to see that an upload's pending row still exists).
    async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<u64, SqlError>;
    /// Runs one statement and returns its rows.
    async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<SqlRow>, SqlError>;
    /// Closes the connection if it is a scarce one, to be reopened by the next statement
    /// (see `MetadataStore::pause`). Never called inside a transaction.
    fn close_idle(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_placeholders_for_postgres() {
        assert_eq!(
            Dialect::Postgres.placeholders("a = ? AND (b, c) < (?, ?)"),
            "a = $1 AND (b, c) < ($2, $3)"
        );
        assert_eq!(Dialect::Sqlite.placeholders("a = ?"), "a = ?");
    }
}
