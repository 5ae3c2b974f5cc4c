//! The upload protocol: one flow over core's ports, shared by both upload forms (multipart
//! and raw `PUT`) and both backends. Generic over `MetadataStore` and `ObjectStore`, like
//! the sweep, so its invariants are tested natively with failures, crashes and sweeps
//! injected between every two steps (`tests/upload_flow.rs`).
//!
//! 1. record a pending upload, so a crash leaves a trace for the orphan sweep;
//! 2. stream the body to `<prefix>staging/<upload_id>` while the backend hashes and counts
//!    (413 past `max_bytes`);
//! 3. check the declared digest (422 `digest_mismatch`);
//! 4. pin the content-addressed key (no sweep deletes it until the commit), then reuse the
//!    bytes already there or promote the staged ones to it (503 while a sweep is deleting
//!    those bytes);
//! 5. commit file, location, blob and audit event in one transaction, which also ends the
//!    pin;
//! 6. delete the staging object, then forget the pending upload. If the deletion fails (or
//!    the instance dies first), the pending row stays and the orphan sweep finishes the job:
//!    no staging byte is ever left that no sweep knows of.

use artifact_store_core::error::ErrorCode;
use artifact_store_core::model::{File, StorageLocation};
use artifact_store_core::ports::{
    BlobState, ByteStream, CommitUpload, MetadataStore, ObjectStore, PendingUpload, PutMetadata,
};
use artifact_store_core::{content, time};

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
    /// Who uploads (recorded in the audit event).
    pub actor: String,
    pub max_bytes: u64,
    /// The backend's key prefix (staging and object keys live under it).
    pub key_prefix: String,
}

/// Runs the whole protocol for one file's `body`.
pub async fn store_file<M: MetadataStore, S: ObjectStore>(
    meta: &M,
    store: &S,
    upload: &Upload,
    body: &mut impl ByteStream,
) -> Result<File, ApiError> {
    let upload_id = uuid::Uuid::now_v7().to_string();
    let pending = PendingUpload {
        staging_key: content::staging_key(&upload.key_prefix, &upload_id),
        id: upload_id,
        package_id: upload.package_id.clone(),
        backend_id: store.backend_id().to_string(),
        started_at: time::now(),
    };
    meta.begin_upload(&pending).await?;
    let result = stage_and_commit(meta, store, upload, &pending, body).await;
    let staging_deleted = match store.delete(&pending.staging_key).await {
        Ok(()) => true,
        Err(e) => {
            log_error(
                "upload",
                &format!("staging {} not deleted: {e}", pending.staging_key),
            );
            false
        }
    };
    // The upload (committed or not) is forgotten only once its staging bytes are gone;
    // otherwise the pending row stays for the orphan sweep to retry (e.g. the backend was
    // down).
    if staging_deleted && let Err(e) = meta.abort_upload(&pending.id).await {
        log_error(
            "upload",
            &format!("pending upload {} not forgotten: {e}", pending.id),
        );
    }
    result
}

async fn stage_and_commit<M: MetadataStore, S: ObjectStore>(
    meta: &M,
    store: &S,
    upload: &Upload,
    pending: &PendingUpload,
    body: &mut impl ByteStream,
) -> Result<File, ApiError> {
    let mut limited = Limited::new(body, upload.max_bytes);
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
    let location = StorageLocation {
        backend_id: store.backend_id().to_string(),
        object_key: content::object_key(&upload.key_prefix, &receipt.sha256),
    };
    // The pin keeps sweeps off the object from here to the commit, so the decision below
    // cannot be overtaken by a deletion.
    match meta.pin_blob(&pending.id, &location).await? {
        Some(BlobState::Present) => {} // the same bytes are already stored: dedupe
        Some(BlobState::Deleting) => {
            return Err(ApiError::new(
                ErrorCode::BackendUnavailable,
                "the same bytes are being deleted right now; retry shortly",
            ));
        }
        None => {
            store
                .copy(&pending.staging_key, &location.object_key)
                .await?
        }
    }
    let file = File {
        id: uuid::Uuid::now_v7().to_string(),
        package_id: upload.package_id.clone(),
        relative_path: upload.relative_path.clone(),
        media_type: upload.media_type.clone(),
        size_bytes: receipt.size_bytes,
        sha256: receipt.sha256,
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
