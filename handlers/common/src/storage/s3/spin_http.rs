//! `Transport` over Spin's outbound HTTP (`wasi:http/outgoing-handler`).
//!
//! Decision: requests are built as wasi-http `OutgoingRequest`s by hand (not through
//! `spin_sdk::http::send` with a buffered body) so the payload is written to the
//! `OutgoingBody` in bounded chunks while the request is in flight, and the reply body is
//! handed out as a stream, never collected. The `IncomingResponse` is kept alive next to its
//! body stream because dropping it cancels the transfer. A payload that is the client's
//! own request body (`send_payload`) is spliced host-side and never enters the guest.

use artifact_store_core::ports::{ByteStream, StorageError};
use futures::SinkExt;
use spin_sdk::http::{Fields, IncomingResponse, Method, OutgoingBody, OutgoingRequest, Scheme};
use spin_sdk::wit::wasi::http0_2_0::outgoing_handler::{self, FutureIncomingResponse};
use spin_sdk::wit::wasi::http0_2_0::types::RequestOptions;
use std::time::Duration;
use wasi::io::streams::{InputStream, StreamError};

use super::error::{DEFAULT_RETRY_AFTER_SECS, connection_failed};
use super::request::S3Request;
use super::transport::{Transport, yield_once};
use crate::body::RawBody;
use crate::splice::{self, SpliceError};

/// Size of the slices written to the outgoing body.
const WRITE_CHUNK: usize = 64 * 1024;
/// The most one read of a reply body asks the host for (it answers with what is ready).
const READ_CHUNK: u64 = 1024 * 1024;

/// Spin outbound HTTP. The endpoint must be listed in the component's
/// `allowed_outbound_hosts`.
///
/// `timeout` bounds each wait on S3: to connect, for the reply (hosts count from the start
/// of the request, so this also bounds writing a buffered body of at most one part; a
/// spliced payload, whose length has no bound, gets it after its last byte instead), and
/// for the next bytes of a spliced payload. A silent S3 then fails the request, 503,
/// instead of holding the instance.
#[derive(Debug, Clone, Copy)]
pub struct SpinHttp {
    pub timeout: Duration,
}

/// A reply body streamed from the host.
pub struct SpinBody {
    // Field order matters: the body must be dropped before the response it belongs to.
    body: RawBody,
    _response: IncomingResponse,
}

impl SpinBody {
    fn new(response: IncomingResponse) -> Result<SpinBody, String> {
        let body = response
            .consume()
            .map_err(|()| "reply body already taken".to_string())?;
        Ok(SpinBody {
            body: RawBody::from_body(body)?,
            _response: response,
        })
    }

    /// The host's stream, to move the body host-side (`crate::splice`).
    pub fn stream(&self) -> &InputStream {
        self.body.stream()
    }
}

impl ByteStream for SpinBody {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        loop {
            match self.stream().blocking_read(READ_CHUNK) {
                Ok(chunk) if chunk.is_empty() => continue,
                Ok(chunk) => return Ok(Some(chunk)),
                Err(StreamError::Closed) => return Ok(None),
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(StorageError::Unavailable {
                        detail: format!("s3 reply body failed: {}", e.to_debug_string()),
                        retry_after_secs: DEFAULT_RETRY_AFTER_SECS,
                    });
                }
            }
        }
    }
}

/// The request's head as a wasi-http `OutgoingRequest` (the body is written separately).
fn outgoing(request: &S3Request) -> Result<OutgoingRequest, String> {
    let headers: Vec<(String, Vec<u8>)> = request
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
        .collect();
    let fields = Fields::from_list(&headers).map_err(|e| format!("header rejected: {e:?}"))?;
    let outgoing = OutgoingRequest::new(fields);
    let uri = request.uri();
    outgoing
        .set_method(&Method::from(request.method().clone()))
        .map_err(|()| "method rejected".to_string())?;
    outgoing
        .set_path_with_query(uri.path_and_query().map(|p| p.as_str()))
        .map_err(|()| "path rejected".to_string())?;
    let scheme = match uri.scheme_str() {
        Some("https") => Scheme::Https,
        _ => Scheme::Http,
    };
    outgoing
        .set_scheme(Some(&scheme))
        .map_err(|()| "scheme rejected".to_string())?;
    outgoing
        .set_authority(uri.authority().map(|a| a.as_str()))
        .map_err(|()| "authority rejected".to_string())?;
    Ok(outgoing)
}

/// Timeouts for one request. A host that cannot honour one keeps its own default.
fn options(connect: Duration, first_byte: Option<Duration>) -> RequestOptions {
    use crate::splice::nanos;
    let options = RequestOptions::new();
    let _ = options.set_connect_timeout(Some(nanos(connect)));
    if let Some(d) = first_byte {
        let _ = options.set_first_byte_timeout(Some(nanos(d)));
    }
    options
}

