//! `spin:postgres/postgres@4.0.0` on tokio-postgres.
//!
//! Decision: a connection is allowed only if every host:port in the address is granted by
//! `allowed_outbound_hosts` as `postgres://host:port`. Idle clients are kept in a small
//! per-address pool (returned when the guest drops its `connection`), so a request does not pay
//! for a TCP + startup handshake each time. Values convert by the column's Postgres type; types
//! without a mapping come back as `unsupported`.
//!
//! Known difference from Spin: the harness speaks no TLS to PostgreSQL. `sslmode=require`
//! fails here; with the default `prefer` the harness connects in plaintext where Spin
//! negotiates TLS and verifies the server's certificate (and fails on a self-signed one).
//! Local runs and tests use `sslmode=disable`, which both hosts treat alike.

// The WIT-defined error type is large by design; it is returned as-is to the guest.
#![allow(clippy::result_large_err)]

use crate::bindings::spin::postgres::postgres::{
    self, Column, DbDataType, DbError, DbValue, Error, ParameterValue, QueryError, RowSet,
};
use crate::state::HostState;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio_postgres::types::{ToSql, Type};
use wasmtime::component::Resource;

/// Idle clients kept per address.
const MAX_IDLE_PER_ADDRESS: usize = 4;
/// Idle clients per address, and a bound on the connections open at once per address:
/// more concurrent requests wait for one (at most `wait`) instead of exhausting the
/// server's `max_connections` (Spin's own pool is bounded the same way).
#[derive(Clone)]
pub struct PgPool {
    idle: Arc<Mutex<HashMap<String, Vec<tokio_postgres::Client>>>>,
    limits: Arc<Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>>,
    max_open: usize,
    wait: std::time::Duration,
}

impl PgPool {
    pub fn new(max_open: usize, wait: std::time::Duration) -> PgPool {
        PgPool {
            idle: Default::default(),
            limits: Default::default(),
            max_open: max_open.max(1),
            wait,
        }
    }

    /// A client for `address` and the permit that counts it as open.
    async fn get(
        &self,
        address: &str,
    ) -> Result<(tokio_postgres::Client, tokio::sync::OwnedSemaphorePermit), Error> {
        let limit = self
            .limits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(address.to_string())
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.max_open)))
            .clone();
        let permit = tokio::time::timeout(self.wait, limit.acquire_owned())
            .await
            .map_err(|_| {
                Error::ConnectionFailed(format!(
                    "all {} connections are busy (waited {} ms)",
                    self.max_open,
                    self.wait.as_millis()
                ))
            })?
            .map_err(|e| Error::Other(e.to_string()))?;
        Ok((self.client(address).await?, permit))
    }

    async fn client(&self, address: &str) -> Result<tokio_postgres::Client, Error> {
        loop {
            let client = self
                .idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(address)
                .and_then(Vec::pop);
            match client {
                Some(c) if !c.is_closed() => return Ok(c),
                Some(_) => continue,
                None => break,
            }
        }
        let (client, conn) = tokio_postgres::connect(address, tokio_postgres::NoTls)
            .await
            // `{e:#}`-style: tokio-postgres puts the server's reason in the source.
            .map_err(|e| {
                let reason = std::error::Error::source(&e)
                    .map(|s| format!("{e}: {s}"))
                    .unwrap_or_else(|| e.to_string());
                Error::ConnectionFailed(reason)
            })?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    fn put(&self, address: String, client: tokio_postgres::Client) {
        if client.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.entry(address).or_default();
        if list.len() < MAX_IDLE_PER_ADDRESS {
            list.push(client);
        }
    }
}

