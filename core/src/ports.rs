#![allow(async_fn_in_trait)] // guests are single-threaded: no `Send` bounds wanted

//! The two ports the registry talks through, mirroring `wit/registry.wit`.
//!
//! `MetadataStore` owns every row (packages, files, retention, holds, audit); `ObjectStore`
//! owns bytes. Handlers orchestrate the two; neither knows the other. The traits use
//! `async fn` (not object safe on purpose: adapters are chosen by an enum at start-up, so
//! there is no dynamic dispatch cost and no boxing of streams).
//!
//! Every method that records a change also appends its audit event in the same
//! transaction, so the audit chain can never miss a change that happened.

use crate::audit::ChainHead;
use crate::error::DomainError;
use crate::model::{
    AuditEvent, AuditEventType, File, Hold, Metadata, Package, PackageStatus, Page, RetentionClass,
    RetentionEvent, StorageLocation, Timestamp,
};
use crate::session::{PartPlan, SessionPart, UploadSession};

// ---------------------------------------------------------------------------------------
// Object store
// ---------------------------------------------------------------------------------------

/// Why a backend call failed. Adapters map their protocol errors onto these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// The object does not exist.
    #[error("object not found: {0}")]
    NotFound(String),
    /// The body grew past the configured limit; nothing was kept.
    #[error("body larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// The producer's body stream failed (disconnect, malformed framing); nothing was kept.
    #[error("request body failed: {0}")]
    Source(String),
    /// The backend cannot serve now (unreachable, 5xx, throttled, bad credentials).
    #[error("backend unavailable: {detail}")]
    Unavailable {
        detail: String,
        retry_after_secs: u32,
    },
    /// The backend checked a declared digest itself and the bytes did not match it; nothing
    /// was kept.
    #[error("digest mismatch: {0}")]
    DigestMismatch(String),
    /// The backend answered something we cannot interpret.
    #[error("backend error: {0}")]
    Backend(String),
}

/// A source of bytes read in bounded chunks (a request body, a multipart part, an object).
pub trait ByteStream {
    /// The next chunk, or `None` at the end. Chunks are never empty.
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError>;
}

impl<T: ByteStream> ByteStream for &mut T {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        (**self).next_chunk().await
    }
}

/// What `put` learned while streaming: the bytes' digest and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutReceipt {
    pub location: StorageLocation,
    pub size_bytes: u64,
    /// Lower-case hex sha256 of the bytes written.
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutMetadata {
    pub media_type: String,
    /// `put` fails with `TooLarge` (and keeps nothing) past this many bytes.
    pub max_bytes: u64,
}

/// An inclusive byte range, already resolved against the object's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end_inclusive: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Ok,
    Unavailable,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BackendHealth {
    pub status: HealthStatus,
    pub detail: String,
}

/// A presigned request: the URL carries the signature; every header in `headers` was
/// signed too and must be sent as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presigned {
    pub url: String,
    pub headers: Vec<(String, String)>,
}

pub trait ObjectStore {
    type Reader: ByteStream;

    /// `kv` or `s3`: recorded with every storage location.
    fn backend_id(&self) -> &str;

    /// Streams `body` to `key`, hashing and counting on the way. On any error nothing is
    /// left at `key`.
    async fn put(
        &self,
        key: &str,
        body: &mut impl ByteStream,
        meta: &PutMetadata,
    ) -> Result<PutReceipt, StorageError>;

    /// Makes the bytes at `from` (a finished staging object) readable at `to`. Readers never
    /// see `to` half-written. The backend may move rather than copy: afterwards `from` is
    /// only to be deleted (which the caller must still do), never read.
    async fn promote(&self, from: &str, to: &str) -> Result<(), StorageError>;

    /// Streams the object (or the range of it).
    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<Self::Reader, StorageError>;

    /// A short-lived URL a client may GET directly, where the backend supports it.
    async fn presign_get(
        &self,
        key: &str,
        expires_secs: u64,
    ) -> Result<Option<String>, StorageError>;

    /// A URL a client may PUT `key`'s bytes to directly, valid for `expires_secs`, signed
    /// so that the backend itself refuses any bytes whose sha256 is not `sha256`; `None`
    /// where the backend cannot (kv).
    async fn presign_put(
        &self,
        key: &str,
        sha256: &str,
        expires_secs: u64,
    ) -> Result<Option<Presigned>, StorageError> {
        let _ = (key, sha256, expires_secs);
        Ok(None)
    }

