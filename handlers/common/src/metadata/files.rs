//! Files: pending uploads, blobs and the commit that makes an upload a file.

use artifact_store_core::error::ErrorCode;
use artifact_store_core::model::{AuditEventType, File, PackageStatus, StorageLocation};
use artifact_store_core::ports::{
    AuditDraft, BlobState, CommitUpload, FileRecord, MetaResult, PendingUpload, PinState,
};
use artifact_store_core::time;
use serde_json::json;

use super::conn::SqlConn;
use super::rows::{self, Cols, FILE_COLUMNS};
use super::store::{SqlStore, domain, is_unique_violation, ts, unavailable};

fn duplicate_path(path: &str) -> artifact_store_core::ports::MetadataError {
    domain(
        ErrorCode::DuplicatePath,
        format!("the package already has a file at {path}"),
    )
}

/// The pending upload (and its pin) was removed, by the orphan sweep or its package's
/// deletion: the upload must start again.
fn upload_gone(pending_id: &str) -> artifact_store_core::ports::MetadataError {
    domain(
        ErrorCode::BackendUnavailable,
        format!("upload {pending_id} expired before it committed; upload the file again"),
    )
}

impl<C: SqlConn> SqlStore<C> {
    pub(crate) async fn begin_upload_impl(&self, p: &PendingUpload) -> MetaResult<()> {
        let started = time::truncate(p.started_at);
        self.exec(
            "INSERT INTO pending_uploads (id, package_id, backend_id, staging_key, started_at, \
             started_epoch) VALUES (?, ?, ?, ?, ?, ?)",
            &[
                p.id.as_str().into(),
                p.package_id.as_str().into(),
                p.backend_id.as_str().into(),
                p.staging_key.as_str().into(),
                ts(started),
                time::epoch(started).into(),
            ],
        )
        .await?;
        Ok(())
    }

    pub(crate) async fn abort_upload_impl(&self, pending_id: &str) -> MetaResult<()> {
        // An upload session rides on its pending upload: both end here.
        self.write_tx(async || {
            for sql in [
                "DELETE FROM upload_session_parts WHERE session_id = ?",
                "DELETE FROM upload_sessions WHERE id = ?",
                "DELETE FROM pending_uploads WHERE id = ?",
            ] {
                self.exec(sql, &[pending_id.into()]).await?;
            }
            Ok(())
        })
        .await
    }

    /// Locks a content address to the end of the transaction, row or no row (Postgres).
    pub(crate) async fn lock_content_address(&self, location: &StorageLocation) -> MetaResult<()> {
        if let Some(sql) = self.dialect().key_lock() {
            let key = format!("{}/{}", location.backend_id, location.object_key);
            self.first_row(sql, &[key.into()]).await?;
        }
        Ok(())
    }

    /// The blob's state; with `lock`, its row stays locked to the end of the transaction.
    pub(crate) async fn read_blob_state(
        &self,
        backend_id: &str,
        object_key: &str,
        lock: bool,
    ) -> MetaResult<Option<BlobState>> {
        let sql = format!(
            "SELECT state FROM blobs WHERE backend_id = ? AND object_key = ?{}",
            if lock { self.dialect().row_lock() } else { "" }
        );
        let row = self
            .first_row(&sql, &[backend_id.into(), object_key.into()])
            .await?;
        row.map(|r| match Cols::new(&r).text()?.as_str() {
            "present" => Ok(BlobState::Present),
            "deleting" => Ok(BlobState::Deleting),
            _ => Err(rows::corrupt("blob state")),
        })
        .transpose()
    }

    pub(crate) async fn blob_state_impl(
        &self,
        backend_id: &str,
        object_key: &str,
    ) -> MetaResult<Option<BlobState>> {
        self.read_blob_state(backend_id, object_key, false).await
    }

