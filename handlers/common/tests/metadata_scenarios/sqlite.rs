//! The scenarios' SQLite: `SqlConn` over rusqlite on a real database file.

use std::path::PathBuf;

use artifact_store_handlers::metadata::{
    Dialect, SqlConn, SqlError, SqlErrorKind, SqlRow, SqlStore, SqlValue,
};
use rusqlite::types::{Value, ValueRef};

/// `SqlConn` over a rusqlite connection.
pub struct RusqliteConn(rusqlite::Connection);

fn to_sql_error(e: rusqlite::Error) -> SqlError {
    let message = e.to_string();
    let kind = if message.contains("UNIQUE constraint failed") {
        SqlErrorKind::UniqueViolation
    } else if message.contains("no such table") {
        SqlErrorKind::MissingObject
    } else {
        SqlErrorKind::Other
    };
    SqlError { kind, message }
}

impl RusqliteConn {
    fn run(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<SqlRow>, SqlError> {
        let mut stmt = self.0.prepare(sql).map_err(to_sql_error)?;
        let width = stmt.column_count();
        let values: Vec<Value> = params
            .iter()
            .map(|p| match p {
                SqlValue::Null => Value::Null,
                SqlValue::Int(i) => Value::Integer(*i),
                SqlValue::Text(s) => Value::Text(s.clone()),
                SqlValue::Blob(b) => Value::Blob(b.clone()),
            })
            .collect();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(values))
            .map_err(to_sql_error)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(to_sql_error)? {
            let mut r = Vec::with_capacity(width);
            for i in 0..width {
                r.push(match row.get_ref(i).map_err(to_sql_error)? {
                    ValueRef::Null => SqlValue::Null,
                    ValueRef::Integer(i) => SqlValue::Int(i),
                    ValueRef::Real(f) => SqlValue::Text(f.to_string()),
                    ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
                });
            }
            out.push(r);
        }
        Ok(out)
    }
}

impl SqlConn for RusqliteConn {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<u64, SqlError> {
        self.run(sql, params)?;
        Ok(self.0.changes())
    }

    async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<SqlRow>, SqlError> {
        self.run(sql, params)
    }
}

/// A fresh database file in its own temporary directory.
pub struct SqliteDb {
    pub path: PathBuf,
}

impl Drop for SqliteDb {
    fn drop(&mut self) {
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl SqliteDb {
    /// A new connection to this database, without the store around it.
    pub fn raw_conn(&self) -> RusqliteConn {
        let conn = rusqlite::Connection::open(&self.path).expect("open sqlite file");
        // Spin's SQLite waits on a locked database too; without it a second writer fails.
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        RusqliteConn(conn)
    }
}

impl super::Harness for SqliteDb {
    type Conn = RusqliteConn;

    async fn connect(&self) -> SqlStore<RusqliteConn> {
        SqlStore::new(self.raw_conn())
    }
}

/// A new, empty database file.
pub fn unmigrated() -> SqliteDb {
    let dir = std::env::temp_dir().join(format!("artifact-store-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    SqliteDb {
        path: dir.join("metadata.db"),
    }
}

/// A new database with the schema applied.
pub async fn fresh() -> SqliteDb {
    let db = unmigrated();
    use super::Harness;
    db.connect().await.ensure_migrated().await.expect("migrate");
    db
}
