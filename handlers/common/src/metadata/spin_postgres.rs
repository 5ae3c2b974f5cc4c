//! `SqlConn` on Spin's Postgres (`spin:postgres/postgres@4.0.0`).
//!
//! The host call is synchronous; the async signature only fits the trait. All integer
//! columns are BIGINT, so integers travel as `int64`; errors are classified by SQLSTATE.
//!
//! Decision: the connection can be closed between statements (`close`) and is reopened by
//! the next one: a host has few PostgreSQL connections, and an upload must not hold one
//! while its client sends the body.

use std::cell::RefCell;

use spin_sdk::pg4::{Connection, DbValue, ParameterValue, PgError, QueryError};

use super::conn::{SqlError, SqlErrorKind, SqlRow, SqlValue};

pub struct SpinPostgres {
    url: String,
    conn: RefCell<Option<Connection>>,
}

impl SpinPostgres {
    pub fn open(url: &str) -> Result<SpinPostgres, SqlError> {
        let conn = Connection::open(url).map_err(to_sql_error)?;
        Ok(SpinPostgres {
            url: url.to_string(),
            conn: RefCell::new(Some(conn)),
        })
    }

    /// Closes the connection; the next statement opens a new one.
    pub(crate) fn close(&self) {
        self.conn.borrow_mut().take();
    }

    fn with_conn<T>(
        &self,
        run: impl FnOnce(&Connection) -> Result<T, PgError>,
    ) -> Result<T, SqlError> {
        let mut slot = self.conn.borrow_mut();
        if slot.is_none() {
            *slot = Some(Connection::open(&self.url).map_err(to_sql_error)?);
        }
        run(slot.as_ref().expect("opened above")).map_err(to_sql_error)
    }

    pub(crate) fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<u64, SqlError> {
        let params: Vec<ParameterValue> = params.iter().map(to_param).collect();
        self.with_conn(|c| c.execute(sql, &params))
    }

    pub(crate) fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<SqlRow>, SqlError> {
        let params: Vec<ParameterValue> = params.iter().map(to_param).collect();
        let set = self.with_conn(|c| c.query(sql, &params))?;
        Ok(set
            .rows
            .into_iter()
            .map(|r| r.into_iter().map(from_db).collect())
            .collect())
    }
}

fn to_param(v: &SqlValue) -> ParameterValue {
    match v {
        SqlValue::Null => ParameterValue::DbNull,
        SqlValue::Int(i) => ParameterValue::Int64(*i),
        SqlValue::Text(s) => ParameterValue::Str(s.clone()),
        SqlValue::Blob(b) => ParameterValue::Binary(b.clone()),
    }
}

fn from_db(v: DbValue) -> SqlValue {
    match v {
        DbValue::DbNull => SqlValue::Null,
        DbValue::Boolean(b) => SqlValue::Int(i64::from(b)),
        DbValue::Int8(i) => SqlValue::Int(i64::from(i)),
        DbValue::Int16(i) => SqlValue::Int(i64::from(i)),
        DbValue::Int32(i) => SqlValue::Int(i64::from(i)),
        DbValue::Int64(i) => SqlValue::Int(i),
        DbValue::Str(s) => SqlValue::Text(s),
        DbValue::Binary(b) => SqlValue::Blob(b),
        DbValue::Jsonb(b) => SqlValue::Blob(b),
        DbValue::Decimal(s) | DbValue::Uuid(s) => SqlValue::Text(s),
        // No other column types in the schema (e.g. `pg_advisory_lock` returns void).
        _ => SqlValue::Null,
    }
}

fn to_sql_error(e: PgError) -> SqlError {
    let kind = match &e {
        PgError::QueryFailed(QueryError::DbError(db)) => match db.code.as_str() {
            "23505" => SqlErrorKind::UniqueViolation,
            "42P01" => SqlErrorKind::MissingObject,
            _ => SqlErrorKind::Other,
        },
        _ => SqlErrorKind::Other,
    };
    SqlError {
        kind,
        message: format!("postgres: {e:?}"),
    }
}
