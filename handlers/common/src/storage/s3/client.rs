//! `S3Store`: core's `ObjectStore` on an S3-compatible server (Ceph RGW included).
//!
//! Decisions:
//! - `put` buffers at most the multipart threshold, then one part at a time, so memory stays
//!   about `max(threshold, part_size)` whatever the body size. A body that ends within the
//!   threshold is one PutObject; a longer one is a multipart upload that is aborted on any
//!   failure (source stream failed, size limit passed, a part refused), so nothing is left
//!   at the key nor as a dangling upload. The whole-object sha256 is computed on the way.
//! - Only idempotent requests are retried (GET, HEAD, DELETE, PutObject, UploadPart,
//!   CopyObject, AbortMultipartUpload, ListMultipartUploads), a few times with a short
//!   backoff, and only on transient failures (no reply, 5xx, 429, SlowDown).
//!   CreateMultipartUpload and CompleteMultipartUpload are sent once.
//! - After CompleteMultipartUpload the object is HEADed: the reply's ETag is not trusted
//!   (Ceph RGW 16 answers an empty one) and the size check catches a short object.
//! - `delete` leaves no trace of the key: it aborts the unfinished multipart uploads at
//!   exactly that key (an upload cut off by an outage could not abort its own, and the
//!   orphan sweep deletes its staging key), then deletes the object.

use std::time::Duration;

use artifact_store_core::model::StorageLocation;
use artifact_store_core::ports::{
    BackendHealth, ByteRange, ByteStream, HealthStatus, ObjectInfo, ObjectStore, Presigned,
    PutMetadata, PutReceipt, StorageError,
};
use artifact_store_core::session::{PartPlan, SessionPart};
use sha2::{Digest, Sha256};

use super::config::{MAX_PARTS, S3Config};
use super::error::{
    DEFAULT_RETRY_AFTER_SECS, connection_failed, is_transient, map_reply, parse_error,
};
use super::request::{
    CompletedPart, S3Request, S3Requests, parse_multipart_uploads, parse_upload_id,
    parse_uploads_marker,
};
use super::spin_http::SpinHttp;
use super::transport::{Transport, read_body};

/// The backend id recorded with every storage location of this store.
pub const BACKEND_ID: &str = "s3";
/// S3's limit on one PutObject (5 GiB); larger objects need multipart.
pub const MAX_SINGLE_PUT_BYTES: u64 = 5 * 1024 * 1024 * 1024;
/// Attempts for idempotent requests (first try included).
const ATTEMPTS: u32 = 3;
/// Backoff before the second attempt; multiplied by 4 for each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Error and small replies; never keep more than this of one.
const REPLY_LIMIT: usize = 64 * 1024;
/// A ListMultipartUploads page (`UPLOADS_PER_PAGE` uploads, keys up to 1 KiB each).
const LIST_REPLY_LIMIT: usize = 1024 * 1024;

/// Whether a request may be sent again after a transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    Idempotent,
    Once,
}

/// An S3 bucket as an object store. Keys are used as given: they already carry the
/// configured prefix (`core::content` builds them with `key_prefix()`).
pub struct S3Store<T: Transport = SpinHttp> {
    config: S3Config,
    requests: S3Requests,
    transport: T,
}

impl S3Store<SpinHttp> {
    /// The store the components use: Spin outbound HTTP to `config.endpoint`.
    pub fn new(config: S3Config) -> Self {
        let timeout = std::time::Duration::from_secs(config.timeout_seconds);
        Self::with_transport(config, SpinHttp { timeout })
    }
}

impl<T: Transport> S3Store<T> {
    /// The store over another transport (native tests use a plain HTTP client).
    pub fn with_transport(config: S3Config, transport: T) -> Self {
        let requests = S3Requests::new(&config);
        S3Store {
            config,
            requests,
            transport,
        }
    }

    pub fn config(&self) -> &S3Config {
        &self.config
    }

