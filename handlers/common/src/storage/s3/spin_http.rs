//! `Transport` over Spin's outbound HTTP (`wasi:http/outgoing-handler`).
//!
//! Decision: requests are built as wasi-http `OutgoingRequest`s by hand (not through
//! `spin_sdk::http::send` with a buffered body) so the payload is written to the
//! `OutgoingBody` in bounded chunks while the request is in flight, and the reply body is
//! handed out as a stream, never collected. The `IncomingResponse` is kept alive next to its
//! body stream because dropping it cancels the transfer.

use std::pin::Pin;

use artifact_store_core::ports::{ByteStream, StorageError};
use futures::{SinkExt, Stream, StreamExt};
use spin_sdk::http::{Fields, IncomingResponse, Method, OutgoingRequest, Scheme};

use super::request::S3Request;
use super::transport::Transport;

/// Size of the slices written to the outgoing body.
const WRITE_CHUNK: usize = 64 * 1024;

/// Spin outbound HTTP. The endpoint must be listed in the component's
/// `allowed_outbound_hosts`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SpinHttp;

type BodyStream = Pin<Box<dyn Stream<Item = Result<Vec<u8>, String>>>>;

/// A reply body streamed from the host.
pub struct SpinBody {
    // Field order matters: the stream must be dropped before the response it reads from.
    stream: BodyStream,
    _response: IncomingResponse,
}

impl ByteStream for SpinBody {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        match self.stream.next().await {
            None => Ok(None),
            Some(Ok(chunk)) => Ok(Some(chunk)),
            Some(Err(e)) => Err(StorageError::Unavailable {
                detail: format!("s3 reply body failed: {e}"),
                retry_after_secs: super::error::DEFAULT_RETRY_AFTER_SECS,
            }),
        }
    }
}

impl Transport for SpinHttp {
    type Body = SpinBody;

    async fn send(&self, request: &S3Request) -> Result<http::Response<SpinBody>, String> {
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
        let reply = spin_sdk::http::send::<_, IncomingResponse>(outgoing);
        let (reply, written) = futures::join!(reply, write);
        let response = reply.map_err(|e| e.to_string())?;
        written?;

        let mut builder = http::Response::builder().status(response.status());
        for (name, value) in response.headers().entries() {
            builder = builder.header(name, value);
        }
        let stream: BodyStream = Box::pin(
            response
                .take_body_stream()
                .map(|chunk| chunk.map_err(|e| e.to_debug_string())),
        );
        builder
            .body(SpinBody {
                stream,
                _response: response,
            })
            .map_err(|e| format!("reply head malformed: {e}"))
    }
}
