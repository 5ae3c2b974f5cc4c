//! The upload-session protocol: a big file in parts, each one request. Generic over core's
//! ports like `upload`, whose last steps (pin, promote, commit, end the staging) it shares.
//!
//! 1. `begin_session`: the backend starts taking parts at `<prefix>staging/<session id>`
//!    (S3: a multipart upload), then the session and its pending upload are recorded.
//! 2. `store_part`: one part streams to the backend. A part that follows the digested ones
//!    extends the session's running sha256 on the way (no read-back later); a part with a
//!    declared sha256 is checked against it.
//! 3. `complete_session`: the parts become one object (once), the whole file's sha256 is
//!    finished (reading back only what the running digest lacks, within a time budget:
//!    past it, the answer is "still verifying" and the next call, or the sweep, goes on),
//!    and on a match the file is committed as any upload; on a mismatch the bytes are
//!    deleted, the session ends and an `upload_failed` event says why.
//!
//! A `direct` session skips steps 2 and most of 3: the client PUTs the whole file straight
//! to the staging key with a presigned URL signed with the declared sha256, so the storage
//! server checks every byte (and stores nothing else); `complete` only checks the object
//! arrived whole, then commits.
//!
//! An abandoned session is an orphan like any pending upload once it has expired: the
//! sweep deletes its staging key (which drops the parts) and forgets it.

use artifact_store_core::error::ErrorCode;
use artifact_store_core::model::{AuditEventType, File};
use artifact_store_core::ports::{
    AuditDraft, ByteRange, ByteStream, MetadataStore, ObjectStore, StorageError,
};
use artifact_store_core::session::{
    PartPlan, ResumableSha256, SessionPart, SessionState, Transfer, UploadSession,
};
use artifact_store_core::{content, time};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::time::Duration;

use crate::problem::{ApiError, log_error};
use crate::upload::{Upload, end_staging, place_and_commit};

/// What a session is for, known before any byte moves.
#[derive(Debug, Clone)]
pub struct SessionRequest {
    pub upload: Upload,
    pub sha256: String,
    pub plan: PartPlan,
    pub transfer: Transfer,
    pub lifetime_secs: i64,
}

/// Starts a session: the backend first (so a recorded session always has somewhere to put
/// its parts), then the rows.
pub async fn begin_session<M: MetadataStore, S: ObjectStore>(
    meta: &M,
    store: &S,
    req: &SessionRequest,
) -> Result<UploadSession, ApiError> {
    let id = uuid::Uuid::now_v7().to_string();
    let staging_key = content::staging_key(&req.upload.key_prefix, &id);
    let backend_upload_id = match req.transfer {
        Transfer::Gateway => store.begin_parts(&staging_key, &req.plan).await?,
        Transfer::Direct => String::new(),
    };
    let now = time::now();
    let session = UploadSession {
        id,
        package_id: req.upload.package_id.clone(),
        relative_path: req.upload.relative_path.clone(),
        media_type: req.upload.media_type.clone(),
        sha256: req.sha256.clone(),
        plan: req.plan,
        transfer: req.transfer,
        backend_id: store.backend_id().to_string(),
        staging_key,
        backend_upload_id,
        actor: req.upload.actor.clone(),
        created_at: now,
        expires_at: time::add_secs(now, req.lifetime_secs).unwrap_or(now),
        state: SessionState::Open,
        hashed_parts: 0,
        hash_state: String::new(),
    };
    if let Err(e) = meta.create_session(&session).await {
        // Nothing records the parts' place: drop it now.
        if let Err(e) = store.delete(&session.staging_key).await {
            log_error("session", &format!("{}: {e}", session.staging_key));
        }
        return Err(e.into());
    }
    Ok(session)
}

/// Refuses work on a session that is past its expiry or no longer taking parts.
pub fn check_open(session: &UploadSession) -> Result<(), ApiError> {
    if session.expires_at <= time::now() {
        return Err(ApiError::new(
            ErrorCode::Gone,
            format!("upload session {} expired", session.id),
        ));
    }
    if session.state != SessionState::Open {
        return Err(ApiError::new(
            ErrorCode::InvalidState,
            format!(
                "upload session {} takes no more parts: it is being completed",
                session.id
            ),
        ));
    }
    Ok(())
}

/// Refuses a part for a session that takes none through the registry: past its expiry,
/// being completed, or direct (its file goes straight to storage).
pub fn check_takes_parts(session: &UploadSession) -> Result<(), ApiError> {
    check_open(session)?;
    if session.transfer == Transfer::Direct {
        return Err(ApiError::new(
            ErrorCode::InvalidState,
            format!(
                "upload session {} sends its file straight to storage: PUT it to the URL of \
                 its `parts`, not through the registry",
                session.id
            ),
        ));
    }
    Ok(())
}

