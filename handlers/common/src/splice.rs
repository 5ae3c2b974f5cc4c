//! Moving bytes host-side with `wasi:io/streams` `splice`.
//!
//! Decision: where the guest has nothing to do with the bytes (an upload whose digest S3
//! checks, a download served without guest verification), they go from an input stream to
//! an output stream inside the host: they never enter guest memory, so the guest neither
//! copies nor hashes them (sha256 in wasm runs at a fraction of the storage's speed). The
//! host buffers at most one step; memory stays flat.

use wasi::io::streams::{InputStream, OutputStream, StreamError};

/// The most one host call moves. The host moves less when less is ready.
const STEP: u64 = 4 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpliceError {
    /// The source ended cleanly before the promised length.
    Short(String),
    /// The source failed.
    Source(String),
    /// The destination stopped taking bytes (its peer answered or went away).
    Destination(String),
}

/// Moves exactly `len` bytes from `src` to `dst`, waiting while either side is not ready,
/// then flushes `dst`.
///
/// Non-blocking `splice` plus waiting on whichever side held it up, rather than
/// `blocking-splice`: the latter also waits for each step to be flushed before it reads
/// the next, so reading and sending never overlap.
pub fn exact(src: &InputStream, dst: &OutputStream, len: u64) -> Result<(), SpliceError> {
    let mut moved = 0;
    while moved < len {
        match dst.splice(src, (len - moved).min(STEP)) {
            Ok(0) => match dst.check_write() {
                Ok(0) => dst.subscribe().block(),
                Ok(_) => src.subscribe().block(),
                Err(e) => return Err(SpliceError::Destination(describe(e))),
            },
            Ok(n) => moved += n,
            Err(e) => return Err(blame(dst, e, moved, len)),
        }
    }
    dst.blocking_flush()
        .map_err(|e| SpliceError::Destination(describe(e)))
}

/// Whether `src` has nothing left (a source longer than it should be is refused, not cut).
pub fn at_end(src: &InputStream) -> bool {
    loop {
        match src.blocking_read(1) {
            Ok(b) if b.is_empty() => continue,
            Ok(_) => return false,
            Err(StreamError::Closed) => return true,
            Err(StreamError::LastOperationFailed(_)) => return false,
        }
    }
}

/// `splice` does not say which side failed: if the destination still takes writes, the
/// source did.
fn blame(dst: &OutputStream, e: StreamError, moved: u64, len: u64) -> SpliceError {
    if dst.check_write().is_err() {
        return SpliceError::Destination(describe(e));
    }
    match e {
        StreamError::Closed => {
            SpliceError::Short(format!("the source ended after {moved} of {len} bytes"))
        }
        StreamError::LastOperationFailed(e) => SpliceError::Source(format!(
            "the source failed after {moved} of {len} bytes: {}",
            e.to_debug_string()
        )),
    }
}

fn describe(e: StreamError) -> String {
    match e {
        StreamError::Closed => "the stream was closed".to_string(),
        StreamError::LastOperationFailed(e) => e.to_debug_string(),
    }
}
