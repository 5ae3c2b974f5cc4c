//! The one seam between S3 logic and the network: send a signed request, get a streaming
//! reply.
//!
//! Decision: `S3Store` is generic over `Transport` (default: Spin outbound HTTP), so the
//! multipart, abort and retry logic runs unchanged in native tests against a real RGW with a
//! plain HTTP client. Implementations must send the body with the request's exact
//! `Content-Length` and must not add or drop headers that were signed.

#![allow(async_fn_in_trait)] // guests are single-threaded: no `Send` bounds wanted

use artifact_store_core::ports::{ByteStream, StorageError};

use super::request::S3Request;

/// Sends signed S3 requests.
pub trait Transport {
    /// The reply body, read in bounded chunks.
    type Body: ByteStream;
    /// A payload that comes from elsewhere than the request (Spin: the client's request
    /// body, moved host-side).
    type Payload;

    /// Sends `request` (its body included) and returns the reply once its head arrived.
    /// `Err` only when no reply came (connection refused, reset, timeout): the text says why.
    async fn send(&self, request: &S3Request) -> Result<http::Response<Self::Body>, String>;

    /// Sends `request` with exactly its `Content-Length` bytes taken from `payload` instead
    /// of its own body. Not retried: the payload cannot be read twice. `Source` when the
    /// payload failed or ended early (the request is then cut off, so the server keeps
    /// nothing); `Unavailable` when no reply came.
    async fn send_payload(
        &self,
        request: &S3Request,
        payload: &mut Self::Payload,
    ) -> Result<http::Response<Self::Body>, StorageError>;

    /// Lets the other futures of this task run once, without waiting on anything (a body
    /// being read and hashed yields so a part in flight keeps moving). The default suits
    /// executors that honour wakers.
    async fn yield_now(&self) {
        yield_once(std::task::Waker::wake_by_ref).await
    }
}

/// `Pending` once, after `reschedule` arranged for the task to be polled again; then done.
pub async fn yield_once(reschedule: impl FnOnce(&std::task::Waker)) {
    let mut reschedule = Some(reschedule);
    std::future::poll_fn(|cx| match reschedule.take() {
        Some(r) => {
            r(cx.waker());
            std::task::Poll::Pending
        }
        None => std::task::Poll::Ready(()),
    })
    .await
}

/// Reads a (small) reply body completely, keeping at most `limit` bytes.
pub async fn read_body(body: &mut impl ByteStream, limit: usize) -> Result<Vec<u8>, StorageError> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next_chunk().await? {
        let room = limit.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    Ok(out)
}