/// Passes a part's bytes on while counting and hashing them.
struct PartReader<'a, B> {
    body: &'a mut B,
    len: u64,
    seen: u64,
    /// The part's own digest, when the client declared one to check.
    part: Option<Sha256>,
    /// The file's running digest, when this part is the next one it takes.
    file: Option<ResumableSha256>,
}

impl<B: ByteStream> ByteStream for PartReader<'_, B> {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        let chunk = self.body.next_chunk().await?;
        if let Some(c) = &chunk {
            self.seen += c.len() as u64;
            if self.seen > self.len {
                return Err(StorageError::TooLarge { limit: self.len });
            }
            if let Some(h) = &mut self.part {
                h.update(c);
            }
            if let Some(h) = &mut self.file {
                h.update(c);
            }
        }
        Ok(chunk)
    }
}

/// Stores part `number` from `body` and records it.
pub async fn store_part<M: MetadataStore, S: ObjectStore>(
    meta: &M,
    store: &S,
    session: &UploadSession,
    number: u32,
    declared_sha256: Option<&str>,
    body: &mut impl ByteStream,
) -> Result<SessionPart, ApiError> {
    check_takes_parts(session)?;
    let len = session.plan.part_len(number)?;
    let file = (number == session.hashed_parts + 1)
        .then(|| ResumableSha256::from_hex(&session.hash_state))
        .flatten();
    let mut reader = PartReader {
        body,
        len,
        seen: 0,
        part: declared_sha256.map(|_| Sha256::new()),
        file,
    };
    meta.pause(); // the client sends the body now: hold no connection meanwhile
    let etag = store
        .put_part(
            &session.staging_key,
            &session.backend_upload_id,
            &session.plan,
            number,
            &mut reader,
        )
        .await?;
    if reader.seen != len {
        return Err(ApiError::new(
            ErrorCode::SizeMismatch,
            format!("part {number} must be {len} bytes, not {}", reader.seen),
        ));
    }
    let sha256 = reader.part.map(|h| hex::encode(h.finalize()));
    if let (Some(expected), Some(got)) = (declared_sha256, &sha256)
        && expected != got
    {
        return Err(ApiError::new(
            ErrorCode::DigestMismatch,
            format!("part {number}'s sha256 is {got}, not the declared {expected}"),
        ));
    }
    let part = SessionPart {
        number,
        size_bytes: len,
        sha256: sha256.unwrap_or_default(),
        etag,
    };
    let hash_state = reader.file.map(|h| h.to_hex());
    meta.record_part(&session.id, &part, hash_state.as_deref())
        .await?;
    Ok(part)
}

/// The numbers of the parts not received (or not of their planned length).
pub fn missing_parts(plan: &PartPlan, parts: &[SessionPart]) -> Vec<u32> {
    (1..=plan.part_count)
        .filter(|&n| {
            !parts
                .iter()
                .any(|p| p.number == n && Ok(p.size_bytes) == plan.part_len(n))
        })
        .collect()
}

/// What `complete` came to.
#[derive(Debug)]
pub enum Completion {
    /// The file is committed.
    Committed(File),
    /// The whole-file digest is not finished: the budget ran out after `verified_bytes`
    /// (stored; the next `complete`, or the sweep, continues from there).
    Verifying { verified_bytes: u64 },
}

/// Completes the session: assemble (once), verify within `budget`, commit. `upload` says
/// where the file goes.
pub async fn complete_session<M: MetadataStore, S: ObjectStore>(
    meta: &M,
    store: &S,
    upload: &Upload,
    session: &UploadSession,
    parts: &[SessionPart],
    budget: Duration,
    sleep: &impl AsyncFn(Duration),
) -> Result<Completion, ApiError> {
    if session.state == SessionState::Open {
        check_open(session)?;
        match session.transfer {
            Transfer::Gateway => assemble(store, session, parts).await?,
            Transfer::Direct => check_arrived(store, session).await?,
        }
        meta.mark_assembled(&session.id).await?;
    }
    let sha256 = match verify_slice(meta, store, session, budget).await? {
        Verified::Done(sha256) => sha256,
        Verified::Partial { verified_bytes } => {
            return Ok(Completion::Verifying { verified_bytes });
        }
    };
    let pending = session.pending_upload();
    if sha256 != session.sha256 {
        meta.append_audit(AuditDraft::for_package(
            AuditEventType::UploadFailed,
            &session.package_id,
            &upload.actor,
            json!({
                "upload_id": session.id,
                "relative_path": session.relative_path,
                "size_bytes": session.plan.size_bytes,
                "expected_sha256": session.sha256,
                "actual_sha256": sha256,
            }),
        ))
        .await?;
        end_staging(meta, store, &pending).await;
        return Err(ApiError::new(
            ErrorCode::DigestMismatch,
            format!(
                "the assembled file's sha256 is {sha256}, not the declared {}; its bytes were \
                 deleted and the session ended",
                session.sha256
            ),
        ));
    }
    let result = place_and_commit(
        meta,
        store,
        upload,
        &pending,
        session.plan.size_bytes,
        sha256,
        sleep,
    )
    .await;
    match &result {
        Ok(_) => end_staging(meta, store, &pending).await,
        // A busy backend or a sweep in the way: the session stays for a retry. Any other
        // refusal (the path is taken, the package finalized) stands: end the session.
        Err(e) if e.status() == 503 => {}
        Err(_) => end_staging(meta, store, &pending).await,
    }
    result.map(Completion::Committed)
}