    /// The normalized key prefix (empty or ending with `/`).
    pub fn key_prefix(&self) -> &str {
        &self.config.key_prefix
    }

    /// The request builder (for tools and tests that list or inspect the bucket).
    pub fn requests(&self) -> &S3Requests {
        &self.requests
    }

    /// Sends `request`, again after a backoff on transient failures when `retry` allows.
    /// Returns the last reply whatever its status; `Err` only when no reply came at all.
    async fn send(
        &self,
        op: &str,
        request: &S3Request,
        retry: Retry,
    ) -> Result<http::Response<T::Body>, StorageError> {
        let attempts = if retry == Retry::Idempotent {
            ATTEMPTS
        } else {
            1
        };
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let last = attempt >= attempts;
            match self.transport.send(request).await {
                Ok(reply) if last || !is_transient(reply.status().as_u16(), None) => {
                    return Ok(reply);
                }
                Err(e) if last => return Err(connection_failed(op, e)),
                // Transient: drop the reply (or the failure) and try again.
                Ok(_) | Err(_) => {}
            }
            // Guests are single-threaded and have nothing else to do meanwhile.
            std::thread::sleep(backoff);
            backoff *= 4;
            attempt += 1;
        }
    }

    /// `send`, then any non-2xx reply mapped to a `StorageError` (its body read for the code).
    async fn call(
        &self,
        op: &str,
        key: &str,
        request: &S3Request,
        retry: Retry,
    ) -> Result<http::Response<T::Body>, StorageError> {
        let reply = self.send(op, request, retry).await?;
        if reply.status().is_success() {
            return Ok(reply);
        }
        Err(self.failure(op, key, reply).await)
    }

    async fn failure(&self, op: &str, key: &str, reply: http::Response<T::Body>) -> StorageError {
        let status = reply.status().as_u16();
        let retry_after = header(&reply, "retry-after");
        let mut body = reply.into_body();
        let bytes = read_body(&mut body, REPLY_LIMIT).await.unwrap_or_default();
        map_reply(op, key, status, retry_after.as_deref(), &bytes)
    }

    /// A 2xx reply whose body may still hold an `<Error>` (CopyObject, Complete).
    async fn checked_body(
        &self,
        op: &str,
        key: &str,
        reply: http::Response<T::Body>,
    ) -> Result<Vec<u8>, StorageError> {
        let mut body = reply.into_body();
        let bytes = read_body(&mut body, REPLY_LIMIT).await?;
        match parse_error(&bytes) {
            Some(_) => Err(map_reply(op, key, 500, None, &bytes)),
            None => Ok(bytes),
        }
    }

    async fn put_single(&self, key: &str, body: Vec<u8>) -> Result<(), StorageError> {
        let request = self.requests.put_object(key, body)?;
        let reply = self
            .call("PutObject", key, &request, Retry::Idempotent)
            .await?;
        read_body(&mut reply.into_body(), REPLY_LIMIT).await?;
        Ok(())
    }

    /// One PutObject of exactly `size` bytes from `payload` to `key`, signed with `sha256`:
    /// the server verifies the digest and keeps nothing on a mismatch (`DigestMismatch`) or
    /// a cut-off payload, so `key` only ever holds bytes with that digest. A single PUT
    /// (up to 5 GiB, S3's limit) is all-or-nothing; no multipart, whose parts would each
    /// need their own digest.
    pub async fn put_declared(
        &self,
        key: &str,
        payload: &mut T::Payload,
        size: u64,
        sha256: &str,
    ) -> Result<(), StorageError> {
        let request = self.requests.put_object_declared(key, size, sha256)?;
        let reply = self.transport.send_payload(&request, payload).await?;
        if !reply.status().is_success() {
            return Err(self.failure("PutObject", key, reply).await);
        }
        read_body(&mut reply.into_body(), REPLY_LIMIT).await?;
        Ok(())
    }

    async fn create_upload(&self, key: &str) -> Result<String, StorageError> {
        let request = self.requests.create_multipart_upload(key)?;
        let reply = self
            .call("CreateMultipartUpload", key, &request, Retry::Once)
            .await?;
        let body = self
            .checked_body("CreateMultipartUpload", key, reply)
            .await?;
        parse_upload_id(&body).ok_or_else(|| {
            StorageError::Backend("s3 CreateMultipartUpload: reply without UploadId".into())
        })
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Vec<u8>,
    ) -> Result<CompletedPart, StorageError> {
        let request = self
            .requests
            .upload_part(key, upload_id, part_number, body)?;
        let reply = self
            .call("UploadPart", key, &request, Retry::Idempotent)
            .await?;
        let etag = header(&reply, "etag").filter(|e| !e.is_empty());
        read_body(&mut reply.into_body(), REPLY_LIMIT).await?;
        let etag = etag.ok_or_else(|| {
            StorageError::Backend(format!("s3 UploadPart {part_number}: reply without ETag"))
        })?;
        Ok(CompletedPart { part_number, etag })
    }

    /// Best effort: a failure here leaves an upload the bucket's lifecycle rule must clean.
    async fn abort_upload(&self, key: &str, upload_id: &str) {
        if let Ok(request) = self.requests.abort_multipart_upload(key, upload_id)
            && let Ok(reply) = self
                .send("AbortMultipartUpload", &request, Retry::Idempotent)
                .await
        {
            let _ = read_body(&mut reply.into_body(), REPLY_LIMIT).await;
        }
    }

    /// Aborts every unfinished multipart upload whose key is exactly `key` (one cut off by
    /// an outage could not abort itself). Listing by `prefix = key` also returns longer
    /// keys; they sort after `key`, so paging stops at the first of them.
    async fn abort_uploads_at(&self, key: &str) -> Result<(), StorageError> {
        let mut marker = None;
        loop {
            let request = self
                .requests
                .list_multipart_uploads_after(key, marker.as_ref())?;
            let reply = self
                .call("ListMultipartUploads", key, &request, Retry::Idempotent)
                .await?;
            let body = read_body(&mut reply.into_body(), LIST_REPLY_LIMIT).await?;
            // A cut reply would lose uploads that the next page's marker then skips.
            if body.len() >= LIST_REPLY_LIMIT || parse_error(&body).is_some() {
                return Err(StorageError::Backend(format!(
                    "s3 ListMultipartUploads of {key}: reply is an error or over \
                     {LIST_REPLY_LIMIT} bytes"
                )));
            }
            let uploads = parse_multipart_uploads(&body);
            let past_key = uploads.iter().any(|(k, _)| k != key);
            for (_, upload_id) in uploads.iter().filter(|(k, _)| k == key) {
                let request = self.requests.abort_multipart_upload(key, upload_id)?;
                let reply = self
                    .send("AbortMultipartUpload", &request, Retry::Idempotent)
                    .await?;
                // 404 NoSuchUpload: completed or aborted since the listing.
                if !reply.status().is_success() && reply.status() != http::StatusCode::NOT_FOUND {
                    return Err(self.failure("AbortMultipartUpload", key, reply).await);
                }
                read_body(&mut reply.into_body(), REPLY_LIMIT).await?;
            }
            let next = parse_uploads_marker(&body);
            // A marker that does not move would list the same page forever.
            if past_key || next.is_none() || next == marker {
                return Ok(());
            }
            marker = next;
        }
    }

    /// Streams the rest of `body` as parts of `part_size`, starting with what `buf`
    /// already holds, then completes the upload. One part is in flight while the next one is
    /// read and hashed (the component's hashing and the server's storing overlap); so at
    /// most two parts are in memory.
    #[allow(clippy::too_many_arguments)]
    async fn upload_rest(
        &self,
        key: &str,
        upload_id: &str,
        body: &mut impl ByteStream,
        mut buf: Vec<u8>,
        hasher: &mut Sha256,
        total: &mut u64,
        max_bytes: u64,
        part_size: usize,
    ) -> Result<(), StorageError> {
        let mut parts: Vec<CompletedPart> = Vec::new();
        let mut ended = false;
        loop {
            // Send every full part buffered (one at a time); a short last part waits for
            // the end.
            if buf.len() >= part_size || ended {
                let rest = buf.split_off(part_size.min(buf.len()));
                let part = std::mem::replace(&mut buf, rest);
                if ended && part.is_empty() && !parts.is_empty() {
                    break;
                }
                let send = self.next_part(key, upload_id, parts.len(), part);
                if ended {
                    parts.push(send.await?);
                    if buf.is_empty() {
                        break;
                    }
                    continue;
                }
                let fill = self.fill(body, &mut buf, hasher, total, max_bytes, part_size);
                let (sent, filled) = futures::join!(send, fill);
                parts.push(sent?);
                ended = filled?;
            } else {
                ended = self
                    .fill(body, &mut buf, hasher, total, max_bytes, part_size)
                    .await?;
            }
        }
        let request = self
            .requests
            .complete_multipart_upload(key, upload_id, &parts)?;
        let reply = self
            .call("CompleteMultipartUpload", key, &request, Retry::Once)
            .await?;
        self.checked_body("CompleteMultipartUpload", key, reply)
            .await?;
        Ok(())
    }

    /// Reads and hashes `body` into `buf` until it holds a whole part; `true` when the body
    /// ended first. Yields after each chunk so a part in flight beside it keeps moving.
    async fn fill(
        &self,
        body: &mut impl ByteStream,
        buf: &mut Vec<u8>,
        hasher: &mut Sha256,
        total: &mut u64,
        max_bytes: u64,
        part_size: usize,
    ) -> Result<bool, StorageError> {
        while buf.len() < part_size {
            match body.next_chunk().await? {
                None => return Ok(true),
                Some(chunk) => {
                    *total += chunk.len() as u64;
                    if *total > max_bytes {
                        return Err(StorageError::TooLarge { limit: max_bytes });
                    }
                    hasher.update(&chunk);
                    append_bounded(buf, &chunk, part_size);
                    self.transport.yield_now().await;
                }
            }
        }
        Ok(false)
    }

    async fn next_part(
        &self,
        key: &str,
        upload_id: &str,
        sent: usize,
        part: Vec<u8>,
    ) -> Result<CompletedPart, StorageError> {
        let number = sent as u64 + 1;
        if number > MAX_PARTS {
            return Err(StorageError::Backend(format!(
                "s3 upload of {key} needs more than {MAX_PARTS} parts"
            )));
        }
        self.upload_part(key, upload_id, number as u32, part).await
    }
}

