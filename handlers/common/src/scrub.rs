//! The scrubber: stored objects re-read and checked against their content address, so bytes
//! that rot, get truncated or are changed behind the registry's back are found before a
//! client downloads them. One function shared by the sweep (cron and `POST /admin/sweeps`)
//! and `POST /admin/scrub`.
//!
//! Decisions:
//! - Same shape as an upload session's `verify_slice`: a slice works within a time budget
//!   (`verify_budget_ms`, at least one piece per slice so every slice moves on), reads each
//!   object in ranged pieces (`ObjectStore::get(key, Some(range))`, never whole), and stores
//!   the running sha256 (`ResumableSha256`) with its offset on the blob when the budget ends
//!   mid-object; the next slice continues from there. Objects go in scrub order: a check in
//!   progress, then never verified, then oldest `last_verified_at`.
//! - A `head` first: a missing object or one of the wrong size is known without reading.
//! - A verdict of changed (`found` = the sha256 read), `missing`, `wrong_size` or
//!   `unreadable` (the backend's bytes do not add up: a kv chunk gone or short) marks the
//!   blob corrupt and records `corruption_detected` per affected file (`source: scrub`), in
//!   one transaction; downloads of those files then answer 409 `object_corrupt` before any
//!   byte. A backend that cannot answer (`Unavailable`) is no verdict: the slice stops and
//!   the blob is checked again later.

use std::time::{Duration, Instant};

use artifact_store_core::ports::{
    ByteRange, ByteStream, MetaResult, MetadataStore, ObjectStore, ScrubFinding, ScrubTarget,
    StorageError,
};
use artifact_store_core::session::ResumableSha256;
use artifact_store_core::time;

use crate::config::Config;
use crate::sweep::ObjectStores;

/// Bytes read per ranged `get` (an upload session's default part size).
pub const PIECE_BYTES: u64 = 8 * 1024 * 1024;

/// How much one slice does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrubConfig {
    /// Blobs looked at per slice, at most.
    pub batch_size: u32,
    /// Time one slice spends reading (at least one piece is always read).
    pub budget: Duration,
    /// Bytes per ranged read.
    pub piece_bytes: u64,
}

impl ScrubConfig {
    pub fn from_config(config: &Config) -> ScrubConfig {
        ScrubConfig {
            batch_size: config.sweep_batch_size,
            budget: Duration::from_millis(config.verify_budget_ms),
            piece_bytes: PIECE_BYTES,
        }
    }
}

/// What one slice did: the `POST /admin/scrub` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScrubReport {
    /// Blobs looked at.
    pub examined: u64,
    /// Blobs whose whole object hashed to its address (`last_verified_at` recorded).
    pub verified: u64,
    /// Blobs found changed, of the wrong size or unreadable (newly marked).
    pub corrupt: u64,
    /// Blobs whose object is gone (newly marked).
    pub missing: u64,
    /// Blobs whose check the budget cut: their digest state is stored for the next slice.
    pub unfinished: u64,
    /// Blobs left for later because their backend could not answer.
    pub unavailable: u64,
    pub bytes_read: u64,
    /// What this slice found (the marked blobs with their affected files).
    pub findings: Vec<ScrubFinding>,
}

/// What checking one blob came to.
enum Check {
    Intact,
    /// The budget ended mid-object; the state is stored.
    Partial,
    Bad {
        found: String,
        detail: String,
    },
    /// No verdict: the backend could not answer.
    Unavailable(String),
    /// Another scrubber moved this blob's state meanwhile: it carries on.
    Raced,
}

