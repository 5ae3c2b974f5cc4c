//! The store's side of scrubbing: which blob to re-read next, the digest state a budgeted
//! slice leaves behind, and the verdict (`last_verified_at`, or the corrupt mark with its
//! `corruption_detected` events).
//!
//! Decision: the state lives on the `blobs` row (migration 0005), so scrubbing needs no
//! table of its own and a blob's scrub state goes with it when a sweep forgets it. Progress
//! moves by compare-and-set on `scrub_offset` (as an upload session's `advance_digest`), so
//! two scrubbers at once (cron and `POST /admin/scrub`) never store a state that does not
//! describe the bytes before its offset. The corrupt mark and its audit events commit in
//! one transaction, under the blob's lock (the same lock a sweep takes before it marks the
//! blob `deleting`): an object a sweep is deleting is never reported corrupt.

use artifact_store_core::model::{AuditEventType, StorageLocation, Timestamp};
use artifact_store_core::ports::{
    AffectedFile, AuditDraft, MetaResult, ScrubFinding, ScrubStatus, ScrubTarget,
};
use artifact_store_core::time;
use serde_json::json;

use super::conn::SqlConn;
use super::rows::Cols;
use super::store::{SqlStore, ts};

impl<C: SqlConn> SqlStore<C> {
    pub(crate) async fn scrub_candidates_impl(&self, limit: u32) -> MetaResult<Vec<ScrubTarget>> {
        // A check in progress first (its state is stored: finish it), then never verified
        // (verified_epoch 0), then the oldest check.
        let sql = format!(
            "SELECT backend_id, object_key, sha256, size_bytes, scrub_offset, scrub_state, \
             last_verified_at FROM blobs WHERE state = 'present' AND corrupt_at IS NULL \
             ORDER BY CASE WHEN scrub_offset > 0 THEN 0 ELSE 1 END, verified_epoch, \
             backend_id, object_key LIMIT {}",
            limit.max(1)
        );
        let mut out = Vec::new();
        for row in self.rows(&sql, &[]).await? {
            let mut c = Cols::new(&row);
            out.push(ScrubTarget {
                location: StorageLocation {
                    backend_id: c.text()?,
                    object_key: c.text()?,
                },
                sha256: c.text()?,
                size_bytes: c.u64()?,
                verified_bytes: c.u64()?,
                hash_state: c.text()?,
                last_verified_at: c.opt_time()?,
            });
        }
        Ok(out)
    }

    pub(crate) async fn save_scrub_progress_impl(
        &self,
        location: &StorageLocation,
        from_bytes: u64,
        to_bytes: u64,
        hash_state: &str,
    ) -> MetaResult<bool> {
        let changed = self
            .exec(
                "UPDATE blobs SET scrub_offset = ?, scrub_state = ? WHERE backend_id = ? \
                 AND object_key = ? AND scrub_offset = ? AND state = 'present' \
                 AND corrupt_at IS NULL",
                &[
                    to_bytes.into(),
                    hash_state.into(),
                    location.backend_id.as_str().into(),
                    location.object_key.as_str().into(),
                    from_bytes.into(),
                ],
            )
            .await?;
        Ok(changed == 1)
    }

    pub(crate) async fn mark_verified_impl(
        &self,
        location: &StorageLocation,
        now: Timestamp,
    ) -> MetaResult<()> {
        let now = time::truncate(now);
        self.exec(
            "UPDATE blobs SET last_verified_at = ?, verified_epoch = ?, scrub_offset = 0, \
             scrub_state = '' WHERE backend_id = ? AND object_key = ? AND corrupt_at IS NULL",
            &[
                ts(now),
                time::epoch(now).into(),
                location.backend_id.as_str().into(),
                location.object_key.as_str().into(),
            ],
        )
        .await?;
        Ok(())
    }