    pub(crate) async fn pin_blob_impl(
        &self,
        pending_id: &str,
        location: &StorageLocation,
    ) -> MetaResult<PinState> {
        self.write_tx(async || {
            // The blob's row lock (Postgres; SQLite serializes write transactions) orders
            // this pin against a sweep's `objects_to_delete`, which takes the same lock
            // before it looks for references: one of the two sees the other. The key lock
            // does the same against `claim_orphan_object` and other pins, for a blob
            // without a row.
            self.lock_content_address(location).await?;
            let (b, k) = (location.backend_id.as_str(), location.object_key.as_str());
            let found = match self.read_blob_state(b, k, true).await? {
                Some(BlobState::Deleting) => return Ok(PinState::Deleting),
                Some(BlobState::Present) => PinState::Present,
                // Another upload pinned it and has not committed: it is writing these
                // bytes now. Two writers of one address must not both promote (kv moves
                // chunks without compare-and-set: the later write would orphan the
                // earlier one's chunks).
                None => match self
                    .first_row(
                        "SELECT 1 FROM pending_uploads \
                         WHERE backend_id = ? AND object_key = ? AND id <> ?",
                        &[b.into(), k.into(), pending_id.into()],
                    )
                    .await?
                {
                    Some(_) => PinState::Writing,
                    None => PinState::Absent,
                },
            };
            let pinned = self
                .exec(
                    "UPDATE pending_uploads SET object_key = ? WHERE id = ? AND backend_id = ?",
                    &[k.into(), pending_id.into(), b.into()],
                )
                .await?;
            if pinned != 1 {
                return Err(upload_gone(pending_id));
            }
            Ok(found)
        })
        .await
    }