/// The reply to a request in flight, without blocking the guest's other futures (Spin's
/// executor re-polls when the registered pollable is ready).
async fn reply_of(future: FutureIncomingResponse) -> Result<IncomingResponse, String> {
    loop {
        if let Some(reply) = ready_reply(&future) {
            return reply;
        }
        yield_once(|waker| spin_executor::push_waker(future.subscribe(), waker.clone())).await
    }
}

/// The reply of a request, or why none came; `None` while it is still in flight.
fn ready_reply(future: &FutureIncomingResponse) -> Option<Result<IncomingResponse, String>> {
    future.get().map(|reply| match reply {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(e)) => Err(format!("{e:?}")),
        Err(()) => Err("no reply".to_string()),
    })
}

fn into_http(response: IncomingResponse) -> Result<http::Response<SpinBody>, String> {
    let mut builder = http::Response::builder().status(response.status());
    for (name, value) in response.headers().entries() {
        builder = builder.header(name, value);
    }
    builder
        .body(SpinBody::new(response)?)
        .map_err(|e| format!("reply head malformed: {e}"))
}

impl Transport for SpinHttp {
    type Body = SpinBody;
    type Payload = RawBody;

    /// Spin's executor ignores wakers: it re-polls only when a registered pollable is
    /// ready, so yield on one that is ready at once (a zero-length timer).
    async fn yield_now(&self) {
        yield_once(|waker| {
            let ready = wasi::clocks::monotonic_clock::subscribe_duration(0);
            spin_executor::push_waker(ready, waker.clone());
        })
        .await
    }

    async fn send(&self, request: &S3Request) -> Result<http::Response<SpinBody>, String> {
        let outgoing = outgoing(request)?;
        // Take the body sink before the request is handed over; write while it is in flight.
        let mut sink = outgoing.take_body();
        let body = request.body();
        let write = async move {
            for slice in body.chunks(WRITE_CHUNK) {
                sink.send(slice.to_vec())
                    .await
                    .map_err(|e| format!("request body write failed: {e:?}"))?;
            }
            // Dropping the sink finishes the body (no trailers).
            drop(sink);
            Ok::<(), String>(())
        };
        let options = options(self.timeout, Some(self.timeout));
        let reply =
            outgoing_handler::handle(outgoing, Some(options)).map_err(|e| format!("{e:?}"))?;
        let (reply, written) = futures::join!(reply_of(reply), write);
        let response = reply?;
        written?;
        into_http(response)
    }

    async fn send_payload(
        &self,
        request: &S3Request,
        payload: &mut RawBody,
    ) -> Result<http::Response<SpinBody>, StorageError> {
        let op = "PutObject";
        let length: u64 = request
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .ok_or_else(|| StorageError::Backend("payload request without a length".into()))?;
        let outgoing = outgoing(request).map_err(|e| connection_failed(op, e))?;
        let body = outgoing
            .body()
            .map_err(|()| connection_failed(op, "request body already taken"))?;
        let future = outgoing_handler::handle(outgoing, Some(options(self.timeout, None)))
            .map_err(|e| connection_failed(op, format!("{e:?}")))?;
        let stream = body
            .write()
            .map_err(|()| connection_failed(op, "request body not writable"))?;
        // Bytes a parser already read from the body go first, then the rest host-side.
        let held = payload.take_held();
        let moved = match length.checked_sub(held.len() as u64) {
            Some(rest) => splice::write_all(&stream, &held, self.timeout)
                .and_then(|()| splice::exact(payload.stream(), &stream, rest, self.timeout)),
            None => Err(SpliceError::Source(
                "more bytes held than the payload's length".into(),
            )),
        };
        drop(stream);
        match moved {
            Ok(()) => OutgoingBody::finish(body, None)
                .map_err(|e| connection_failed(op, format!("finishing the body: {e:?}")))?,
            // Dropping the unfinished body cuts the request off: the server keeps nothing.
            Err(SpliceError::Short(detail) | SpliceError::Source(detail)) => {
                drop(body);
                return Err(StorageError::Source(detail));
            }
            // The server stopped reading: its reply (below) says why.
            Err(SpliceError::Destination(_)) => drop(body),
        }
        if !splice::ready_within(&future.subscribe(), self.timeout) {
            // Dropping the future cancels the request.
            return Err(connection_failed(
                op,
                format!("no reply {} s after the body", self.timeout.as_secs()),
            ));
        }
        match ready_reply(&future) {
            Some(Ok(response)) => into_http(response).map_err(|e| connection_failed(op, e)),
            Some(Err(e)) => Err(connection_failed(op, e)),
            None => Err(connection_failed(op, "no reply")),
        }
    }
}
