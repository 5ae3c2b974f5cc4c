//! `GET /files/{file_id}/download`: the bytes, whole or one range, or a redirect to S3.
//!
//! Decisions:
//! - Every download (and every redirect) first appends `retrieval_requested`; if that
//!   cannot be recorded, nothing is served (503), so the audit trail never misses a read.
//! - With `verify_downloads`, a full download is verified against the recorded sha256
//!   while it streams (`verify::Relay` holds the last chunk back until the digest is
//!   known): on a mismatch the response is aborted before it is complete (the client sees
//!   a broken body, never a clean end), `corruption_detected` is recorded and the mismatch
//!   is logged. Without it (the default), S3 bytes are spliced host-side into the response
//!   (they never enter the guest) and only their length is checked; `Repr-Digest` lets the
//!   client check the bytes.
//! - `deleting` and `deleted` packages answer 410: their bytes are or may be gone.
//! - A file whose blob the scrubber marked corrupt answers 409 `object_corrupt` before any
//!   byte (and before any redirect).
//! - The metadata connection is closed before the body streams (a slow reader must not hold
//!   one of the host's few PostgreSQL connections); recording `corruption_detected` opens
//!   a new one.

use artifact_store_core::error::ErrorCode;
use artifact_store_core::model::{AuditEventType, PackageStatus};
use artifact_store_core::ports::{
    AuditDraft, ByteStream, FileRecord, MetadataStore, ObjectStore, StorageError,
};
use base64::Engine;
use spin_sdk::http::{IncomingRequest, ResponseOutparam};

use super::{Ctx, no_route};
use crate::body::{self, Reply, ResponseWriter};
use crate::config::BackendKind;
use crate::metadata;
use crate::problem::{ApiError, log_error};
use crate::range::{self, RangeRequest};
use crate::request::Request;
use crate::splice::{self, SpliceError};
use crate::storage::{BackendReader, Backends};
use crate::verify::Relay;

pub async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let prepared = match Request::new(req) {
        Ok(r) => route(&r).await,
        Err(e) => Err(e),
    };
    match prepared {
        Ok(Prepared::Reply(r)) => body::send(out, Ok(r)),
        Ok(Prepared::Stream(s)) => stream(out, *s).await,
        Err(e) => body::send(out, Err(e)),
    }
}

enum Prepared {
    Reply(Reply),
    Stream(Box<Streaming>),
}

struct Streaming {
    /// Who downloads (for `corruption_detected`).
    actor: String,
    record: FileRecord,
    reader: BackendReader,
    status: u16,
    headers: Vec<(String, String)>,
    /// Bytes the body must have.
    length: u64,
    /// Verify the digest in the component (full downloads with `verify_downloads` only).
    verify: bool,
}

async fn route(req: &Request) -> Result<Prepared, ApiError> {
    let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("GET", ["files", id, "download"]) => prepare(req, id).await,
        (_, ["files", _, "download"]) => Err(no_route(true, &["GET"])),
        _ => Err(no_route(false, &[])),
    }
}