impl<T: Transport> ObjectStore for S3Store<T> {
    type Reader = T::Body;

    fn backend_id(&self) -> &str {
        BACKEND_ID
    }

    async fn put(
        &self,
        key: &str,
        body: &mut impl ByteStream,
        meta: &PutMetadata,
    ) -> Result<PutReceipt, StorageError> {
        let threshold = self.config.multipart_threshold as usize;
        let part_size = self.config.part_size_for(meta.max_bytes) as usize;
        let mut hasher = Sha256::new();
        let mut total: u64 = 0;
        let mut buf: Vec<u8> = Vec::new();
        // Nothing is written until the body passes the threshold or ends.
        let multipart = loop {
            match body.next_chunk().await? {
                None => break false,
                Some(chunk) => {
                    total += chunk.len() as u64;
                    if total > meta.max_bytes {
                        return Err(StorageError::TooLarge {
                            limit: meta.max_bytes,
                        });
                    }
                    hasher.update(&chunk);
                    append_bounded(&mut buf, &chunk, threshold.max(part_size));
                    if buf.len() > threshold {
                        break true;
                    }
                }
            }
        };
        if multipart {
            let upload_id = self.create_upload(key).await?;
            let done = self
                .upload_rest(
                    key,
                    &upload_id,
                    body,
                    buf,
                    &mut hasher,
                    &mut total,
                    meta.max_bytes,
                    part_size,
                )
                .await;
            if let Err(e) = done {
                self.abort_upload(key, &upload_id).await;
                return Err(e);
            }
            match self.head(key).await? {
                Some(info) if info.size_bytes == total => {}
                found => {
                    let _ = self.delete(key).await;
                    return Err(StorageError::Backend(format!(
                        "s3 multipart upload of {key}: expected {total} bytes, found {:?}",
                        found.map(|i| i.size_bytes)
                    )));
                }
            }
        } else {
            self.put_single(key, buf).await?;
        }
        Ok(PutReceipt {
            location: StorageLocation {
                backend_id: BACKEND_ID.to_string(),
                object_key: key.to_string(),
            },
            size_bytes: total,
            sha256: hex::encode(hasher.finalize()),
        })
    }