/// The host side of a guest `connection` resource.
pub struct PgConnection {
    address: String,
    client: Option<tokio_postgres::Client>,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

fn query_error(e: tokio_postgres::Error) -> Error {
    if let Some(db) = e.as_db_error() {
        let mut extras = Vec::new();
        for (k, v) in [
            ("hint", db.hint()),
            ("where", db.where_()),
            ("schema", db.schema()),
            ("table", db.table()),
            ("column", db.column()),
            ("constraint", db.constraint()),
        ] {
            if let Some(v) = v {
                extras.push((k.to_string(), v.to_string()));
            }
        }
        Error::QueryFailed(QueryError::DbError(DbError {
            as_text: e.to_string(),
            severity: db.severity().to_string(),
            code: db.code().code().to_string(),
            message: db.message().to_string(),
            detail: db.detail().map(str::to_string),
            extras,
        }))
    } else if e.is_closed() {
        Error::ConnectionFailed(e.to_string())
    } else {
        Error::QueryFailed(QueryError::Text(e.to_string()))
    }
}

type Param = Box<dyn ToSql + Send + Sync>;

/// SQL NULL for a parameter of any type, as Spin binds `db-null` (a typed `None` would be
/// refused by columns of other types).
#[derive(Debug)]
struct UntypedNull;

impl ToSql for UntypedNull {
    fn to_sql(
        &self,
        _: &Type,
        _: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(tokio_postgres::types::IsNull::Yes)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

fn to_param(v: ParameterValue) -> Result<Param, Error> {
    use chrono::{NaiveDate, NaiveTime};
    Ok(match v {
        ParameterValue::Boolean(b) => Box::new(b),
        ParameterValue::Int8(i) => Box::new(i),
        ParameterValue::Int16(i) => Box::new(i),
        ParameterValue::Int32(i) => Box::new(i),
        ParameterValue::Int64(i) => Box::new(i),
        ParameterValue::Floating32(f) => Box::new(f),
        ParameterValue::Floating64(f) => Box::new(f),
        ParameterValue::Str(s) => Box::new(s),
        ParameterValue::Binary(b) => Box::new(b),
        ParameterValue::Uuid(s) => {
            Box::new(uuid::Uuid::parse_str(&s).map_err(|e| Error::BadParameter(e.to_string()))?)
        }
        ParameterValue::Jsonb(b) => Box::new(
            serde_json::from_slice::<serde_json::Value>(&b)
                .map_err(|e| Error::BadParameter(e.to_string()))?,
        ),
        ParameterValue::Timestamp(t) => Box::new(
            chrono::DateTime::from_timestamp(t, 0)
                .ok_or_else(|| Error::BadParameter("timestamp out of range".into()))?,
        ),
        ParameterValue::Date((y, m, d)) => Box::new(
            NaiveDate::from_ymd_opt(y, m.into(), d.into())
                .ok_or_else(|| Error::BadParameter("invalid date".into()))?,
        ),
        ParameterValue::Time((h, mi, s, ns)) => Box::new(
            NaiveTime::from_hms_nano_opt(h.into(), mi.into(), s.into(), ns)
                .ok_or_else(|| Error::BadParameter("invalid time".into()))?,
        ),
        ParameterValue::Datetime((y, mo, d, h, mi, s, ns)) => {
            let dt = NaiveDate::from_ymd_opt(y, mo.into(), d.into())
                .and_then(|d| d.and_hms_nano_opt(h.into(), mi.into(), s.into(), ns))
                .ok_or_else(|| Error::BadParameter("invalid datetime".into()))?;
            Box::new(dt)
        }
        ParameterValue::ArrayInt32(a) => Box::new(a),
        ParameterValue::ArrayInt64(a) => Box::new(a),
        ParameterValue::ArrayStr(a) => Box::new(a),
        ParameterValue::DbNull => Box::new(UntypedNull),
        other => {
            return Err(Error::BadParameter(format!(
                "parameter type not supported by the harness: {other:?}"
            )));
        }
    })
}

fn data_type(t: &Type) -> DbDataType {
    match *t {
        Type::BOOL => DbDataType::Boolean,
        Type::CHAR => DbDataType::Int8,
        Type::INT2 => DbDataType::Int16,
        Type::INT4 => DbDataType::Int32,
        Type::INT8 => DbDataType::Int64,
        Type::FLOAT4 => DbDataType::Floating32,
        Type::FLOAT8 => DbDataType::Floating64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => DbDataType::Str,
        Type::BYTEA => DbDataType::Binary,
        Type::DATE => DbDataType::Date,
        Type::TIME => DbDataType::Time,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => DbDataType::Datetime,
        Type::UUID => DbDataType::Uuid,
        Type::JSONB | Type::JSON => DbDataType::Jsonb,
        Type::INT4_ARRAY => DbDataType::ArrayInt32,
        Type::INT8_ARRAY => DbDataType::ArrayInt64,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY => DbDataType::ArrayStr,
        _ => DbDataType::Other(t.name().to_string()),
    }
}

fn cell(row: &tokio_postgres::Row, i: usize) -> Result<DbValue, tokio_postgres::Error> {
    use chrono::{Datelike, NaiveDateTime, Timelike};
    fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> DbValue) -> DbValue {
        v.map(f).unwrap_or(DbValue::DbNull)
    }
    let dt = |d: NaiveDateTime| {
        DbValue::Datetime((
            d.year(),
            d.month() as u8,
            d.day() as u8,
            d.hour() as u8,
            d.minute() as u8,
            d.second() as u8,
            d.nanosecond(),
        ))
    };
    let t = row.columns()[i].type_().clone();
    Ok(match t {
        Type::BOOL => opt(row.try_get(i)?, DbValue::Boolean),
        Type::CHAR => opt(row.try_get(i)?, DbValue::Int8),
        Type::INT2 => opt(row.try_get(i)?, DbValue::Int16),
        Type::INT4 => opt(row.try_get(i)?, DbValue::Int32),
        Type::INT8 => opt(row.try_get(i)?, DbValue::Int64),
        Type::FLOAT4 => opt(row.try_get(i)?, DbValue::Floating32),
        Type::FLOAT8 => opt(row.try_get(i)?, DbValue::Floating64),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
            opt(row.try_get(i)?, DbValue::Str)
        }
        Type::BYTEA => opt(row.try_get(i)?, DbValue::Binary),
        Type::UUID => opt(row.try_get::<_, Option<uuid::Uuid>>(i)?, |u| {
            DbValue::Uuid(u.to_string())
        }),
        Type::JSONB | Type::JSON => opt(row.try_get::<_, Option<serde_json::Value>>(i)?, |v| {
            DbValue::Jsonb(serde_json::to_vec(&v).unwrap_or_default())
        }),
        Type::DATE => opt(row.try_get::<_, Option<chrono::NaiveDate>>(i)?, |d| {
            DbValue::Date((d.year(), d.month() as u8, d.day() as u8))
        }),
        Type::TIME => opt(row.try_get::<_, Option<chrono::NaiveTime>>(i)?, |t| {
            DbValue::Time((
                t.hour() as u8,
                t.minute() as u8,
                t.second() as u8,
                t.nanosecond(),
            ))
        }),
        Type::TIMESTAMP => opt(row.try_get::<_, Option<NaiveDateTime>>(i)?, dt),
        Type::TIMESTAMPTZ => opt(
            row.try_get::<_, Option<chrono::DateTime<chrono::Utc>>>(i)?,
            |d| dt(d.naive_utc()),
        ),
        Type::INT4_ARRAY => opt(row.try_get(i)?, DbValue::ArrayInt32),
        Type::INT8_ARRAY => opt(row.try_get(i)?, DbValue::ArrayInt64),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY => opt(row.try_get(i)?, DbValue::ArrayStr),
        _ => DbValue::Unsupported(Vec::new()),
    })
}

impl HostState {
    fn pg_client(&self, r: &Resource<PgConnection>) -> Result<&tokio_postgres::Client, Error> {
        self.table
            .get(r)
            .ok()
            .and_then(|c| c.client.as_ref())
            .ok_or_else(|| Error::ConnectionFailed("invalid connection".into()))
    }