    /// `None` when the object does not exist.
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError>;

    /// Idempotent: deleting a missing object succeeds. Also drops unfinished writes to the key
    /// (an upload session's parts included).
    async fn delete(&self, key: &str) -> Result<(), StorageError>;

    async fn health(&self) -> BackendHealth;

    // Upload sessions: parts written one request at a time, then assembled at `key`.

    /// Starts taking parts for `key` as `plan` cuts the file; returns the backend's id for
    /// them (S3's `UploadId`; empty where none is needed).
    async fn begin_parts(&self, key: &str, plan: &PartPlan) -> Result<String, StorageError> {
        let _ = (key, plan);
        Err(sessions_unsupported(self.backend_id()))
    }

    /// Stores part `number`: all of `body`, which the caller has checked is the part's
    /// length. Sending a part again replaces it. Returns what `assemble_parts` needs to
    /// name it (S3's ETag; empty on kv).
    async fn put_part(
        &self,
        key: &str,
        upload_id: &str,
        plan: &PartPlan,
        number: u32,
        body: &mut impl ByteStream,
    ) -> Result<String, StorageError> {
        let _ = (key, upload_id, plan, number, body);
        Err(sessions_unsupported(self.backend_id()))
    }

    /// Makes `parts` (every part of `plan`, in order) one object at `key`, readable with
    /// `get`. `sha256` is the declared digest, which the caller verifies before relying on
    /// the object.
    async fn assemble_parts(
        &self,
        key: &str,
        upload_id: &str,
        plan: &PartPlan,
        parts: &[SessionPart],
        sha256: &str,
    ) -> Result<(), StorageError> {
        let _ = (key, upload_id, plan, parts, sha256);
        Err(sessions_unsupported(self.backend_id()))
    }
}

fn sessions_unsupported(backend: &str) -> StorageError {
    StorageError::Backend(format!("backend {backend} takes no upload sessions"))
}

// ---------------------------------------------------------------------------------------
// Metadata store
// ---------------------------------------------------------------------------------------

/// A metadata store failure that is not a domain rule: the database is unreachable or broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// A domain rule refused the change (maps to its `ErrorCode`).
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("metadata store unavailable: {0}")]
    Unavailable(String),
}

pub type MetaResult<T> = Result<T, MetadataError>;

#[derive(Debug, Clone, PartialEq)]
pub struct NewPackage {
    pub id: String,
    pub name: String,
    pub producer: String,
    pub subject: String,
    pub retention_class: RetentionClass,
    pub metadata: Metadata,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub actor: String,
}

/// Filters of `GET /packages`. `producers` limits the result to what the caller may read
/// (`None` = all).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PackageFilter {
    pub producers: Option<Vec<String>>,
    pub producer: Option<String>,
    pub subject: Option<String>,
    pub status: Option<PackageStatus>,
    pub retention_class: Option<RetentionClass>,
    pub name: Option<String>,
    pub metadata: Vec<(String, String)>,
    pub created_after: Option<Timestamp>,
    pub created_before: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// 1..=1000 (validated by the caller).
    pub limit: u32,
    /// Opaque cursor from a previous page.
    pub cursor: Option<String>,
}

/// An upload in flight: recorded before any byte is written so that a crash leaves a
/// trace the orphan sweep can follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpload {
    pub id: String,
    pub package_id: String,
    pub backend_id: String,
    pub staging_key: String,
    pub started_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobState {
    /// The bytes are at the object key and may be referenced.
    Present,
    /// A sweep is deleting the bytes: do not reference them.
    Deleting,
}

/// What `pin_blob` found at a content address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinState {
    /// The bytes are stored (a committed file references them): reference them.
    Present,
    /// Nothing is stored and no other upload is writing the bytes: write them.
    Absent,
    /// No bytes are committed yet, but another pending upload has pinned the address and
    /// is writing the same bytes: wait for its commit rather than write beside it.
    Writing,
    /// A sweep is deleting the bytes: nothing was pinned; retry later.
    Deleting,
}

