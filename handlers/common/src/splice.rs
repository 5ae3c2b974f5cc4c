//! Moving bytes host-side with `wasi:io/streams` `splice`.
//!
//! Decision: where the guest has nothing to do with the bytes (an upload whose digest S3
//! checks, a download served without guest verification), they go from an input stream to
//! an output stream inside the host: they never enter guest memory, so the guest neither
//! copies nor hashes them (sha256 in wasm runs at a fraction of the storage's speed). The
//! host buffers at most one step; memory stays flat.

use std::time::Duration;

use wasi::io::poll::Pollable;
use wasi::io::streams::{InputStream, OutputStream, StreamError};

/// The most one host call moves. The host moves less when less is ready.
const STEP: u64 = 4 * 1024 * 1024;

/// How long a download waits on a side that moves nothing (a client that stopped reading,
/// a backend that stopped sending) before it gives up, so a stalled peer cannot hold an
/// instance without end.
pub const DOWNLOAD_STALL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpliceError {
    /// The source ended cleanly before the promised length.
    Short(String),
    /// The source failed.
    Source(String),
    /// The destination stopped taking bytes (its peer answered or went away).
    Destination(String),
}

/// Moves exactly `len` bytes from `src` to `dst`, waiting while either side is not ready
/// (at most `stall` at a time: past it the side that held it up is blamed), then flushes
/// `dst`.
///
/// Non-blocking `splice` plus waiting on whichever side held it up, rather than
/// `blocking-splice`: the latter also waits for each step to be flushed before it reads
/// the next, so reading and sending never overlap.
pub fn exact(
    src: &InputStream,
    dst: &OutputStream,
    len: u64,
    stall: Duration,
) -> Result<(), SpliceError> {
    let mut moved = 0;
    while moved < len {
        match dst.splice(src, (len - moved).min(STEP)) {
            Ok(0) => {
                // Wait on whichever side held the step up.
                let dst_full = match dst.check_write() {
                    Ok(room) => room == 0,
                    Err(e) => return Err(SpliceError::Destination(describe(e))),
                };
                let side = if dst_full {
                    dst.subscribe()
                } else {
                    src.subscribe()
                };
                if !ready_within(&side, stall) {
                    let verb = if dst_full { "taken" } else { "sent" };
                    let detail = format!(
                        "no bytes {verb} for {} s, after {moved} of {len} bytes",
                        stall.as_secs()
                    );
                    return Err(if dst_full {
                        SpliceError::Destination(detail)
                    } else {
                        SpliceError::Source(detail)
                    });
                }
            }
            Ok(n) => moved += n,
            Err(e) => return Err(blame(dst, e, moved, len)),
        }
    }
    dst.blocking_flush()
        .map_err(|e| SpliceError::Destination(describe(e)))
}

/// Writes all of `data` to `dst` (bytes the guest holds, ahead of a splice or as a
/// response), waiting at most `stall` at a time for `dst` to take more.
pub fn write_all(dst: &OutputStream, mut data: &[u8], stall: Duration) -> Result<(), SpliceError> {
    let failed = |e: StreamError| {
        SpliceError::Destination(match e {
            StreamError::Closed => "the peer went away".to_string(),
            StreamError::LastOperationFailed(e) => e.to_debug_string(),
        })
    };
    while !data.is_empty() {
        let budget = dst.check_write().map_err(failed)?;
        if budget == 0 {
            if !ready_within(&dst.subscribe(), stall) {
                return Err(SpliceError::Destination(format!(
                    "no bytes taken for {} s",
                    stall.as_secs()
                )));
            }
            continue;
        }
        let n = usize::try_from(budget)
            .unwrap_or(usize::MAX)
            .min(data.len());
        dst.write(&data[..n]).map_err(failed)?;
        data = &data[n..];
    }
    Ok(())
}

/// A duration in the nanoseconds wasi's clocks and timeouts take (saturating).
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Waits until `pollable` is ready or `limit` passed; whether it became ready.
pub fn ready_within(pollable: &Pollable, limit: Duration) -> bool {
    let timer = wasi::clocks::monotonic_clock::subscribe_duration(nanos(limit));
    wasi::io::poll::poll(&[pollable, &timer]).contains(&0)
}

/// Blocks the instance for `d` (a request's instance has nothing else to do meanwhile).
pub async fn sleep(d: Duration) {
    wasi::clocks::monotonic_clock::subscribe_duration(nanos(d)).block();
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