    /// Whether every host:port the address names is granted as `postgres://host:port`.
    fn pg_allowed(&self, address: &str) -> Result<(), Error> {
        let config: tokio_postgres::Config = address
            .parse()
            .map_err(|e: tokio_postgres::Error| Error::ConnectionFailed(e.to_string()))?;
        let ports = config.get_ports();
        let hosts = config.get_hosts();
        if hosts.is_empty() {
            return Err(Error::ConnectionFailed("address names no host".into()));
        }
        for (i, h) in hosts.iter().enumerate() {
            let tokio_postgres::config::Host::Tcp(host) = h else {
                return Err(Error::ConnectionFailed(
                    "unix sockets are not allowed".into(),
                ));
            };
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            self.pg_grants(host, port)?;
            // `hostaddr` is where the client really connects (the host name is then only
            // for TLS and authentication): it must be granted too.
            if let Some(ip) = config.get_hostaddrs().get(i) {
                self.pg_grants(&ip.to_string(), port)?;
            }
        }
        if config.get_hostaddrs().len() > hosts.len() {
            return Err(Error::ConnectionFailed(
                "access denied: more hostaddr than host entries".into(),
            ));
        }
        Ok(())
    }

    fn pg_grants(&self, host: &str, port: u16) -> Result<(), Error> {
        if self.ctx.allowed_hosts.allows("postgres", host, Some(port)) {
            Ok(())
        } else {
            Err(Error::ConnectionFailed(format!(
                "access denied: postgres://{host}:{port} is not in allowed_outbound_hosts"
            )))
        }
    }
}

fn params(values: Vec<ParameterValue>) -> Result<Vec<Param>, Error> {
    values.into_iter().map(to_param).collect()
}

fn refs(p: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    p.iter()
        .map(|b| b.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

impl postgres::Host for HostState {}

impl postgres::HostConnection for HostState {
    async fn open(&mut self, address: String) -> Result<Resource<PgConnection>, Error> {
        self.pg_allowed(&address)?;
        let (client, permit) = self.ctx.shared.pg.get(&address).await?;
        self.table
            .push(PgConnection {
                address,
                client: Some(client),
                permit: Some(permit),
            })
            .map_err(|e| Error::Other(e.to_string()))
    }

    async fn query(
        &mut self,
        self_: Resource<PgConnection>,
        statement: String,
        params_in: Vec<ParameterValue>,
    ) -> Result<RowSet, Error> {
        let p = params(params_in)?;
        let client = self.pg_client(&self_)?;
        let stmt = client.prepare(&statement).await.map_err(query_error)?;
        let rows = client.query(&stmt, &refs(&p)).await.map_err(query_error)?;
        let columns = stmt
            .columns()
            .iter()
            .map(|c| Column {
                name: c.name().to_string(),
                data_type: data_type(c.type_()),
            })
            .collect();
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut values = Vec::with_capacity(row.len());
            for i in 0..row.len() {
                values.push(cell(row, i).map_err(|e| Error::ValueConversionFailed(e.to_string()))?);
            }
            out.push(values);
        }
        Ok(RowSet { columns, rows: out })
    }

    async fn execute(
        &mut self,
        self_: Resource<PgConnection>,
        statement: String,
        params_in: Vec<ParameterValue>,
    ) -> Result<u64, Error> {
        let p = params(params_in)?;
        let client = self.pg_client(&self_)?;
        client
            .execute(&statement, &refs(&p))
            .await
            .map_err(query_error)
    }

    async fn drop(&mut self, rep: Resource<PgConnection>) -> wasmtime::Result<()> {
        let mut conn = self.table.delete(rep)?;
        if let Some(client) = conn.client.take() {
            // A guest may drop a connection inside a transaction: end it before reuse.
            let pool = self.ctx.shared.pg.clone();
            let permit = conn.permit.take();
            tokio::spawn(async move {
                if client.batch_execute("ROLLBACK").await.is_ok() {
                    pool.put(conn.address, client);
                }
                drop(permit);
            });
        }
        Ok(())
    }
}