    /// A server-side CopyObject: the staging object stays until deleted.
    async fn promote(&self, from: &str, to: &str) -> Result<(), StorageError> {
        let request = self.requests.copy_object(from, to)?;
        let reply = self
            .call("CopyObject", from, &request, Retry::Idempotent)
            .await?;
        self.checked_body("CopyObject", from, reply).await?;
        Ok(())
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<T::Body, StorageError> {
        let request = self.requests.get_object(key, range)?;
        let reply = self
            .call("GetObject", key, &request, Retry::Idempotent)
            .await?;
        Ok(reply.into_body())
    }

    async fn presign_get(
        &self,
        key: &str,
        expires_secs: u64,
    ) -> Result<Option<String>, StorageError> {
        let url = self
            .requests
            .presign_get(key, Duration::from_secs(expires_secs))?;
        Ok(Some(url))
    }

    async fn presign_put(
        &self,
        key: &str,
        sha256: &str,
        expires_secs: u64,
    ) -> Result<Option<Presigned>, StorageError> {
        let presigned = self.requests.presign_put_object_declared(
            key,
            sha256,
            Duration::from_secs(expires_secs),
            std::time::SystemTime::now(),
        )?;
        Ok(Some(presigned))
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
        let request = self.requests.head_object(key)?;
        let reply = self.send("HeadObject", &request, Retry::Idempotent).await?;
        if reply.status() == http::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !reply.status().is_success() {
            return Err(self.failure("HeadObject", key, reply).await);
        }
        let size = header(&reply, "content-length")
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| {
                StorageError::Backend("s3 HeadObject: reply without Content-Length".into())
            })?;
        Ok(Some(ObjectInfo { size_bytes: size }))
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        // Uploads first: one completed meanwhile is then removed by the DeleteObject below.
        self.abort_uploads_at(key).await?;
        let request = self.requests.delete_object(key)?;
        let reply = self
            .send("DeleteObject", &request, Retry::Idempotent)
            .await?;
        if reply.status().is_success() || reply.status() == http::StatusCode::NOT_FOUND {
            read_body(&mut reply.into_body(), REPLY_LIMIT).await?;
            return Ok(());
        }
        Err(self.failure("DeleteObject", key, reply).await)
    }

