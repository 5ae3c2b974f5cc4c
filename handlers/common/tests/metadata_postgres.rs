//! The metadata scenarios on a real PostgreSQL (tokio-postgres), one schema per test.
//!
//! Needs a server at 127.0.0.1:5432 with user `postgres`, database `test`, trust auth
//! (override with `ARTIFACT_STORE_TEST_PG`). Start it with
//! `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`.

mod metadata_scenarios;

use artifact_store_handlers::metadata::{
    Dialect, SqlConn, SqlError, SqlErrorKind, SqlRow, SqlStore, SqlValue,
};
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, NoTls};

/// A parameter that adapts to the type Postgres inferred for its placeholder.
#[derive(Debug)]
struct Param<'a>(&'a SqlValue);

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut tokio_postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self.0 {
            // Strict on purpose: some hosts send a NULL parameter typed as text, so the
            // store must never bind NULL to a non-text column.
            SqlValue::Null if matches!(*ty, Type::TEXT | Type::VARCHAR) => Ok(IsNull::Yes),
            SqlValue::Null => Err(format!("NULL parameter bound to a {ty} column").into()),
            // Strict like Spin's hosts: a 64-bit integer binds to BIGINT only.
            SqlValue::Int(i) if *ty == Type::INT8 => i.to_sql(ty, out),
            SqlValue::Int(_) => Err(format!("integer parameter bound to a {ty} column").into()),
            SqlValue::Text(s) => s.as_str().to_sql(ty, out),
            SqlValue::Blob(b) => b.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn to_sql_error(e: tokio_postgres::Error) -> SqlError {
    let kind = match e.code() {
        Some(c) if *c == tokio_postgres::error::SqlState::UNIQUE_VIOLATION => {
            SqlErrorKind::UniqueViolation
        }
        Some(c) if *c == tokio_postgres::error::SqlState::UNDEFINED_TABLE => {
            SqlErrorKind::MissingObject
        }
        _ => SqlErrorKind::Other,
    };
    let message = match e.as_db_error() {
        Some(db) => format!("postgres: {}", db.message()),
        None => format!("postgres: {e}"),
    };
    SqlError { kind, message }
}

/// `SqlConn` over a tokio-postgres client.
pub struct TokioPgConn(Client);

impl SqlConn for TokioPgConn {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<u64, SqlError> {
        let params: Vec<Param> = params.iter().map(Param).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        self.0.execute(sql, &refs).await.map_err(to_sql_error)
    }

    async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<SqlRow>, SqlError> {
        let params: Vec<Param> = params.iter().map(Param).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        let rows = self.0.query(sql, &refs).await.map_err(to_sql_error)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut r = Vec::with_capacity(row.len());
            for (i, col) in row.columns().iter().enumerate() {
                let v = match *col.type_() {
                    Type::INT8 => row.get::<_, Option<i64>>(i).map(SqlValue::Int),
                    Type::INT4 => row
                        .get::<_, Option<i32>>(i)
                        .map(|v| SqlValue::Int(v.into())),
                    Type::INT2 => row
                        .get::<_, Option<i16>>(i)
                        .map(|v| SqlValue::Int(v.into())),
                    Type::BOOL => row
                        .get::<_, Option<bool>>(i)
                        .map(|v| SqlValue::Int(v.into())),
                    Type::BYTEA => row.get::<_, Option<Vec<u8>>>(i).map(SqlValue::Blob),
                    Type::VOID => None,
                    _ => row.get::<_, Option<String>>(i).map(SqlValue::Text),
                };
                r.push(v.unwrap_or(SqlValue::Null));
            }
            out.push(r);
        }
        Ok(out)
    }
}

pub struct PgSchema {
    url: String,
    schema: String,
}

fn url() -> String {
    std::env::var("ARTIFACT_STORE_TEST_PG")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into())
}

async fn client(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("connect to the test PostgreSQL (see the module doc)");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

impl metadata_scenarios::Harness for PgSchema {
    type Conn = TokioPgConn;

    async fn connect(&self) -> SqlStore<TokioPgConn> {
        let c = client(&self.url).await;
        c.batch_execute(&format!("SET search_path TO {}", self.schema))
            .await
            .unwrap();
        SqlStore::new(TokioPgConn(c))
    }
}

/// A new, empty schema.
async fn unmigrated() -> PgSchema {
    let url = url();
    let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
    client(&url)
        .await
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    PgSchema { url, schema }
}

/// A new schema with the migrations applied.
async fn fresh() -> PgSchema {
    let db = unmigrated().await;
    use metadata_scenarios::Harness;
    db.connect().await.ensure_migrated().await.expect("migrate");
    db
}

metadata_scenarios!(fresh(), unmigrated());
