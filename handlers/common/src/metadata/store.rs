//! `SqlStore`: the one implementation of `MetadataStore`, generic over `SqlConn`.
//!
//! Decision: every query is written once, in portable SQL, and runs on SQLite and Postgres
//! alike; each mutating method is one write transaction that also appends its audit events
//! (`append_audit_in_tx`), so a change and its audit record commit or vanish together.
//! Write transactions are serialized where it matters: SQLite by `BEGIN IMMEDIATE`,
//! Postgres by row locks on the package (`lock_package`) and on `audit_chain_head`.
//! The methods live in the sibling modules by concern (packages, files, retention, audit,
//! sweeps); this file holds the plumbing they share.

use artifact_store_core::audit::{self, ChainHead};
use artifact_store_core::error::{DomainError, ErrorCode};
use artifact_store_core::model::{AuditEvent, PackageStatus, Timestamp};
use artifact_store_core::ports::{AuditDraft, MetaResult, MetadataError};
use artifact_store_core::time;

use super::conn::{Dialect, SqlConn, SqlError, SqlErrorKind, SqlRow, SqlValue};
use super::rows::{self, Cols};

/// The metadata store over any SQL connection.
pub struct SqlStore<C> {
    conn: C,
}

pub(crate) fn unavailable(e: SqlError) -> MetadataError {
    MetadataError::Unavailable(e.message)
}

pub(crate) fn domain(code: ErrorCode, detail: impl Into<String>) -> MetadataError {
    MetadataError::Domain(DomainError::new(code, detail))
}

pub(crate) fn not_found(what: &str, id: &str) -> MetadataError {
    domain(ErrorCode::NotFound, format!("{what} {id} not found"))
}

pub(crate) fn ts(t: Timestamp) -> SqlValue {
    SqlValue::Text(time::format(t))
}

pub(crate) fn opt_ts(t: Option<Timestamp>) -> SqlValue {
    t.map_or(SqlValue::Null, ts)
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The columns of a package row the store needs beyond the model.
pub(crate) struct LockedPackage {
    pub(crate) status: PackageStatus,
    pub(crate) finalized: bool,
    pub(crate) expires_at: Option<Timestamp>,
    pub(crate) bytes_deletion_started: bool,
    pub(crate) file_count: u64,
    pub(crate) total_bytes: u64,
}

impl LockedPackage {
    /// The status a claimed package returns to when its deletion stops before any byte is
    /// gone (a hold arrived).
    pub(crate) fn status_before_claim(&self) -> &'static str {
        if self.finalized { "finalized" } else { "open" }
    }
}

impl<C: SqlConn> SqlStore<C> {
    pub fn new(conn: C) -> SqlStore<C> {
        SqlStore { conn }
    }

    /// The underlying connection (tests use it to inspect or tamper with rows).
    pub fn conn(&self) -> &C {
        &self.conn
    }

    pub(crate) fn dialect(&self) -> Dialect {
        self.conn.dialect()
    }

    /// Runs one statement written with `?` placeholders.
    pub(crate) async fn exec(&self, sql: &str, params: &[SqlValue]) -> MetaResult<u64> {
        let sql = self.dialect().placeholders(sql);
        self.conn.execute(&sql, params).await.map_err(unavailable)
    }

    /// Like `exec`, but hands back the raw error (callers that classify it).
    pub(crate) async fn exec_raw(&self, sql: &str, params: &[SqlValue]) -> Result<u64, SqlError> {
        let sql = self.dialect().placeholders(sql);
        self.conn.execute(&sql, params).await
    }

    pub(crate) async fn rows(&self, sql: &str, params: &[SqlValue]) -> MetaResult<Vec<SqlRow>> {
        let sql = self.dialect().placeholders(sql);
        self.conn.query(&sql, params).await.map_err(unavailable)
    }

    pub(crate) async fn first_row(
        &self,
        sql: &str,
        params: &[SqlValue],
    ) -> MetaResult<Option<SqlRow>> {
        Ok(self.rows(sql, params).await?.into_iter().next())
    }

    /// Runs `body` in a write transaction: commit on `Ok`, roll back on `Err`.
    pub(crate) async fn write_tx<T>(
        &self,
        body: impl AsyncFnOnce() -> MetaResult<T>,
    ) -> MetaResult<T> {
        self.exec(self.dialect().begin_write(), &[]).await?;
        match body().await {
            Ok(v) => match self.exec("COMMIT", &[]).await {
                Ok(_) => Ok(v),
                Err(e) => {
                    let _ = self.exec("ROLLBACK", &[]).await;
                    Err(e)
                }
            },
            Err(e) => {
                // A failed rollback leaves nothing committed either; report the first error.
                let _ = self.exec("ROLLBACK", &[]).await;
                Err(e)
            }
        }
    }

