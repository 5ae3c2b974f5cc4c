//! The upload protocol: one flow over core's ports, shared by both upload forms (multipart
//! and raw `PUT`) and both backends. Generic over `MetadataStore` and `ObjectStore`, like
//! the sweep, so its invariants are tested natively with failures, crashes and sweeps
//! injected between every two steps (`tests/upload_flow.rs`).
//!
//! 1. record a pending upload, so a crash leaves a trace for the orphan sweep; then
//!    `pause` the metadata store: no scarce connection is held while the client sends;
//! 2. stream the body to `<prefix>staging/<upload_id>` while the backend hashes and counts
//!    (413 past `max_bytes`);
//! 3. check the declared digest (422 `digest_mismatch`);
//! 4. pin the content-addressed key (no sweep deletes it until the commit; a sweep deleting
//!    those bytes right now is waited out), then reuse the bytes already there or promote
//!    the staged ones to it;
//! 5. commit file, location, blob and audit event in one transaction, which also ends the
//!    pin;
//! 6. delete the staging object, then forget the pending upload. If the deletion fails (or
//!    the instance dies first), the pending row stays and the orphan sweep finishes the job:
//!    no staging byte is ever left that no sweep knows of.
//!
//! `store_declared` is the fast path for a body whose size and sha256 the client declared,
//! on a backend that verifies digests itself (S3): pin, one write straight to the
//! content-addressed key that the backend refuses unless the bytes hash to the declared
//! digest (so the key never holds other bytes, and nothing is staged or copied), commit.
//! The bytes never pass through the guest.

use artifact_store_core::error::ErrorCode;
use artifact_store_core::model::{File, StorageLocation};
use artifact_store_core::ports::{
    ByteStream, CommitUpload, MetadataStore, ObjectStore, PendingUpload, PinState, PutMetadata,
    StorageError,
};
use artifact_store_core::{content, time};
use std::time::Duration;

use crate::body::Limited;
use crate::problem::{ApiError, log_error};

/// What an upload writes, known before its bytes are read.
#[derive(Debug, Clone)]
pub struct Upload {
    pub package_id: String,
    pub relative_path: String,
    pub media_type: String,
    /// The digest the client declared, checked against the bytes.
    pub expected_sha256: Option<String>,
    /// The size the client declared (a form's `size` part), checked against the bytes.
    pub expected_size: Option<u64>,
    /// Who uploads (recorded in the audit event).
    pub actor: String,
    pub max_bytes: u64,
    /// The backend's key prefix (staging and object keys live under it).
    pub key_prefix: String,
}

/// What the client declared about a body before sending it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    pub size: u64,
    pub sha256: String,
}

/// A backend that checks a declared digest itself while it stores the bytes.
#[allow(async_fn_in_trait)] // guests are single-threaded: no `Send` bounds wanted
pub trait VerifiedPut<P> {
    /// Stores exactly `size` bytes of `payload` at `key` only if they hash to `sha256`:
    /// otherwise `DigestMismatch` (or `Source` for a short payload), and nothing new is
    /// visible at `key` (bytes already there stay as they were).
    async fn put_verified(
        &self,
        key: &str,
        payload: &mut P,
        size: u64,
        sha256: &str,
    ) -> Result<(), StorageError>;
}

/// Records the pending upload every path starts with.
async fn begin<M: MetadataStore, S: ObjectStore>(
    meta: &M,
    store: &S,
    upload: &Upload,
) -> Result<PendingUpload, ApiError> {
    let upload_id = uuid::Uuid::now_v7().to_string();
    let pending = PendingUpload {
        staging_key: content::staging_key(&upload.key_prefix, &upload_id),
        id: upload_id,
        package_id: upload.package_id.clone(),
        backend_id: store.backend_id().to_string(),
        started_at: time::now(),
    };
    meta.begin_upload(&pending).await?;
    Ok(pending)
}

