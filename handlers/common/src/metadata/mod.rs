//! The metadata store: one SQL implementation of `MetadataStore` for SQLite and Postgres.
//!
//! Decision: `SqlStore<C: SqlConn>` holds every query, written once in SQL both dialects
//! accept; connections differ only in how they carry statements (`conn::SqlConn`) and in
//! the few spots `conn::Dialect` names (placeholders, write locks, `SKIP LOCKED`). Spin's
//! two databases are one `SpinConn` enum, so a component holds a single `Store` type and
//! the native tests run the very same store over rusqlite and tokio-postgres.
//!
//! Entry point for components: `open_from_variables()` (or `open`), which also applies
//! pending migrations on first use.

mod audit;
pub mod conn;
mod files;
mod migrate;
mod packages;
mod retention;
mod rows;
mod scrub;
mod sessions;
pub mod spin_conn;
pub mod spin_postgres;
pub mod spin_sqlite;
mod store;
mod sweeps;

use artifact_store_core::audit::ChainHead;
use artifact_store_core::model::{
    AuditEvent, File, Hold, Package, Page, RetentionEvent, StorageLocation, Timestamp,
};
use artifact_store_core::ports::{
    AuditDraft, AuditFilter, BlobState, CommitUpload, FileRecord, MetaResult, MetadataError,
    MetadataStore, NewPackage, PackageFilter, PageRequest, PendingUpload, PinState, SweepClaim,
};
use artifact_store_core::session::{SessionPart, UploadSession};

pub use conn::{Dialect, SqlConn, SqlError, SqlErrorKind, SqlRow, SqlValue};
pub use migrate::migration_set;
pub use spin_conn::SpinConn;
pub use store::SqlStore;

/// The store every component uses: Spin's SQLite or Spin's Postgres.
pub type Store = SqlStore<SpinConn>;

/// Opens the configured store and brings its schema up to date.
///
/// `metadata_store` is `sqlite` (or empty: the default) or `postgres`, which needs
/// `postgres_url`.
pub async fn open(metadata_store: &str, postgres_url: Option<&str>) -> MetaResult<Store> {
    let conn = match metadata_store.trim() {
        "" | "sqlite" => SpinConn::open_sqlite("default")?,
        "postgres" => match postgres_url.map(str::trim).filter(|u| !u.is_empty()) {
            Some(url) => SpinConn::open_postgres(url)?,
            None => {
                return Err(MetadataError::Unavailable(
                    "metadata_store is postgres but postgres_url is not set".into(),
                ));
            }
        },
        other => {
            return Err(MetadataError::Unavailable(format!(
                "metadata_store must be sqlite or postgres, not {other:?}"
            )));
        }
    };
    let store = SqlStore::new(conn);
    store.ensure_migrated().await?;
    Ok(store)
}

/// `open` with the Spin variables `metadata_store` and `postgres_url`.
pub async fn open_from_variables() -> MetaResult<Store> {
    let read = |name: &str| spin_sdk::variables::get(name).ok().unwrap_or_default();
    let kind = read("metadata_store");
    let url = read("postgres_url");
    open(&kind, Some(url.as_str())).await
}

impl<C: SqlConn> MetadataStore for SqlStore<C> {
    async fn migrate(&self) -> MetaResult<()> {
        self.migrate_impl().await
    }

    async fn health(&self) -> MetaResult<()> {
        self.rows("SELECT 1", &[]).await.map(|_| ())
    }

    fn pause(&self) {
        self.conn().close_idle();
    }

    async fn create_package(&self, new: NewPackage) -> MetaResult<Package> {
        self.create_package_impl(new).await
    }

    async fn get_package(&self, id: &str) -> MetaResult<Option<Package>> {
        self.get_package_impl(id).await
    }

    async fn list_packages(
        &self,
        filter: &PackageFilter,
        page: &PageRequest,
    ) -> MetaResult<Page<Package>> {
        self.list_packages_impl(filter, page).await
    }

    async fn finalize_package(&self, id: &str, actor: &str, now: Timestamp) -> MetaResult<Package> {
        self.finalize_package_impl(id, actor, now).await
    }

    async fn begin_upload(&self, pending: &PendingUpload) -> MetaResult<()> {
        self.begin_upload_impl(pending).await
    }

    async fn abort_upload(&self, pending_id: &str) -> MetaResult<()> {
        self.abort_upload_impl(pending_id).await
    }

    async fn blob_state(
        &self,
        backend_id: &str,
        object_key: &str,
    ) -> MetaResult<Option<BlobState>> {
        self.blob_state_impl(backend_id, object_key).await
    }

    async fn pin_blob(&self, pending_id: &str, location: &StorageLocation) -> MetaResult<PinState> {
        self.pin_blob_impl(pending_id, location).await
    }

    async fn commit_upload(&self, commit: &CommitUpload) -> MetaResult<File> {
        self.commit_upload_impl(commit).await
    }

    async fn create_session(&self, session: &UploadSession) -> MetaResult<()> {
        self.create_session_impl(session).await
    }

    async fn get_session(&self, id: &str) -> MetaResult<Option<(UploadSession, Vec<SessionPart>)>> {
        self.get_session_impl(id).await
    }

    async fn record_part(
        &self,
        session_id: &str,
        part: &SessionPart,
        hash_state: Option<&str>,
    ) -> MetaResult<()> {
        self.record_part_impl(session_id, part, hash_state).await
    }

    async fn mark_assembled(&self, session_id: &str) -> MetaResult<()> {
        self.mark_assembled_impl(session_id).await
    }