    /// Reads (and on Postgres locks) a package row inside a write transaction.
    pub(crate) async fn lock_package(&self, id: &str) -> MetaResult<LockedPackage> {
        let sql = format!(
            "SELECT status, finalized_at, expires_at, bytes_deletion_started, file_count, \
             total_bytes FROM artifact_packages WHERE id = ?{}",
            self.dialect().row_lock()
        );
        let row = self
            .first_row(&sql, &[id.into()])
            .await?
            .ok_or_else(|| not_found("package", id))?;
        let mut c = Cols::new(&row);
        Ok(LockedPackage {
            status: PackageStatus::parse(&c.text()?).ok_or_else(|| rows::corrupt("status"))?,
            finalized: c.opt_text()?.is_some(),
            expires_at: c.opt_time()?,
            bytes_deletion_started: c.int()? != 0,
            file_count: c.u64()?,
            total_bytes: c.u64()?,
        })
    }

    /// Appends one audit event inside the caller's write transaction: locks the chain head,
    /// chains the event to it and moves the head. Call it last in a transaction so the head
    /// lock is held briefly and always taken after any row lock (no lock-order inversions).
    /// The audit chain's recorded head (`None` while the chain is empty); with `lock`, its
    /// row stays locked to the end of the transaction, which serializes appends.
    pub(crate) async fn read_chain_head(&self, lock: bool) -> MetaResult<Option<ChainHead>> {
        let sql = format!(
            "SELECT last_seq, last_hash FROM audit_chain_head WHERE id = 1{}",
            if lock { self.dialect().row_lock() } else { "" }
        );
        let row = self
            .first_row(&sql, &[])
            .await?
            .ok_or_else(|| rows::corrupt("audit_chain_head missing"))?;
        let mut c = Cols::new(&row);
        let seq = c.u64()?;
        let hash = c.text()?;
        Ok((seq > 0).then_some(ChainHead { seq, hash }))
    }

    pub(crate) async fn append_audit_in_tx(
        &self,
        draft: AuditDraft,
        now: Timestamp,
    ) -> MetaResult<AuditEvent> {
        let head = self.read_chain_head(true).await?;
        let event = audit::chain_after(head.as_ref(), &draft, new_id(), now);
        self.exec(
            "INSERT INTO audit_events (id, seq, event_type, package_id, file_id, actor, \
             created_at, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            &[
                event.id.as_str().into(),
                event.seq.into(),
                event.event_type.as_str().into(),
                event.package_id.clone().into(),
                event.file_id.clone().into(),
                event.actor.as_str().into(),
                ts(event.created_at),
                event.details.to_string().into(),
                event.prev_hash.as_str().into(),
                event.hash.as_str().into(),
            ],
        )
        .await?;
        self.exec(
            "UPDATE audit_chain_head SET last_seq = ?, last_hash = ? WHERE id = 1",
            &[event.seq.into(), event.hash.as_str().into()],
        )
        .await?;
        Ok(event)
    }

    /// Inserts a retention event inside the caller's transaction.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn insert_retention_event(
        &self,
        package_id: &str,
        event_type: artifact_store_core::model::RetentionEventType,
        reason: &str,
        actor: &str,
        now: Timestamp,
        previous: Option<Timestamp>,
        new: Option<Timestamp>,
    ) -> MetaResult<artifact_store_core::model::RetentionEvent> {
        let event = artifact_store_core::model::RetentionEvent {
            id: new_id(),
            package_id: package_id.to_string(),
            event_type,
            reason: reason.to_string(),
            created_by: actor.to_string(),
            created_at: time::truncate(now),
            previous_expires_at: previous,
            new_expires_at: new,
        };
        self.exec(
            "INSERT INTO retention_events (id, package_id, event_type, reason, created_by, \
             created_at, previous_expires_at, new_expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            &[
                event.id.as_str().into(),
                package_id.into(),
                event_type.as_str().into(),
                reason.into(),
                actor.into(),
                ts(event.created_at),
                opt_ts(previous),
                opt_ts(new),
            ],
        )
        .await?;
        Ok(event)
    }
}

/// `true` when the error is a unique-constraint refusal.
pub(crate) fn is_unique_violation(e: &SqlError) -> bool {
    e.kind == SqlErrorKind::UniqueViolation
}
