//! The store's side of a sweep: claims with leases, the objects a deletion may remove,
//! and the deletion's outcome.
//!
//! Decision: a claim moves a package to `deleting` and leases it to one sweeper; a lease
//! that runs out (crashed sweeper, failed deletion) makes the package claimable again.
//! Concurrent claimers never share a package: SQLite serializes the claim transaction
//! (`BEGIN IMMEDIATE`), Postgres skips rows another claimer locked (`SKIP LOCKED`).
//! Once `objects_to_delete` ran (`bytes_deletion_started`), holds are refused: bytes may
//! already be gone.

use artifact_store_core::error::ErrorCode;
use artifact_store_core::model::{
    AuditEventType, Package, PackageStatus, RetentionEventType, StorageLocation, Timestamp,
};
use artifact_store_core::ports::{
    AuditDraft, BlobState, MetaResult, MetadataError, PendingUpload, SweepClaim,
};
use artifact_store_core::time;
use serde_json::json;

use super::conn::SqlConn;
use super::rows::{self, Cols, PENDING_COLUMNS};
use super::store::{SqlStore, domain, not_found, ts};

/// A package is live (its files keep their objects) unless deleted, or deleting with its
/// byte deletion started.
const LIVE_PACKAGE: &str = "(q.status <> 'deleted' AND \
     NOT (q.status = 'deleting' AND q.bytes_deletion_started = 1))";

/// Core's `retention::deletion_eligible` in SQL, holds aside (the callers add them): a
/// finalized package once expired, an open one only once abandoned (created at or before
/// the second `?`; its class rule does not matter while it may still receive uploads),
/// never a permanent record. The first `?` is now. The metadata scenario
/// `sweep_claims_exactly_what_core_calls_eligible` checks the two agree.
const ELIGIBLE_BUT_FOR_HOLDS: &str = "(p.retention_class <> 'permanent-record' AND \
     ((p.status = 'finalized' AND p.expires_epoch <= ?) \
      OR (p.status = 'open' AND p.created_epoch <= ?)))";

/// How long a package whose deletion failed `earlier` times before waits for its next
/// attempt: none after the first failure, then 1, 2, 4 ... minutes, at most 6 hours.
pub fn retry_backoff_secs(earlier: u64) -> i64 {
    match earlier {
        0 => 0,
        n => (60_i64 << (n - 1).min(20)).min(6 * 3600),
    }
}

