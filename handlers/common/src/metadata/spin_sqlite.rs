//! `SqlConn` on Spin's SQLite (`spin:sqlite/sqlite@3.0.0`, database label `default`).
//!
//! The host call is synchronous; the async signature only fits the trait. Spin reports
//! engine errors as text, so constraint and missing-table errors are recognized by message.

use spin_sdk::sqlite3::{Connection, Error, Value};

use super::conn::{SqlError, SqlErrorKind, SqlRow, SqlValue};

pub struct SpinSqlite {
    conn: Connection,
}

impl SpinSqlite {
    pub fn open(label: &str) -> Result<SpinSqlite, SqlError> {
        Connection::open(label)
            .map(|conn| SpinSqlite { conn })
            .map_err(to_sql_error)
    }

    pub(crate) fn run(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<SqlRow>, SqlError> {
        let params: Vec<Value> = params.iter().map(to_value).collect();
        let result = self.conn.execute(sql, &params).map_err(to_sql_error)?;
        Ok(result
            .rows
            .into_iter()
            .map(|r| r.values.into_iter().map(from_value).collect())
            .collect())
    }

    pub(crate) fn changes(&self) -> u64 {
        self.conn.changes()
    }
}

fn to_value(v: &SqlValue) -> Value {
    match v {
        SqlValue::Null => Value::Null,
        SqlValue::Int(i) => Value::Integer(*i),
        SqlValue::Text(s) => Value::Text(s.clone()),
        SqlValue::Blob(b) => Value::Blob(b.clone()),
    }
}

fn from_value(v: Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Integer(i) => SqlValue::Int(i),
        // No REAL columns in the schema; a stray one is kept readable as text.
        Value::Real(f) => SqlValue::Text(f.to_string()),
        Value::Text(s) => SqlValue::Text(s),
        Value::Blob(b) => SqlValue::Blob(b),
    }
}

fn to_sql_error(e: Error) -> SqlError {
    let message = format!("sqlite: {e:?}");
    let kind = if message.contains("UNIQUE constraint failed")
        || message.contains("PRIMARY KEY constraint failed")
    {
        SqlErrorKind::UniqueViolation
    } else if message.contains("no such table") {
        SqlErrorKind::MissingObject
    } else {
        SqlErrorKind::Other
    };
    SqlError { kind, message }
}