    async fn advance_digest(
        &self,
        session_id: &str,
        from_parts: u32,
        to_parts: u32,
        hash_state: &str,
    ) -> MetaResult<bool> {
        self.advance_digest_impl(session_id, from_parts, to_parts, hash_state)
            .await
    }

    async fn sessions_to_verify(&self, limit: u32) -> MetaResult<Vec<UploadSession>> {
        self.sessions_to_verify_impl(limit).await
    }

    async fn list_files(&self, package_id: &str) -> MetaResult<Vec<(File, StorageLocation)>> {
        self.list_files_impl(package_id).await
    }

    async fn get_file(&self, file_id: &str) -> MetaResult<Option<FileRecord>> {
        self.get_file_impl(file_id).await
    }

    async fn extend_retention(
        &self,
        package_id: &str,
        new_expires_at: Timestamp,
        reason: &str,
        actor: &str,
        now: Timestamp,
    ) -> MetaResult<RetentionEvent> {
        self.extend_retention_impl(package_id, new_expires_at, reason, actor, now)
            .await
    }

    async fn apply_hold(
        &self,
        package_id: &str,
        reason: &str,
        actor: &str,
        now: Timestamp,
    ) -> MetaResult<Hold> {
        self.apply_hold_impl(package_id, reason, actor, now).await
    }

    async fn release_hold(
        &self,
        package_id: &str,
        hold_id: &str,
        reason: &str,
        actor: &str,
        now: Timestamp,
    ) -> MetaResult<Hold> {
        self.release_hold_impl(package_id, hold_id, reason, actor, now)
            .await
    }

    async fn list_retention_events(&self, package_id: &str) -> MetaResult<Vec<RetentionEvent>> {
        self.list_retention_events_impl(package_id).await
    }

    async fn append_audit(&self, draft: AuditDraft) -> MetaResult<AuditEvent> {
        self.append_audit_impl(draft).await
    }

    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> MetaResult<Page<AuditEvent>> {
        self.list_audit_impl(filter, page).await
    }

    async fn audit_range(&self, after_seq: u64, limit: u32) -> MetaResult<Vec<AuditEvent>> {
        self.audit_range_impl(after_seq, limit).await
    }

    async fn audit_head(&self) -> MetaResult<Option<ChainHead>> {
        self.read_chain_head(false).await
    }

    async fn claim_for_deletion(
        &self,
        now: Timestamp,
        open_ttl_secs: i64,
        limit: u32,
        lease_secs: i64,
        sweeper: &str,
    ) -> MetaResult<Vec<SweepClaim>> {
        self.claim_for_deletion_impl(now, open_ttl_secs, limit, lease_secs, sweeper)
            .await
    }

    async fn count_held_eligible(&self, now: Timestamp, open_ttl_secs: i64) -> MetaResult<u64> {
        self.count_held_eligible_impl(now, open_ttl_secs).await
    }

    async fn sweep_candidates(
        &self,
        now: Timestamp,
        open_ttl_secs: i64,
        limit: u32,
    ) -> MetaResult<Vec<Package>> {
        self.sweep_candidates_impl(now, open_ttl_secs, limit).await
    }

    async fn objects_to_delete(&self, package_id: &str) -> MetaResult<Vec<StorageLocation>> {
        self.objects_to_delete_impl(package_id).await
    }

    async fn forget_blob(&self, location: &StorageLocation) -> MetaResult<()> {
        self.forget_blob_impl(location).await
    }

    async fn claim_orphan_object(&self, pending_id: &str) -> MetaResult<Option<StorageLocation>> {
        self.claim_orphan_object_impl(pending_id).await
    }

    async fn complete_deletion(
        &self,
        package_id: &str,
        actor: &str,
        now: Timestamp,
    ) -> MetaResult<()> {
        self.complete_deletion_impl(package_id, actor, now).await
    }

    async fn fail_deletion(&self, package_id: &str, actor: &str, detail: &str) -> MetaResult<()> {
        self.fail_deletion_impl(package_id, actor, detail).await
    }

    async fn stale_uploads(&self, before: Timestamp, limit: u32) -> MetaResult<Vec<PendingUpload>> {
        self.stale_uploads_impl(before, limit).await
    }

    // scrubbing (metadata/scrub.rs)

    async fn scrub_candidates(
        &self,
        limit: u32,
    ) -> MetaResult<Vec<artifact_store_core::ports::ScrubTarget>> {
        self.scrub_candidates_impl(limit).await
    }

    async fn save_scrub_progress(
        &self,
        location: &StorageLocation,
        from_bytes: u64,
        to_bytes: u64,
        hash_state: &str,
    ) -> MetaResult<bool> {
        self.save_scrub_progress_impl(location, from_bytes, to_bytes, hash_state)
            .await
    }

    async fn mark_verified(&self, location: &StorageLocation, now: Timestamp) -> MetaResult<()> {
        self.mark_verified_impl(location, now).await
    }

    async fn mark_corrupt(
        &self,
        location: &StorageLocation,
        found: &str,
        detail: &str,
        actor: &str,
        now: Timestamp,
    ) -> MetaResult<Option<artifact_store_core::ports::ScrubFinding>> {
        self.mark_corrupt_impl(location, found, detail, actor, now)
            .await
    }

    async fn scrub_status(
        &self,
        findings_limit: u32,
    ) -> MetaResult<artifact_store_core::ports::ScrubStatus> {
        self.scrub_status_impl(findings_limit).await
    }
}