impl<C: SqlConn> SqlStore<C> {
    pub(crate) async fn claim_for_deletion_impl(
        &self,
        now: Timestamp,
        open_ttl_secs: i64,
        limit: u32,
        lease_secs: i64,
        sweeper: &str,
    ) -> MetaResult<Vec<SweepClaim>> {
        let now = time::truncate(now);
        let now_epoch = time::epoch(now);
        let abandoned_before = now_epoch - open_ttl_secs;
        let lease_until = now_epoch + lease_secs;
        let sql = format!(
            "SELECT p.id, p.status, p.expires_at FROM artifact_packages p WHERE \
             ({ELIGIBLE_BUT_FOR_HOLDS} \
              OR (p.status = 'deleting' AND (p.lease_until IS NULL OR p.lease_until <= ?))) \
             AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.package_id = p.id \
                             AND h.released_at IS NULL AND p.status <> 'deleting') \
             ORDER BY p.created_at, p.id LIMIT {}{}",
            limit.max(1),
            self.dialect().skip_locked()
        );
        let claimed_ids = self
            .write_tx(async || {
                let candidates = self
                    .rows(
                        &sql,
                        &[now_epoch.into(), abandoned_before.into(), now_epoch.into()],
                    )
                    .await?;
                let mut claimed = Vec::with_capacity(candidates.len());
                for row in &candidates {
                    let mut c = Cols::new(row);
                    let id = c.text()?;
                    let status =
                        PackageStatus::parse(&c.text()?).ok_or_else(|| rows::corrupt("status"))?;
                    let expires_at = c.opt_time()?;
                    let newly = status != PackageStatus::Deleting;
                    // The candidate query's snapshot predates its row locks: on PostgreSQL a
                    // hold committed in between is invisible to it. Now that the row is
                    // locked (a hold locks it too), a fresh look sees every hold.
                    if newly && self.has_active_hold(&id).await? {
                        continue;
                    }
                    self.exec(
                        "UPDATE artifact_packages SET status = 'deleting', \
                         deleting_at = COALESCE(deleting_at, ?), lease_until = ?, \
                         claimed_by = ? WHERE id = ?",
                        &[
                            ts(now),
                            lease_until.into(),
                            sweeper.into(),
                            id.as_str().into(),
                        ],
                    )
                    .await?;
                    if newly {
                        let why = if status == PackageStatus::Open {
                            "open package abandoned"
                        } else {
                            "retention period ended"
                        };
                        self.insert_retention_event(
                            &id,
                            RetentionEventType::DeletionEligible,
                            why,
                            sweeper,
                            now,
                            expires_at,
                            expires_at,
                        )
                        .await?;
                        self.append_audit_in_tx(
                            AuditDraft::for_package(
                                AuditEventType::DeletionRequested,
                                &id,
                                sweeper,
                                json!({"reason": why}),
                            ),
                            now,
                        )
                        .await?;
                    }
                    claimed.push((id, newly));
                }
                Ok(claimed)
            })
            .await?;
        let mut claims = Vec::with_capacity(claimed_ids.len());
        for (id, newly_deleting) in claimed_ids {
            let package = self
                .get_package_impl(&id)
                .await?
                .ok_or_else(|| not_found("package", &id))?;
            claims.push(SweepClaim {
                package,
                newly_deleting,
            });
        }
        Ok(claims)
    }

    pub(crate) async fn count_held_eligible_impl(
        &self,
        now: Timestamp,
        open_ttl_secs: i64,
    ) -> MetaResult<u64> {
        let now_epoch = time::epoch(now);
        let row = self
            .first_row(
                &format!(
                    "SELECT COUNT(*) FROM artifact_packages p WHERE {ELIGIBLE_BUT_FOR_HOLDS} \
                 AND EXISTS (SELECT 1 FROM holds h WHERE h.package_id = p.id \
                             AND h.released_at IS NULL)"
                ),
                &[now_epoch.into(), (now_epoch - open_ttl_secs).into()],
            )
            .await?;
        row.map_or(Ok(0), |r| Cols::new(&r).u64())
    }

    pub(crate) async fn sweep_candidates_impl(
        &self,
        now: Timestamp,
        open_ttl_secs: i64,
        limit: u32,
    ) -> MetaResult<Vec<Package>> {
        let now_epoch = time::epoch(time::truncate(now));
        let sql = format!(
            "SELECT p.id FROM artifact_packages p WHERE p.status <> 'deleted' AND \
             (p.expires_epoch <= ? OR (p.status = 'open' AND p.created_epoch <= ?) \
              OR p.status = 'deleting') \
             ORDER BY p.created_at, p.id LIMIT {}",
            limit.max(1)
        );
        let rows = self
            .rows(
                &sql,
                &[now_epoch.into(), (now_epoch - open_ttl_secs).into()],
            )
            .await?;
        let mut packages = Vec::with_capacity(rows.len());
        for row in &rows {
            let id = Cols::new(row).text()?;
            // A package deleted since the query is simply left out.
            if let Some(p) = self.get_package_impl(&id).await?
                && p.status != PackageStatus::Deleted
            {
                packages.push(p);
            }
        }
        Ok(packages)
    }

    async fn has_active_hold(&self, package_id: &str) -> MetaResult<bool> {
        let row = self
            .first_row(
                "SELECT 1 FROM holds WHERE package_id = ? AND released_at IS NULL",
                &[package_id.into()],
            )
            .await?;
        Ok(row.is_some())
    }

