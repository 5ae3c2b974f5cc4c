//! Upload sessions over HTTP: `POST /packages/{id}/uploads`, `GET|DELETE /uploads/{id}`,
//! `PUT /uploads/{id}/parts/{n}`, `POST /uploads/{id}/complete`.
//!
//! Requests are read and checked here (the caller may write the package, the package is
//! open); the protocol is `crate::upload_session`.

use artifact_store_core::error::ErrorCode;
use artifact_store_core::ports::{MetadataStore, ObjectStore};
use artifact_store_core::session::{PartPlan, SessionPart, SessionState, Transfer, UploadSession};
use artifact_store_core::{state, time, validate};
use serde_json::{Value, json};

use super::Ctx;
use super::ingest::{new_upload, too_large};
use crate::auth;
use crate::body::Reply;
use crate::problem::ApiError;
use crate::request::{Request, str_field};
use crate::splice;
use crate::storage::{Backend, Backends};
use crate::upload::Upload;
use crate::upload_session::{self, Completion, SessionRequest, missing_parts};

/// The session as JSON: its plan, where to send its bytes (`send`), and what has arrived.
fn present(s: &UploadSession, send: Vec<Value>, parts: &[SessionPart]) -> Value {
    let received: Vec<Value> = parts
        .iter()
        .map(|p| {
            let mut v = json!({"number": p.number, "size_bytes": p.size_bytes});
            if !p.sha256.is_empty() {
                v["sha256"] = json!(p.sha256);
            }
            v
        })
        .collect();
    let (part_size, part_count) = match s.transfer {
        Transfer::Gateway => (s.plan.part_size, s.plan.part_count),
        Transfer::Direct => (s.plan.size_bytes, 1),
    };
    json!({
        "id": s.id,
        "package_id": s.package_id,
        "relative_path": s.relative_path,
        "media_type": s.media_type,
        "size_bytes": s.plan.size_bytes,
        "sha256": s.sha256,
        "transfer": s.transfer.as_str(),
        "part_size": part_size,
        "part_count": part_count,
        "state": s.state.as_str(),
        "verified_bytes": match s.transfer {
            Transfer::Gateway => s.plan.offset(s.hashed_parts + 1).min(s.plan.size_bytes),
            Transfer::Direct => 0,
        },
        "created_at": time::format(s.created_at),
        "expires_at": time::format(s.expires_at),
        "parts": send,
        "received": received,
        "missing": match s.transfer {
            Transfer::Gateway => missing_parts(&s.plan, parts),
            Transfer::Direct if parts.is_empty() => vec![1],
            Transfer::Direct => vec![],
        },
    })
}

/// Where each part goes: the registry's part URLs, or for a direct session one PUT straight
/// to storage, presigned afresh on every call (valid for `s3_presign_seconds`, and never
/// past the session's expiry: a client that needs longer asks `GET /uploads/{id}` again).
async fn destinations(
    ctx: &Ctx,
    backend: &Backend,
    s: &UploadSession,
) -> Result<Vec<Value>, ApiError> {
    if s.transfer == Transfer::Gateway {
        return Ok((1..=s.plan.part_count)
            .map(|n| {
                json!({
                    "number": n,
                    "size_bytes": s.plan.part_len(n).unwrap_or(0),
                    "url": format!("/uploads/{}/parts/{n}", s.id),
                    "method": "PUT",
                    "headers": {},
                })
            })
            .collect());
    }
    let left = time::epoch(s.expires_at) - time::epoch(time::now());
    let secs = ctx.config.s3_presign_seconds.min(left.max(1) as u64);
    let presigned = backend
        .presign_put(&s.staging_key, &s.sha256, secs)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::BackendUnavailable,
                format!("backend {} cannot presign uploads", s.backend_id),
            )
        })?;
    let headers: serde_json::Map<String, Value> = presigned
        .headers
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    Ok(vec![json!({
        "number": 1,
        "size_bytes": s.plan.size_bytes,
        "url": presigned.url,
        "method": "PUT",
        "headers": headers,
    })])
}