/// `sha-256=:<base64 of the digest>:` (RFC 9530).
pub fn repr_digest(sha256_hex: &str) -> String {
    let raw = hex::decode(sha256_hex).unwrap_or_default();
    format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

async fn prepare(req: &Request, file_id: &str) -> Result<Prepared, ApiError> {
    let ctx = Ctx::open(req).await?;
    let record = ctx
        .meta
        .get_file(file_id)
        .await?
        .ok_or_else(|| ApiError::not_found("file"))?;
    if !ctx.principal.can_read(&record.producer) {
        return Err(ApiError::not_found("file"));
    }
    if record.deleted
        || matches!(
            record.package_status,
            PackageStatus::Deleting | PackageStatus::Deleted
        )
    {
        return Err(ApiError::new(
            ErrorCode::Gone,
            "the file's package was deleted; its bytes are gone",
        ));
    }
    if record.corrupt {
        // The scrubber found the stored bytes changed or missing: refuse before any byte
        // (and before a redirect), rather than serve bad bytes or break off a response.
        return Err(ApiError::new(
            ErrorCode::ObjectCorrupt,
            format!(
                "the stored bytes of this file failed verification (the object at {} does \
                 not hash to {}); the registry will not serve them until an operator \
                 repairs the object",
                record.location.object_key, record.file.sha256
            ),
        ));
    }
    let backends = Backends::from_config(&ctx.config)?;
    let backend = backends.get(&record.location.backend_id).ok_or_else(|| {
        ApiError::new(
            ErrorCode::BackendUnavailable,
            format!(
                "backend {} holding this file is not configured",
                record.location.backend_id
            ),
        )
    })?;
    let file = &record.file;
    let size = file.size_bytes;
    let range = range::parse(req.header("range"), size);
    let key = record.location.object_key.clone();

    let redirect = match req.query_param("redirect") {
        None | Some("0") => false,
        Some("1") => backend.kind() == BackendKind::S3,
        Some(_) => {
            return Err(ApiError::new(
                ErrorCode::InvalidQuery,
                "`redirect` must be 0 or 1",
            ));
        }
    };
    if redirect
        && let Some(url) = backend
            .presign_get(&key, ctx.config.s3_presign_seconds)
            .await?
    {
        record_retrieval(&ctx, &record, None, true).await?;
        return Ok(Prepared::Reply(
            Reply::empty(302)
                .with_header("location", url)
                .with_header("cache-control", "no-store"),
        ));
    }

    let (status, byte_range, length) = match range {
        RangeRequest::Full => (200, None, size),
        RangeRequest::Partial(r) => (206, Some(r), r.end_inclusive - r.start + 1),
        RangeRequest::Unsatisfiable => {
            return Err(ApiError::new(
                ErrorCode::RangeNotSatisfiable,
                format!("the file has {size} bytes"),
            )
            .with_header("content-range", format!("bytes */{size}")));
        }
    };
    record_retrieval(&ctx, &record, range.content_range(size), false).await?;
    let reader = backend.get(&key, byte_range).await?;
    let mut headers = vec![
        ("content-type".to_string(), file.media_type.clone()),
        ("content-length".to_string(), length.to_string()),
        ("etag".to_string(), format!("\"{}\"", file.sha256)),
        ("repr-digest".to_string(), repr_digest(&file.sha256)),
        ("accept-ranges".to_string(), "bytes".to_string()),
    ];
    if let Some(cr) = range.content_range(size) {
        headers.push(("content-range".to_string(), cr));
    }
    let verify = byte_range.is_none() && ctx.config.verify_downloads;
    Ok(Prepared::Stream(Box::new(Streaming {
        // `ctx`, and with it the metadata connection, ends here.
        actor: ctx.principal.name.clone(),
        record,
        reader,
        status,
        headers,
        length,
        verify,
    })))
}

async fn record_retrieval(
    ctx: &Ctx,
    record: &FileRecord,
    content_range: Option<String>,
    redirect: bool,
) -> Result<(), ApiError> {
    ctx.meta
        .append_audit(AuditDraft {
            event_type: AuditEventType::RetrievalRequested,
            package_id: Some(record.file.package_id.clone()),
            file_id: Some(record.file.id.clone()),
            actor: ctx.principal.name.clone(),
            details: serde_json::json!({
                "relative_path": record.file.relative_path,
                "backend_id": record.location.backend_id,
                "range": content_range,
                "redirect": redirect,
            }),
        })
        .await?;
    Ok(())
}

async fn stream(out: ResponseOutparam, mut s: Streaming) {
    let mut w = match ResponseWriter::start(out, s.status, &s.headers) {
        Ok(w) => w,
        Err(e) => return log_error("download", &e),
    };
    if !s.verify
        && let Some(src) = s.reader.host_stream()
    {
        return match w.splice(src, s.length) {
            Ok(()) if splice::at_end(src) => w.finish(),
            Ok(()) => {
                let detail = format!("the object is longer than the recorded {} bytes", s.length);
                corrupt(&s, w, detail).await
            }
            Err(SpliceError::Short(detail)) => corrupt(&s, w, detail).await,
            Err(SpliceError::Source(detail) | SpliceError::Destination(detail)) => {
                log_error("download", &format!("{}: {detail}", s.record.file.id));
                w.abort()
            }
        };
    }
    let expected = s.verify.then(|| s.record.file.sha256.clone());
    let mut relay = Relay::new(s.length, expected);
    let file_id = s.record.file.id.clone();
    loop {
        match s.reader.next_chunk().await {
            Ok(Some(chunk)) => match relay.push(chunk) {
                Ok(Some(ready)) => {
                    if let Err(e) = w.write(&ready) {
                        return log_error("download", &format!("{file_id}: {e}"));
                    }
                }
                Ok(None) => {}
                Err(detail) => return corrupt(&s, w, detail).await,
            },
            Ok(None) => break,
            // The store answered, but its bytes do not add up (a kv chunk missing or
            // short): the object is corrupt, not unreachable.
            Err(StorageError::Backend(detail)) => return corrupt(&s, w, detail).await,
            Err(e) => {
                log_error("download", &format!("{file_id}: reading failed: {e}"));
                return w.abort();
            }
        }
    }
    match relay.finish() {
        Err(detail) => corrupt(&s, w, detail).await,
        Ok(last) => {
            if let Some(last) = last
                && let Err(e) = w.write(&last)
            {
                return log_error("download", &format!("{file_id}: {e}"));
            }
            w.finish();
        }
    }
}

/// Logs, records `corruption_detected`, and breaks the response.
async fn corrupt(s: &Streaming, w: ResponseWriter, detail: String) {
    w.abort();
    let file = &s.record.file;
    log_error(
        "download",
        &format!(
            "corruption: file {} at {}/{}: {detail}",
            file.id, s.record.location.backend_id, s.record.location.object_key
        ),
    );
    let draft = AuditDraft {
        event_type: AuditEventType::CorruptionDetected,
        package_id: Some(file.package_id.clone()),
        file_id: Some(file.id.clone()),
        actor: s.actor.clone(),
        details: serde_json::json!({
            "backend_id": s.record.location.backend_id,
            "object_key": s.record.location.object_key,
            "expected_sha256": file.sha256,
            "expected_size": file.size_bytes,
            "detail": detail,
        }),
    };
    let recorded = match metadata::open_from_variables().await {
        Ok(meta) => meta.append_audit(draft).await.map(drop),
        Err(e) => Err(e),
    };
    if let Err(e) = recorded {
        log_error(
            "download",
            &format!("corruption_detected not recorded: {e}"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_digest_of_empty() {
        assert_eq!(
            repr_digest("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"
        );
    }
}