    /// The objects the claimed `package_id`'s deletion may remove, now that no hold can
    /// stop it. A held package (a hold that raced the claim) goes back to its status before
    /// the claim, so it never sits in `deleting`, answering 410, while held.
    pub(crate) async fn objects_to_delete_impl(
        &self,
        package_id: &str,
    ) -> MetaResult<Vec<StorageLocation>> {
        let result = self.objects_to_delete_tx(package_id).await;
        if let Err(MetadataError::Domain(e)) = &result
            && e.code == ErrorCode::HoldActive
        {
            self.write_tx(async || {
                let locked = self.lock_package(package_id).await?;
                if locked.status == PackageStatus::Deleting && !locked.bytes_deletion_started {
                    self.exec(
                        "UPDATE artifact_packages SET status = ?, deleting_at = NULL, \
                         lease_until = NULL, claimed_by = NULL WHERE id = ?",
                        &[locked.status_before_claim().into(), package_id.into()],
                    )
                    .await?;
                }
                Ok(())
            })
            .await?;
        }
        result
    }

    async fn objects_to_delete_tx(&self, package_id: &str) -> MetaResult<Vec<StorageLocation>> {
        self.write_tx(async || {
            let locked = self.lock_package(package_id).await?;
            if locked.status != PackageStatus::Deleting {
                return Err(domain(
                    ErrorCode::InvalidState,
                    format!("package {package_id} is {}", locked.status.as_str()),
                ));
            }
            if self.has_active_hold(package_id).await? {
                return Err(domain(
                    ErrorCode::HoldActive,
                    format!("package {package_id} is on hold"),
                ));
            }
            self.exec(
                "UPDATE artifact_packages SET bytes_deletion_started = 1 WHERE id = ?",
                &[package_id.into()],
            )
            .await?;
            // The package's objects, each blob row locked (Postgres; in key order, so two
            // sweeps never deadlock) before references are counted: an upload pins or
            // commits under the same lock, so either its pin or file row is visible to the
            // reference check below, or it finds the blob `deleting` and does not use it.
            let mine = self
                .rows(
                    "SELECT DISTINCT l.backend_id, l.object_key FROM artifact_files f \
                     JOIN storage_locations l ON l.file_id = f.id \
                     WHERE f.package_id = ? AND f.deleted_at IS NULL \
                     ORDER BY l.backend_id, l.object_key",
                    &[package_id.into()],
                )
                .await?;
            let lock_blob = format!(
                "SELECT 1 FROM blobs WHERE backend_id = ? AND object_key = ?{}",
                self.dialect().row_lock()
            );
            let mut out = Vec::new();
            for row in &mine {
                let mut c = Cols::new(row);
                let location = StorageLocation {
                    backend_id: c.text()?,
                    object_key: c.text()?,
                };
                let key = [
                    location.backend_id.as_str().into(),
                    location.object_key.as_str().into(),
                ];
                self.first_row(&lock_blob, &key).await?;
                if self.still_referenced(package_id, &location).await? {
                    continue;
                }
                self.exec(
                    "UPDATE blobs SET state = 'deleting' WHERE backend_id = ? AND object_key = ?",
                    &key,
                )
                .await?;
                out.push(location);
            }
            Ok(out)
        })
        .await
    }

