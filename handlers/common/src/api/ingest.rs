//! `POST /packages/{id}/files` (multipart), `PUT /packages/{id}/files/{relative_path}` (raw
//! body), `POST /packages/{id}/finalize`.
//!
//! The upload protocol (BRIEF), the same for both forms and both backends:
//! 1. record a pending upload (so a crash leaves a trace for the orphan sweep);
//! 2. stream the body to `<prefix>staging/<upload_id>` while the backend hashes and counts
//!    (413 past `max_file_bytes`);
//! 3. check the expected digest (422 `digest_mismatch`);
//! 4. pin the content-addressed key (no sweep deletes it until the commit), then dedupe or
//!    promote to it (503 while those bytes are being deleted by a sweep);
//! 5. commit file, location, blob and audit event in one transaction.
//!
//! On any failure the staging object is deleted and the pending upload forgotten, so
//! nothing is kept; on success the staging object is deleted too (best effort; the orphan
//! sweep catches leftovers).

use artifact_store_core::error::ErrorCode;
use artifact_store_core::model::{File, StorageLocation};
use artifact_store_core::ports::{
    BlobState, ByteStream, CommitUpload, MetadataStore, ObjectStore, PendingUpload, PutMetadata,
};
use artifact_store_core::{state, time, validate};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};

use super::{Ctx, no_route, serve};
use crate::auth;
use crate::body::{Limited, Reply};
use crate::multipart::{MultipartReader, boundary_from_content_type};
use crate::problem::{ApiError, log_error};
use crate::request::{Request, percent_decode};
use crate::storage::{Backend, Backends};

/// Multipart framing allowed on top of `max_file_bytes` before `Content-Length` alone
/// rejects a multipart upload.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;
/// Cap on each text part (`relative_path` is at most 1024 bytes).
const MAX_TEXT_PART: usize = 4096;

pub async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve(req, out, route).await
}

async fn route(mut req: Request) -> Result<Reply, ApiError> {
    let segs = req.segments.clone();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("POST", ["packages", id, "files"]) => upload_multipart(&mut req, id).await,
        ("PUT", ["packages", id, "files", _, ..]) => upload_raw(&mut req, id).await,
        ("POST", ["packages", id, "finalize"]) => finalize(&req, id).await,
        (_, ["packages", _, "files"]) | (_, ["packages", _, "finalize"]) => {
            Err(no_route(true, &["POST"]))
        }
        (_, ["packages", _, "files", _, ..]) => Err(no_route(true, &["PUT"])),
        _ => Err(no_route(false, &[])),
    }
}

/// What an upload writes, before its bytes are seen.
struct UploadRequest {
    package_id: String,
    relative_path: String,
    media_type: String,
    expected_sha256: Option<String>,
}

/// The file's `relative_path` from a `PUT` URL: everything after `/files/`, decoded once.
pub fn relative_path_from_url(path: &str) -> Result<String, ApiError> {
    let rest = path.splitn(5, '/').nth(4).unwrap_or("");
    let decoded = percent_decode(rest, false)
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidPath, "relative_path is not valid UTF-8"))?;
    validate::relative_path(&decoded)?;
    Ok(decoded)
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("the file is larger than {limit} bytes"),
    )
}

async fn upload_raw(req: &mut Request, id: &str) -> Result<Reply, ApiError> {
    let ctx = Ctx::open(req).await?;
    let relative_path = relative_path_from_url(&req.path)?;
    let media_type = validate::media_type(req.header("content-type"))?;
    let expected_sha256 = req
        .header("x-artifact-sha256")
        .map(validate::sha256_hex)
        .transpose()?;
    if req
        .content_length()
        .is_some_and(|n| n > ctx.config.max_file_bytes)
    {
        return Err(too_large(ctx.config.max_file_bytes));
    }
    let backends = Backends::from_config(&ctx.config)?;
    let upload = UploadRequest {
        package_id: id.to_string(),
        relative_path,
        media_type,
        expected_sha256,
    };
    check_package(&ctx, id).await?;
    let mut body = req.body()?;
    let file = store_file(&ctx, backends.default_backend(), &upload, &mut body).await?;
    Ok(created(file))
}

async fn upload_multipart(req: &mut Request, id: &str) -> Result<Reply, ApiError> {
    let ctx = Ctx::open(req).await?;
    let boundary = boundary_from_content_type(req.header("content-type").unwrap_or(""))
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "the body must be multipart/form-data with a boundary",
            )
        })?;
    if req
        .content_length()
        .is_some_and(|n| n > ctx.config.max_file_bytes.saturating_add(MULTIPART_OVERHEAD))
    {
        return Err(too_large(ctx.config.max_file_bytes));
    }
    let backends = Backends::from_config(&ctx.config)?;
    check_package(&ctx, id).await?;
    let mut parts = MultipartReader::new(req.body()?, &boundary);
    let (mut relative_path, mut media_type, mut sha256) = (None, None, None);
    loop {
        let Some(part) = parts.next_part().await? else {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "the multipart body has no `file` part",
            ));
        };
        match part.name.as_str() {
            "file" => break,
            "relative_path" => relative_path = Some(parts.read_text(MAX_TEXT_PART).await?),
            "media_type" => media_type = Some(parts.read_text(MAX_TEXT_PART).await?),
            "sha256" => sha256 = Some(parts.read_text(MAX_TEXT_PART).await?),
            _ => {} // unknown parts are skipped by `next_part`
        }
    }
    let relative_path = relative_path.ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidPath,
            "the `relative_path` part must come before the `file` part",
        )
    })?;
    validate::relative_path(&relative_path)?;
    // The `media_type` part, else the default (the `file` part's own Content-Type is a
    // client library's guess from the file name, not the producer's statement).
    let media_type = validate::media_type(media_type.as_deref())?;
    let expected_sha256 = sha256
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .map(validate::sha256_hex)
        .transpose()?;
    let upload = UploadRequest {
        package_id: id.to_string(),
        relative_path,
        media_type,
        expected_sha256,
    };
    let mut body = parts.part_stream();
    let file = store_file(&ctx, backends.default_backend(), &upload, &mut body).await?;
    Ok(created(file))
}