    /// An upload session is an S3 multipart upload at the staging key.
    async fn begin_parts(&self, key: &str, _plan: &PartPlan) -> Result<String, StorageError> {
        self.create_upload(key).await
    }

    /// The part is read whole (at most `session::MAX_PART_SIZE`), then sent as one
    /// UploadPart (retried as any idempotent request).
    async fn put_part(
        &self,
        key: &str,
        upload_id: &str,
        plan: &PartPlan,
        number: u32,
        body: &mut impl ByteStream,
    ) -> Result<String, StorageError> {
        let limit = plan.part_size as usize;
        let mut part = Vec::with_capacity(plan.part_len(number).unwrap_or(0) as usize);
        while let Some(chunk) = body.next_chunk().await? {
            if part.len() + chunk.len() > limit {
                return Err(StorageError::TooLarge {
                    limit: plan.part_size,
                });
            }
            part.extend_from_slice(&chunk);
        }
        Ok(self.upload_part(key, upload_id, number, part).await?.etag)
    }

    /// CompleteMultipartUpload, then a HEAD: the object must have the planned size.
    async fn assemble_parts(
        &self,
        key: &str,
        upload_id: &str,
        plan: &PartPlan,
        parts: &[SessionPart],
        _sha256: &str,
    ) -> Result<(), StorageError> {
        let parts: Vec<CompletedPart> = parts
            .iter()
            .map(|p| CompletedPart {
                part_number: p.number,
                etag: p.etag.clone(),
            })
            .collect();
        let request = self
            .requests
            .complete_multipart_upload(key, upload_id, &parts)?;
        let reply = self
            .call("CompleteMultipartUpload", key, &request, Retry::Once)
            .await?;
        self.checked_body("CompleteMultipartUpload", key, reply)
            .await?;
        match self.head(key).await? {
            Some(info) if info.size_bytes == plan.size_bytes => Ok(()),
            found => Err(StorageError::Backend(format!(
                "s3 assembled {key}: expected {} bytes, found {:?}",
                plan.size_bytes,
                found.map(|i| i.size_bytes)
            ))),
        }
    }

