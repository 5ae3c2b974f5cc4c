//! HTTP bodies in and out, chunk by chunk.
//!
//! Decision: responses are written through our own `ResponseWriter` on the raw WASI
//! `outgoing-body` rather than spin-sdk's body sink, because the sink always finishes the
//! body cleanly when dropped. A download whose bytes fail verification must end with a
//! *broken* body (`abort` drops the body without `finish`, so the host reports an
//! incomplete response); only `finish` tells the client the bytes are complete.
//! Writes block the guest until the host accepts them (WASI 0.2 components serve one
//! request per instance, so there is nothing else to run meanwhile).

use std::pin::Pin;

use artifact_store_core::ports::{ByteStream, StorageError};
use futures::{Stream, StreamExt};
use spin_sdk::http::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};
use spin_sdk::wit::wasi::http0_2_0::types::IncomingBody;
use wasi::io::streams::{InputStream, OutputStream, StreamError};

use crate::problem::{ApiError, log_error};
use crate::splice::{self, SpliceError};
use crate::storage::s3::transport::yield_once;

type WasiBodyStream = Pin<Box<dyn Stream<Item = Result<Vec<u8>, wasi::io::streams::Error>>>>;

/// The request body as a `ByteStream` (chunks of at most the host's read size).
pub struct RequestBody {
    inner: WasiBodyStream,
}

impl RequestBody {
    pub fn new(req: IncomingRequest) -> RequestBody {
        RequestBody {
            inner: Box::pin(req.into_body_stream()),
        }
    }
}

impl ByteStream for RequestBody {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        loop {
            match self.inner.next().await {
                None => return Ok(None),
                Some(Ok(c)) if c.is_empty() => continue,
                Some(Ok(c)) => return Ok(Some(c)),
                Some(Err(e)) => return Err(StorageError::Source(e.to_debug_string())),
            }
        }
    }
}

/// How much one read of a `RawBody` asks the host for (spin-sdk's body stream asks for
/// 16 KiB): fewer host calls per MiB on the paths that hash in the guest.
const READ_SIZE: u64 = 1024 * 1024;

/// An incoming body (a request's, or an outbound reply's) as the host's stream, for
/// reading it directly or moving it host-side (`crate::splice`).
pub struct RawBody {
    /// Bytes of the body already taken from the stream (a parser read past where the bytes
    /// to move host-side begin), served before the stream.
    held: Vec<u8>,
    // Field order matters: the stream must be dropped before the body it reads from.
    stream: InputStream,
    _body: IncomingBody,
}

impl RawBody {
    pub fn new(req: IncomingRequest) -> Result<RawBody, String> {
        let body = req
            .consume()
            .map_err(|()| "request body already taken".to_string())?;
        RawBody::from_body(body)
    }

    pub fn from_body(body: IncomingBody) -> Result<RawBody, String> {
        let stream = body
            .stream()
            .map_err(|()| "body not readable".to_string())?;
        Ok(RawBody {
            held: Vec::new(),
            stream,
            _body: body,
        })
    }

    pub fn stream(&self) -> &InputStream {
        &self.stream
    }

    /// Puts `bytes` (read from this body's start or past where reading stopped) back in
    /// front of the stream.
    pub fn hold(&mut self, mut bytes: Vec<u8>) {
        bytes.append(&mut self.held);
        self.held = bytes;
    }

    /// The held bytes, taken (a host-side move sends these first, then the stream).
    pub fn take_held(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.held)
    }
}

impl ByteStream for RawBody {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        if !self.held.is_empty() {
            return Ok(Some(self.take_held()));
        }
        loop {
            match self.stream.read(READ_SIZE) {
                Ok(chunk) if chunk.is_empty() => {
                    let stream = &self.stream;
                    yield_once(|waker| spin_executor::push_waker(stream.subscribe(), waker.clone()))
                        .await
                }
                Ok(chunk) => return Ok(Some(chunk)),
                Err(StreamError::Closed) => return Ok(None),
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(StorageError::Source(e.to_debug_string()));
                }
            }
        }
    }
}

/// Counts bytes and fails with `TooLarge` once past `limit` (enforced before any backend).
pub struct Limited<'a, S> {
    inner: &'a mut S,
    limit: u64,
    seen: u64,
}