/// What has arrived: the recorded parts, or for a direct session the whole file once
/// storage holds it (the storage server kept it only if its digest matched).
async fn arrived(
    backend: &Backend,
    s: &UploadSession,
    parts: Vec<SessionPart>,
) -> Result<Vec<SessionPart>, ApiError> {
    if s.transfer == Transfer::Gateway || s.state != SessionState::Open {
        return Ok(parts);
    }
    Ok(match backend.head(&s.staging_key).await? {
        Some(info) if info.size_bytes == s.plan.size_bytes => vec![SessionPart {
            number: 1,
            size_bytes: info.size_bytes,
            sha256: s.sha256.clone(),
            etag: String::new(),
        }],
        _ => Vec::new(),
    })
}

fn upload_for(ctx: &Ctx, backend: &Backend, s: &UploadSession) -> Upload {
    new_upload(
        ctx,
        backend,
        &s.package_id,
        s.relative_path.clone(),
        s.media_type.clone(),
        Some(s.sha256.clone()),
        Some(s.plan.size_bytes),
    )
}

/// A non-negative integer member; absent -> `None` (`null` is no integer).
fn u64_field(body: &serde_json::Map<String, Value>, name: &str) -> Result<Option<u64>, ApiError> {
    match body.get(name) {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            ApiError::new(
                ErrorCode::BadRequest,
                format!("`{name}` must be a non-negative integer"),
            )
        }),
    }
}

pub async fn create(req: &mut Request, package_id: &str) -> Result<Reply, ApiError> {
    let ctx = Ctx::open(req).await?;
    let body = req.json_object().await?;
    let relative_path = str_field(&body, "relative_path", ErrorCode::InvalidPath)?;
    validate::relative_path(relative_path)?;
    let sha256 = validate::sha256_hex(str_field(&body, "sha256", ErrorCode::InvalidDigest)?)?;
    let media_type = validate::media_type(match body.get("media_type") {
        Some(Value::String(s)) => Some(s.as_str()),
        _ => None,
    })?;
    let size = u64_field(&body, "size_bytes")?
        .ok_or_else(|| ApiError::new(ErrorCode::BadRequest, "`size_bytes` is required"))?;
    if size > ctx.config.max_file_bytes {
        return Err(too_large(ctx.config.max_file_bytes));
    }
    let plan = PartPlan::new(size, u64_field(&body, "part_size")?)?;
    let package = ctx.readable_package(package_id).await?;
    auth::require_write(&ctx.principal, &package.producer)?;
    state::check_upload(package.status)?;
    // Before any part moves (the commit checks again): a taken path would cost a client
    // the whole file's upload to learn it.
    let files = ctx.meta.list_files(package_id).await?;
    if files.iter().any(|(f, _)| f.relative_path == relative_path) {
        return Err(ApiError::new(
            ErrorCode::DuplicatePath,
            format!("the package already has a file at {relative_path}"),
        ));
    }
    let direct = match body.get("direct") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "`direct` must be true or false",
            ));
        }
    };
    let backends = Backends::from_config(&ctx.config)?;
    let backend = backends.default_backend();
    // Direct where storage can check the digest itself in one PUT; else through the
    // registry (the client follows the URLs it is given either way).
    let transfer = if direct && backend.takes_declared(size) {
        Transfer::Direct
    } else {
        Transfer::Gateway
    };
    let request = SessionRequest {
        upload: new_upload(
            &ctx,
            backend,
            package_id,
            relative_path.to_string(),
            media_type,
            Some(sha256.clone()),
            Some(size),
        ),
        sha256,
        plan,
        transfer,
        lifetime_secs: ctx.config.upload_session_seconds,
    };
    let session = upload_session::begin_session(&ctx.meta, backend, &request).await?;
    let send = destinations(&ctx, backend, &session).await?;
    Ok(Reply::json(201, &present(&session, send, &[]))
        .with_header("location", format!("/uploads/{}", session.id)))
}

/// What a request does with a session: only sending parts and completing need its
/// package still open (a finalized package takes no more bytes).
#[derive(PartialEq, Eq)]
enum Use {
    Send,
    Manage,
}