    /// Whether anything but `package_id` needs the object: a live file of another package,
    /// or another package's upload that pinned it. Call it with the blob row locked.
    async fn still_referenced(
        &self,
        package_id: &str,
        location: &StorageLocation,
    ) -> MetaResult<bool> {
        let sql = format!(
            "SELECT 1 WHERE EXISTS (SELECT 1 FROM storage_locations l2 \
             JOIN artifact_files f2 ON f2.id = l2.file_id \
             JOIN artifact_packages q ON q.id = f2.package_id \
             WHERE l2.backend_id = ? AND l2.object_key = ? \
             AND f2.package_id <> ? AND f2.deleted_at IS NULL AND {LIVE_PACKAGE}) \
             OR EXISTS (SELECT 1 FROM pending_uploads pu \
             WHERE pu.backend_id = ? AND pu.object_key = ? AND pu.package_id <> ?)"
        );
        let (b, k) = (location.backend_id.as_str(), location.object_key.as_str());
        let row = self
            .first_row(
                &sql,
                &[
                    b.into(),
                    k.into(),
                    package_id.into(),
                    b.into(),
                    k.into(),
                    package_id.into(),
                ],
            )
            .await?;
        Ok(row.is_some())
    }

    pub(crate) async fn claim_orphan_object_impl(
        &self,
        pending_id: &str,
    ) -> MetaResult<Option<StorageLocation>> {
        self.write_tx(async || {
            let Some(row) = self
                .first_row(
                    "SELECT backend_id, object_key FROM pending_uploads \
                     WHERE id = ? AND object_key IS NOT NULL",
                    &[pending_id.into()],
                )
                .await?
            else {
                return Ok(None);
            };
            let mut c = Cols::new(&row);
            let location = StorageLocation {
                backend_id: c.text()?,
                object_key: c.text()?,
            };
            // Ordered against `pin_blob` by the same locks (there may be no blob row).
            self.lock_content_address(&location).await?;
            let state = self
                .read_blob_state(&location.backend_id, &location.object_key, true)
                .await?;
            // A `present` blob may have outlived its files (a sweep kept it for this pin);
            // like any blob, it goes once nothing needs it.
            let (b, k) = (location.backend_id.as_str(), location.object_key.as_str());
            let needed = self
                .first_row(
                    "SELECT 1 WHERE EXISTS (SELECT 1 FROM storage_locations l \
                     JOIN artifact_files f ON f.id = l.file_id \
                     WHERE l.backend_id = ? AND l.object_key = ? AND f.deleted_at IS NULL) \
                     OR EXISTS (SELECT 1 FROM pending_uploads pu \
                     WHERE pu.backend_id = ? AND pu.object_key = ? AND pu.id <> ?)",
                    &[b.into(), k.into(), b.into(), k.into(), pending_id.into()],
                )
                .await?;
            if needed.is_some() {
                return Ok(None);
            }
            match state {
                Some(BlobState::Deleting) => {}
                Some(BlobState::Present) => {
                    self.exec(
                        "UPDATE blobs SET state = 'deleting' WHERE backend_id = ? AND object_key = ?",
                        &[b.into(), k.into()],
                    )
                    .await?;
                }
                None => {
                    let digest = k.rsplit('/').next().unwrap_or_default();
                    self.exec(
                        "INSERT INTO blobs (backend_id, object_key, sha256, size_bytes, state, \
                         created_at) VALUES (?, ?, ?, 0, 'deleting', ?)",
                        &[b.into(), k.into(), digest.into(), ts(time::now())],
                    )
                    .await?;
                }
            }
            Ok(Some(location))
        })
        .await
    }

    pub(crate) async fn forget_blob_impl(&self, location: &StorageLocation) -> MetaResult<()> {
        self.exec(
            "DELETE FROM blobs WHERE backend_id = ? AND object_key = ? AND state = 'deleting'",
            &[
                location.backend_id.as_str().into(),
                location.object_key.as_str().into(),
            ],
        )
        .await?;
        Ok(())
    }