    pub(crate) async fn commit_upload_impl(&self, commit: &CommitUpload) -> MetaResult<File> {
        let file = File {
            created_at: time::truncate(commit.file.created_at),
            ..commit.file.clone()
        };
        let loc = &commit.location;
        self.write_tx(async || {
            let locked = self.lock_package(&file.package_id).await?;
            if locked.status != PackageStatus::Open {
                return Err(domain(
                    ErrorCode::PackageFinalized,
                    format!(
                        "package {} is {}: files can no longer be added",
                        file.package_id,
                        locked.status.as_str()
                    ),
                ));
            }
            let taken = self
                .first_row(
                    "SELECT 1 FROM artifact_files WHERE package_id = ? AND relative_path = ?",
                    &[
                        file.package_id.as_str().into(),
                        file.relative_path.as_str().into(),
                    ],
                )
                .await?;
            if taken.is_some() {
                return Err(duplicate_path(&file.relative_path));
            }
            // The upsert locks the blob row (Postgres), so a sweep marking it `deleting`
            // waits for this commit and then sees the new reference.
            let state = self
                .first_row(
                    "INSERT INTO blobs (backend_id, object_key, sha256, size_bytes, state, \
                     created_at) VALUES (?, ?, ?, ?, 'present', ?) \
                     ON CONFLICT (backend_id, object_key) \
                     DO UPDATE SET size_bytes = excluded.size_bytes RETURNING state",
                    &[
                        loc.backend_id.as_str().into(),
                        loc.object_key.as_str().into(),
                        file.sha256.as_str().into(),
                        file.size_bytes.into(),
                        ts(file.created_at),
                    ],
                )
                .await?
                .map(|r| Cols::new(&r).text())
                .transpose()?;
            if state.as_deref() == Some("deleting") {
                return Err(domain(
                    ErrorCode::BackendUnavailable,
                    "the object is being deleted by a sweep; retry the upload",
                ));
            }
            let inserted = self
                .exec_raw(
                    "INSERT INTO artifact_files (id, package_id, relative_path, media_type, \
                     size_bytes, sha256, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    &[
                        file.id.as_str().into(),
                        file.package_id.as_str().into(),
                        file.relative_path.as_str().into(),
                        file.media_type.as_str().into(),
                        file.size_bytes.into(),
                        file.sha256.as_str().into(),
                        ts(file.created_at),
                    ],
                )
                .await;
            match inserted {
                Err(e) if is_unique_violation(&e) => {
                    return Err(duplicate_path(&file.relative_path));
                }
                other => other.map_err(unavailable)?,
            };
            self.exec(
                "INSERT INTO storage_locations (file_id, backend_id, object_key) VALUES (?, ?, ?)",
                &[
                    file.id.as_str().into(),
                    loc.backend_id.as_str().into(),
                    loc.object_key.as_str().into(),
                ],
            )
            .await?;
            self.exec(
                "UPDATE artifact_packages SET file_count = file_count + 1, \
                 total_bytes = total_bytes + ? WHERE id = ?",
                &[file.size_bytes.into(), file.package_id.as_str().into()],
            )
            .await?;
            // The pending row carries the pin on the object: it must still be there (an
            // orphan sweep removes uploads older than its grace period), and the pin ends in
            // the same transaction that makes the file reference the object. The row itself
            // stays until the staging bytes are gone (`abort_upload`), so a staging object
            // whose deletion fails is still known to the orphan sweep.
            let unpinned = self
                .exec(
                    "UPDATE pending_uploads SET object_key = NULL WHERE id = ?",
                    &[commit.pending_id.as_str().into()],
                )
                .await?;
            if unpinned != 1 {
                return Err(upload_gone(&commit.pending_id));
            }
            self.append_audit_in_tx(
                AuditDraft {
                    event_type: AuditEventType::FileUploaded,
                    package_id: Some(file.package_id.clone()),
                    file_id: Some(file.id.clone()),
                    actor: commit.actor.clone(),
                    details: json!({
                        "relative_path": file.relative_path,
                        "media_type": file.media_type,
                        "size_bytes": file.size_bytes,
                        "sha256": file.sha256,
                        "backend_id": loc.backend_id,
                        "object_key": loc.object_key,
                    }),
                },
                file.created_at,
            )
            .await?;
            Ok(())
        })
        .await?;
        Ok(file)
    }

    pub(crate) async fn list_files_impl(
        &self,
        package_id: &str,
    ) -> MetaResult<Vec<(File, StorageLocation)>> {
        let sql = format!(
            "SELECT {FILE_COLUMNS} FROM artifact_files f \
             JOIN storage_locations l ON l.file_id = f.id \
             WHERE f.package_id = ? ORDER BY f.relative_path, l.backend_id"
        );
        let mut out: Vec<(File, StorageLocation)> = Vec::new();
        for row in self.rows(&sql, &[package_id.into()]).await? {
            let (file, location) = rows::file_with_location(&mut Cols::new(&row))?;
            // A file stored on two backends is listed once, with its first location.
            if out.last().is_none_or(|(f, _)| f.id != file.id) {
                out.push((file, location));
            }
        }
        Ok(out)
    }

    pub(crate) async fn get_file_impl(&self, file_id: &str) -> MetaResult<Option<FileRecord>> {
        let sql = format!(
            "SELECT {FILE_COLUMNS}, p.status, p.producer, f.deleted_at, \
             p.bytes_deletion_started, b.corrupt_at FROM artifact_files f \
             JOIN storage_locations l ON l.file_id = f.id \
             JOIN artifact_packages p ON p.id = f.package_id \
             LEFT JOIN blobs b ON b.backend_id = l.backend_id AND b.object_key = l.object_key \
             WHERE f.id = ? ORDER BY l.backend_id"
        );
        let Some(row) = self.first_row(&sql, &[file_id.into()]).await? else {
            return Ok(None);
        };
        let mut c = Cols::new(&row);
        let (file, location) = rows::file_with_location(&mut c)?;
        let package_status =
            PackageStatus::parse(&c.text()?).ok_or_else(|| rows::corrupt("status"))?;
        let producer = c.text()?;
        let file_deleted = c.opt_text()?.is_some();
        // Once a sweep started removing bytes, some may be gone: answer as deleted.
        let bytes_going = c.int()? != 0;
        // The scrubber found the object changed or missing (migration 0005).
        let corrupt = c.opt_text()?.is_some();
        Ok(Some(FileRecord {
            file,
            location,
            package_status,
            producer,
            deleted: file_deleted || bytes_going || package_status == PackageStatus::Deleted,
            corrupt,
        }))
    }
}