    /// Live files stored at `location`, by package and path.
    async fn files_at(&self, location: &StorageLocation) -> MetaResult<Vec<AffectedFile>> {
        let rows = self
            .rows(
                "SELECT f.id, f.package_id, f.relative_path FROM storage_locations l \
                 JOIN artifact_files f ON f.id = l.file_id \
                 WHERE l.backend_id = ? AND l.object_key = ? AND f.deleted_at IS NULL \
                 ORDER BY f.package_id, f.relative_path",
                &[
                    location.backend_id.as_str().into(),
                    location.object_key.as_str().into(),
                ],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let mut c = Cols::new(r);
                Ok(AffectedFile {
                    file_id: c.text()?,
                    package_id: c.text()?,
                    relative_path: c.text()?,
                })
            })
            .collect()
    }

    pub(crate) async fn mark_corrupt_impl(
        &self,
        location: &StorageLocation,
        found: &str,
        detail: &str,
        actor: &str,
        now: Timestamp,
    ) -> MetaResult<Option<ScrubFinding>> {
        let now = time::truncate(now);
        let (b, k) = (location.backend_id.as_str(), location.object_key.as_str());
        self.write_tx(async || {
            self.lock_content_address(location).await?;
            let sql = format!(
                "SELECT sha256 FROM blobs WHERE backend_id = ? AND object_key = ? \
                 AND state = 'present' AND corrupt_at IS NULL{}",
                self.dialect().row_lock()
            );
            let Some(row) = self.first_row(&sql, &[b.into(), k.into()]).await? else {
                return Ok(None);
            };
            let expected = Cols::new(&row).text()?;
            self.exec(
                "UPDATE blobs SET corrupt_at = ?, corrupt_found = ?, corrupt_detail = ?, \
                 scrub_offset = 0, scrub_state = '' WHERE backend_id = ? AND object_key = ?",
                &[ts(now), found.into(), detail.into(), b.into(), k.into()],
            )
            .await?;
            let files = self.files_at(location).await?;
            let details = |file: Option<&AffectedFile>| {
                json!({
                    "source": "scrub",
                    "backend_id": b,
                    "object_key": k,
                    "sha256": expected,
                    "expected_sha256": expected,
                    "actual_sha256": found,
                    "detail": detail,
                    "relative_path": file.map(|f| f.relative_path.as_str()),
                })
            };
            if files.is_empty() {
                // A blob no live file uses (kept for an upload's pin): still on record.
                self.append_audit_in_tx(
                    AuditDraft {
                        event_type: AuditEventType::CorruptionDetected,
                        package_id: None,
                        file_id: None,
                        actor: actor.to_string(),
                        details: details(None),
                    },
                    now,
                )
                .await?;
            }
            for f in &files {
                self.append_audit_in_tx(
                    AuditDraft {
                        event_type: AuditEventType::CorruptionDetected,
                        package_id: Some(f.package_id.clone()),
                        file_id: Some(f.file_id.clone()),
                        actor: actor.to_string(),
                        details: details(Some(f)),
                    },
                    now,
                )
                .await?;
            }
            Ok(Some(ScrubFinding {
                backend_id: b.to_string(),
                object_key: k.to_string(),
                expected_sha256: expected.clone(),
                found: found.to_string(),
                detail: detail.to_string(),
                found_at: now,
                files,
            }))
        })
        .await
    }

    pub(crate) async fn scrub_status_impl(&self, findings_limit: u32) -> MetaResult<ScrubStatus> {
        let row = self
            .first_row(
                "SELECT COUNT(*), \
                 COALESCE(SUM(CASE WHEN last_verified_at IS NOT NULL THEN 1 ELSE 0 END), 0), \
                 COALESCE(SUM(CASE WHEN scrub_offset > 0 THEN 1 ELSE 0 END), 0), \
                 COALESCE(SUM(CASE WHEN corrupt_at IS NOT NULL THEN 1 ELSE 0 END), 0), \
                 MIN(CASE WHEN corrupt_at IS NULL THEN last_verified_at END) \
                 FROM blobs WHERE state = 'present'",
                &[],
            )
            .await?
            .ok_or_else(|| super::rows::corrupt("scrub counts"))?;
        let mut c = Cols::new(&row);
        let blobs_total = c.u64()?;
        let verified_once = c.u64()?;
        let in_progress = c.u64()?;
        let corrupt = c.u64()?;
        let oldest_verified_at = c.opt_time()?;
        let sql = format!(
            "SELECT backend_id, object_key, sha256, corrupt_found, corrupt_detail, corrupt_at \
             FROM blobs WHERE corrupt_at IS NOT NULL \
             ORDER BY corrupt_at DESC, backend_id, object_key LIMIT {}",
            findings_limit.max(1)
        );
        let mut findings = Vec::new();
        for row in self.rows(&sql, &[]).await? {
            let mut c = Cols::new(&row);
            let location = StorageLocation {
                backend_id: c.text()?,
                object_key: c.text()?,
            };
            let expected_sha256 = c.text()?;
            let found = c.opt_text()?.unwrap_or_default();
            let detail = c.opt_text()?.unwrap_or_default();
            let found_at = c.time()?;
            let files = self.files_at(&location).await?;
            findings.push(ScrubFinding {
                backend_id: location.backend_id,
                object_key: location.object_key,
                expected_sha256,
                found,
                detail,
                found_at,
                files,
            });
        }
        Ok(ScrubStatus {
            blobs_total,
            verified_once,
            never_verified: blobs_total.saturating_sub(verified_once),
            in_progress,
            oldest_verified_at,
            corrupt,
            findings,
        })
    }
}