    pub(crate) async fn complete_deletion_impl(
        &self,
        package_id: &str,
        actor: &str,
        now: Timestamp,
    ) -> MetaResult<()> {
        let now = time::truncate(now);
        self.write_tx(async || {
            let locked = self.lock_package(package_id).await?;
            match locked.status {
                PackageStatus::Deleted => return Ok(()),
                PackageStatus::Deleting => {}
                other => {
                    return Err(domain(
                        ErrorCode::InvalidState,
                        format!("package {package_id} is {}", other.as_str()),
                    ));
                }
            }
            self.exec(
                "UPDATE artifact_files SET deleted_at = ? WHERE package_id = ? \
                 AND deleted_at IS NULL",
                &[ts(now), package_id.into()],
            )
            .await?;
            self.exec(
                "UPDATE artifact_packages SET status = 'deleted', deleted_at = ?, \
                 lease_until = NULL, claimed_by = NULL WHERE id = ?",
                &[ts(now), package_id.into()],
            )
            .await?;
            // Pending uploads of the package stay: their staging bytes may still exist,
            // and only the orphan sweep (which deletes those first) may forget them.
            self.insert_retention_event(
                package_id,
                RetentionEventType::Deleted,
                "bytes deleted by sweep",
                actor,
                now,
                locked.expires_at,
                locked.expires_at,
            )
            .await?;
            self.append_audit_in_tx(
                AuditDraft::for_package(
                    AuditEventType::DeletionCompleted,
                    package_id,
                    actor,
                    json!({
                        "file_count": locked.file_count,
                        "total_bytes": locked.total_bytes,
                    }),
                ),
                now,
            )
            .await?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn fail_deletion_impl(
        &self,
        package_id: &str,
        actor: &str,
        detail: &str,
    ) -> MetaResult<()> {
        self.write_tx(async || {
            self.lock_package(package_id).await?;
            // The first failure is retried by the next sweep; each further one waits twice
            // as long (the lease keeps sweeps off it), so packages that keep failing cannot
            // take every sweep's batch from newer expired ones.
            let failures = self
                .first_row(
                    "SELECT COUNT(*) FROM audit_events WHERE package_id = ? AND event_type = ?",
                    &[
                        package_id.into(),
                        AuditEventType::DeletionFailed.as_str().into(),
                    ],
                )
                .await?
                .map_or(Ok(0), |r| Cols::new(&r).u64())?;
            // (No NULL parameter: the PostgreSQL adapter types a bound NULL as text.)
            let lease_until = match retry_backoff_secs(failures) {
                0 => "NULL".to_string(),
                secs => (time::epoch(time::now()) + secs).to_string(),
            };
            self.exec(
                &format!(
                    "UPDATE artifact_packages SET lease_until = {lease_until}, claimed_by = NULL \
                     WHERE id = ?"
                ),
                &[package_id.into()],
            )
            .await?;
            self.append_audit_in_tx(
                AuditDraft::for_package(
                    AuditEventType::DeletionFailed,
                    package_id,
                    actor,
                    json!({"detail": detail}),
                ),
                time::now(),
            )
            .await?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn stale_uploads_impl(
        &self,
        before: Timestamp,
        limit: u32,
    ) -> MetaResult<Vec<PendingUpload>> {
        // An upload session is stale once it has been expired for as long as any other
        // upload gets to finish (a `complete` begun just before the expiry may be
        // committing).
        let sql = format!(
            "SELECT {PENDING_COLUMNS} FROM pending_uploads WHERE started_epoch < ? \
             AND NOT EXISTS (SELECT 1 FROM upload_sessions s \
             WHERE s.id = pending_uploads.id AND s.expires_epoch >= ?) \
             ORDER BY started_epoch, id LIMIT {}",
            limit.max(1)
        );
        let before = time::epoch(before);
        self.rows(&sql, &[before.into(), before.into()])
            .await?
            .iter()
            .map(rows::pending_upload)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::retry_backoff_secs;

    #[test]
    fn backoff_doubles_from_the_second_failure_and_is_capped() {
        let got: Vec<i64> = (0..5).map(retry_backoff_secs).collect();
        assert_eq!(got, vec![0, 60, 120, 240, 480]);
        assert_eq!(retry_backoff_secs(40), 6 * 3600);
    }
}