/// The last step of an upload: one transaction writes the file, its location, the blob
/// reference and the `file_uploaded` audit event, and ends the pending upload's pin (the
/// pending row itself stays until its staging bytes are deleted: `abort_upload`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitUpload {
    pub pending_id: String,
    pub file: File,
    pub location: StorageLocation,
    pub actor: String,
}

/// A file together with where its bytes are and what its package allows.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRecord {
    pub file: File,
    pub location: StorageLocation,
    pub package_status: PackageStatus,
    pub producer: String,
    /// `true` once the package's bytes were deleted (downloads answer 410).
    pub deleted: bool,
    /// `true` once the scrubber found the file's object changed or missing (downloads
    /// answer 409 `object_corrupt`).
    pub corrupt: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub package_id: Option<String>,
    pub event_type: Option<AuditEventType>,
}

/// An audit event before the store chains it (assigns `seq`, `prev_hash`, `hash`).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditDraft {
    pub event_type: AuditEventType,
    pub package_id: Option<String>,
    pub file_id: Option<String>,
    pub actor: String,
    pub details: serde_json::Value,
}

impl AuditDraft {
    /// An event about a whole package (no file), the most common kind.
    pub fn for_package(
        event_type: AuditEventType,
        package_id: &str,
        actor: &str,
        details: serde_json::Value,
    ) -> AuditDraft {
        AuditDraft {
            event_type,
            package_id: Some(package_id.to_string()),
            file_id: None,
            actor: actor.to_string(),
            details,
        }
    }
}

/// A package the sweeper claimed: nobody else works on it until `lease_until`.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepClaim {
    pub package: Package,
    /// `true` when this sweep moved it to `deleting` (records the eligible/requested events).
    pub newly_deleting: bool,
}

// Scrubbing: stored objects re-read and checked against their content address.

/// A blob the scrubber reads next, with where an earlier slice left off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrubTarget {
    pub location: StorageLocation,
    pub sha256: String,
    pub size_bytes: u64,
    /// Bytes already digested into `hash_state` by earlier slices (0: start afresh).
    pub verified_bytes: u64,
    /// `ResumableSha256::to_hex` of the object's first `verified_bytes` bytes.
    pub hash_state: String,
    /// When the whole object last hashed to its address (`None`: never).
    pub last_verified_at: Option<Timestamp>,
}

/// A live file whose bytes are a corrupt blob's.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AffectedFile {
    pub file_id: String,
    pub package_id: String,
    pub relative_path: String,
}

/// A blob the scrubber found changed or missing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ScrubFinding {
    pub backend_id: String,
    pub object_key: String,
    pub expected_sha256: String,
    /// The sha256 of the bytes read, or `missing`, `wrong_size`, `unreadable` (the backend's
    /// bytes do not add up, e.g. a kv chunk gone).
    pub found: String,
    pub detail: String,
    pub found_at: Timestamp,
    pub files: Vec<AffectedFile>,
}

/// Where scrubbing stands: `GET /admin/scrub`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ScrubStatus {
    /// Blobs present (not being deleted).
    pub blobs_total: u64,
    /// Present blobs whose whole object hashed to its address at least once.
    pub verified_once: u64,
    pub never_verified: u64,
    /// Blobs a slice started and a later one continues (their digest state is stored).
    pub in_progress: u64,
    /// The oldest `last_verified_at` of a verified, intact blob.
    pub oldest_verified_at: Option<Timestamp>,
    pub corrupt: u64,
    /// The corrupt blobs, newest finding first (at most the asked limit).
    pub findings: Vec<ScrubFinding>,
}

pub trait MetadataStore {
    /// Applies pending migrations; safe when several instances call it at once.
    async fn migrate(&self) -> MetaResult<()>;
    async fn health(&self) -> MetaResult<()>;
    /// The caller is about to wait on something slow (a client's body) and will not use
    /// the store meanwhile: a store holding a scarce connection may close it now and open
    /// a new one on next use. Never called inside a transaction.
    fn pause(&self) {}