/// Makes a gateway session's parts one object, once every part has arrived.
async fn assemble<S: ObjectStore>(
    store: &S,
    session: &UploadSession,
    parts: &[SessionPart],
) -> Result<(), ApiError> {
    let missing = missing_parts(&session.plan, parts);
    if !missing.is_empty() {
        let shown: Vec<String> = missing.iter().take(20).map(u32::to_string).collect();
        return Err(ApiError::new(
            ErrorCode::InvalidState,
            format!(
                "{} of {} parts are missing: {}{}",
                missing.len(),
                session.plan.part_count,
                shown.join(", "),
                if missing.len() > shown.len() {
                    ", ..."
                } else {
                    ""
                }
            ),
        ));
    }
    store
        .assemble_parts(
            &session.staging_key,
            &session.backend_upload_id,
            &session.plan,
            parts,
            &session.sha256,
        )
        .await?;
    Ok(())
}

/// A direct session's file is at its staging key, whole. The storage server took it only
/// if its sha256 was the declared one (the presigned PUT signed it), so its length is the
/// last thing to check.
async fn check_arrived<S: ObjectStore>(store: &S, session: &UploadSession) -> Result<(), ApiError> {
    match store.head(&session.staging_key).await? {
        None => Err(ApiError::new(
            ErrorCode::InvalidState,
            format!(
                "the file of upload session {} has not arrived: PUT it to the URL of the \
                 session's `parts` (with its headers) first",
                session.id
            ),
        )),
        Some(info) if info.size_bytes != session.plan.size_bytes => Err(ApiError::new(
            ErrorCode::SizeMismatch,
            format!(
                "storage holds {} bytes for upload session {}, not the declared {}",
                info.size_bytes, session.id, session.plan.size_bytes
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// Where a session's whole-file digest stands after a slice of verification.
#[derive(Debug, PartialEq, Eq)]
pub enum Verified {
    /// The digest of the whole assembled file.
    Done(String),
    /// Parts up to `verified_bytes` are digested (the state is stored).
    Partial { verified_bytes: u64 },
}

/// Continues an assembled session's running digest over the object read back, a part at a
/// time, until it is finished or `budget` is spent (at least one part per call, so every
/// call moves it on), and stores where it got. sha256 in a component runs at 50-85 MiB/s:
/// a 5 GiB file read back whole would not fit one request of a serverless host.
pub async fn verify_slice<M: MetadataStore, S: ObjectStore>(
    meta: &M,
    store: &S,
    session: &UploadSession,
    budget: Duration,
) -> Result<Verified, ApiError> {
    if session.transfer == Transfer::Direct {
        // The storage server checked every byte against the signed digest (`check_arrived`).
        return Ok(Verified::Done(session.sha256.clone()));
    }
    let started = std::time::Instant::now();
    let plan = &session.plan;
    let (mut hasher, from) = match ResumableSha256::from_hex(&session.hash_state) {
        Some(h) => (h, session.hashed_parts.min(plan.part_count)),
        None => (ResumableSha256::new(), 0),
    };
    let mut done = from;
    while done < plan.part_count && (done == from || started.elapsed() < budget) {
        let n = done + 1;
        let (offset, len) = (plan.offset(n), plan.part_len(n)?);
        let range = ByteRange {
            start: offset,
            end_inclusive: offset + len - 1,
        };
        let mut reader = store.get(&session.staging_key, Some(range)).await?;
        let mut read = 0u64;
        while let Some(chunk) = reader.next_chunk().await? {
            read += chunk.len() as u64;
            hasher.update(&chunk);
        }
        if read != len {
            return Err(ApiError::new(
                ErrorCode::Internal,
                format!("part {n} of the assembled object has {read} bytes, not {len}"),
            ));
        }
        done = n;
    }
    if done > from {
        // Kept even when finished: a `complete` after the sweep's slice reads nothing back.
        meta.advance_digest(&session.id, from, done, &hasher.to_hex())
            .await?;
    }
    if done == plan.part_count {
        return Ok(Verified::Done(hasher.finish_hex()));
    }
    Ok(Verified::Partial {
        verified_bytes: plan.offset(done + 1),
    })
}
