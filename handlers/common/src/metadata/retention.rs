//! Retention: extensions, holds and the retention event log.

use artifact_store_core::error::ErrorCode;
use artifact_store_core::model::{
    AuditEventType, Hold, PackageStatus, RetentionEvent, RetentionEventType, Timestamp,
};
use artifact_store_core::ports::{AuditDraft, MetaResult};
use artifact_store_core::time;
use serde_json::json;

use super::conn::SqlConn;
use super::rows::{self, HOLD_COLUMNS, RETENTION_EVENT_COLUMNS};
use super::store::{SqlStore, domain, new_id, not_found, ts};

impl<C: SqlConn> SqlStore<C> {
    pub(crate) async fn extend_retention_impl(
        &self,
        package_id: &str,
        new_expires_at: Timestamp,
        reason: &str,
        actor: &str,
        now: Timestamp,
    ) -> MetaResult<RetentionEvent> {
        let new_expires_at = time::truncate(new_expires_at);
        self.write_tx(async || {
            let locked = self.lock_package(package_id).await?;
            if matches!(
                locked.status,
                PackageStatus::Deleting | PackageStatus::Deleted
            ) {
                return Err(domain(
                    ErrorCode::InvalidState,
                    format!("package {package_id} is {}", locked.status.as_str()),
                ));
            }
            let Some(current) = locked.expires_at else {
                return Err(domain(
                    ErrorCode::InvalidExtension,
                    "the package never expires: there is nothing to extend",
                ));
            };
            if new_expires_at <= current {
                return Err(domain(
                    ErrorCode::InvalidExtension,
                    format!(
                        "new_expires_at must be later than the current expires_at {}",
                        time::format(current)
                    ),
                ));
            }
            self.exec(
                "UPDATE artifact_packages SET expires_at = ?, expires_epoch = ? WHERE id = ?",
                &[
                    ts(new_expires_at),
                    time::epoch(new_expires_at).into(),
                    package_id.into(),
                ],
            )
            .await?;
            let event = self
                .insert_retention_event(
                    package_id,
                    RetentionEventType::Extended,
                    reason,
                    actor,
                    now,
                    Some(current),
                    Some(new_expires_at),
                )
                .await?;
            self.append_audit_in_tx(
                AuditDraft::for_package(
                    AuditEventType::RetentionExtended,
                    package_id,
                    actor,
                    json!({
                        "retention_event_id": event.id,
                        "reason": reason,
                        "previous_expires_at": time::format(current),
                        "new_expires_at": time::format(new_expires_at),
                    }),
                ),
                now,
            )
            .await?;
            Ok(event)
        })
        .await
    }

    pub(crate) async fn apply_hold_impl(
        &self,
        package_id: &str,
        reason: &str,
        actor: &str,
        now: Timestamp,
    ) -> MetaResult<Hold> {
        let now = time::truncate(now);
        self.write_tx(async || {
            let locked = self.lock_package(package_id).await?;
            match locked.status {
                PackageStatus::Deleted => {
                    return Err(domain(
                        ErrorCode::InvalidState,
                        format!("package {package_id} is deleted"),
                    ));
                }
                PackageStatus::Deleting if locked.bytes_deletion_started => {
                    return Err(domain(
                        ErrorCode::InvalidState,
                        format!("the bytes of package {package_id} are being deleted"),
                    ));
                }
                PackageStatus::Deleting => {
                    // No byte is gone yet: the hold wins and the package goes back.
                    let back = locked.status_before_claim();
                    self.exec(
                        "UPDATE artifact_packages SET status = ?, deleting_at = NULL, \
                         lease_until = NULL, claimed_by = NULL WHERE id = ?",
                        &[back.into(), package_id.into()],
                    )
                    .await?;
                }
                PackageStatus::Open | PackageStatus::Finalized => {}
            }
            let hold = Hold {
                id: new_id(),
                package_id: package_id.to_string(),
                reason: reason.to_string(),
                created_by: actor.to_string(),
                created_at: now,
                released_at: None,
            };
            self.exec(
                "INSERT INTO holds (id, package_id, reason, created_by, created_at) \
                 VALUES (?, ?, ?, ?, ?)",
                &[
                    hold.id.as_str().into(),
                    package_id.into(),
                    reason.into(),
                    actor.into(),
                    ts(now),
                ],
            )
            .await?;
            self.insert_retention_event(
                package_id,
                RetentionEventType::HoldApplied,
                reason,
                actor,
                now,
                locked.expires_at,
                locked.expires_at,
            )
            .await?;
            self.append_audit_in_tx(
                AuditDraft::for_package(
                    AuditEventType::HoldApplied,
                    package_id,
                    actor,
                    json!({"hold_id": hold.id, "reason": reason}),
                ),
                now,
            )
            .await?;
            Ok(hold)
        })
        .await
    }

    pub(crate) async fn release_hold_impl(
        &self,
        package_id: &str,
        hold_id: &str,
        reason: &str,
        actor: &str,
        now: Timestamp,
    ) -> MetaResult<Hold> {
        let now = time::truncate(now);
        self.write_tx(async || {
            let locked = self.lock_package(package_id).await?;
            let sql =
                format!("SELECT {HOLD_COLUMNS} FROM holds h WHERE h.id = ? AND h.package_id = ?");
            let row = self
                .first_row(&sql, &[hold_id.into(), package_id.into()])
                .await?
                .ok_or_else(|| not_found("hold", hold_id))?;
            let mut hold = rows::hold(&row)?;
            if hold.released_at.is_some() {
                return Err(domain(
                    ErrorCode::HoldReleased,
                    format!("hold {hold_id} was already released"),
                ));
            }
            hold.released_at = Some(now);
            self.exec(
                "UPDATE holds SET released_at = ?, released_by = ?, release_reason = ? \
                 WHERE id = ?",
                &[ts(now), actor.into(), reason.into(), hold_id.into()],
            )
            .await?;
            self.insert_retention_event(
                package_id,
                RetentionEventType::HoldReleased,
                reason,
                actor,
                now,
                locked.expires_at,
                locked.expires_at,
            )
            .await?;
            self.append_audit_in_tx(
                AuditDraft::for_package(
                    AuditEventType::HoldReleased,
                    package_id,
                    actor,
                    json!({"hold_id": hold_id, "reason": reason}),
                ),
                now,
            )
            .await?;
            Ok(hold)
        })
        .await
    }

    pub(crate) async fn list_retention_events_impl(
        &self,
        package_id: &str,
    ) -> MetaResult<Vec<RetentionEvent>> {
        let sql = format!(
            "SELECT {RETENTION_EVENT_COLUMNS} FROM retention_events WHERE package_id = ? \
             ORDER BY created_at, id"
        );
        self.rows(&sql, &[package_id.into()])
            .await?
            .iter()
            .map(rows::retention_event)
            .collect()
    }
}
