//! The audit log: appends on their own, newest-first pages and chain-order ranges.

use artifact_store_core::model::{AuditEvent, Page};
use artifact_store_core::ports::{AuditDraft, AuditFilter, MetaResult, PageRequest};
use artifact_store_core::time;

use super::conn::{SqlConn, SqlValue};
use super::rows::{self, AUDIT_COLUMNS};
use super::store::SqlStore;
use artifact_store_core::cursor;

impl<C: SqlConn> SqlStore<C> {
    pub(crate) async fn append_audit_impl(&self, draft: AuditDraft) -> MetaResult<AuditEvent> {
        self.write_tx(async || self.append_audit_in_tx(draft, time::now()).await)
            .await
    }

    pub(crate) async fn list_audit_impl(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> MetaResult<Page<AuditEvent>> {
        let mut clauses: Vec<&str> = Vec::new();
        let mut params: Vec<SqlValue> = Vec::new();
        if let Some(id) = &filter.package_id {
            clauses.push("package_id = ?");
            params.push(id.into());
        }
        if let Some(t) = filter.event_type {
            clauses.push("event_type = ?");
            params.push(t.as_str().into());
        }
        if let Some(c) = &page.cursor {
            clauses.push("seq < ?");
            params.push(cursor::decode_seq(c)?.into());
        }
        let where_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        let limit = page.limit.clamp(1, 1000);
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events{where_sql} ORDER BY seq DESC LIMIT {}",
            limit + 1
        );
        let mut items = self
            .rows(&sql, &params)
            .await?
            .iter()
            .map(rows::audit_event)
            .collect::<MetaResult<Vec<_>>>()?;
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|e| cursor::encode_seq(e.seq))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    pub(crate) async fn audit_range_impl(
        &self,
        after_seq: u64,
        limit: u32,
    ) -> MetaResult<Vec<AuditEvent>> {
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE seq > ? ORDER BY seq LIMIT {}",
            limit.max(1)
        );
        self.rows(&sql, &[after_seq.into()])
            .await?
            .iter()
            .map(rows::audit_event)
            .collect()
    }
}