/// The fast path: the declared body goes straight to its content-addressed key, checked by
/// the backend, never staged, copied or hashed here.
pub async fn store_declared<M: MetadataStore, S: ObjectStore + VerifiedPut<P>, P>(
    meta: &M,
    store: &S,
    upload: &Upload,
    declared: &Declared,
    payload: &mut P,
    sleep: &impl AsyncFn(Duration),
) -> Result<File, ApiError> {
    if declared.size > upload.max_bytes {
        return Err(StorageError::TooLarge {
            limit: upload.max_bytes,
        }
        .into());
    }
    let pending = begin(meta, store, upload).await?;
    let location = StorageLocation {
        backend_id: store.backend_id().to_string(),
        object_key: content::object_key(&upload.key_prefix, &declared.sha256),
    };
    let result = async {
        // Even when the bytes are already stored, they are written again: a caller who only
        // knows a digest must not get a file of someone else's bytes, and the backend's
        // check proves this caller holds them. Same bytes, same key: the write changes
        // nothing for the files that already reference it.
        // Another writer of the same bytes is no reason to wait: both writes are verified
        // and leave the same object.
        pin(meta, &pending, &location, Writers::WriteBeside, sleep).await?;
        meta.pause(); // the client sends the body now: hold no connection meanwhile
        store
            .put_verified(
                &location.object_key,
                payload,
                declared.size,
                &declared.sha256,
            )
            .await?;
        commit(
            meta,
            upload,
            &pending,
            location,
            declared.size,
            declared.sha256.clone(),
        )
        .await
    }
    .await;
    // Nothing was staged: forgetting the pending upload ends it (and its pin, if the commit
    // did not). Should that fail, the orphan sweep forgets it later.
    if let Err(e) = meta.abort_upload(&pending.id).await {
        log_error(
            "upload",
            &format!("pending upload {} not forgotten: {e}", pending.id),
        );
    }
    result
}

/// Runs the whole protocol for one file's `body`.
pub async fn store_file<M: MetadataStore, S: ObjectStore>(
    meta: &M,
    store: &S,
    upload: &Upload,
    body: &mut impl ByteStream,
    sleep: &impl AsyncFn(Duration),
) -> Result<File, ApiError> {
    let pending = begin(meta, store, upload).await?;
    let result = stage_and_commit(meta, store, upload, &pending, body, sleep).await;
    end_staging(meta, store, &pending).await;
    result
}

/// Deletes the staging object, then forgets the upload (committed or not). Should the
/// deletion fail, the pending row stays for the orphan sweep to retry (e.g. the backend
/// was down).
pub(crate) async fn end_staging<M: MetadataStore, S: ObjectStore>(
    meta: &M,
    store: &S,
    pending: &PendingUpload,
) {
    if let Err(e) = store.delete(&pending.staging_key).await {
        log_error(
            "upload",
            &format!("staging {} not deleted: {e}", pending.staging_key),
        );
        return;
    }
    if let Err(e) = meta.abort_upload(&pending.id).await {
        log_error(
            "upload",
            &format!("pending upload {} not forgotten: {e}", pending.id),
        );
    }
}

async fn stage_and_commit<M: MetadataStore, S: ObjectStore>(
    meta: &M,
    store: &S,
    upload: &Upload,
    pending: &PendingUpload,
    body: &mut impl ByteStream,
    sleep: &impl AsyncFn(Duration),
) -> Result<File, ApiError> {
    let mut limited = Limited::new(body, upload.max_bytes);
    meta.pause(); // the client sends the body now: hold no connection meanwhile
    let receipt = store
        .put(
            &pending.staging_key,
            &mut limited,
            &PutMetadata {
                media_type: upload.media_type.clone(),
                max_bytes: upload.max_bytes,
            },
        )
        .await?;
    if let Some(expected) = upload.expected_size
        && expected != receipt.size_bytes
    {
        return Err(ApiError::new(
            ErrorCode::SizeMismatch,
            format!(
                "the body is {} bytes, not the declared {expected}",
                receipt.size_bytes
            ),
        ));
    }
    if let Some(expected) = &upload.expected_sha256
        && *expected != receipt.sha256
    {
        return Err(ApiError::new(
            ErrorCode::DigestMismatch,
            format!(
                "the body's sha256 is {}, not the expected {expected}",
                receipt.sha256
            ),
        ));
    }
    place_and_commit(
        meta,
        store,
        upload,
        pending,
        receipt.size_bytes,
        receipt.sha256,
        sleep,
    )
    .await
}