    // packages
    /// Inserts the package, its `default_rule_applied` retention event and `package_created`.
    async fn create_package(&self, new: NewPackage) -> MetaResult<Package>;
    /// The package with its holds (`deletion_eligible` is left false; the caller computes it).
    async fn get_package(&self, id: &str) -> MetaResult<Option<Package>>;
    async fn list_packages(
        &self,
        filter: &PackageFilter,
        page: &PageRequest,
    ) -> MetaResult<Page<Package>>;
    /// `open` -> `finalized` with `package_finalized`; a finalized package is returned as is.
    async fn finalize_package(&self, id: &str, actor: &str, now: Timestamp) -> MetaResult<Package>;

    // files
    async fn begin_upload(&self, pending: &PendingUpload) -> MetaResult<()>;
    /// Forgets a pending upload (committed or not) whose staging bytes were removed.
    async fn abort_upload(&self, pending_id: &str) -> MetaResult<()>;
    async fn blob_state(&self, backend_id: &str, object_key: &str)
    -> MetaResult<Option<BlobState>>;
    /// Pins the object at `location` for a pending upload, under the blob's lock, and
    /// returns what it found (`PinState`). A sweep never deletes a pinned object; the pin
    /// ends with the upload's commit or its pending row. Only `Deleting` pins nothing.
    async fn pin_blob(&self, pending_id: &str, location: &StorageLocation) -> MetaResult<PinState>;
    /// Fails with `package_finalized`, `duplicate_path` or `not_found` and writes nothing.
    /// For an upload session, `pending_id` is the session's id.
    async fn commit_upload(&self, commit: &CommitUpload) -> MetaResult<File>;

    // upload sessions (each rides on a pending upload of the same id: `abort_upload` ends
    // both; `stale_uploads` leaves a session's alone until it has expired)
    /// Records the session and its pending upload in one transaction.
    async fn create_session(&self, session: &UploadSession) -> MetaResult<()>;
    /// The session and its parts by number; `None` once it ended (or never existed).
    async fn get_session(&self, id: &str) -> MetaResult<Option<(UploadSession, Vec<SessionPart>)>>;
    /// Records a received part, replacing one of the same number. With `hash_state` (the
    /// running digest through this part), also moves `hashed_parts` from `number - 1` to
    /// `number`, only if it is still there.
    async fn record_part(
        &self,
        session_id: &str,
        part: &SessionPart,
        hash_state: Option<&str>,
    ) -> MetaResult<()>;
    /// `open` -> `assembled` (`invalid_state` from any other state).
    async fn mark_assembled(&self, session_id: &str) -> MetaResult<()>;
    /// Moves an assembled session's running digest from `from_parts` to `to_parts`
    /// digested parts; `false` when it was no longer at `from_parts` (another verifier
    /// moved it).
    async fn advance_digest(
        &self,
        session_id: &str,
        from_parts: u32,
        to_parts: u32,
        hash_state: &str,
    ) -> MetaResult<bool>;
    /// Assembled sessions whose digest is not finished (the sweep continues them).
    async fn sessions_to_verify(&self, limit: u32) -> MetaResult<Vec<UploadSession>>;

    /// Files sorted by `relative_path`, with their locations.
    async fn list_files(&self, package_id: &str) -> MetaResult<Vec<(File, StorageLocation)>>;
    async fn get_file(&self, file_id: &str) -> MetaResult<Option<FileRecord>>;

    // retention
    async fn extend_retention(
        &self,
        package_id: &str,
        new_expires_at: Timestamp,
        reason: &str,
        actor: &str,
        now: Timestamp,
    ) -> MetaResult<RetentionEvent>;
    async fn apply_hold(
        &self,
        package_id: &str,
        reason: &str,
        actor: &str,
        now: Timestamp,
    ) -> MetaResult<Hold>;
    async fn release_hold(
        &self,
        package_id: &str,
        hold_id: &str,
        reason: &str,
        actor: &str,
        now: Timestamp,
    ) -> MetaResult<Hold>;
    async fn list_retention_events(&self, package_id: &str) -> MetaResult<Vec<RetentionEvent>>;