    async fn health(&self) -> BackendHealth {
        let result = match self.requests.head_bucket() {
            Ok(request) => match self.send("HeadBucket", &request, Retry::Once).await {
                Ok(reply) if reply.status().is_success() => Ok(()),
                // HEAD replies have no body to carry `NoSuchBucket`.
                Ok(reply) if reply.status() == http::StatusCode::NOT_FOUND => {
                    Err(StorageError::Unavailable {
                        detail: format!(
                            "s3 HeadBucket: bucket {} does not exist (HTTP 404): check s3_bucket",
                            self.config.bucket
                        ),
                        retry_after_secs: DEFAULT_RETRY_AFTER_SECS,
                    })
                }
                Ok(reply) => Err(self.failure("HeadBucket", "", reply).await),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => BackendHealth {
                status: HealthStatus::Ok,
                detail: format!(
                    "bucket {} at {}",
                    self.config.bucket,
                    self.requests.endpoint()
                ),
            },
            Err(e) => BackendHealth {
                status: HealthStatus::Unavailable,
                detail: e.to_string(),
            },
        }
    }
}

/// Appends `chunk` without letting `Vec`'s doubling reserve much more than `limit` bytes
/// (an 8 MiB part must not cost 16 MiB).
fn append_bounded(buf: &mut Vec<u8>, chunk: &[u8], limit: usize) {
    let needed = buf.len() + chunk.len();
    if needed > buf.capacity() {
        let target = (buf.capacity() * 2).clamp(needed, limit.max(needed));
        buf.reserve_exact(target - buf.len());
    }
    buf.extend_from_slice(chunk);
}

fn header<B>(reply: &http::Response<B>, name: &str) -> Option<String> {
    reply
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    //! The put and retry logic against an in-memory fake server (the real-server tests are
    //! in `tests/s3_store.rs`).
    use super::*;
    use std::cell::RefCell;
    use std::collections::VecDeque;

    #[derive(Default)]
    struct Fake {
        /// Statuses forced on the next replies, before normal answers resume.
        forced: RefCell<VecDeque<u16>>,
        /// Only requests whose path and query contain this get forced statuses.
        force_on: &'static str,
        /// `(method, path and query, body length)` of every request.
        log: RefCell<Vec<(String, String, usize)>>,
        stored: RefCell<u64>,
        /// The ListMultipartUploads reply (default: no uploads).
        listing: &'static str,
    }

    struct Body(Option<Vec<u8>>);

    impl ByteStream for Body {
        async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
            Ok(self.0.take().filter(|b| !b.is_empty()))
        }
    }