/// Verified bytes at `pending`'s staging key become the file: pin the content address,
/// promote them there unless they are stored already, commit.
pub(crate) async fn place_and_commit<M: MetadataStore, S: ObjectStore>(
    meta: &M,
    store: &S,
    upload: &Upload,
    pending: &PendingUpload,
    size_bytes: u64,
    sha256: String,
    sleep: &impl AsyncFn(Duration),
) -> Result<File, ApiError> {
    let location = StorageLocation {
        backend_id: store.backend_id().to_string(),
        object_key: content::object_key(&upload.key_prefix, &sha256),
    };
    // The pin keeps sweeps off the object from here to the commit, so the decision below
    // cannot be overtaken by a deletion; waiting for another writer keeps two promotions
    // of one object from running at once (on kv the later would orphan the earlier's
    // chunks: `crash_rounds` caught it).
    if pin(meta, pending, &location, Writers::WaitFor, sleep).await? == Pinned::New {
        store
            .promote(&pending.staging_key, &location.object_key)
            .await?;
    }
    commit(meta, upload, pending, location, size_bytes, sha256).await
}

/// How many times the flow waits for a sweep deleting the bytes it needs (or another
/// upload writing them), the first wait, doubled each time (0.1 + 0.2 + ... + 3.2 s:
/// about 6 s in all).
const PIN_WAITS: u32 = 6;
const FIRST_PIN_WAIT: Duration = Duration::from_millis(100);

/// What a pin found at the content address.
#[derive(Debug, PartialEq, Eq)]
enum Pinned {
    /// The bytes are stored already (a committed file references them).
    Stored,
    /// Nothing is stored there yet: this upload writes the bytes.
    New,
}

/// What a pin does when another pending upload is writing the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writers {
    /// Wait for its commit, then reuse its bytes. Should it not commit within the waits
    /// (it died between its pin and its commit), write them anyway.
    WaitFor,
    /// Write beside it: this path's writes do not conflict.
    WriteBeside,
}

/// Pins `location` for `pending` (no sweep deletes it from here to the commit). While a
/// sweep is deleting the same bytes, waits for it to finish (it then forgets them, and
/// this upload writes them anew) instead of refusing at once: an immediate refusal would
/// tell the caller that someone else held these bytes. `sleep` is the host's timer.
async fn pin<M: MetadataStore>(
    meta: &M,
    pending: &PendingUpload,
    location: &StorageLocation,
    writers: Writers,
    sleep: &impl AsyncFn(Duration),
) -> Result<Pinned, ApiError> {
    let mut wait = FIRST_PIN_WAIT;
    for attempt in 0..=PIN_WAITS {
        let last = attempt == PIN_WAITS;
        match meta.pin_blob(&pending.id, location).await? {
            PinState::Present => return Ok(Pinned::Stored),
            PinState::Absent => return Ok(Pinned::New),
            PinState::Writing if writers == Writers::WriteBeside || last => {
                return Ok(Pinned::New);
            }
            PinState::Deleting if last => break,
            PinState::Writing | PinState::Deleting => {
                meta.pause();
                sleep(wait).await;
                wait *= 2;
            }
        }
    }
    Err(ApiError::new(
        ErrorCode::BackendUnavailable,
        "the storage is busy deleting; retry shortly",
    ))
}

/// File, location, blob reference and audit event in one transaction (ends the pin).
async fn commit<M: MetadataStore>(
    meta: &M,
    upload: &Upload,
    pending: &PendingUpload,
    location: StorageLocation,
    size_bytes: u64,
    sha256: String,
) -> Result<File, ApiError> {
    let file = File {
        id: uuid::Uuid::now_v7().to_string(),
        package_id: upload.package_id.clone(),
        relative_path: upload.relative_path.clone(),
        media_type: upload.media_type.clone(),
        size_bytes,
        sha256,
        created_at: time::now(),
    };
    Ok(meta
        .commit_upload(&CommitUpload {
            pending_id: pending.id.clone(),
            file,
            location,
            actor: upload.actor.clone(),
        })
        .await?)
}