impl<'a, S> Limited<'a, S> {
    pub fn new(inner: &'a mut S, limit: u64) -> Limited<'a, S> {
        Limited {
            inner,
            limit,
            seen: 0,
        }
    }
}

impl<S: ByteStream> ByteStream for Limited<'_, S> {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        let chunk = self.inner.next_chunk().await?;
        if let Some(c) = &chunk {
            self.seen += c.len() as u64;
            if self.seen > self.limit {
                return Err(StorageError::TooLarge { limit: self.limit });
            }
        }
        Ok(chunk)
    }
}

/// A small, fully built response.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json<T: serde::Serialize>(status: u16, value: &T) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(value).unwrap_or_default(),
        }
    }

    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Reply {
        Reply {
            status: e.status(),
            headers: e.response_headers(),
            body: e.body(),
        }
    }
}

/// Sends a handler's outcome.
pub fn send(out: ResponseOutparam, result: Result<Reply, ApiError>) {
    let reply = result.unwrap_or_else(Reply::from);
    let mut headers = reply.headers;
    headers.push(("content-length".into(), reply.body.len().to_string()));
    match ResponseWriter::start(out, reply.status, &headers) {
        Ok(mut w) => {
            if w.write(&reply.body).is_ok() {
                w.finish();
            }
        }
        Err(e) => log_error("response", &e),
    }
}

/// A response whose body is written in chunks after the head is sent.
pub struct ResponseWriter {
    stream: Option<OutputStream>,
    body: Option<OutgoingBody>,
}

impl ResponseWriter {
    /// Sends status and headers; the body follows through `write`.
    pub fn start(
        out: ResponseOutparam,
        status: u16,
        headers: &[(String, String)],
    ) -> Result<ResponseWriter, String> {
        let list: Vec<(String, Vec<u8>)> = headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone().into_bytes()))
            .collect();
        let fields = Fields::from_list(&list).map_err(|e| format!("bad header: {e:?}"))?;
        let response = OutgoingResponse::new(fields);
        response
            .set_status_code(status)
            .map_err(|_| format!("bad status {status}"))?;
        let body = response
            .body()
            .map_err(|_| "response body already taken".to_string())?;
        out.set(response);
        let stream = body
            .write()
            .map_err(|_| "response body not writable".to_string())?;
        Ok(ResponseWriter {
            stream: Some(stream),
            body: Some(body),
        })
    }

    /// Writes all of `data`, waiting while the host's buffer is full.
    pub fn write(&mut self, data: &[u8]) -> Result<(), String> {
        let stream = self.stream.as_ref().ok_or("response already ended")?;
        splice::write_all(stream, data, splice::DOWNLOAD_STALL).map_err(|e| match e {
            SpliceError::Destination(d) | SpliceError::Source(d) | SpliceError::Short(d) => {
                format!("the client took no more bytes: {d}")
            }
        })
    }

    /// Moves exactly `len` bytes from `src` into the body host-side (`crate::splice`).
    pub fn splice(&mut self, src: &InputStream, len: u64) -> Result<(), SpliceError> {
        let stream = self
            .stream
            .as_ref()
            .ok_or_else(|| SpliceError::Destination("response already ended".into()))?;
        splice::exact(src, stream, len, splice::DOWNLOAD_STALL)
    }

    /// Ends the body cleanly: the client sees a complete response.
    pub fn finish(mut self) {
        if let Some(stream) = self.stream.take() {
            let _ = stream.blocking_flush();
        }
        if let Some(body) = self.body.take()
            && let Err(e) = OutgoingBody::finish(body, None)
        {
            log_error("response", &format!("finishing body failed: {e:?}"));
        }
    }

    /// Ends the body without finishing it: the client sees a broken response.
    pub fn abort(mut self) {
        drop(self.stream.take());
        // Dropping an unfinished outgoing-body tells the host the body is incomplete.
        drop(self.body.take());
    }
}

impl Drop for ResponseWriter {
    fn drop(&mut self) {
        // Neither finished nor aborted explicitly (an early return): treat as broken.
        drop(self.stream.take());
        drop(self.body.take());
    }
}