/// Runs one slice of scrubbing on behalf of `actor` (an operator, or the sweeper).
pub async fn scrub_slice<M: MetadataStore, B: ObjectStores>(
    meta: &M,
    stores: &B,
    cfg: &ScrubConfig,
    actor: &str,
) -> MetaResult<ScrubReport> {
    let started = Instant::now();
    let mut report = ScrubReport::default();
    for target in meta.scrub_candidates(cfg.batch_size).await? {
        if report.bytes_read > 0 && started.elapsed() >= cfg.budget {
            break;
        }
        let Some(store) = stores.object_store(&target.location.backend_id) else {
            continue; // a backend this deployment does not configure
        };
        report.examined += 1;
        let loc = &target.location;
        match check(meta, store, &target, cfg, started, &mut report.bytes_read).await? {
            Check::Intact => {
                meta.mark_verified(loc, time::now()).await?;
                report.verified += 1;
            }
            Check::Partial => report.unfinished += 1,
            Check::Raced => {}
            Check::Unavailable(detail) => {
                eprintln!(
                    "artifact-store: scrub: {}/{}: {detail}",
                    loc.backend_id, loc.object_key
                );
                report.unavailable += 1;
                break;
            }
            Check::Bad { found, detail } => {
                let marked = meta
                    .mark_corrupt(loc, &found, &detail, actor, time::now())
                    .await?;
                // `None`: a sweep is deleting it, or it was marked meanwhile.
                if let Some(finding) = marked {
                    eprintln!(
                        "artifact-store: scrub: corruption: {}/{}: {detail}",
                        loc.backend_id, loc.object_key
                    );
                    if found == "missing" {
                        report.missing += 1;
                    } else {
                        report.corrupt += 1;
                    }
                    report.findings.push(finding);
                }
            }
        }
    }
    Ok(report)
}

/// A verdict from a failed read: a backend's word that the bytes are gone or do not add
/// up is one; anything else is no verdict.
fn classify(e: StorageError) -> Check {
    match e {
        StorageError::NotFound(key) => Check::Bad {
            found: "missing".into(),
            detail: format!("no object at {key}"),
        },
        StorageError::Backend(detail) => Check::Bad {
            found: "unreadable".into(),
            detail,
        },
        other => Check::Unavailable(other.to_string()),
    }
}

async fn check<M: MetadataStore, S: ObjectStore>(
    meta: &M,
    store: &S,
    target: &ScrubTarget,
    cfg: &ScrubConfig,
    started: Instant,
    bytes_read: &mut u64,
) -> MetaResult<Check> {
    let key = target.location.object_key.as_str();
    let size = target.size_bytes;
    match store.head(key).await {
        Ok(None) => {
            return Ok(Check::Bad {
                found: "missing".into(),
                detail: format!("no object at {key}"),
            });
        }
        Ok(Some(info)) if info.size_bytes != size => {
            return Ok(Check::Bad {
                found: "wrong_size".into(),
                detail: format!(
                    "the object has {} bytes, not the recorded {size}",
                    info.size_bytes
                ),
            });
        }
        Ok(Some(_)) => {}
        Err(e) => return Ok(classify(e)),
    }
    // Where an earlier slice left off (a state that does not decode starts afresh).
    let stored = target.verified_bytes;
    let resumed = (stored > 0 && stored <= size)
        .then(|| ResumableSha256::from_hex(&target.hash_state))
        .flatten()
        .filter(|_| !target.hash_state.is_empty());
    let (mut hasher, mut done) = match resumed {
        Some(h) => (h, stored),
        None => (ResumableSha256::new(), 0),
    };
    let piece = cfg.piece_bytes.max(1);
    while done < size {
        if *bytes_read > 0 && started.elapsed() >= cfg.budget {
            return Ok(
                if meta
                    .save_scrub_progress(&target.location, stored, done, &hasher.to_hex())
                    .await?
                {
                    Check::Partial
                } else {
                    Check::Raced
                },
            );
        }
        let len = piece.min(size - done);
        let range = ByteRange {
            start: done,
            end_inclusive: done + len - 1,
        };
        let mut reader = match store.get(key, Some(range)).await {
            Ok(r) => r,
            Err(e) => return Ok(classify(e)),
        };
        let mut read = 0u64;
        loop {
            match reader.next_chunk().await {
                Ok(Some(chunk)) => {
                    read += chunk.len() as u64;
                    if read > len {
                        break;
                    }
                    hasher.update(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Ok(classify(e)),
            }
        }
        if read != len {
            return Ok(Check::Bad {
                found: "unreadable".into(),
                detail: format!(
                    "bytes {}..={} of {key} read back as {read} bytes, not {len}",
                    range.start, range.end_inclusive
                ),
            });
        }
        done += len;
        *bytes_read += len;
    }
    let actual = hasher.finish_hex();
    if actual == target.sha256 {
        return Ok(Check::Intact);
    }
    Ok(Check::Bad {
        detail: format!(
            "the object's bytes hash to {actual}, not to its address {}",
            target.sha256
        ),
        found: actual,
    })
}