/// The session, after checking the caller may write its package (and, to send bytes, that
/// the package is still open).
async fn writable_session(
    ctx: &Ctx,
    id: &str,
    usage: Use,
) -> Result<(UploadSession, Vec<SessionPart>), ApiError> {
    let found = ctx
        .meta
        .get_session(id)
        .await?
        .ok_or_else(|| ApiError::not_found("upload session"))?;
    let package = ctx.readable_package(&found.0.package_id).await?;
    auth::require_write(&ctx.principal, &package.producer)?;
    if usage == Use::Send {
        state::check_upload(package.status)?;
    }
    Ok(found)
}

fn session_backend<'a>(backends: &'a Backends, s: &UploadSession) -> Result<&'a Backend, ApiError> {
    backends.get(&s.backend_id).ok_or_else(|| {
        ApiError::new(
            ErrorCode::BackendUnavailable,
            format!("backend {} is not configured", s.backend_id),
        )
    })
}

pub async fn show(req: &Request, id: &str) -> Result<Reply, ApiError> {
    let ctx = Ctx::open(req).await?;
    let (session, parts) = writable_session(&ctx, id, Use::Manage).await?;
    let backends = Backends::from_config(&ctx.config)?;
    let backend = session_backend(&backends, &session)?;
    let send = destinations(&ctx, backend, &session).await?;
    let parts = arrived(backend, &session, parts).await?;
    Ok(Reply::json(200, &present(&session, send, &parts)))
}

pub async fn put_part(req: &mut Request, id: &str, number: &str) -> Result<Reply, ApiError> {
    let ctx = Ctx::open(req).await?;
    let number: u32 = number.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidPart,
            "the part number must be a positive integer",
        )
    })?;
    let declared = req
        .header("x-artifact-sha256")
        .map(validate::sha256_hex)
        .transpose()?;
    let (session, _) = writable_session(&ctx, id, Use::Send).await?;
    // The session's state before the body's: an expired session is 410 whatever is sent.
    upload_session::check_takes_parts(&session)?;
    let len = session.plan.part_len(number)?;
    if let Some(n) = req.content_length()
        && n != len
    {
        return Err(ApiError::new(
            ErrorCode::SizeMismatch,
            format!("part {number} must be {len} bytes, not {n}"),
        ));
    }
    let backends = Backends::from_config(&ctx.config)?;
    let backend = session_backend(&backends, &session)?;
    let mut body = req.raw_body()?;
    let part = upload_session::store_part(
        &ctx.meta,
        backend,
        &session,
        number,
        declared.as_deref(),
        &mut body,
    )
    .await?;
    let mut reply = json!({"number": part.number, "size_bytes": part.size_bytes});
    if !part.sha256.is_empty() {
        reply["sha256"] = json!(part.sha256);
    }
    Ok(Reply::json(200, &reply))
}

pub async fn complete(req: &Request, id: &str) -> Result<Reply, ApiError> {
    let ctx = Ctx::open(req).await?;
    let (session, parts) = writable_session(&ctx, id, Use::Send).await?;
    let backends = Backends::from_config(&ctx.config)?;
    let backend = session_backend(&backends, &session)?;
    let upload = upload_for(&ctx, backend, &session);
    let budget = std::time::Duration::from_millis(ctx.config.verify_budget_ms);
    let done = upload_session::complete_session(
        &ctx.meta,
        backend,
        &upload,
        &session,
        &parts,
        budget,
        &splice::sleep,
    )
    .await?;
    Ok(match done {
        Completion::Committed(file) => {
            Reply::json(201, &file).with_header("location", format!("/files/{}/download", file.id))
        }
        // Call again: each call verifies for up to `verify_budget_ms`.
        Completion::Verifying { verified_bytes } => Reply::json(
            202,
            &json!({
                "id": session.id,
                "state": "verifying",
                "verified_bytes": verified_bytes,
                "size_bytes": session.plan.size_bytes,
            }),
        )
        .with_header("retry-after", "1"),
    })
}

pub async fn abort(req: &Request, id: &str) -> Result<Reply, ApiError> {
    let ctx = Ctx::open(req).await?;
    let (session, _) = writable_session(&ctx, id, Use::Manage).await?;
    let backends = Backends::from_config(&ctx.config)?;
    let backend = session_backend(&backends, &session)?;
    backend.delete(&session.staging_key).await?;
    ctx.meta.abort_upload(&session.id).await?;
    Ok(Reply::empty(204))
}