    impl Transport for &Fake {
        type Body = Body;
        type Payload = Vec<u8>;

        async fn send_payload(
            &self,
            request: &S3Request,
            payload: &mut Vec<u8>,
        ) -> Result<http::Response<Body>, StorageError> {
            let mut with_payload = http::Request::builder()
                .method(request.method().clone())
                .uri(request.uri().clone())
                .body(std::mem::take(payload))
                .unwrap();
            *with_payload.headers_mut() = request.headers().clone();
            self.send(&with_payload)
                .await
                .map_err(StorageError::Backend)
        }

        async fn send(&self, request: &S3Request) -> Result<http::Response<Body>, String> {
            let method = request.method().as_str().to_string();
            let target = request.uri().path_and_query().unwrap().to_string();
            let len = request.body().len();
            self.log
                .borrow_mut()
                .push((method.clone(), target.clone(), len));
            let reply = http::Response::builder();
            let forced = target
                .contains(self.force_on)
                .then(|| self.forced.borrow_mut().pop_front())
                .flatten();
            if let Some(status) = forced {
                return Ok(reply.status(status).body(Body(None)).unwrap());
            }
            let (reply, body) = match method.as_str() {
                "POST" if target.ends_with("?uploads") => {
                    (reply, b"<R><UploadId>u1</UploadId></R>".to_vec())
                }
                "PUT" if target.contains("partNumber=") => {
                    *self.stored.borrow_mut() += len as u64;
                    (reply.header("etag", "\"e\""), Vec::new())
                }
                "PUT" => {
                    *self.stored.borrow_mut() = len as u64;
                    (reply, Vec::new())
                }
                "HEAD" => (
                    reply.header("content-length", self.stored.borrow().to_string()),
                    Vec::new(),
                ),
                "GET" if target.ends_with("&uploads") => (reply, self.listing.as_bytes().to_vec()),
                "DELETE" => (reply.status(204), Vec::new()),
                _ => (reply, b"<Done/>".to_vec()),
            };
            Ok(reply.body(Body(Some(body))).unwrap())
        }
    }

    struct Source {
        left: usize,
        fail: bool,
    }

