//! `POST /packages/{id}/files` (multipart), `PUT /packages/{id}/files/{relative_path}` (raw
//! body), `POST /packages/{id}/finalize`, and upload sessions (`sessions`).
//!
//! This module reads requests and checks them before any byte moves; the upload protocol
//! itself (stage, verify, pin, dedupe or promote, commit) is `crate::upload`. A raw `PUT`
//! with `Content-Length` and `x-artifact-sha256` on S3 takes the fast path
//! (`upload::store_declared`); so does a multipart form whose `sha256` and `size` parts come
//! before its file (the form's end is checked after the spliced file part). Anything else
//! takes the staging path.

use artifact_store_core::error::ErrorCode;
use artifact_store_core::model::File;
use artifact_store_core::ports::MetadataStore;
use artifact_store_core::{state, time, validate};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};

use super::{Ctx, no_route, serve, sessions};
use crate::auth;
use crate::body::Reply;
use crate::multipart::{DeclaredPart, MultipartReader, boundary_from_content_type};
use crate::problem::ApiError;
use crate::request::{Request, percent_decode};
use crate::splice;
use crate::storage::{Backend, Backends};
use crate::upload::{self, Declared, Upload};

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
        ("GET", ["packages", id, "files"]) => list_files(&req, id).await,
        ("PUT", ["packages", id, "files", _, ..]) => upload_raw(&mut req, id).await,
        ("POST", ["packages", id, "finalize"]) => finalize(&req, id).await,
        ("POST", ["packages", id, "uploads"]) => sessions::create(&mut req, id).await,
        ("GET", ["uploads", id]) => sessions::show(&req, id).await,
        ("DELETE", ["uploads", id]) => sessions::abort(&req, id).await,
        ("PUT", ["uploads", id, "parts", n]) => sessions::put_part(&mut req, id, n).await,
        ("POST", ["uploads", id, "complete"]) => sessions::complete(&req, id).await,
        (_, ["packages", _, "files"]) => Err(no_route(true, &["GET", "POST"])),
        (_, ["packages", _, "finalize"])
        | (_, ["packages", _, "uploads"])
        | (_, ["uploads", _, "complete"]) => Err(no_route(true, &["POST"])),
        (_, ["uploads", _]) => Err(no_route(true, &["GET", "DELETE"])),
        (_, ["uploads", _, "parts", _]) => Err(no_route(true, &["PUT"])),
        (_, ["packages", _, "files", _, ..]) => Err(no_route(true, &["PUT"])),
        _ => Err(no_route(false, &[])),
    }
}

/// The file's `relative_path` from a `PUT` URL: everything after `/packages/<id>/files/`,
/// decoded once. Any other shape (`/packages/<id>//files/x`) is refused, never guessed at.
pub fn relative_path_from_url(path: &str) -> Result<String, ApiError> {
    let mut parts = path.splitn(5, '/');
    let shape = (parts.next(), parts.next(), parts.next(), parts.next());
    let rest = match shape {
        (Some(""), Some("packages"), Some(id), Some("files")) if !id.is_empty() => {
            parts.next().unwrap_or("")
        }
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidPath,
                "the URL must be /packages/{id}/files/{relative_path}",
            ));
        }
    };
    let decoded = percent_decode(rest, false)
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidPath, "relative_path is not valid UTF-8"))?;
    validate::relative_path(&decoded)?;
    Ok(decoded)
}

pub(super) fn too_large(limit: u64) -> ApiError {
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
    check_package(&ctx, id).await?;
    let backend = backends.default_backend();
    let declared = declared(backend, &expected_sha256, req.content_length());
    let upload = new_upload(
        &ctx,
        backend,
        id,
        relative_path,
        media_type,
        expected_sha256,
        None, // the body's length is HTTP's own: Content-Length
    );
    let file = match declared {
        Some(declared) => {
            let mut payload = req.raw_body()?;
            upload::store_declared(
                &ctx.meta,
                backend,
                &upload,
                &declared,
                &mut payload,
                &splice::sleep,
            )
            .await?
        }
        None => {
            let mut body = req.body()?;
            upload::store_file(&ctx.meta, backend, &upload, &mut body, &splice::sleep).await?
        }
    };
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
    let mut parts = MultipartReader::new(req.raw_body()?, &boundary);
    let (mut relative_path, mut media_type, mut sha256, mut size) = (None, None, None, None);
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
            "size" => size = Some(parts.read_text(MAX_TEXT_PART).await?),
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
    let size = size
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .map(declared_size)
        .transpose()?;
    if size.is_some_and(|n| n > ctx.config.max_file_bytes) {
        return Err(too_large(ctx.config.max_file_bytes));
    }
    let backend = backends.default_backend();
    let declared = declared(backend, &expected_sha256, size);
    let upload = new_upload(
        &ctx,
        backend,
        id,
        relative_path,
        media_type,
        expected_sha256,
        size,
    );
    let file = match declared {
        Some(declared) => {
            let mut part = DeclaredPart::new(parts, declared.size, &boundary)?;
            upload::store_declared(
                &ctx.meta,
                backend,
                &upload,
                &declared,
                &mut part,
                &splice::sleep,
            )
            .await?
        }
        None => {
            let mut body = parts.part_stream();
            upload::store_file(&ctx.meta, backend, &upload, &mut body, &splice::sleep).await?
        }
    };
    Ok(created(file))
}

pub(super) fn new_upload(
    ctx: &Ctx,
    backend: &Backend,
    package_id: &str,
    relative_path: String,
    media_type: String,
    expected_sha256: Option<String>,
    expected_size: Option<u64>,
) -> Upload {
    Upload {
        package_id: package_id.to_string(),
        relative_path,
        media_type,
        expected_sha256,
        expected_size,
        actor: ctx.principal.name.clone(),
        max_bytes: ctx.config.max_file_bytes,
        key_prefix: backend.key_prefix().to_string(),
    }
}

/// Size and digest both declared (a raw `PUT`'s header and length, or a form's parts
/// before its file), on a backend that checks digests itself: the body goes straight to
/// its final key, host-side (`upload::store_declared`).
fn declared(backend: &Backend, sha256: &Option<String>, size: Option<u64>) -> Option<Declared> {
    match (sha256, size) {
        (Some(sha256), Some(size)) if backend.takes_declared(size) => Some(Declared {
            size,
            sha256: sha256.clone(),
        }),
        _ => None,
    }
}

/// The `size` part of a form: decimal bytes.
fn declared_size(text: &str) -> Result<u64, ApiError> {
    text.trim().parse().map_err(|_| {
        ApiError::new(
            ErrorCode::BadRequest,
            "the `size` part must be the file's size in bytes (a decimal number)",
        )
    })
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

/// The package's files with their ids, open or finalized: what a client needs to resume
/// an upload or to download (the manifest, for finalized packages only, names no ids).
async fn list_files(req: &Request, id: &str) -> Result<Reply, ApiError> {
    let ctx = Ctx::open(req).await?;
    ctx.readable_package(id).await?;
    let files: Vec<File> = ctx
        .meta
        .list_files(id)
        .await?
        .into_iter()
        .map(|(file, _)| file)
        .collect();
    Ok(Reply::json(200, &super::single_page(files)))
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
            "/packages/p1//files/x",
            "/packages//p1/files/x",
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