fn created(file: File) -> Reply {
    Reply::json(201, &file).with_header("location", format!("/files/{}/download", file.id))
}

/// Before any byte is read: the package exists, the caller may write it, it is open.
async fn check_package(ctx: &Ctx, id: &str) -> Result<(), ApiError> {
    let package = ctx.readable_package(id).await?;
    auth::require_write(&ctx.principal, &package.producer)?;
    state::check_upload(package.status)?;
    Ok(())
}

async fn store_file(
    ctx: &Ctx,
    backend: &Backend,
    upload: &UploadRequest,
    body: &mut impl ByteStream,
) -> Result<File, ApiError> {
    let upload_id = uuid::Uuid::now_v7().to_string();
    let pending = PendingUpload {
        staging_key: backend.staging_key(&upload_id),
        id: upload_id,
        package_id: upload.package_id.clone(),
        backend_id: backend.backend_id().to_string(),
        started_at: time::now(),
    };
    ctx.meta.begin_upload(&pending).await?;
    let result = stage_and_commit(ctx, backend, upload, &pending, body).await;
    let staging_deleted = match backend.delete(&pending.staging_key).await {
        Ok(()) => true,
        Err(e) => {
            log_error(
                "upload",
                &format!("staging {} not deleted: {e}", pending.staging_key),
            );
            false
        }
    };
    // A failed upload is forgotten only once its staging bytes are gone; otherwise the
    // pending row stays for the orphan sweep to retry (e.g. the backend was down).
    if result.is_err()
        && staging_deleted
        && let Err(e) = ctx.meta.abort_upload(&pending.id).await
    {
        log_error(
            "upload",
            &format!("pending upload {} not forgotten: {e}", pending.id),
        );
    }
    result
}

async fn stage_and_commit(
    ctx: &Ctx,
    backend: &Backend,
    upload: &UploadRequest,
    pending: &PendingUpload,
    body: &mut impl ByteStream,
) -> Result<File, ApiError> {
    let max_bytes = ctx.config.max_file_bytes;
    let mut limited = Limited::new(body, max_bytes);
    let receipt = backend
        .put(
            &pending.staging_key,
            &mut limited,
            &PutMetadata {
                media_type: upload.media_type.clone(),
                max_bytes,
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
        backend_id: backend.backend_id().to_string(),
        object_key: backend.object_key(&receipt.sha256),
    };
    // The pin keeps sweeps off the object from here to the commit, so the decision below
    // cannot be overtaken by a deletion.
    match ctx.meta.pin_blob(&pending.id, &location).await? {
        Some(BlobState::Present) => {} // the same bytes are already stored: dedupe
        Some(BlobState::Deleting) => {
            return Err(ApiError::new(
                ErrorCode::BackendUnavailable,
                "the same bytes are being deleted right now; retry shortly",
            ));
        }
        None => {
            backend
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
    let committed = ctx
        .meta
        .commit_upload(&CommitUpload {
            pending_id: pending.id.clone(),
            file,
            location,
            actor: ctx.principal.name.clone(),
        })
        .await?;
    Ok(committed)
}

async fn finalize(req: &Request, id: &str) -> Result<Reply, ApiError> {
    let ctx = Ctx::open(req).await?;
    let package = ctx.readable_package(id).await?;
    auth::require_write(&ctx.principal, &package.producer)?;
    let package = ctx
        .meta
        .finalize_package(id, &ctx.principal.name, time::now())
        .await?;
    Ok(Reply::json(200, &ctx.present(package)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_from_urls() {
        assert_eq!(
            relative_path_from_url("/packages/p1/files/reports/a%20b.json").unwrap(),
            "reports/a b.json"
        );
        assert_eq!(
            relative_path_from_url("/packages/p1/files/a%2Fb").unwrap(),
            "a/b"
        );
        for bad in [
            "/packages/p1/files/a//b",
            "/packages/p1/files/a/../b",
            "/packages/p1/files/a/",
            "/packages/p1/files/%2e%2e/x",
            "/packages/p1/files/a%5Cb",
            "/packages/p1/files/a%00b",
            "/packages/p1/files/%ff",
        ] {
            assert_eq!(
                relative_path_from_url(bad).unwrap_err().code(),
                ErrorCode::InvalidPath,
                "{bad}"
            );
        }
    }
}