    impl ByteStream for Source {
        async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
            if self.left == 0 {
                return if self.fail {
                    Err(StorageError::Source("gone".into()))
                } else {
                    Ok(None)
                };
            }
            let n = self.left.min(300_000);
            self.left -= n;
            Ok(Some(vec![1; n]))
        }
    }

    const MIB: usize = 1024 * 1024;

    fn store(fake: &Fake) -> S3Store<&Fake> {
        let config = S3Config::from_lookup(|k| {
            Some(
                match k {
                    "s3_endpoint" => "http://s3.test",
                    "s3_bucket" => "b",
                    "s3_access_key_id" => "a",
                    "s3_secret_access_key" => "s",
                    "s3_multipart_threshold" => "1048576",
                    "s3_part_size" => "5242880",
                    _ => "",
                }
                .to_string(),
            )
        })
        .unwrap()
        .unwrap();
        S3Store::with_transport(config, fake)
    }

    fn meta() -> PutMetadata {
        PutMetadata {
            media_type: "x/y".into(),
            max_bytes: 1 << 30,
        }
    }

    fn calls(fake: &Fake) -> Vec<(String, usize)> {
        let log = fake.log.borrow();
        log.iter()
            .map(|(m, t, l)| {
                let op = if t.contains("partNumber") {
                    "PART"
                } else if t.ends_with("?uploads") {
                    "CREATE"
                } else if t.contains("uploadId") {
                    if m == "POST" { "COMPLETE" } else { "ABORT" }
                } else {
                    m.as_str()
                };
                (op.to_string(), *l)
            })
            .collect()
    }

    #[test]
    fn parts_are_part_size_and_the_last_one_short() {
        let fake = Fake::default();
        let mut body = Source {
            left: 11 * MIB,
            fail: false,
        };
        let receipt = futures::executor::block_on(store(&fake).put("k", &mut body, &meta()));
        assert_eq!(receipt.unwrap().size_bytes, 11 * MIB as u64);
        let calls = calls(&fake);
        let parts: Vec<usize> = calls
            .iter()
            .filter(|(op, _)| op == "PART")
            .map(|(_, l)| *l)
            .collect();
        assert_eq!(parts, vec![5 * MIB, 5 * MIB, MIB]);
        assert_eq!(calls.first().unwrap().0, "CREATE");
        assert_eq!(calls[calls.len() - 2].0, "COMPLETE");
        assert_eq!(calls.last().unwrap().0, "HEAD");
    }

    #[test]
    fn source_failure_before_the_threshold_sends_nothing() {
        let fake = Fake::default();
        let mut body = Source {
            left: 1000,
            fail: true,
        };
        let err = futures::executor::block_on(store(&fake).put("k", &mut body, &meta()));
        assert!(matches!(err, Err(StorageError::Source(_))));
        assert!(fake.log.borrow().is_empty());
    }

    #[test]
    fn failed_part_aborts_after_retries() {
        // The first part fails at every attempt.
        let fake = Fake {
            force_on: "partNumber",
            ..Fake::default()
        };
        fake.forced.borrow_mut().extend([503, 503, 503]);
        let mut body = Source {
            left: 6 * MIB,
            fail: false,
        };
        let err = futures::executor::block_on(store(&fake).put("k", &mut body, &meta()));
        assert!(
            matches!(err, Err(StorageError::Unavailable { .. })),
            "{err:?}"
        );
        let ops: Vec<String> = calls(&fake).into_iter().map(|(op, _)| op).collect();
        assert_eq!(ops, ["CREATE", "PART", "PART", "PART", "ABORT"]);
    }

    #[test]
    fn delete_aborts_uploads_at_exactly_the_key_then_deletes() {
        let fake = Fake {
            listing: "<R><Upload><Key>k</Key><UploadId>u1</UploadId></Upload>\
                      <Upload><Key>k</Key><UploadId>u2</UploadId></Upload>\
                      <Upload><Key>k2</Key><UploadId>u3</UploadId></Upload>\
                      <IsTruncated>true</IsTruncated><NextKeyMarker>k2</NextKeyMarker>\
                      <NextUploadIdMarker>u3</NextUploadIdMarker></R>",
            ..Fake::default()
        };
        futures::executor::block_on(store(&fake).delete("k")).unwrap();
        let log: Vec<(String, String)> = fake
            .log
            .borrow()
            .iter()
            .map(|(m, t, _)| (m.clone(), t.clone()))
            .collect();
        let expect = [
            ("GET", "/b?max-uploads=100&prefix=k&uploads"),
            ("DELETE", "/b/k?uploadId=u1"),
            ("DELETE", "/b/k?uploadId=u2"),
            ("DELETE", "/b/k"),
        ];
        let expect: Vec<(String, String)> = expect
            .iter()
            .map(|(m, t)| (m.to_string(), t.to_string()))
            .collect();
        assert_eq!(log, expect);
    }

    #[test]
    fn idempotent_requests_retry_and_complete_does_not() {
        let fake = Fake::default();
        fake.forced.borrow_mut().extend([503, 500]);
        let s = store(&fake);
        assert!(futures::executor::block_on(s.head("k")).is_ok());
        assert_eq!(fake.log.borrow().len(), 3);

        let fake = Fake::default();
        let s = store(&fake);
        let request = s.requests.complete_multipart_upload("k", "u", &[]).unwrap();
        fake.forced.borrow_mut().push_back(503);
        let reply = futures::executor::block_on(s.send("Complete", &request, Retry::Once));
        assert_eq!(reply.unwrap().status(), 503);
        assert_eq!(fake.log.borrow().len(), 1);
    }
}