    // audit
    /// Appends one event on its own (for events that record no other change, e.g. downloads).
    async fn append_audit(&self, draft: AuditDraft) -> MetaResult<AuditEvent>;
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> MetaResult<Page<AuditEvent>>;
    /// Events in `seq` order after `after_seq`, at most `limit` (for chain verification).
    async fn audit_range(&self, after_seq: u64, limit: u32) -> MetaResult<Vec<AuditEvent>>;
    /// The chain's recorded head (`seq` and `hash` of the newest event; `None` while empty),
    /// kept apart from the events so that deleting the newest ones is detected.
    async fn audit_head(&self) -> MetaResult<Option<ChainHead>>;

    // sweeps
    /// Claims up to `limit` packages that are deletion eligible at `now` (or already
    /// `deleting` and whose lease ran out), moving them to `deleting` with their events.
    async fn claim_for_deletion(
        &self,
        now: Timestamp,
        open_ttl_secs: i64,
        limit: u32,
        lease_secs: i64,
        sweeper: &str,
    ) -> MetaResult<Vec<SweepClaim>>;
    /// How many packages would be deletion eligible at `now` but for an active hold (the
    /// sweep report's `held`).
    async fn count_held_eligible(&self, now: Timestamp, open_ttl_secs: i64) -> MetaResult<u64>;
    /// Up to `limit` packages, with their holds, that a sweep at `now` would look at:
    /// expired by date, abandoned `open`, or `deleting`, in claim order (a sweep dry run
    /// judges each with `retention::keep_reason`). Changes nothing.
    async fn sweep_candidates(
        &self,
        now: Timestamp,
        open_ttl_secs: i64,
        limit: u32,
    ) -> MetaResult<Vec<Package>>;
    /// Object keys of the package that no live file of another package references, each
    /// marked `deleting` so no new upload references them meanwhile. Fails with
    /// `hold_active` when a hold was applied since the claim.
    async fn objects_to_delete(&self, package_id: &str) -> MetaResult<Vec<StorageLocation>>;
    /// Forgets a blob whose bytes are gone.
    async fn forget_blob(&self, location: &StorageLocation) -> MetaResult<()>;
    /// For a stale upload that pinned a content address and never committed: the object
    /// there, if nothing else needs it (no live file, no other pin), marked `deleting` so no
    /// upload takes it meanwhile. The caller deletes the object, then `forget_blob`.
    async fn claim_orphan_object(&self, pending_id: &str) -> MetaResult<Option<StorageLocation>>;
    /// Marks files and package `deleted`, records `deleted` and `deletion_completed`.
    async fn complete_deletion(
        &self,
        package_id: &str,
        actor: &str,
        now: Timestamp,
    ) -> MetaResult<()>;
    /// Records `deletion_failed`; the package stays `deleting` for the next sweep.
    async fn fail_deletion(&self, package_id: &str, actor: &str, detail: &str) -> MetaResult<()>;
    /// Pending uploads started before `before` (their bytes may be orphans).
    async fn stale_uploads(&self, before: Timestamp, limit: u32) -> MetaResult<Vec<PendingUpload>>;

    // scrubbing
    /// Up to `limit` present, not corrupt blobs in scrub order: ones a slice started first,
    /// then never verified, then oldest `last_verified_at`.
    async fn scrub_candidates(&self, limit: u32) -> MetaResult<Vec<ScrubTarget>>;
    /// Moves a blob's stored digest from `from_bytes` to `to_bytes` digested bytes; `false`
    /// when it was no longer at `from_bytes` (another scrubber moved it).
    async fn save_scrub_progress(
        &self,
        location: &StorageLocation,
        from_bytes: u64,
        to_bytes: u64,
        hash_state: &str,
    ) -> MetaResult<bool>;
    /// The whole object hashed to its address: records `last_verified_at` and forgets the
    /// digest state.
    async fn mark_verified(&self, location: &StorageLocation, now: Timestamp) -> MetaResult<()>;
    /// Marks a present blob corrupt (downloads of its files are refused from now on) and
    /// records one `corruption_detected` per live file of it, in one transaction. `None`
    /// (nothing recorded) when the blob is gone, being deleted or already marked.
    async fn mark_corrupt(
        &self,
        location: &StorageLocation,
        found: &str,
        detail: &str,
        actor: &str,
        now: Timestamp,
    ) -> MetaResult<Option<ScrubFinding>>;
    /// Scrub progress and up to `findings_limit` findings.
    async fn scrub_status(&self, findings_limit: u32) -> MetaResult<ScrubStatus>;
}
